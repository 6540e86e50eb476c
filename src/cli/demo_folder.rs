//! Where `serve --simulate` keeps its state and its demo token, which carries every scope.
//!
//! A predictable folder in the shared `/tmp` let another local user create it first (and read
//! the token) or plant a symbolic link there (and have the agent, perhaps running as root,
//! write the token over a file of theirs choosing). So the folder is the user's own:
//!
//! 1. `$XDG_RUNTIME_DIR/beid-agent-demo`, when `$XDG_RUNTIME_DIR` is a private directory of
//!    this user (systemd-logind makes `/run/user/UID` so);
//! 2. else `$TMPDIR/beid-agent-UID/beid-agent-demo` (`/tmp` without `TMPDIR`): a private
//!    stand-in for the runtime directory, as the XDG specification suggests;
//! 3. else, when either is not what it must be (someone else's, a symbolic link, open to
//!    others), a fresh private temporary directory, and a warning saying why.
//!
//! Every folder is created exclusively with mode 0700 (`mkdir` never follows a symbolic link
//! at its last component); one that exists already is used only if it is a real directory of
//! this user that nobody else may enter. Paths 1 and 2 are fixed per user, so the README's
//! commands find the token without reading the banner.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The demo folder's name inside the runtime directory.
const FOLDER: &str = "beid-agent-demo";

/// The chosen folder, and why the fixed one was not used, if it was not.
#[derive(Debug)]
pub struct DemoFolder {
    pub path: PathBuf,
    pub refused: Option<String>,
}

/// Finds (or makes) the demo folder as the module says.
pub fn demo_folder() -> std::io::Result<DemoFolder> {
    let fixed = runtime_dir().and_then(|runtime| {
        let folder = runtime.join(FOLDER);
        private_dir(&folder).map(|()| folder)
    });
    match fixed {
        Ok(path) => Ok(DemoFolder {
            path,
            refused: None,
        }),
        Err(reason) => Ok(DemoFolder {
            path: fresh_private_dir()?,
            refused: Some(reason),
        }),
    }
}

/// `$XDG_RUNTIME_DIR` if it is private to this user, else the private stand-in.
fn runtime_dir() -> Result<PathBuf, String> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute());
    if let Some(xdg) = xdg {
        if let Ok(()) = check_private(&xdg) {
            return Ok(xdg);
        }
    }
    let stand_in = std::env::temp_dir().join(format!("beid-agent-{}", uid()));
    private_dir(&stand_in)?;
    Ok(stand_in)
}

/// Creates `path` (mode 0700) or accepts it if it is already a private directory of ours.
fn private_dir(path: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => check_private(path),
        Err(error) => Err(format!("{} cannot be created: {error}", path.display())),
    }
}

/// Whether `path` itself (not what a symbolic link points to) is a directory of this user
/// that nobody else may enter.
fn check_private(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let metadata = std::fs::symlink_metadata(path).map_err(|error| format!("{shown}: {error}"))?;
    if metadata.file_type().is_symlink() {
        return Err(format!("{shown} is a symbolic link"));
    }
    if !metadata.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    if metadata.uid() != uid() {
        return Err(format!(
            "{shown} belongs to another user (uid {})",
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} is open to other users (mode {:o})",
            metadata.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A new directory with a random name in the temporary directory, mode 0700.
fn fresh_private_dir() -> std::io::Result<PathBuf> {
    loop {
        let path =
            std::env::temp_dir().join(format!("beid-agent-demo-{}", uuid::Uuid::new_v4().simple()));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
}

fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Writes `content` to `folder/name`, readable by this user only, without ever writing
/// through a symbolic link: a new file (created exclusively) renamed over the name, which
/// replaces a link there rather than following it.
pub fn write_private_file(folder: &Path, name: &str, content: &str) -> std::io::Result<PathBuf> {
    let target = folder.join(name);
    let partial = folder.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| file.write_all(content.as_bytes()))
        .and_then(|()| std::fs::rename(&partial, &target));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_folder_of_ours_is_accepted_and_others_are_not() {
        let base = tempfile::tempdir().unwrap();
        let ours = base.path().join("ours");
        private_dir(&ours).unwrap();
        assert_eq!(
            std::fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Again: it exists, and it is fine.
        private_dir(&ours).unwrap();

        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(&open)
            .unwrap_err()
            .contains("open to other users"));

        let link = base.path().join("link");
        std::os::unix::fs::symlink(&ours, &link).unwrap();
        assert!(private_dir(&link).unwrap_err().contains("symbolic link"));
    }

    #[test]
    fn a_private_file_replaces_a_planted_link_instead_of_following_it() {
        let folder = tempfile::tempdir().unwrap();
        let victim = folder.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, folder.path().join("demo-token")).unwrap();
        let written = write_private_file(folder.path(), "demo-token", "token\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "token\n");
        let metadata = std::fs::symlink_metadata(&written).unwrap();
        assert!(metadata.is_file());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    }
}
