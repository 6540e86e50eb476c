//! Shared test harness: an isolated pcscd with the vpcd virtual reader, simulated cards
//! served to it by the `beid-agent simulate-card` command, and the agent's binary.
//!
//! Each [`Pcscd`] runs in its own mount namespace with a private `/run/pcscd` and its own
//! vpcd port pair, so tests run side by side (and next to a system pcscd). Everything a
//! test starts is stopped when its handle drops, panics included.

// Each test binary uses a part of the shared support; the rest is dead code there.
#![allow(dead_code)]
// Test support: a failed set-up step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod agent;
pub mod browser;
pub mod counter_page;
pub mod kiosk;
pub mod load;
pub mod nspawn;
pub mod package;
pub mod raw;
pub mod simulated;
pub mod upstream;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const AGENT: &str = env!("CARGO_BIN_EXE_beid-agent");

/// Every subprocess a test runs gets this long at most: vpcd never times out a mute card.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30);

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fixture card by name, or any card folder by path.
pub fn card_dir(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        fixtures().join("cards").join(name)
    }
}

/// A copy of a fixture card, changed by `edit`, in a temporary folder (forgeries, clones).
pub fn card_variant(base: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("beid-card-")
        .tempdir()
        .unwrap();
    for entry in std::fs::read_dir(card_dir(base)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    edit(dir.path());
    dir
}

/// The file of a card folder whose name starts with a file id.
pub fn file_of(dir: &Path, fid: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(fid))
        .unwrap_or_else(|| panic!("no {fid} in {}", dir.display()))
}

/// A fresh EC P-384 key pair from openssl: (PKCS#8 DER private key, SPKI DER public key).
pub fn new_p384_key() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pk8");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let public = Command::new("openssl")
        .args([
            "pkey", "-inform", "DER", "-pubout", "-outform", "DER", "-in",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(public.status.success());
    (std::fs::read(&key).unwrap(), public.stdout)
}

/// Replaces the national number (tag 06) in an identity file by another one with a valid
/// check, keeping every other byte: a forgery that keeps the National Register signature.
pub fn forge_national_number(identity_file: &Path) -> String {
    let mut bytes = std::fs::read(identity_file).unwrap();
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let (tag, len) = (bytes[at], bytes[at + 1] as usize);
        if tag == 0x06 {
            let forged = "85673003360";
            assert_eq!(len, 11);
            bytes[at + 2..at + 13].copy_from_slice(forged.as_bytes());
            std::fs::write(identity_file, bytes).unwrap();
            return forged.to_owned();
        }
        at += 2 + len;
    }
    panic!("no national number in {}", identity_file.display())
}

