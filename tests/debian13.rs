//! Installed for real: the Debian package built from this tree, on a booted Debian 13
//! (trixie: systemd as PID 1, pcscd 2.3 socket-activated and gated by polkit), as an
//! integrator would use it. One story, in order, each step named (a failure says which):
//! install, configure with a test PKI and the suite's real mTLS upstream, read a simulated
//! card and advise through the local API, restart and upgrade pcscd under the running
//! agent, be refused without the polkit rule (and `diagnose` says why), upgrade the agent,
//! read its journal, remove, purge.
//!
//! Needs root, `debootstrap` and `systemd-container` (`scripts/install-deps.sh test`
//! installs them) and, for the first run, Debian's package registry: the Debian 13 root is
//! built once and cached in `target/debian13-root/` (rebuilt when its package list
//! changes); each run boots a copy of it and removes the copy. The container shares the
//! host's network: its vpcd reader listens on a free port pair of its own, the agent's API
//! on a free loopback port, and both are reached from here.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent;
use common::nspawn;
use common::package;
use common::upstream;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use agent::{Events, TOKEN};
use nspawn::{Container, RootRecipe};
use upstream::{Pki, Reply, Upstream};

const SUITE: &str = "trixie";
const POLKIT_RULE: &str = "/usr/share/polkit-1/rules.d/60-beid-agent.rules";
const STATE: &str = "/var/lib/beid-agent";
const CONFIG: &str = "/etc/beid-agent/config.toml";
const USE_CASE: &str = "uitpas-kansentarief";
/// The cards served in this story: their national numbers must never reach the journal.
const CARDS: [&str; 2] = ["gen-1.8-ec", "gen-1.7-rsa2048"];
/// How long the agent may take to notice something it has to wait for (pcscd's refusal).
const NOTICE_LIMIT: Duration = Duration::from_secs(30);

/// One step of the story: announced, timed, and named again if it fails.
struct Step {
    name: &'static str,
    started: Instant,
}

fn step(name: &'static str) -> Step {
    eprintln!("--- {name}");
    Step {
        name,
        started: Instant::now(),
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("FAILED in step: {}", self.name);
        } else {
            eprintln!("    {} ({:.1?})", self.name, self.started.elapsed());
        }
    }
}

/// The booted container; on a failure, the journals of the agent and pcscd are printed
/// before it shuts down.
struct System {
    container: Container,
}

impl Drop for System {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for unit in ["beid-agent", "pcscd"] {
                eprintln!(
                    "journal of {unit}:\n{}",
                    self.container.journal_tail(unit, 40)
                );
            }
        }
    }
}

impl std::ops::Deref for System {
    type Target = Container;
    fn deref(&self) -> &Container {
        &self.container
    }
}

/// A simulated card in the container's vpcd reader (slot 0); taken out when dropped.
struct Card(Child);

