//! A booted Debian system for tests: a root made once by `debootstrap` and cached under
//! `target/`, copied for each run, and booted with `systemd-nspawn` (systemd as PID 1).
//! Include it with the package harness:
//! `#[path = "common/package.rs"] mod package;` and `#[path = "common/nspawn.rs"] mod nspawn;`.
//!
//! The container shares the host's network: a daemon inside listening on 127.0.0.1 is
//! reachable from the test, and the container reaches servers the test runs on loopback.
//! Commands run inside through `nsenter` into the container's init, so no machined is
//! needed. Needs root, `debootstrap`, `systemd-container` and Debian's package registry
//! (the mirror of the host's own apt sources) for the first build of the root.

// Each test binary uses part of this harness.
#![allow(dead_code)]
// Test support: a failed set-up step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::package::{require, run, run_ok};

/// How long any one command inside the container may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// How long booting to `multi-user.target` may take (about 2 s here).
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// How long a clean shutdown may take (a few seconds here) before SIGKILL.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(60);
/// The whole debootstrap run (40-70 s with a near mirror).
const DEBOOTSTRAP_LIMIT: Duration = Duration::from_secs(15 * 60);

/// The booted Debian 13 of tests/debian13.rs: systemd with logind (polkitd depends on it),
/// polkit-gated pcscd, the vpcd driver; the agent's own `Depends` are added from the
/// package. Its root is cached in `target/debian13-root`, which other checkouts of the tree
/// may share: change this list only together with that test.
pub const DEBIAN13_SYSTEM: [&str; 10] = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "pcscd",
    "polkitd",
    "libpcsclite1",
    "vsmartcard-vpcd",
    "curl",
    "ca-certificates",
];

/// Prepares a copy of a root for a counter: its pcscd gets a vpcd reader on a port pair of
/// its own (the host network is shared, and other tests' pcscd use Debian's fixed 35963),
/// and `debs` are put in `/root/packages`.
pub fn stage_counter(root: &Path, vpcd: u16, debs: &[&Path]) {
    std::fs::write(
        root.join("etc/reader.conf.d/vpcd"),
        super::vpcd_reader_conf(vpcd),
    )
    .unwrap();
    let packages = root.join("root/packages");
    std::fs::create_dir_all(&packages).unwrap();
    for deb in debs {
        std::fs::copy(deb, packages.join(deb.file_name().unwrap())).unwrap();
    }
}

/// A Debian root: which release, which packages on top of `minbase`.
pub struct RootRecipe<'a> {
    pub suite: &'a str,
    pub packages: Vec<String>,
}

impl RootRecipe<'_> {
    /// What the cache's stamp holds: the root is rebuilt whenever it changes.
    fn stamp(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        format!(
            "debootstrap --variant=minbase {}\n{}\n",
            self.suite,
            packages.join("\n")
        )
    }

    /// The root for this recipe under `cache` (`cache/root`), built by debootstrap unless
    /// `cache/stamp` says the one there was built from the same recipe. A build goes to
    /// `cache/building` first and the stamp is written last, so an interrupted build is
    /// never used.
    pub fn cached(&self, cache: &Path) -> PathBuf {
        let root = cache.join("root");
        let stamp = cache.join("stamp");
        let wanted = self.stamp();
        if root.is_dir() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
            return root;
        }
        let debootstrap = require("debootstrap", "debootstrap");
        std::fs::create_dir_all(cache).unwrap();
        let _ = std::fs::remove_file(&stamp);
        let building = cache.join("building");
        remove_tree(&building);
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let mirror = host_debian_mirror();
        eprintln!(
            "building the Debian {} root from {mirror} (once; cached in {})",
            self.suite,
            cache.display()
        );
        let log = cache.join("debootstrap.log");
        let output = run(Command::new("timeout")
            .arg(DEBOOTSTRAP_LIMIT.as_secs().to_string())
            .arg(debootstrap)
            .arg("--variant=minbase")
            .arg(format!("--include={}", packages.join(",")))
            .arg(self.suite)
            .arg(&building)
            .arg(&mirror));
        std::fs::write(&log, [&output.stdout[..], &output.stderr[..]].concat()).unwrap();
        assert!(
            output.status.success(),
            "debootstrap failed ({}); see {}:\n{}",
            output.status,
            log.display(),
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        );
        remove_tree(&root);
        std::fs::rename(&building, &root).unwrap();
        std::fs::write(&stamp, wanted).unwrap();
        root
    }
}