/// The cards that have an expected-values file, i.e. every fixture card.
pub fn fixture_cards() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("expected"))
        .expect("fixtures/expected")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn expected(card: &str) -> serde_json::Value {
    let path = fixtures().join("expected").join(format!("{card}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The named check of a `diagnose --json` report.
pub fn report_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

/// `target/`, where the binary under test was built (`target/debug/beid-agent`).
pub fn target_dir() -> PathBuf {
    Path::new(AGENT).ancestors().nth(2).unwrap().to_owned()
}

/// A pcscd instance of our own.
pub struct Pcscd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Pcscd {
    pub fn start() -> Self {
        Self::start_with_readers(true)
    }

    /// A pcscd with no reader configured.
    pub fn start_without_readers() -> Self {
        Self::start_with_readers(false)
    }

    fn start_with_readers(readers: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("beid-pcscd-")
            .tempdir()
            .unwrap();
        let port = free_port_pair();
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        if readers {
            std::fs::write(conf.join("vpcd"), vpcd_reader_conf(port)).unwrap();
        }
        let mut pcscd = Self {
            child: None,
            dir,
            port,
        };
        pcscd.launch();
        pcscd
    }

    /// Starts the daemon (again, after [`Pcscd::kill`]) and waits for its socket.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "pcscd already running");
        let run = self.dir.path().join("run");
        let _ = std::fs::remove_file(self.socket());
        // pcscd always binds /run/pcscd/pcscd.comm: give it a private /run/pcscd.
        let script = format!(
            "mkdir -p /run/pcscd && mount --bind '{}' /run/pcscd && exec pcscd --foreground -c '{}'",
            run.display(),
            self.dir.path().join("conf").display()
        );
        let mut command = if is_root() {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
            c
        } else {
            let mut c = Command::new("unshare");
            c.args([
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ]);
            c
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("pcscd.log")).unwrap(),
            ))
            .spawn()
            .expect("pcscd must be installed (the test command installs it)");
        self.child = Some(child);
        let readers = self.dir.path().join("conf/vpcd").exists();
        wait_until(Duration::from_secs(10), || {
            self.socket().exists() && (!readers || self.vpcd_listening())
        })
        .unwrap_or_else(|| panic!("pcscd did not start: {}", self.log()));
    }

    fn vpcd_listening(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port + 1)).is_ok()
    }

    /// Stops the daemon (SIGTERM: it removes its socket) and waits for it; SIGKILL if a
    /// reader frozen by a mute card keeps it from exiting.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let exited = wait_until(Duration::from_secs(3), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if exited.is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("pcscd.comm")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }

    /// vpcd's address for reader slot 0 or 1.
    pub fn vpcd(&self, slot: u16) -> String {
        format!("127.0.0.1:{}", self.port + slot)
    }

    /// The agent's binary, talking to this pcscd.
    pub fn agent(&self) -> Command {
        let mut command = Command::new(AGENT);
        command.env("PCSCLITE_CSOCK_NAME", self.socket());
        command.env_remove("RUST_LOG");
        command
    }

    /// Waits (event-driven, bounded) until pcscd sees a card in reader slot `slot`.
    pub fn wait_for_card(&self, slot: u16) {
        let reader = format!("Virtual PCD 00 {slot:02}");
        let output = run(self
            .agent()
            .args(["readers", "--wait-for", "card", "--reader", &reader]));
        assert!(
            output.status.success(),
            "no card seen in {reader}: {}",
            stderr(&output)
        );
    }

    /// Inserts a fixture card into reader slot 0.
    pub fn insert(&self, card: &str) -> SimulatedCard {
        self.insert_with(card, 0, &[])
    }

    /// Inserts a card with extra `simulate-card` arguments (faults) into a slot.
    pub fn insert_with(&self, card: &str, slot: u16, extra: &[&str]) -> SimulatedCard {
        let child = Command::new(AGENT)
            .arg("simulate-card")
            .arg("--card")
            .arg(card_dir(card))
            .arg("--vpcd")
            .arg(self.vpcd(slot))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        SimulatedCard {
            child,
            socket: self.socket(),
            stopped: false,
            reader: format!("Virtual PCD 00 {slot:02}"),
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A card in a reader; removed (its process killed) when dropped. Removal returns once
/// pcscd has seen the reader empty: vpcd swaps a card that reconnects before its next
/// poll without reporting a removal, which no physical reader does.
pub struct SimulatedCard {
    child: Child,
    socket: PathBuf,
    stopped: bool,
    reader: String,
}

impl SimulatedCard {
    pub fn remove(mut self) {
        self.stop();
    }

    /// Waits for the card process to end by itself (its removal fault fired).
    pub fn wait_gone(mut self) -> String {
        wait_until(COMMAND_LIMIT, || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        })
        .unwrap_or_else(|| panic!("the card did not leave within {COMMAND_LIMIT:?}"));
        self.stop();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        stderr
    }

    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let output = run(Command::new(AGENT)
            .env("PCSCLITE_CSOCK_NAME", &self.socket)
            .args([
                "readers",
                "--wait-for",
                "empty",
                "--reader",
                &self.reader,
                "--timeout",
                "5",
            ]));
        // Exit 3: pcscd itself is gone, and the card with it.
        assert!(
            output.status.success() || output.status.code() == Some(3),
            "card not removed: {}",
            stderr(&output)
        );
    }
}

impl Drop for SimulatedCard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command with a time limit (coreutils `timeout`), returning its output.
pub fn run(command: &mut Command) -> Output {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = command
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut limited = Command::new("timeout");
    limited
        .arg("--kill-after=2")
        .arg(COMMAND_LIMIT.as_secs().to_string())
        .arg(program)
        .args(args);
    for (key, value) in envs {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    limited.output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout {:?} stderr {:?}",
            stdout(output),
            stderr(output)
        )
    })
}

/// Polls a condition until it holds or the limit passes: for waiting on processes we do not
/// control (a daemon's socket appearing), never to order our own steps.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition().then_some(())
}

/// Whether the tests run as root (else pcscd and the namespaces need a user namespace).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// A pcscd reader.conf entry for the vpcd driver listening on `port` (reader slot 0) and
/// `port + 1` (slot 1), as Debian's `/etc/reader.conf.d/vpcd` does on 35963.
pub fn vpcd_reader_conf(port: u16) -> String {
    format!(
        "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x{port:04X}\n\
         LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x{port:04X}\n"
    )
}

/// Writes a secret file (a token) readable by its owner only, as the agent demands.
pub fn write_secret(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Two consecutive free TCP ports (vpcd listens on PORT and PORT+1 on all interfaces),
/// spread by process id and a counter so parallel tests do not collide.
/// A loopback port free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two consecutive free TCP ports (vpcd listens on PORT and PORT+1 on all interfaces),
/// spread by process id and a counter so parallel tests do not collide.
pub fn free_port_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 1_500) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(2, Ordering::SeqCst);
        let port = base + offset % 20_000;
        let free = |p: u16| TcpListener::bind(("0.0.0.0", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}
