//! Issue 12, finding 5: `serve --simulate` without `--state-dir` keeps its state and its
//! demo token (every scope) in a folder of the user's own, never in one another local user
//! prepared: not in a folder someone else created first, never through a symbolic link.
//! Each test gives the agent its own `XDG_RUNTIME_DIR` and `TMPDIR`.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `serve --simulate` on a free port with this runtime directory (or none) and temporary
/// directory; killed on drop.
struct Demo {
    child: Child,
    base: String,
    token_file: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(runtime: Option<&Path>, tmp: &Path) -> Self {
        let mut command = Command::new(common::AGENT);
        command
            .args(["serve", "--simulate", "--listen", "127.0.0.1:0"])
            .env("TMPDIR", tmp)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        match runtime {
            Some(dir) => command.env("XDG_RUNTIME_DIR", dir),
            None => command.env_remove("XDG_RUNTIME_DIR"),
        };
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        // The banner ends with the token's line.
        while !banner.contains("demo token:") {
            let read = stdout.read_line(&mut banner).unwrap();
            assert!(read > 0, "serve ended before its banner: {banner:?}");
        }
        let base = banner
            .lines()
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .filter(|b| b.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .to_owned();
        let token_file = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("demo token:"))
            .and_then(|rest| rest.split_whitespace().next())
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no token file in {banner:?}"));
        Self {
            child,
            base,
            token_file,
        }
    }

    /// The token works: the agent reads it from where it says it wrote it.
    async fn token_works(&self) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token = std::fs::read_to_string(&self.token_file).unwrap();
        let answer = reqwest::Client::new()
            .get(format!("{}/v1/readers", self.base))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
}

/// The demo folder holding the token: a directory of this user that nobody else may enter,
/// with the token readable by this user only.
fn assert_private(token_file: &Path) {
    let folder = token_file.parent().unwrap();
    let metadata = std::fs::symlink_metadata(folder).unwrap();
    assert!(metadata.is_dir(), "{}", folder.display());
    assert_eq!(metadata.uid(), uid(), "{}", folder.display());
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o700,
        "{}",
        folder.display()
    );
    let token = std::fs::symlink_metadata(token_file).unwrap();
    assert!(token.is_file());
    assert_eq!(token.permissions().mode() & 0o777, 0o600);
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A folder as another local user would prepare it: theirs (when the test runs as root;
/// otherwise at least open to everyone), writable by all.
fn planted_folder(path: &Path) {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    if uid() == 0 {
        std::os::unix::fs::chown(path, Some(65_534), Some(65_534)).unwrap();
    }
}

/// A runtime directory as systemd-logind makes it: private to the user.
fn runtime_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_token_lives_in_the_users_runtime_directory() {
    let runtime = runtime_dir();
    let tmp = tempfile::tempdir().unwrap();
    let demo = Demo::start(Some(runtime.path()), tmp.path());
    assert_eq!(
        demo.token_file,
        runtime.path().join("beid-agent-demo/demo-token")
    );
    assert_private(&demo.token_file);
    demo.token_works().await;
    assert!(
        files_under(tmp.path()).is_empty(),
        "nothing in the shared temporary folder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_runtime_directory_the_demo_uses_a_private_stand_in() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = Demo::start(None, tmp.path());
    assert_eq!(
        demo.token_file,
        tmp.path()
            .join(format!("beid-agent-{}", uid()))
            .join("beid-agent-demo/demo-token")
    );
    assert_private(&demo.token_file);
    assert_private(&demo.token_file.parent().unwrap().join("demo-token"));
    demo.token_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_another_user_created_first_are_not_used() {
    let runtime = runtime_dir();
    let tmp = tempfile::tempdir().unwrap();
    // Every place the demo ever kept its token, prepared by someone else.
    let planted = [
        runtime.path().join("beid-agent-demo"),
        tmp.path().join("beid-agent-demo"),
        tmp.path().join(format!("beid-agent-{}", uid())),
    ];
    for folder in &planted {
        planted_folder(folder);
    }
    let demo = Demo::start(Some(runtime.path()), tmp.path());
    // A fresh private folder instead, named in the banner.
    assert!(
        !planted.iter().any(|p| demo.token_file.starts_with(p)),
        "{}",
        demo.token_file.display()
    );
    assert_private(&demo.token_file);
    demo.token_works().await;
    for folder in &planted {
        assert!(
            files_under(folder).is_empty(),
            "{} was used",
            folder.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_symbolic_link_is_never_followed() {
    let runtime = runtime_dir();
    let tmp = tempfile::tempdir().unwrap();
    let victim = tempfile::tempdir().unwrap();
    let precious = victim.path().join("shadow");
    std::fs::write(&precious, "root's secrets\n").unwrap();
    // Links where the folders would be, into the victim's folder...
    for link in [
        runtime.path().join("beid-agent-demo"),
        tmp.path().join(format!("beid-agent-{}", uid())),
    ] {
        std::os::unix::fs::symlink(victim.path(), link).unwrap();
    }
    // ...and a folder someone else prepared, with a link where the token would go.
    let planted = tmp.path().join("beid-agent-demo");
    planted_folder(&planted);
    std::os::unix::fs::symlink(&precious, planted.join("demo-token")).unwrap();

    let demo = Demo::start(Some(runtime.path()), tmp.path());
    assert_private(&demo.token_file);
    demo.token_works().await;
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "root's secrets\n"
    );
    assert_eq!(files_under(victim.path()), [precious]);
}