/// The Debian mirror of the host's apt sources (one-line or deb822 format), or
/// `$BEID_DEBIAN_MIRROR`: the first source of Debian's main archive (a URI ending in
/// `/debian`, not a security suite).
fn host_debian_mirror() -> String {
    if let Some(mirror) = std::env::var_os("BEID_DEBIAN_MIRROR") {
        return mirror.to_string_lossy().into_owned();
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for text in files.iter().filter_map(|f| std::fs::read_to_string(f).ok()) {
        if let Some(mirror) = debian_mirror_in(&text) {
            return mirror;
        }
    }
    panic!("no Debian mirror in the host's apt sources ({files:?}): set BEID_DEBIAN_MIRROR to one")
}

/// The first Debian archive URI of an apt sources text.
pub fn debian_mirror_in(text: &str) -> Option<String> {
    let is_archive = |uri: &str| uri.trim_end_matches('/').ends_with("/debian");
    // One-line format: `deb [options] URI suite components`.
    for line in text.lines() {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        if words.first() == Some(&"deb")
            && words.len() >= 3
            && !words[2].contains("security")
            && is_archive(words[1])
        {
            return Some(words[1].trim_end_matches('/').to_owned());
        }
    }
    // deb822: stanzas with `URIs:` and `Suites:`.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
            continue;
        };
        if suites.contains("security") {
            continue;
        }
        if let Some(uri) = uris.split_whitespace().find(|u| is_archive(u)) {
            return Some(uri.trim_end_matches('/').to_owned());
        }
    }
    None
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn remove_tree(path: &Path) {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
    }
}

/// Where this process copies a cached root to: `cache/run-<pid>`. Copies left by runs that
/// were killed (their process is gone) are removed first.
pub fn copy_for_this_run(cache: &Path) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir(cache) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("run-")
                .and_then(|rest| rest.split('.').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }
    cache.join(format!("run-{}", std::process::id()))
}

/// A booted copy of a cached root. Shut down (SIGTERM to `systemd-nspawn`, which stops the
/// container cleanly) and its copy removed when dropped.
pub struct Container {
    nspawn: Option<Child>,
    init: u32,
    root: PathBuf,
    console: PathBuf,
}

