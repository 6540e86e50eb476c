//! The metrics as a node_exporter textfile-collector file (`[metrics] textfile`), so that
//! the fleet's `prometheus-node-exporter` exposes them and the agent never listens beyond
//! loopback.
//!
//! node_exporter reads every `*.prom` file of its folder at each scrape, so a file must
//! never be seen half written: each write goes to a temporary file in the same folder
//! (named `.NAME.PID.tmp`, which node_exporter ignores), is synced, then renamed over the
//! file, and the folder is synced. A crash can leave a temporary file behind; the writer
//! removes those when it starts. The file is readable by everyone (mode 0644): it holds no
//! personal data, and node_exporter runs as another user.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

/// Where and how often to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextfileSettings {
    pub path: PathBuf,
    pub interval: Duration,
}

/// Replaces the file at `path` with `text`, atomically (see the [module docs](self)).
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let temporary = temporary_path(path)?;
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
        let mut file = options.open(&temporary)?;
        // The agent's umask (0077) would make it unreadable to node_exporter.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
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

/// Removes the temporary files of earlier writers of `path` that a crash left behind (any
/// process id). Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> io::Result<usize> {
    let (prefix, folder) = (
        temporary_prefix(path)?,
        folder_of(path).unwrap_or(Path::new(".")),
    );
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

/// Writes `render()` every interval for as long as it runs, following `settings` as reloads
/// change them: a new path or interval applies at once, and a file the agent no longer
/// writes is removed (it would only go stale). A failed write is counted by `failed` and
/// logged once until a write succeeds again.
pub async fn keep_written(
    mut settings: watch::Receiver<Option<TextfileSettings>>,
    render: impl Fn() -> String,
    failed: impl Fn(),
) {
    let mut previous: Option<PathBuf> = None;
    let mut failing = false;
    loop {
        let current = settings.borrow_and_update().clone();
        let path = current.as_ref().map(|c| c.path.clone());
        if previous != path {
            if let Some(old) = previous.take() {
                remove_replaced(old).await;
            }
            if let Some(new) = &path {
                clean(new.clone()).await;
            }
            previous = path;
        }
        let Some(current) = current else {
            if settings.changed().await.is_err() {
                return;
            }
            continue;
        };
        let text = render();
        let target = current.path.clone();
        let outcome = tokio::task::spawn_blocking(move || write_atomically(&target, &text)).await;
        match outcome {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!(path = %current.path.display(), "metrics textfile written again");
                }
                failing = false;
            }
            Ok(Err(error)) => {
                failed();
                if !failing {
                    tracing::error!(path = %current.path.display(), %error, "cannot write the metrics textfile");
                }
                failing = true;
            }
            Err(_) => failed(),
        }
        tokio::select! {
            () = tokio::time::sleep(current.interval) => {}
            changed = settings.changed() => if changed.is_err() { return },
        }
    }
}

/// Removes what a crash left beside `path`, logging what was done.
async fn clean(path: PathBuf) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || remove_stale_temporaries(&path)).await {
        Ok(Ok(0)) | Err(_) => {}
        Ok(Ok(removed)) => {
            tracing::info!(path = %shown, removed, "removed temporary metrics files left by a crash");
        }
        Ok(Err(error)) => {
            tracing::warn!(path = %shown, %error, "cannot look for stale temporary metrics files");
        }
    }
}

/// Removes the file a reload moved away from.
async fn remove_replaced(path: PathBuf) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || fs::remove_file(&path)).await {
        Ok(Ok(())) => {
            tracing::info!(path = %shown, "removed the metrics textfile no longer written")
        }
        Ok(Err(error)) if error.kind() == io::ErrorKind::NotFound => {}
        Ok(Err(error)) => {
            tracing::warn!(path = %shown, %error, "cannot remove the metrics textfile no longer written");
        }
        Err(_) => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_readable_by_all_and_leaves_nothing_beside_it() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beid_agent.prom");
        write_atomically(&path, "beid_pcscd_up 0\n").unwrap();
        write_atomically(&path, "beid_pcscd_up 1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "beid_pcscd_up 1\n");
        assert_eq!(names(folder.path()), ["beid_agent.prom"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "node_exporter runs as another user");
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("beid_agent.prom");
        write_atomically(&path, "beid_pcscd_up 1\n").unwrap();
        // A folder where the file should be: the rename fails.
        let blocked = folder.path().join("blocked.prom");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write_atomically(&blocked, "beid_pcscd_up 0\n").is_err());
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

    /// Waits (bounded) for a condition on the file system.
    async fn until(condition: impl Fn() -> bool) {
        let wait = async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_writer_follows_reloads_and_removes_the_file_it_left() {
        let folder = tempfile::tempdir().unwrap();
        let first = folder.path().join("first.prom");
        let second = folder.path().join("second.prom");
        fs::write(folder.path().join(".first.prom.99.tmp"), "x").unwrap();
        let settings = |path: &Path| {
            Some(TextfileSettings {
                path: path.to_owned(),
                interval: Duration::from_secs(15),
            })
        };
        let (sender, receiver) = watch::channel(settings(&first));
        let writer = tokio::spawn(keep_written(receiver, || "beid_pcscd_up 1\n".into(), || {}));
        until(|| first.exists()).await;
        assert_eq!(
            names(folder.path()),
            ["first.prom"],
            "the crash's leftover is gone"
        );
        sender.send(settings(&second)).unwrap();
        until(|| second.exists() && !first.exists()).await;
        assert_eq!(names(folder.path()), ["second.prom"]);
        sender.send(None).unwrap();
        until(|| !second.exists()).await;
        drop(sender);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_write_is_counted() {
        let folder = tempfile::tempdir().unwrap();
        let missing = folder.path().join("no-such-folder").join("beid_agent.prom");
        let (_sender, receiver) = watch::channel(Some(TextfileSettings {
            path: missing,
            interval: Duration::from_millis(10),
        }));
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = failures.clone();
        let writer = tokio::spawn(keep_written(receiver, String::new, move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        until(|| failures.load(std::sync::atomic::Ordering::Relaxed) >= 2).await;
        writer.abort();
    }
}
