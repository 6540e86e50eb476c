//! docs/operations.md, run as written: every block marked `<!-- test: NAME -->` there runs
//! here, in the guide's order, on a booted Debian 13 (the root tests/debian13.rs caches):
//! a signing key and a signed flat repository are made, a counter is provisioned from it by
//! the guide's recipe (its key made on the PC, its certificate issued by an openssl CA),
//! its token rotated and its certificate renewed under the running agent, a broken reload
//! refused, a new release installed by unattended-upgrades, node_exporter shows the agent's
//! metrics, and the PC is decommissioned. Only addresses differ from the guide: the
//! repository is a `file:` URI, the rule service the suite's mTLS test upstream on
//! loopback, node_exporter listens on a free port.
//!
//! Needs what tests/debian13.rs needs (root, debootstrap, systemd-container; the Debian
//! mirror for the root's first build).

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent::{status, TOKEN};
use common::nspawn::{self, Container, RootRecipe};
use common::package;
use common::upstream::{self, Pki, Reply, Upstream};

use std::process::Output;

const GUIDE: &str = include_str!("../docs/operations.md");
const CM: &str = "/srv/cm/beid-agent";
const REPO: &str = "/srv/beid-agent";
/// What the guide uses beyond the system of tests/debian13.rs: a signing key and a flat
/// repository (gnupg, apt-utils), openssl for the device's key, ACLs, unattended-upgrades
/// and node_exporter.
const GUIDE_TOOLS: [&str; 6] = [
    "gnupg",
    "apt-utils",
    "openssl",
    "acl",
    "unattended-upgrades",
    "prometheus-node-exporter",
];

/// The fenced block that follows `<!-- test: NAME -->` in the guide.
fn block(name: &str) -> String {
    let marker = format!("<!-- test: {name} -->\n");
    let after = GUIDE
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no block {name:?} in docs/operations.md"))
        .1;
    let fence = after.lines().next().unwrap();
    assert!(
        fence.starts_with("```"),
        "{name}: no fence after the marker"
    );
    let body = &after[fence.len() + 1..];
    body[..body.find("\n```").unwrap() + 1].to_owned()
}

/// Runs a shell block of the guide inside the container (`sh -e`, from `dir`), after
/// `prelude` (the test's addresses); its output.
fn run_block(system: &Container, name: &str, dir: &str, prelude: &str) -> Output {
    let script = format!("set -e\ncd {dir}\n{prelude}\n{}", block(name));
    eprintln!("--- {name}");
    system.exec(&["sh", "-c", &script])
}

fn run_block_ok(system: &Container, name: &str, dir: &str, prelude: &str) -> String {
    let output = run_block(system, name, dir, prelude);
    let said = format!("{}{}", common::stdout(&output), common::stderr(&output));
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{said}\n{}",
        output.status,
        system.journal_tail("beid-agent", 40)
    );
    said
}

