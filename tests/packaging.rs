//! Deployment: the systemd unit (its security rating and syntax), the polkit rule, the
//! shipped configuration, the kiosk's start page and user unit, and the Debian package that
//! carries them (contents, control fields and what its maintainer scripts do).
//!
//! Every tool these tests use is a test dependency (`scripts/install-deps.sh test` installs
//! them): a missing one fails the test with its name, never skips it. The package is built
//! with `cargo deb --profile dev --no-build` from the binary `cargo test` has just built, so
//! no release build is needed.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::browser;
use common::package;
use common::simulated;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use package::{build_package, require, run, run_ok};
use simulated::SimulatedServe;

const AGENT: &str = env!("CARGO_BIN_EXE_beid-agent");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = "systemd/beid-agent.service";
const EXEC_START: &str = "ExecStart=/usr/bin/beid-agent serve --config /etc/beid-agent/config.toml --state-dir /var/lib/beid-agent";
/// The highest `systemd-analyze security` exposure issue 7 allows.
const MAX_EXPOSURE: f64 = 2.0;
const PCSC_ACTIONS: [&str; 2] = [
    "org.debian.pcsc-lite.access_pcsc",
    "org.debian.pcsc-lite.access_card",
];

fn repo(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

fn mode(path: &Path) -> u32 {
    path.metadata()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// `sh -c script` as root in a private mount namespace (a user namespace when not root), so
/// the script may mount over /run and /var/lib without touching the machine.
fn in_private_mounts(script: &str) -> Command {
    let mut command = Command::new(require("unshare", "util-linux"));
    if !is_root() {
        command.args(["--user", "--map-root-user"]);
    }
    command.args(["--mount", "--propagation", "private", "sh", "-c", script]);
    command
}

// ---------------------------------------------------------------------------------------
// The systemd unit

#[test]
fn the_unit_rates_at_most_2_0_in_systemd_analyze_security() {
    let analyze = require("systemd-analyze", "systemd");
    let report = run_ok(
        Command::new(analyze)
            .args(["security", "--offline=yes", "--no-pager", UNIT])
            .current_dir(ROOT),
    );
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for beid-agent.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{report}"));
    let open: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with('✗'))
        .collect();
    println!(
        "systemd-analyze security: exposure {exposure}\n{}",
        open.join("\n")
    );
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}

#[test]
fn the_unit_verifies_cleanly_and_its_command_line_is_the_agents() {
    let analyze = require("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(repo(UNIT)).unwrap();
    assert_eq!(
        unit.lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        [EXEC_START],
        "the unit runs the agent with the package's config and state dir"
    );
    for setting in [
        "Type=notify-reload",
        "NotifyAccess=main",
        "User=beid-agent",
        "StateDirectory=beid-agent",
        "ConfigurationDirectory=beid-agent",
        "Wants=pcscd.socket",
        "PrivateUsers=yes",
        "MemoryDenyWriteExecute=yes",
        "CapabilityBoundingSet=",
        "UMask=0077",
    ] {
        assert!(
            unit.lines().any(|line| line == setting),
            "{UNIT} lacks `{setting}`"
        );
    }
    assert!(
        unit.lines().any(|l| l.starts_with("WatchdogSec=")),
        "a watchdog"
    );

    // `systemd-analyze verify` checks that ExecStart= exists: point it at the binary under
    // test, in a copy of the unit under the same name.
    let dir = temp_dir("beid-unit-");
    let copy = dir.path().join("beid-agent.service");
    let exec = EXEC_START.replace("/usr/bin/beid-agent", AGENT);
    std::fs::write(&copy, unit.replace(EXEC_START, &exec)).unwrap();
    let output = run(Command::new(&analyze).arg("verify").arg(&copy));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let old_systemd = systemd_version(&analyze) < 253;
    // systemd before 253 (Debian 12) does not know Type=notify-reload yet, and says so in
    // exactly one line; nothing else may be said. tests/debian13.rs verifies the installed
    // unit with systemd 257 and reloads it for real.
    let unknown_type = "Failed to parse service type, ignoring: notify-reload";
    let said: Vec<&str> = stderr
        .lines()
        .filter(|line| !(old_systemd && line.ends_with(unknown_type)))
        .collect();
    assert!(
        output.status.success() && said.is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        output.status
    );

    // The binary accepts that command line: with a configuration that does not exist it
    // stops on the configuration, not on its arguments (exit 2).
    let state = dir.path().join("state");
    let missing = dir.path().join("missing.toml");
    let output = run(Command::new(require("timeout", "coreutils"))
        .arg("20")
        .arg(AGENT)
        .args(["serve", "--config"])
        .arg(&missing)
        .arg("--state-dir")
        .arg(&state));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !matches!(output.status.code(), Some(0 | 2 | 124)),
        "serve with a missing configuration: {} {stderr}",
        output.status
    );
    assert!(
        stderr.contains("missing.toml"),
        "the error names the configuration: {stderr}"
    );
}

/// The major version `systemd-analyze --version` prints first (`systemd 252 (252.39-1)`).
fn systemd_version(analyze: &Path) -> u32 {
    let version = run_ok(Command::new(analyze).arg("--version"));
    version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {version:?}"))
}

// ---------------------------------------------------------------------------------------
// The polkit rule

/// Loads the rule file into a stub `polkit` (as polkitd's JavaScript engine would) and
/// prints what the registered rules answer for each (user, action).
const POLKIT_HARNESS: &str = r#"
const fs = require("fs"), vm = require("vm");
const [file, cases] = process.argv.slice(1);
const rules = [];
const polkit = {
  Result: { NO: "no", YES: "yes", AUTH_SELF: "auth_self", AUTH_SELF_KEEP: "auth_self_keep",
            AUTH_ADMIN: "auth_admin", AUTH_ADMIN_KEEP: "auth_admin_keep", NOT_HANDLED: "not_handled" },
  addRule(rule) { rules.push(rule); },
  addAdminRule() { throw new Error("the rule must not change who the administrators are"); },
  log() {},
  spawn() { throw new Error("the rule must not run programs"); },
};
vm.runInNewContext(fs.readFileSync(file, "utf8"), { polkit }, { filename: file });
const answers = JSON.parse(cases).map(([user, id]) => {
  const action = { id, lookup: () => undefined };
  const subject = { user, pid: 4242, seat: "", session: "", local: false, active: false,
                    groups: [user], isInGroup: (g) => g === user, isInNetGroup: () => false };
  for (const rule of rules) {
    const answer = rule(action, subject);
    if (answer !== undefined && answer !== null) return answer;
  }
  return null;
});
console.log(JSON.stringify({ rules: rules.length, answers }));
"#;

#[test]
fn the_polkit_rule_grants_the_agent_user_exactly_the_two_pcscd_actions() {
    let node = require("node", "nodejs");
    let rule = repo("hardware/polkit/60-beid-agent.rules");
    let text = std::fs::read_to_string(&rule).unwrap();
    // polkitd's engine (duktape) is ES5: no ES2015 syntax in the rule.
    for modern in ["=>", "let ", "const ", "`"] {
        assert!(!text.contains(modern), "ES2015 `{modern}` in {text}");
    }

    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for action in PCSC_ACTIONS {
        cases.push(("beid-agent", action));
        expected.push(Some("yes"));
        for user in ["kiosk", "root", "beid", "beid-agent2", "Beid-agent", ""] {
            cases.push((user, action));
            expected.push(None);
        }
    }
    for action in [
        "org.debian.pcsc-lite.access_pcsc2",
        "org.debian.pcsc-lite",
        "org.freedesktop.login1.reboot",
        "org.freedesktop.systemd1.manage-units",
    ] {
        cases.push(("beid-agent", action));
        expected.push(None);
    }
    let stdout = run_ok(
        Command::new(node)
            .arg("-e")
            .arg(POLKIT_HARNESS)
            .arg(&rule)
            .arg(serde_json::to_string(&cases).unwrap()),
    );
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["rules"], 1, "one rule: {stdout}");
    let answers: Vec<Option<&str>> = result["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str())
        .collect();
    for ((case, answer), want) in cases.iter().zip(&answers).zip(&expected) {
        assert_eq!(answer, want, "{case:?}");
    }
    assert_eq!(answers.len(), expected.len());
}

// ---------------------------------------------------------------------------------------
// The shipped configuration

#[test]
fn the_shipped_config_lacks_only_what_the_city_provides() {
    let config = repo("packaging/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The files it names (uncommented `key = "/etc/beid-agent/..."` lines).
    let named: Vec<(String, PathBuf)> = lines
        .iter()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            let path = value.split('"').nth(1)?;
            path.starts_with("/etc/beid-agent/")
                .then(|| (key.trim().to_owned(), PathBuf::from(path)))
        })
        .collect();
    let keys: Vec<&str> = named.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        ["client_cert", "client_key", "ca_bundle", "token_file"],
        "the files a city provides"
    );

    let output = run(Command::new(AGENT)
        .args(["config", "check", "--json"])
        .arg(&config));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    // What the city must fill in: the placeholders, and the files that are not there yet.
    let placeholders = ["upstream.url", "device.id", "api.clients[0].origins[0]"];
    let absent: Vec<&PathBuf> = named
        .iter()
        .map(|(_, path)| path)
        .filter(|path| !path.exists())
        .collect();
    assert_eq!(
        problems.len(),
        placeholders.len() + absent.len(),
        "the placeholders and one problem per absent file, nothing else: {report:#}"
    );
    for problem in problems {
        let key = problem["key"].as_str().unwrap();
        let why = problem["problem"].as_str().unwrap();
        let line = problem["line"].as_u64().unwrap() as usize;
        let leaf = key.rsplit('.').next().unwrap().split('[').next().unwrap();
        assert!(
            lines[line - 1].trim_start().starts_with(leaf),
            "{key} placed on line {line}: {:?}",
            lines[line - 1]
        );
        assert_eq!(problem["file"], config.display().to_string());
        if placeholders.contains(&key) {
            assert_eq!(why, "is still the template's placeholder", "{problem}");
        } else {
            assert!(
                absent
                    .iter()
                    .any(|path| why == format!("file {} does not exist", path.display())),
                "{problem}"
            );
        }
        assert!(!problem["hint"].as_str().unwrap().is_empty(), "{problem}");
    }
    assert_eq!(report["ok"], false);
    assert_eq!(output.status.code(), Some(12));
}