impl Container {
    /// Copies `cached` to `copy` (which must not exist), lets `prepare` change the copy,
    /// and boots it. Returns once systemd inside has finished starting up.
    pub fn boot(cached: &Path, copy: &Path, name: &str, prepare: impl FnOnce(&Path)) -> Self {
        let nspawn = require("systemd-nspawn", "systemd-container");
        require("nsenter", "util-linux");
        prepare_host_for_nspawn();
        assert!(!copy.exists(), "{} exists", copy.display());
        run_ok(Command::new("cp").arg("-a").arg(cached).arg(copy));
        // A new machine id at every boot; nspawn passes the container its own.
        std::fs::write(copy.join("etc/machine-id"), "").unwrap();
        prepare(copy);
        let console = copy.with_extension("console");
        let child = Command::new(nspawn)
            .args(["--quiet", "--boot", "--register=no", "--keep-unit"])
            // read-only: nspawn copies the console to our log. A console nobody reads
            // (passive) fills up and blocks the container's shutdown on its last messages.
            .args(["--console=read-only", "--machine", name, "--directory"])
            .arg(copy)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&console).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&console)
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        let nspawn_pid = child.id();
        let mut container = Self {
            nspawn: Some(child),
            init: 0,
            root: copy.to_owned(),
            console,
        };
        let deadline = Instant::now() + BOOT_LIMIT;
        container.init = loop {
            if let Some(init) = child_running(nspawn_pid, "systemd") {
                break init;
            }
            container.assert_nspawn_alive();
            assert!(
                Instant::now() < deadline,
                "the container's systemd did not start:\n{}",
                container.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Waits (in systemd) until start-up has finished; running or degraded.
        loop {
            let state = container.exec(&["systemctl", "is-system-running", "--wait"]);
            let said = String::from_utf8_lossy(&state.stdout).trim().to_owned();
            if said == "running" || said == "degraded" {
                break;
            }
            container.assert_nspawn_alive();
            assert!(
                Instant::now() < deadline,
                "the container did not finish booting ({said}):\n{}",
                container.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        container
    }

    fn assert_nspawn_alive(&mut self) {
        if let Some(child) = self.nspawn.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "systemd-nspawn exited ({status}):\n{}",
                    tail(
                        &std::fs::read_to_string(&self.console).unwrap_or_default(),
                        30
                    )
                );
            }
        }
    }

    /// The container's `/`, seen from the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the container, seen from the host (not under the container's own
    /// tmpfs mounts, `/tmp` and `/run`).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// The console's output so far (the boot messages), for failure reports.
    pub fn console(&self) -> String {
        tail(
            &std::fs::read_to_string(&self.console).unwrap_or_default(),
            40,
        )
    }

    /// `args` run as root inside the container with a clean environment, under a time
    /// limit.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("--target")
            .arg(self.init.to_string())
            .args(["--mount", "--uts", "--ipc", "--pid", "--wd=/", "--"])
            .args(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            .args([
                "HOME=/root",
                "LANG=C.UTF-8",
                "DEBIAN_FRONTEND=noninteractive",
            ])
            .args(["timeout", "--kill-after=5"])
            .arg(COMMAND_LIMIT.as_secs().to_string())
            .args(args);
        command
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// Runs `args`; fails the test, with the command's output, unless it succeeds.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args))
    }

    /// `sh -c script` inside; its stdout, or a failure with the output.
    pub fn sh(&self, script: &str) -> String {
        self.exec_ok(&["sh", "-c", script])
    }

    /// A unit's property (`systemctl show --value`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.exec_ok(&["systemctl", "show", "--value", "--property", name, unit])
            .trim()
            .to_owned()
    }

    /// `systemctl is-active unit`.
    pub fn is_active(&self, unit: &str) -> String {
        let output = self.exec(&["systemctl", "is-active", unit]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The journal of `unit` as text, for failure reports.
    pub fn journal_tail(&self, unit: &str, lines: usize) -> String {
        let output = self.exec(&[
            "journalctl",
            "--no-pager",
            "--unit",
            unit,
            "--lines",
            &lines.to_string(),
        ]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Shuts the container down: SIGTERM to systemd-nspawn (a clean shutdown), SIGKILL if
    /// it has not ended within the limit.
    fn shut_down(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + SHUTDOWN_LIMIT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("systemd-nspawn did not stop within {SHUTDOWN_LIMIT:?}: killed");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.shut_down();
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_file(&self.console);
    }
}

/// `systemd-nspawn --boot` needs `/run/systemd/nspawn` to be a tmpfs on a host where
/// systemd is not PID 1 (else it stops with "Attempted to remove disk file system under
/// /run/systemd/nspawn/propagate"); mounted once per boot of the host.
fn prepare_host_for_nspawn() {
    const DIR: &str = "/run/systemd/nspawn";
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(DIR));
    if !mounted {
        std::fs::create_dir_all(DIR).unwrap();
        run_ok(Command::new("mount").args(["-t", "tmpfs", "tmpfs", DIR]));
    }
}

/// The child of `parent` running `command` (its `comm`), if any.
fn child_running(parent: u32, command: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            &stat[open + 1..close] == command && ppid == Some(&parent.to_string())
        })
}
