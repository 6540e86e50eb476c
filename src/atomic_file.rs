//! Replacing a file so that a reader sees the old content or the new, never half of either,
//! and a crash loses neither: the new content goes to a temporary file in the same folder
//! (`.NAME.PID.tmp`, hidden, and not matching the `*.prom` or `*.json` globs readers look
//! for), is synced, renamed over the file, and the folder is synced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces the file at `path` with `bytes`, atomically, with permissions `mode` (whatever
/// the process's umask). On failure the old file is untouched and no temporary is left.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temporary = temporary_path(path)?;
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let mut file = options.open(&temporary)?;
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    if let Some(folder) = folder_of(path) {
        File::open(folder)?.sync_all()?;
    }
    Ok(())
}

/// Removes the temporary files of earlier writers of `path` (any process id) that a crash
/// left behind. Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> io::Result<usize> {
    let prefix = temporary_prefix(path)?;
    let folder = folder_of(path).unwrap_or(Path::new("."));
    let mut removed = 0;
    for entry in fs::read_dir(folder)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            fs::remove_file(folder.join(&*name))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn folder_of(path: &Path) -> Option<&Path> {
    path.parent()
        .filter(|folder| !folder.as_os_str().is_empty())
}

/// `.NAME.`: what every temporary file of `path` starts with.
fn temporary_prefix(path: &Path) -> io::Result<String> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    Ok(format!(".{}.", name.to_string_lossy()))
}

fn temporary_path(path: &Path) -> io::Result<PathBuf> {
    let name = format!("{}{}.tmp", temporary_prefix(path)?, std::process::id());
    Ok(path.with_file_name(name))
}

/// The names in `folder`, sorted (for tests of what is left beside a file).
#[cfg(test)]
pub(crate) fn names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_with_its_mode_and_leaves_nothing_beside_it() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beid_agent.prom");
        replace(&path, b"beid_pcscd_up 0\n", 0o600).unwrap();
        replace(&path, b"beid_pcscd_up 1\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "beid_pcscd_up 1\n");
        assert_eq!(names(folder.path()), ["beid_agent.prom"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beid_agent.prom");
        replace(&path, b"beid_pcscd_up 1\n", 0o644).unwrap();
        // A folder where the file should be: the rename fails.
        let blocked = folder.path().join("blocked.prom");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), "x").unwrap();
        assert!(replace(&blocked, b"beid_pcscd_up 0\n", 0o644).is_err());
        assert_eq!(names(folder.path()), ["beid_agent.prom", "blocked.prom"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "beid_pcscd_up 1\n");
    }

    #[test]
    fn temporaries_left_by_a_crash_are_removed_and_nothing_else() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beid_agent.prom");
        for name in [
            ".beid_agent.prom.4242.tmp",
            ".beid_agent.prom.7.tmp",
            "beid_agent.prom",
            "node_other.prom",
            ".node_other.prom.4242.tmp",
        ] {
            fs::write(folder.path().join(name), "x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&path).unwrap(), 2);
        assert_eq!(
            names(folder.path()),
            [
                ".node_other.prom.4242.tmp",
                "beid_agent.prom",
                "node_other.prom"
            ]
        );
    }
}