fn insert(card: &str, vpcd: u16) -> Card {
    let child = Command::new(common::AGENT)
        .arg("simulate-card")
        .arg("--card")
        .arg(common::card_dir(card))
        .arg("--vpcd")
        .arg(format!("127.0.0.1:{vpcd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Card(child)
}

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The installed agent's local API, as a POS uses it.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn events(&self) -> Events {
        Events::subscribe(&self.http, &self.base, TOKEN).await
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Inserts `card`, waits for its read (authentic), asks its advice, takes it out.
    /// Returns the decision.
    async fn read_and_advise(&self, events: &mut Events, card: &str, vpcd: u16) -> String {
        let inserted = insert(card, vpcd);
        let read = events.until("card-read").await;
        assert_eq!(read["authentic"], true, "{card}: {read}");
        let session = read["session"].as_str().unwrap().to_owned();
        let response = self
            .http
            .post(format!("{}/v1/sessions/{session}/advice", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "useCase": USE_CASE }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "advice for {card}");
        let advice: Value = response.json().await.unwrap();
        assert_eq!(advice["session"], session.as_str());
        drop(inserted);
        loop {
            let removed = events.until("card-removed").await;
            if removed["session"] == session.as_str() {
                break;
            }
        }
        advice["decision"].as_str().unwrap().to_owned()
    }
}

/// The file's bytes, inside the container.
fn read(system: &System, inside: &str) -> Vec<u8> {
    std::fs::read(system.path(inside)).unwrap_or_else(|e| panic!("{inside}: {e}"))
}

/// Sets `key = value` on the line that starts with `key =` in a TOML text.
fn set_line(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} =");
    assert!(
        text.lines().any(|l| l.starts_with(&prefix)),
        "no `{key}` line in the shipped configuration"
    );
    text.lines()
        .map(|line| {
            if line.starts_with(&prefix) {
                format!("{key} = {value}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `beid-agent audit verify FILE` with the binary under test, on the host.
fn audit_verifies(file: &Path) {
    let output = common::run(
        Command::new(common::AGENT)
            .arg("audit")
            .arg("verify")
            .arg(file),
    );
    assert!(
        output.status.success(),
        "audit verify {}: {}{}",
        file.display(),
        common::stdout(&output),
        common::stderr(&output)
    );
}

/// The agent's main process and how often systemd restarted it.
fn agent_process(system: &System) -> (String, String, String) {
    (
        system.property("beid-agent", "MainPID"),
        system.property("beid-agent", "InvocationID"),
        system.property("beid-agent", "NRestarts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_on_a_booted_debian_13_serves_upgrades_and_keeps_its_audit_trail() {
    let story = Instant::now();
    upstream::install_crypto();
    let work = tempfile::Builder::new()
        .prefix("beid-debian13-")
        .tempdir()
        .unwrap();
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let newer = format!("{}-2", env!("CARGO_PKG_VERSION"));

    let (deb, upgrade) = {
        let _step = step("build the package and a newer version of it");
        let first = work.path().join("first");
        let second = work.path().join("second");
        std::fs::create_dir(&first).unwrap();
        std::fs::create_dir(&second).unwrap();
        (
            package::build_package(&first, None),
            package::build_package(&second, Some(&newer)),
        )
    };

    let cache = common::target_dir().join("debian13-root");
    let cached = {
        let _step = step("the Debian 13 root (debootstrap once, then cached)");
        let mut packages: Vec<String> = nspawn::DEBIAN13_SYSTEM
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        packages.extend(package::depends(&deb));
        RootRecipe {
            suite: SUITE,
            packages,
        }
        .cached(&cache)
    };

    let vpcd = common::free_port_pair();
    let api_port = common::free_port();
    let system = {
        let _step = step("boot it with systemd-nspawn");
        let copy = nspawn::copy_for_this_run(&cache);
        let container = Container::boot(&cached, &copy, "beid-debian13", |root| {
            nspawn::stage_counter(root, vpcd, &[&deb, &upgrade]);
        });
        let system = System { container };
        let pcscd = system.exec_ok(&["pcscd", "--version"]);
        assert!(pcscd.contains("version 2."), "pcsc-lite 2.x: {pcscd}");
        system
    };
    let deb_inside = format!(
        "/root/packages/{}",
        deb.file_name().unwrap().to_str().unwrap()
    );
    let upgrade_inside = format!(
        "/root/packages/{}",
        upgrade.file_name().unwrap().to_str().unwrap()
    );

    {
        let _step = step("install: enabled, not started, its own user");
        let said = system.exec_ok(&["apt-get", "install", "-y", &deb_inside]);
        assert!(said.contains("enabled but not started"), "{said}");
        assert_eq!(
            system.exec_ok(&["dpkg-query", "-W", "-f", "${Version}", "beid-agent"]),
            version
        );
        assert_eq!(
            system
                .exec_ok(&["systemctl", "is-enabled", "beid-agent"])
                .trim(),
            "enabled"
        );
        assert_eq!(system.is_active("beid-agent"), "inactive");
        let user = system.exec_ok(&["getent", "passwd", "beid-agent"]);
        assert!(user.contains(":/var/lib/beid-agent:"), "{user}");
        assert!(system.path(POLKIT_RULE).is_file());
    }

    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{api_port}"),
    };
    {
        let _step = step("configure with a test PKI and the mTLS upstream, then start");
        for (from, to) in [
            (&pki.client_cert, "/etc/beid-agent/client.pem"),
            (&pki.client_key, "/etc/beid-agent/client.key"),
            (&pki.ca_bundle, "/etc/beid-agent/upstream-ca.pem"),
        ] {
            std::fs::copy(from, system.path(to)).unwrap();
        }
        std::fs::create_dir_all(system.path("/etc/beid-agent/tokens")).unwrap();
        std::fs::create_dir_all(system.path("/etc/beid-agent/roots")).unwrap();
        std::fs::write(
            system.path("/etc/beid-agent/tokens/pos"),
            format!("{TOKEN}\n"),
        )
        .unwrap();
        for root in ["gen-root-ca4.der", "gen-root-ca6.der"] {
            std::fs::copy(
                common::fixtures().join("test-pki").join(root),
                system.path(&format!("/etc/beid-agent/roots/{root}")),
            )
            .unwrap();
        }
        // The shipped conffile, edited where it says CHANGE, plus the TEST roots of the
        // simulated cards.
        let shipped = String::from_utf8(read(&system, CONFIG)).unwrap();
        let mut config = set_line(&shipped, "url", &format!("\"{}\"", upstream.url));
        config = set_line(&config, "id", "\"balie-3\"");
        config = set_line(&config, "listen", &format!("\"127.0.0.1:{api_port}\""));
        config = set_line(&config, "origins", "[\"https://pos.gent.be\"]");
        config = config.replace(
            "[trust]\n",
            "[trust]\nextra_roots = [\"/etc/beid-agent/roots/gen-root-ca4.der\", \
             \"/etc/beid-agent/roots/gen-root-ca6.der\"]\n",
        );
        std::fs::write(system.path(CONFIG), &config).unwrap();
        system.sh(
            "cd /etc/beid-agent && chown root:beid-agent client.key tokens/pos && \
             chmod 0640 client.key tokens/pos",
        );
        system.exec_ok(&["beid-agent", "config", "check", CONFIG]);
        system.exec_ok(&["systemctl", "start", "beid-agent"]);
        assert_eq!(system.is_active("beid-agent"), "active");
        let (pid, _, _) = agent_process(&system);
        assert_eq!(
            system
                .exec_ok(&["stat", "-c", "%U", &format!("/proc/{pid}")])
                .trim(),
            "beid-agent",
            "the agent runs as its own user"
        );
    }

    let mut events = api.events().await;
    {
        let _step = step("read a card through polkit-gated pcscd and advise");
        let decision = api.read_and_advise(&mut events, CARDS[0], vpcd).await;
        assert_eq!(decision, "eligible");
        let bodies = upstream.bodies();
        assert_eq!(
            bodies.last().unwrap()["nationalNumber"],
            common::expected(CARDS[0])["national_number"],
            "the upstream was asked, over mutual TLS, about this card"
        );
    }

    let running = agent_process(&system);
    {
        let _step = step("restart pcscd: the reader comes back, the agent stays");
        system.exec_ok(&["systemctl", "restart", "pcscd"]);
        let decision = api.read_and_advise(&mut events, CARDS[1], vpcd).await;
        assert_eq!(decision, "eligible");
        assert_eq!(system.is_active("beid-agent"), "active");
        assert_eq!(agent_process(&system), running, "not restarted");
    }

    {
        let _step = step("upgrade pcscd's package: the agent stays up");
        let before = system.property("pcscd", "InvocationID");
        system.sh("dpkg -i /var/cache/apt/archives/pcscd_*.deb");
        assert_ne!(
            system.property("pcscd", "InvocationID"),
            before,
            "the package upgrade restarted pcscd"
        );
        let decision = api.read_and_advise(&mut events, CARDS[0], vpcd).await;
        assert_eq!(decision, "eligible");
        assert_eq!(system.is_active("beid-agent"), "active");
        assert_eq!(
            agent_process(&system),
            running,
            "not restarted, no restart counted against its start limit"
        );
    }

    {
        let _step = step("without the polkit rule pcscd refuses the agent; diagnose says why");
        let uid = system
            .exec_ok(&["id", "-u", "beid-agent"])
            .trim()
            .to_owned();
        system.exec_ok(&["rm", POLKIT_RULE]);
        system.exec_ok(&["systemctl", "reload", "polkit"]);
        // pcscd restarts: the agent connects again, as a new client polkit is asked about.
        system.exec_ok(&["systemctl", "restart", "pcscd"]);
        let refusal = format!("Process {} (user: {uid}) is NOT authorized", running.0);
        common::wait_until(NOTICE_LIMIT, || {
            system
                .exec_ok(&["journalctl", "--no-pager", "-o", "cat", "-u", "pcscd"])
                .contains(&refusal)
        })
        .unwrap_or_else(|| panic!("pcscd never refused the agent ({refusal})"));
        let status = api.get("/v1/status").await;
        assert_ne!(status["pcscd"], "up", "{status}");

        let diagnosis = system.exec(&[
            "runuser",
            "-u",
            "beid-agent",
            "--",
            "beid-agent",
            "diagnose",
        ]);
        let report = common::stdout(&diagnosis);
        assert!(!diagnosis.status.success(), "{report}");
        let polkit = report
            .lines()
            .skip_while(|l| !l.starts_with("[FAIL] pcscd access (polkit)"))
            .take(2)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            polkit.contains(POLKIT_RULE),
            "names the rule file:\n{report}"
        );
        assert!(
            polkit.contains("apt install --reinstall beid-agent"),
            "says what to install:\n{report}"
        );
        assert!(
            report.contains("[FAIL] pcscd: the PC/SC service (pcscd) refused access"),
            "{report}"
        );
        // The support bundle (made as root, who may read every journal) holds pcscd's side.
        system.exec(&[
            "beid-agent",
            "diagnose",
            "--support-bundle",
            "/root/support.tar.gz",
        ]);
        let pcscd_lines = system.sh("tar -xzOf /root/support.tar.gz --wildcards '*/pcscd.txt'");
        assert!(
            pcscd_lines.contains(&refusal),
            "the polkit refusal in the bundle's pcscd.txt:\n{pcscd_lines}"
        );

        // Done as diagnose says (from the package at hand): the rule is back, the agent reads.
        system.exec_ok(&["apt-get", "install", "-y", "--reinstall", &deb_inside]);
        assert!(system.path(POLKIT_RULE).is_file());
        events = api.events().await;
        let decision = api.read_and_advise(&mut events, CARDS[1], vpcd).await;
        assert_eq!(decision, "eligible");
    }

    {
        let _step = step("upgrade: conffile, state, RRN cache and audit chain kept; restarted");
        let config = read(&system, CONFIG);
        let audit = read(&system, &format!("{STATE}/audit.jsonl"));
        let audit_key = read(&system, &format!("{STATE}/audit.key"));
        let rrn_keys = read(&system, &format!("{STATE}/rrn-keys.json"));
        assert!(
            !audit.is_empty() && rrn_keys.len() > 2,
            "state before the upgrade"
        );
        let (_, invocation, _) = agent_process(&system);

        // With the event stream open, as a POS always has it.
        system.exec_ok(&["apt-get", "install", "-y", &upgrade_inside]);
        assert_eq!(
            system.exec_ok(&["dpkg-query", "-W", "-f", "${Version}", "beid-agent"]),
            newer
        );
        assert_eq!(read(&system, CONFIG), config, "the edited conffile is kept");
        let leftovers = system.sh("ls /etc/beid-agent | grep dpkg || true");
        assert!(leftovers.is_empty(), "no .dpkg-* copies: {leftovers}");
        assert!(
            read(&system, &format!("{STATE}/audit.jsonl")).starts_with(&audit),
            "the audit log is kept"
        );
        assert_eq!(read(&system, &format!("{STATE}/audit.key")), audit_key);
        assert_eq!(
            read(&system, &format!("{STATE}/rrn-keys.json")),
            rrn_keys,
            "the RRN key cache is kept"
        );
        let (_, after, _) = agent_process(&system);
        assert_ne!(after, invocation, "the running service was restarted");
        assert_eq!(system.is_active("beid-agent"), "active");
        let unit_log =
            system.exec_ok(&["journalctl", "--no-pager", "-o", "cat", "-u", "beid-agent"]);
        assert!(
            !unit_log.contains("timed out") && !unit_log.contains("SIGKILL"),
            "every stop was clean, open event streams included:\n{unit_log}"
        );

        events = api.events().await;
        let decision = api.read_and_advise(&mut events, CARDS[0], vpcd).await;
        assert_eq!(decision, "eligible");
        system.exec_ok(&[
            "beid-agent",
            "audit",
            "verify",
            &format!("{STATE}/audit.jsonl"),
        ]);
    }
    drop(events);

    {
        let _step = step("the journal: native entries, no escape code, no national number");
        let agent = system
            .command(&["journalctl", "--no-pager", "-o", "json", "-u", "beid-agent"])
            .output()
            .unwrap();
        assert!(agent.status.success());
        let everything = system
            .command(&["journalctl", "--no-pager", "-o", "json"])
            .output()
            .unwrap();
        let entries: Vec<Value> = agent
            .stdout
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        // journalctl writes a field holding control characters as an array of bytes.
        let bytes_of = |value: &Value| -> Vec<u8> {
            match value {
                Value::String(text) => text.as_bytes().to_vec(),
                Value::Array(items) => items
                    .iter()
                    .filter_map(|b| b.as_u64().map(|b| b as u8))
                    .collect(),
                other => other.to_string().into_bytes(),
            }
        };
        for entry in &entries {
            for (field, value) in entry.as_object().unwrap() {
                assert!(
                    !bytes_of(value).contains(&0x1B),
                    "an escape code in {field}: {entry}"
                );
            }
        }
        for card in CARDS {
            let number = common::expected(card)["national_number"]
                .as_str()
                .unwrap()
                .to_owned();
            let in_json = |out: &[u8]| out.windows(number.len()).any(|w| w == number.as_bytes());
            assert!(
                !in_json(&everything.stdout),
                "{card}'s national number in the journal"
            );
            for entry in &entries {
                for value in entry.as_object().unwrap().values() {
                    assert!(
                        !in_json(&bytes_of(value)),
                        "{card}'s national number: {entry}"
                    );
                }
            }
        }
        let field = |entry: &Value, name: &str| entry[name].as_str().map(str::to_owned);
        let native: Vec<&Value> = entries
            .iter()
            .filter(|e| field(e, "SYSLOG_IDENTIFIER").as_deref() == Some("beid-agent"))
            .filter(|e| field(e, "_TRANSPORT").as_deref() == Some("journal"))
            .collect();
        assert!(
            native
                .iter()
                .any(|e| field(e, "SESSION").is_some()
                    && field(e, "PRIORITY").as_deref() == Some("6")),
            "an info entry with its session, sent natively: {native:?}"
        );
        assert!(
            native
                .iter()
                .any(|e| field(e, "PRIORITY").as_deref() == Some("4")
                    && field(e, "MESSAGE").is_some_and(|m| m.contains("PC/SC"))),
            "pcscd's refusal as a warning (priority 4): {native:?}"
        );
    }

    {
        let _step = step("apt remove: stopped, state kept");
        let state = system.sh(&format!("cd {STATE} && ls -A && sha256sum audit.jsonl"));
        system.exec_ok(&["apt-get", "remove", "-y", "beid-agent"]);
        assert_eq!(system.is_active("beid-agent"), "inactive");
        assert!(!system.path("/usr/bin/beid-agent").exists());
        assert_eq!(
            system.sh(&format!("cd {STATE} && ls -A && sha256sum audit.jsonl")),
            state,
            "the state dir is kept as it was"
        );
        assert!(system.path(CONFIG).exists(), "conffiles stay until purge");
        audit_verifies(&system.path(&format!("{STATE}/audit.jsonl")));
    }

    {
        let _step = step("apt purge: the audit trail is moved aside, and said where");
        let audit = read(&system, &format!("{STATE}/audit.jsonl"));
        let said = system.exec_ok(&["apt-get", "purge", "-y", "beid-agent"]);
        let kept = said
            .split("moved to ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("purge does not say where the audit trail went:\n{said}"))
            .to_owned();
        assert!(kept.starts_with("/var/lib/beid-agent.purged-"), "{kept}");
        assert!(!system.path(STATE).exists(), "{STATE} is gone");
        assert_eq!(read(&system, &format!("{kept}/audit.jsonl")), audit);
        assert_eq!(
            system.exec_ok(&["stat", "-c", "%U:%G %a", &kept]).trim(),
            "root:root 700"
        );
        audit_verifies(&system.path(&format!("{kept}/audit.jsonl")));
        assert!(!system.path(CONFIG).exists(), "the conffile is purged");
        assert!(
            system.path("/etc/beid-agent/client.key").exists(),
            "the city's own files are not the package's"
        );
        system.exec_ok(&["id", "beid-agent"]);
    }

    {
        let _step = step("shut the container down");
        drop(system);
    }
    eprintln!("the whole story: {:.1?}", story.elapsed());
}

#[test]
fn the_mirror_is_read_from_either_apt_sources_format() {
    let deb822 =
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                  Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n\
                  Suites: bookworm-security\n";
    assert_eq!(
        nspawn::debian_mirror_in(deb822).as_deref(),
        Some("http://mirror.example/debian")
    );
    let one_line = "# comment\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n";
    assert_eq!(
        nspawn::debian_mirror_in(one_line).as_deref(),
        Some("http://mirror.example/debian")
    );
    assert_eq!(
        nspawn::debian_mirror_in("deb https://apt.example/cloud-sdk cloud-sdk main\n"),
        None
    );
}