/// The agent's main process, as systemd knows it.
fn main_pid(system: &Container) -> String {
    system.property("beid-agent", "MainPID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_guide_provisions_rotates_renews_upgrades_and_monitors_a_counter() {
    upstream::install_crypto();
    let work = tempfile::Builder::new()
        .prefix("beid-ops-")
        .tempdir()
        .unwrap();
    let first = work.path().join("first");
    let second = work.path().join("second");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let newer = format!("{}-2", env!("CARGO_PKG_VERSION"));
    let deb = package::build_package(&first, None);
    let upgrade = package::build_package(&second, Some(&newer));

    // A root of its own (tests/debian13.rs's may be shared with other checkouts).
    let cache = common::target_dir().join("debian13-operations-root");
    let mut packages: Vec<String> = nspawn::DEBIAN13_SYSTEM
        .iter()
        .chain(&GUIDE_TOOLS)
        .map(|p| (*p).to_owned())
        .collect();
    packages.extend(package::depends(&deb));
    let cached = RootRecipe {
        suite: "trixie",
        packages,
    }
    .cached(&cache);

    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let vpcd = common::free_port_pair();
    let api_port = common::free_port();
    let exporter_port = common::free_port();
    let base = format!("http://127.0.0.1:{api_port}");
    let copy = nspawn::copy_for_this_run(&cache);
    let system = Container::boot(&cached, &copy, "beid-ops", |root| {
        nspawn::stage_counter(root, vpcd, &[&deb, &upgrade]);
        // node_exporter on a port of its own (the network is the host's).
        std::fs::write(
            root.join("etc/default/prometheus-node-exporter"),
            format!(
                "ARGS=\"--web.listen-address=127.0.0.1:{exporter_port} \
                 --collector.textfile.directory=/var/lib/prometheus/node-exporter\"\n"
            ),
        )
        .unwrap();
        // Offline: apt reads the city's repository only (the root has Debian's packages).
        std::fs::write(root.join("etc/apt/sources.list"), "").unwrap();
        let _ = std::fs::remove_file(root.join("etc/apt/sources.list.d/debian.sources"));
        // What configuration management brings: the CA of the rule service, the POS token,
        // the city's drop-in (the guide's, with the test's addresses); and the city's CA.
        let cm = root.join(CM.trim_start_matches('/'));
        std::fs::create_dir_all(cm.join("tokens")).unwrap();
        std::fs::copy(&pki.ca_bundle, cm.join("upstream-ca.pem")).unwrap();
        std::fs::write(cm.join("tokens/pos"), format!("{TOKEN}\n")).unwrap();
        let city = block("city-dropin")
            .replace("https://rules.gent.be/", &server.url)
            .replace(
                "[api]\n",
                &format!("[api]\nlisten = \"127.0.0.1:{api_port}\"\n"),
            );
        std::fs::write(cm.join("10-city.toml"), city).unwrap();
        let ca = root.join("srv/ca");
        std::fs::create_dir_all(&ca).unwrap();
        std::fs::copy(&pki.ca_bundle, ca.join("city-ca.pem")).unwrap();
        std::fs::copy(pki.ca_key(), ca.join("city-ca.key")).unwrap();
        std::fs::write(root.join("root/provision-counter.sh"), block("provision")).unwrap();
    });

    // The city's repository: a key once, then the release.
    run_block_ok(&system, "repository-key", "/", "");
    system.sh(&format!(
        "mkdir -p {REPO} && cp /root/packages/beid-agent_*-1_*.deb {REPO}/ && \
         cp /srv/beid-agent-archive-keyring.gpg {CM}/"
    ));
    run_block_ok(&system, "repository-release", "/", "");
    assert!(system.path(&format!("{REPO}/InRelease")).is_file());

    // First pass: the key and request are made, the certificate is awaited.
    let repo_url = format!("export REPO_URL=file:{REPO}/");
    let pass = run_block(&system, "provision-run", "/root", &repo_url);
    let said = common::stderr(&pass);
    assert_eq!(pass.status.code(), Some(1), "{said}");
    assert!(said.contains("waiting for the city's CA"), "{said}");
    assert!(system.path("/etc/beid-agent/balie-3.csr").is_file());
    assert_eq!(
        system
            .exec_ok(&["stat", "-c", "%U:%G %a", "/etc/beid-agent/client.key"])
            .trim(),
        "root:beid-agent 640"
    );
    assert_eq!(system.is_active("beid-agent"), "inactive");

    // The city's CA signs the request; the second pass starts the agent, healthy.
    system.sh("cp /etc/beid-agent/balie-3.csr /srv/ca/");
    run_block_ok(&system, "ca-sign", "/srv/ca", "");
    system.sh(&format!("cp /srv/ca/balie-3.pem {CM}/"));
    let said = run_block_ok(&system, "provision-run", "/root", &repo_url);
    assert!(said.contains("all checks passed"), "{said}");
    assert_eq!(system.is_active("beid-agent"), "active");
    assert_eq!(status(&base, "/v1/readers", TOKEN).await, 200);
    let pid = main_pid(&system);
    // A pass with nothing new changes nothing, and does not reload.
    run_block_ok(&system, "provision-run", "/root", &repo_url);
    assert_eq!(main_pid(&system), pid);
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(system.path("/var/lib/beid-agent/config-state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["last_reload"].is_null(),
        "no reload without a change: {state}"
    );

    // node_exporter shows the agent's textfile; its user can read it.
    let textfile = "/var/lib/prometheus/node-exporter/beid_agent.prom";
    assert_eq!(
        system.exec_ok(&["stat", "-c", "%U %a", textfile]).trim(),
        "beid-agent 644"
    );
    system.exec_ok(&["runuser", "-u", "prometheus", "--", "cat", textfile]);
    let exporter = format!("127.0.0.1:{exporter_port}");
    let script = block("node-exporter").replace("localhost:9100", &exporter);
    // The agent reaches pcscd within moments of its start; the file shows it at the next
    // write (every 15 s).
    let mut node = String::new();
    common::wait_until(std::time::Duration::from_secs(40), || {
        node = common::stdout(&system.exec(&["sh", "-c", &script]));
        node.contains("beid_pcscd_up 1")
    })
    .unwrap_or_else(|| panic!("node_exporter does not show the agent with pcscd: {node}"));
    assert!(node.contains("beid_readers_present 2"), "{node}");
    assert!(
        node.contains("beid_config_last_reload_successful 1"),
        "{node}"
    );

    // Token rotation with overlap: both tokens, then only the new one; same process.
    run_block_ok(&system, "rotate-begin", "/", "");
    let next =
        String::from_utf8(std::fs::read(system.path("/etc/beid-agent/tokens/pos-next")).unwrap())
            .unwrap()
            .trim()
            .to_owned();
    assert_eq!(status(&base, "/v1/readers", TOKEN).await, 200);
    assert_eq!(status(&base, "/v1/readers", &next).await, 200);
    run_block_ok(&system, "rotate-end", "/", "");
    assert_eq!(
        status(&base, "/v1/readers", TOKEN).await,
        401,
        "the old token is refused"
    );
    assert_eq!(status(&base, "/v1/readers", &next).await, 200);
    assert_eq!(main_pid(&system), pid, "reloaded, never restarted");

    // Certificate renewal: a new key and request, the CA signs, one reload switches.
    run_block_ok(&system, "renew-request", "/", "");
    system.sh("cp /etc/beid-agent/balie-3.csr /srv/ca/ && rm -f /srv/ca/balie-3.pem");
    run_block_ok(&system, "ca-sign", "/srv/ca", "");
    system.sh("cp /srv/ca/balie-3.pem /etc/beid-agent/client-next.pem");
    let said = run_block_ok(&system, "renew-switch", "/", "");
    let until = system
        .sh("openssl x509 -in /etc/beid-agent/client-next.pem -noout -enddate -dateopt iso_8601");
    let until = until.trim().trim_start_matches("notAfter=");
    assert!(
        said.contains(&format!("valid until {}", &until[..10])),
        "the renewed certificate ({until}) is in use:\n{said}"
    );
    assert_eq!(main_pid(&system), pid);

    // A broken configuration: `systemctl reload` returns, the agent runs on with the old
    // one, and diagnose says why.
    std::fs::write(
        system.path("/etc/beid-agent/config.d/70-broken.toml"),
        "[api]\nauto_advice = [\"no-such-use-case\"]\n",
    )
    .unwrap();
    let reloaded = system.exec(&["systemctl", "reload", "beid-agent"]);
    assert!(reloaded.status.success(), "{}", common::stderr(&reloaded));
    assert_eq!(system.is_active("beid-agent"), "active");
    assert_eq!(main_pid(&system), pid);
    let said = common::stdout(&system.exec(&["systemctl", "status", "--no-pager", "beid-agent"]));
    assert!(
        said.contains("REFUSED"),
        "systemctl status says so:\n{said}"
    );
    assert_eq!(status(&base, "/v1/readers", &next).await, 200);
    let health = system.exec(&["beid-agent", "diagnose", "--health"]);
    let report = common::stdout(&health);
    assert_eq!(health.status.code(), Some(12), "{report}");
    assert!(
        report.contains("[FAIL] running configuration") && report.contains("70-broken.toml:2"),
        "{report}"
    );
    system.sh("rm /etc/beid-agent/config.d/70-broken.toml && systemctl reload beid-agent");

    // Upgrades: the city publishes a release, unattended-upgrades installs it.
    run_block_ok(&system, "unattended-config", "/", "");
    run_block_ok(&system, "unattended-hours", "/", "");
    let calendar = system.property("apt-daily-upgrade.timer", "TimersCalendar");
    assert!(calendar.contains("06:30"), "{calendar}");
    system.sh(&format!("cp /root/packages/beid-agent_*-2_*.deb {REPO}/"));
    run_block_ok(&system, "repository-release", "/", "");
    let said = run_block_ok(&system, "unattended-check", "/", "");
    assert!(said.contains("origin=Stad Gent"), "{said}");
    assert!(
        said.contains(&newer),
        "the new release would be installed:\n{said}"
    );
    system.exec_ok(&["unattended-upgrade"]);
    assert_eq!(
        system.exec_ok(&["dpkg-query", "-W", "-f", "${Version}", "beid-agent"]),
        newer
    );
    assert_eq!(system.is_active("beid-agent"), "active");
    assert_ne!(main_pid(&system), pid, "restarted on the new release");
    assert_eq!(
        status(&base, "/v1/readers", &next).await,
        200,
        "its configuration kept"
    );

    // A key only a restart applies: the reload keeps the port and says so; the restart
    // moves it.
    let moved = common::free_port();
    std::fs::write(
        system.path("/etc/beid-agent/config.d/80-listen.toml"),
        format!("[api]\nlisten = \"127.0.0.1:{moved}\"\n"),
    )
    .unwrap();
    system.exec_ok(&["systemctl", "reload", "beid-agent"]);
    assert_eq!(
        status(&base, "/v1/readers", &next).await,
        200,
        "still on its port"
    );
    let report = system.exec_ok(&["beid-agent", "diagnose", "--health"]);
    assert!(
        report.contains("[WARN] restart pending: api.listen"),
        "{report}"
    );
    system.exec_ok(&["systemctl", "restart", "beid-agent"]);
    let moved_base = format!("http://127.0.0.1:{moved}");
    assert_eq!(status(&moved_base, "/v1/readers", &next).await, 200);

    // The PC leaves the fleet.
    run_block_ok(&system, "decommission", "/", "");
    assert!(!system.path(textfile).exists());
    let acl = system.exec_ok(&["getfacl", "-p", "/var/lib/prometheus/node-exporter"]);
    assert!(!acl.contains("beid-agent"), "{acl}");
    assert!(!system.path("/usr/bin/beid-agent").exists());
    drop(system);
}