// ---------------------------------------------------------------------------------------
// The kiosk: start page and user unit

struct Kiosk {
    dir: tempfile::TempDir,
}

impl Kiosk {
    /// A home with `token` in a 0600 token file and an empty 0700 runtime dir.
    fn new(token: &str) -> Kiosk {
        let dir = temp_dir("beid-kiosk-start-");
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let kiosk = Kiosk { dir };
        std::fs::write(kiosk.token_file(), format!("{token}\n")).unwrap();
        kiosk.chmod_token(0o600);
        kiosk
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    fn chmod_token(&self, mode: u32) {
        std::fs::set_permissions(self.token_file(), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn page(&self) -> PathBuf {
        self.dir.path().join("run/beid-kiosk/start.html")
    }

    /// Runs beid-kiosk-start with `url` (the default when `None`).
    fn start(&self, url: Option<&str>) -> Output {
        let mut command = Command::new("sh");
        command
            .arg(repo("hardware/kiosk/beid-kiosk-start"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("BEID_KIOSK_TOKEN_FILE", self.token_file());
        if let Some(url) = url {
            command.env("BEID_KIOSK_URL", url);
        }
        run(&mut command)
    }
}

const TOKEN: &str = "3f9a1c0d5e7b2a4c6e8f0a1b3c5d7e9f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c0d";

#[test]
fn the_kiosk_start_page_carries_the_token_in_a_private_file_only() {
    let script = repo("hardware/kiosk/beid-kiosk-start");
    run_ok(Command::new("sh").arg("-n").arg(&script));

    let kiosk = Kiosk::new(TOKEN);
    let output = kiosk.start(None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = std::fs::read_to_string(kiosk.page()).unwrap();
    assert!(
        page.contains(&format!(
            "location.replace(\"http://127.0.0.1:8099/kiosk/#token={TOKEN}\")"
        )),
        "{page}"
    );
    assert_eq!(mode(&kiosk.page()), 0o600, "the page is private");
    assert_eq!(
        mode(kiosk.page().parent().unwrap()),
        0o700,
        "so is its folder"
    );
    let names: Vec<_> = std::fs::read_dir(kiosk.page().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["start.html"], "no temporary file left behind");

    // A language and use case in the URL are kept; the token still goes in the fragment.
    let url = "http://127.0.0.1:8099/kiosk/?lang=fr&useCase=uitpas-kansentarief";
    assert!(kiosk.start(Some(url)).status.success());
    let page = std::fs::read_to_string(kiosk.page()).unwrap();
    assert!(page.contains(&format!("\"{url}#token={TOKEN}\"")), "{page}");
}

#[test]
fn the_kiosk_start_page_refuses_what_would_leak_or_break_it() {
    let refused = |kiosk: &Kiosk, url: Option<&str>, why: &str| {
        let output = kiosk.start(url);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{why}: accepted");
        assert!(stderr.contains("beid-kiosk-start:"), "{why}: {stderr}");
        assert!(!kiosk.page().exists(), "{why}: a page was written");
    };
    let kiosk = Kiosk::new(TOKEN);
    kiosk.chmod_token(0o640);
    refused(&kiosk, None, "a token file others can read");
    kiosk.chmod_token(0o644);
    refused(&kiosk, None, "a world-readable token file");

    refused(&Kiosk::new("too-short"), None, "a short token");
    refused(
        &Kiosk::new(&format!("{TOKEN}\");alert(1);//")),
        None,
        "a token that escapes the script",
    );
    refused(&Kiosk::new(""), None, "an empty token file");

    let kiosk = Kiosk::new(TOKEN);
    for url in [
        "https://kiosk.example/kiosk/",
        "http://127.0.0.1.example:8099/kiosk/",
        "http://127.0.0.1:8099/other/",
        "http://127.0.0.1:8099/other/kiosk/",
        "http://127.0.0.1:/kiosk/",
        "http://localhost:8099/kiosk",
        "http://127.0.0.1:8099/kiosk/#token=x",
        "http://127.0.0.1:8099/kiosk/\"><script>",
    ] {
        refused(&kiosk, Some(url), url);
    }

    let output = run(Command::new("sh")
        .arg(repo("hardware/kiosk/beid-kiosk-start"))
        .env_remove("XDG_RUNTIME_DIR")
        .env("BEID_KIOSK_TOKEN_FILE", kiosk.token_file()));
    assert!(!output.status.success(), "no XDG_RUNTIME_DIR: accepted");
}

#[test]
fn the_kiosk_user_unit_verifies_and_keeps_the_token_off_the_command_line() {
    let analyze = require("systemd-analyze", "systemd");
    let unit_path = repo("hardware/kiosk/beid-kiosk.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    // The logical ExecStart= line, continuations joined.
    let exec_start = unit
        .replace("\\\n", " ")
        .lines()
        .find(|line| line.starts_with("ExecStart="))
        .unwrap()
        .to_owned();
    assert!(
        exec_start.ends_with(" file://%t/beid-kiosk/start.html"),
        "Chromium opens the private start page: {exec_start}"
    );
    assert!(!exec_start.contains("token"), "{exec_start}");
    for flag in ["--kiosk", "--incognito", "--noerrdialogs", "--no-first-run"] {
        assert!(
            exec_start.split_whitespace().any(|arg| arg == flag),
            "{flag}"
        );
    }
    assert!(unit.contains("\nExecStartPre=/usr/local/bin/beid-kiosk-start\n"));

    // `systemd-analyze --user verify` needs a runtime dir and existing executables.
    let dir = temp_dir("beid-kiosk-unit-");
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let copy = dir.path().join("beid-kiosk.service");
    let script = repo("hardware/kiosk/beid-kiosk-start");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/beid-kiosk-start", script.to_str().unwrap()),
    )
    .unwrap();
    require("chromium", "chromium");
    let output = run(Command::new(analyze)
        .args(["--user", "verify"])
        .arg(&copy)
        .env("XDG_RUNTIME_DIR", &runtime));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze --user verify ({}):\n{stderr}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_goes_from_the_start_page_to_the_kiosk_page_signed_in() {
    let agent = SimulatedServe::start();
    let token = agent.token.clone();
    let kiosk = Kiosk::new(&token);
    let base = agent.base.clone();
    let output = kiosk.start(Some(&format!("{base}/kiosk/")));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let browser = browser::Browser::start(&[]).await;
    browser
        .goto(&format!("file://{}", kiosk.page().display()))
        .await;
    browser
        .wait_for(
            &format!(
                "location.origin === '{base}' && location.pathname === '/kiosk/' && \
                 document.getElementById('kiosk').dataset.connection === 'online'"
            ),
            Duration::from_secs(15),
        )
        .await;
    let href = browser.eval("return location.href").await;
    let href = href.as_str().unwrap();
    assert!(
        !href.contains(&token) && !href.contains("token="),
        "the token left the address bar: {href}"
    );
}

// ---------------------------------------------------------------------------------------
// The Debian package

/// `dpkg-deb -c`: path (without the leading `.`) → (mode string, owner).
fn package_files(deb: &Path) -> BTreeMap<String, (String, String)> {
    run_ok(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter(|line| !line.starts_with('d'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_owned();
            (path, (fields[0].to_owned(), fields[1].to_owned()))
        })
        .collect()
}

#[test]
fn the_debian_package_installs_everything_and_enables_but_never_first_starts_the_agent() {
    let out = temp_dir("beid-deb-");
    let deb = build_package(out.path(), None);

    // Contents: exactly these files, root-owned, with these modes.
    const DOC: &str = "/usr/share/doc/beid-agent";
    let mut expected: BTreeMap<String, &str> = BTreeMap::from([
        ("/usr/bin/beid-agent".into(), "-rwxr-xr-x"),
        (
            "/usr/lib/systemd/system/beid-agent.service".into(),
            "-rw-r--r--",
        ),
        ("/usr/lib/sysusers.d/beid-agent.conf".into(), "-rw-r--r--"),
        (
            "/usr/share/polkit-1/rules.d/60-beid-agent.rules".into(),
            "-rw-r--r--",
        ),
        ("/etc/beid-agent/config.toml".into(), "-rw-r--r--"),
    ]);
    for doc in [
        "copyright",
        "README.md",
        "docs/local-api.md",
        "docs/configuration.md",
        "docs/installing.md",
        "docs/upstream-openapi.yaml",
        "docs/audit.md",
        "docs/operations.md",
        "packaging/prometheus/beid-agent.rules.yml",
        "packaging/prometheus/beid-agent.rules.test.yml",
        "hardware/readers.md",
        "hardware/cards.md",
        "hardware/kiosk.md",
        "hardware/chromium/README.md",
        "hardware/chromium/beid-agent.json",
        "hardware/kiosk/beid-kiosk.service",
        "hardware/kiosk/beid-kiosk-start",
        "hardware/counter/beid-counter-page",
        "hardware/counter/beid-counter-page.desktop",
        "docs/design.md",
        "docs/card-protocol.md",
        "docs/gateway.md",
        "BENCHMARKS.md",
    ] {
        expected.insert(format!("{DOC}/{doc}"), "-rw-r--r--");
    }
    // A man page per command, and the completions, where man and the shells look.
    for page in MAN_PAGES {
        expected.insert(format!("/usr/share/man/man1/{page}.1.gz"), "-rw-r--r--");
    }
    for completion in COMPLETIONS {
        expected.insert(completion.into(), "-rw-r--r--");
    }
    let files = package_files(&deb);
    let listed: Vec<&String> = files.keys().collect();
    assert_eq!(
        listed,
        expected.keys().collect::<Vec<_>>(),
        "the package's files"
    );
    for (path, (mode, owner)) in &files {
        assert_eq!(mode, expected[path], "mode of {path}");
        assert_eq!(owner, "0/0", "owner of {path}");
    }

    // The files are the repository's, and the binary is the agent.
    let root = out.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    for (installed, source) in [
        ("usr/lib/systemd/system/beid-agent.service", UNIT),
        (
            "usr/lib/sysusers.d/beid-agent.conf",
            "systemd/beid-agent.sysusers",
        ),
        (
            "usr/share/polkit-1/rules.d/60-beid-agent.rules",
            "hardware/polkit/60-beid-agent.rules",
        ),
        ("etc/beid-agent/config.toml", "packaging/config.toml"),
        (
            "usr/share/doc/beid-agent/hardware/kiosk/beid-kiosk-start",
            "hardware/kiosk/beid-kiosk-start",
        ),
    ] {
        assert_eq!(
            std::fs::read(root.join(installed)).unwrap(),
            std::fs::read(repo(source)).unwrap(),
            "{installed} is {source}"
        );
    }
    let version = run_ok(Command::new(root.join("usr/bin/beid-agent")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("beid-agent {}", env!("CARGO_PKG_VERSION"))
    );

    // Control: name, dependencies, conffiles, maintainer scripts.
    let field = |name: &str| run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "beid-agent");
    let depends = field("Depends");
    let depends: Vec<&str> = depends.trim().split(", ").collect();
    assert!(depends.contains(&"pcscd"), "{depends:?}");
    assert!(
        depends.iter().any(|d| d.starts_with("libpcsclite1")),
        "{depends:?}"
    );
    assert!(
        depends.iter().any(|d| d.contains("systemd-sysusers")),
        "{depends:?}"
    );
    let control = out.path().join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/beid-agent/config.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert_eq!(mode(&path), 0o755, "{script} mode");
        run_ok(Command::new("sh").arg("-n").arg(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("#DEBHELPER#"), "{script}: token left");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} beid-agent.conf")
    );
    assert!(postinst.contains("deb-systemd-helper enable beid-agent.service"));

    maintainer_scripts_behave(out.path(), &control, &root);
    man_pages_and_completions_describe_the_binary(&root);
    shipped_documents_link_only_to_shipped_documents(&root.join("usr/share/doc/beid-agent"));
}

/// The man pages the package ships: the agent's and one per command.
const MAN_PAGES: [&str; 13] = [
    "beid-agent",
    "beid-agent-read",
    "beid-agent-readers",
    "beid-agent-diagnose",
    "beid-agent-serve",
    "beid-agent-advice",
    "beid-agent-audit",
    "beid-agent-audit-verify",
    "beid-agent-audit-seal-init",
    "beid-agent-config",
    "beid-agent-config-check",
    "beid-agent-verify-dump",
    "beid-agent-simulate-card",
];

const COMPLETIONS: [&str; 3] = [
    "/usr/share/bash-completion/completions/beid-agent",
    "/usr/share/zsh/vendor-completions/_beid-agent",
    "/usr/share/fish/vendor_completions.d/beid-agent.fish",
];

/// The man pages are the binary's own help with their exit statuses (the same table as
/// `--help`), and the completions know its commands and options but not the hidden
/// `generate` the packaging uses.
fn man_pages_and_completions_describe_the_binary(root: &Path) {
    for page in MAN_PAGES {
        let path = root.join(format!("usr/share/man/man1/{page}.1.gz"));
        let text = run_ok(Command::new("gzip").arg("-dc").arg(&path));
        assert!(text.contains(".TH "), "{page}: not a man page");
        if page != "beid-agent-audit" && page != "beid-agent-config" {
            assert!(
                text.contains(".SH \"EXIT STATUS\""),
                "{page} has no EXIT STATUS"
            );
            assert!(text.contains("\\fB0\\fR"), "{page}: exit 0");
            assert!(text.contains("\\fB2\\fR (usage)"), "{page}: exit 2");
        }
    }
    let root_page = run_ok(
        Command::new("gzip")
            .arg("-dc")
            .arg(root.join("usr/share/man/man1/beid-agent.1.gz")),
    );
    for status in [
        "\\fB3\\fR (no_service)",
        "\\fB13\\fR (not_authentic)",
        "\\fB14\\fR (no_decision)",
    ] {
        assert!(root_page.contains(status), "beid-agent.1 lacks {status}");
    }
    assert!(
        !names_generate(&root_page),
        "the hidden command stays out of the page"
    );
    for completion in COMPLETIONS {
        let text = std::fs::read_to_string(root.join(completion.trim_start_matches('/'))).unwrap();
        for word in [
            "verify-dump",
            "simulate-card",
            "trust-test-roots",
            "seal-init",
        ] {
            assert!(text.contains(word), "{completion} lacks {word}");
        }
        assert!(
            !names_generate(&text),
            "{completion} offers the hidden command"
        );
    }
    run_ok(
        Command::new("bash")
            .arg("-n")
            .arg(root.join(COMPLETIONS[0].trim_start_matches('/'))),
    );
}

/// Whether `text` names the `generate` command (not "generated test cards").
fn names_generate(text: &str) -> bool {
    text.match_indices("generate")
        .any(|(at, _)| !text[at..].starts_with("generated"))
}

/// Every relative link in a shipped Markdown document leads to a shipped file: the
/// package's documentation holds together without the repository.
fn shipped_documents_link_only_to_shipped_documents(doc: &Path) {
    let mut documents = vec![doc.to_path_buf()];
    let mut checked = 0;
    while let Some(path) = documents.pop() {
        if path.is_dir() {
            documents.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap();
            let target = target.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = path.parent().unwrap().join(target);
            assert!(
                resolved.exists(),
                "{} links to {target}, which the package does not ship",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} links found");
}

/// Runs the package's maintainer scripts as dpkg would, with the systemd helpers replaced
/// by stubs that record their calls, in a private mount namespace where /run/systemd/system
/// exists (as on a booted system) and /var/lib is a fresh tmpfs. systemd-sysusers is the
/// real one, aimed at the unpacked package (`DPKG_ROOT`).
fn maintainer_scripts_behave(work: &Path, control: &Path, root: &Path) {
    let sysusers = require("systemd-sysusers", "systemd");
    let stubs = work.join("stubs");
    std::fs::create_dir(&stubs).unwrap();
    for (name, then) in [
        ("deb-systemd-helper", "exit 0"),
        ("deb-systemd-invoke", "exit 0"),
        ("systemctl", "exit 0"),
        (
            "systemd-sysusers",
            &format!("exec {} \"$@\"", sysusers.display()),
        ),
    ] {
        let stub = stubs.join(name);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"{name} $*\" >>\"$CALLS\"\n{then}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let results = work.join("results");
    std::fs::create_dir(&results).unwrap();
    let script = format!(
        r#"set -eu
mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system
mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/beid-agent
echo '{{}}' >/var/lib/beid-agent/audit.jsonl
export PATH="{stubs}:$PATH" DPKG_ROOT="{root}"
step() {{
    name=$1; shift
    : >"{results}/$name.calls"
    if CALLS="{results}/$name.calls" sh "$@" >"{results}/$name.out" 2>"{results}/$name.err"
    then echo 0 >"{results}/$name.rc"; else echo $? >"{results}/$name.rc"; fi
}}
state() {{ if [ -e /var/lib/beid-agent/audit.jsonl ]; then echo kept; else echo gone; fi >"{results}/$1.state"; }}
# Where the state went: each moved-aside folder with its owner, mode and audit log.
aside() {{
    for dir in /var/lib/beid-agent.purged-*; do
        if [ -d "$dir" ]; then echo "$dir $(stat -c '%U:%G %a' "$dir") $(cat "$dir/audit.jsonl")"; fi
    done >"{results}/$1.aside"
}}
step install "{control}/postinst" configure ''
step upgrade "{control}/postinst" configure 0.0.9-1
step prerm-upgrade "{control}/prerm" upgrade 0.1.1-1
step prerm-remove "{control}/prerm" remove
step remove "{control}/postrm" remove
state remove
step purge "{control}/postrm" purge
state purge
aside purge
# A state folder without an audit log (the agent never ran) is simply deleted.
mkdir /var/lib/beid-agent && echo '[]' >/var/lib/beid-agent/rrn-keys.json
step purge-unused "{control}/postrm" purge
if [ -e /var/lib/beid-agent ]; then echo kept; else echo gone; fi >"{results}/purge-unused.state"
aside purge-unused
"#,
        stubs = stubs.display(),
        root = root.display(),
        results = results.display(),
        control = control.display(),
    );
    run_ok(&mut in_private_mounts(&script));

    let read = |name: &str| std::fs::read_to_string(results.join(name)).unwrap();
    for step in [
        "install",
        "upgrade",
        "prerm-upgrade",
        "prerm-remove",
        "remove",
        "purge",
        "purge-unused",
    ] {
        assert_eq!(
            read(&format!("{step}.rc")).trim(),
            "0",
            "{step} failed:\n{}{}",
            read(&format!("{step}.out")),
            read(&format!("{step}.err"))
        );
    }

    // First install: the user, then the unit enabled; nothing started; one line says why.
    let calls = read("install.calls");
    let sysusers_at = calls.find("systemd-sysusers --root=");
    let enable_at = calls.find("deb-systemd-helper enable beid-agent.service");
    assert!(
        sysusers_at.is_some() && enable_at.is_some() && sysusers_at < enable_at,
        "user created, then unit enabled:\n{calls}"
    );
    assert!(
        !calls.contains("deb-systemd-invoke") && !calls.contains("systemctl start"),
        "nothing started on a first install:\n{calls}"
    );
    let said = read("install.out");
    assert!(said.contains("not started"), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("beid-agent:"))
        .unwrap_or_else(|| panic!("no beid-agent user:\n{passwd}"))
        .split(':')
        .collect();
    assert!(
        user[2].parse::<u32>().unwrap() < 1000,
        "a system uid: {user:?}"
    );
    assert_eq!(user[5], "/var/lib/beid-agent", "home: {user:?}");
    assert!(user[6].ends_with("/nologin"), "no login: {user:?}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("beid-agent:")),
        "{group}"
    );

    // Upgrade: restarted only if it runs (try-restart), never started; no message.
    let calls = read("upgrade.calls");
    assert!(
        calls.contains("deb-systemd-invoke try-restart beid-agent.service"),
        "{calls}"
    );
    assert!(
        !calls.contains("deb-systemd-invoke start") && !calls.contains("invoke restart"),
        "{calls}"
    );
    assert!(read("upgrade.out").is_empty(), "{}", read("upgrade.out"));

    // Stopped before removal, not before an upgrade (it restarts after it).
    assert!(read("prerm-remove.calls").contains("deb-systemd-invoke stop beid-agent.service"));
    assert!(!read("prerm-upgrade.calls").contains("stop"));

    // The audit log survives a remove. A purge moves it aside, out of the agent's hands,
    // and says where; an unused state folder goes.
    assert_eq!(read("remove.state").trim(), "kept");
    assert_eq!(read("purge.state").trim(), "gone");
    let aside = read("purge.aside");
    let fields: Vec<&str> = aside.split_whitespace().collect();
    assert_eq!(aside.lines().count(), 1, "one folder moved aside: {aside}");
    assert!(
        fields[0].starts_with("/var/lib/beid-agent.purged-20"),
        "{aside}"
    );
    assert_eq!(fields[1..], ["root:root", "700", "{}"], "{aside}");
    let said = read("purge.out");
    assert!(
        said.contains(&format!("moved to {}", fields[0])),
        "purge says where the audit trail went: {said}"
    );
    assert_eq!(read("purge-unused.state").trim(), "gone");
    assert_eq!(
        read("purge-unused.aside"),
        aside,
        "nothing more moved aside"
    );
    assert!(read("purge-unused.out").is_empty());
}
