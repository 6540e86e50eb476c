//! The metrics as a node_exporter textfile-collector file (`[metrics] textfile`), so that
//! the fleet's `prometheus-node-exporter` exposes them and the agent never listens beyond
//! loopback.
//!
//! node_exporter reads every `*.prom` file of its folder at each scrape, so a file must
//! never be seen half written: each write replaces it atomically ([`atomic_file`]: a
//! temporary `.NAME.PID.tmp` that node_exporter ignores, synced, renamed). A crash can leave
//! a temporary file behind; the writer removes those when it starts. The file is readable
//! by everyone (mode 0644): it holds no personal data, and node_exporter runs as another
//! user.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::atomic_file;

/// Where and how often to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextfileSettings {
    pub path: PathBuf,
    pub interval: Duration,
}

/// The file's permissions: readable by node_exporter, which runs as another user (the
/// agent's umask is 0077). It holds no personal data.
const MODE: u32 = 0o644;

/// Writes `render()` every interval for as long as it runs, following `settings` as reloads
/// change them: a new path or interval applies at once, and a file the agent no longer
/// writes is removed (it would only go stale). A failed write is counted by `failed` and
/// logged once until a write succeeds again. `first` is told once the first write was
/// tried (or at once without a textfile), so the agent says it is ready with its metrics
/// out.
pub async fn keep_written(
    mut settings: watch::Receiver<Option<TextfileSettings>>,
    render: impl Fn() -> String,
    failed: impl Fn(),
    first: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = Some(first);
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
            if let Some(first) = first.take() {
                let _ = first.send(());
            }
            if settings.changed().await.is_err() {
                return;
            }
            continue;
        };
        let text = render();
        let target = current.path.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            atomic_file::replace(&target, text.as_bytes(), MODE)
        })
        .await;
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
        if let Some(first) = first.take() {
            let _ = first.send(());
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
    match tokio::task::spawn_blocking(move || atomic_file::remove_stale_temporaries(&path)).await {
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
    match tokio::task::spawn_blocking(move || std::fs::remove_file(&path)).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_file::names;
    use std::fs;
    use std::path::Path;

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
        let (told, written) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(keep_written(
            receiver,
            || "beid_pcscd_up 1\n".into(),
            || {},
            told,
        ));
        written.await.unwrap();
        assert!(first.exists(), "written before it says so");
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
        let (told, _) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(keep_written(
            receiver,
            String::new,
            move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            told,
        ));
        until(|| failures.load(std::sync::atomic::Ordering::Relaxed) >= 2).await;
        writer.abort();
    }
}
