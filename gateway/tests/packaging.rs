//! Packaging of the gateway: its systemd unit (hardened: `systemd-analyze security`
//! exposure at most 2.0, and it verifies), its Debian package (what it installs, that it
//! needs no PC/SC, that it enables but never first starts the service) and the shipped
//! configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GATEWAY: &str = env!("CARGO_BIN_EXE_beid-gateway");
const UNIT: &str = "systemd/beid-gateway.service";
const MAX_EXPOSURE: f64 = 2.0;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn run_ok(command: &mut Command) -> String {
    let output: Output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_unit_rates_at_most_2_0_in_systemd_analyze_security() {
    let report = run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager", UNIT])
            .current_dir(repo("")),
    );
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for beid-gateway.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{report}"));
    println!("systemd-analyze security: exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}

#[test]
fn the_unit_verifies_and_runs_the_gateway_with_the_packaged_config() {
    let unit = std::fs::read_to_string(repo(UNIT)).unwrap();
    for setting in [
        "Type=notify",
        "User=beid-gateway",
        "StateDirectory=beid-gateway",
        "ConfigurationDirectory=beid-gateway",
        "ExecStart=/usr/bin/beid-gateway --config /etc/beid-gateway/config.toml",
        "ExecStartPre=/usr/bin/beid-gateway config check /etc/beid-gateway/config.toml",
        "LimitNOFILE=65536",
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
    // `systemd-analyze verify` checks that the binaries exist: the one under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("beid-gateway.service");
    std::fs::write(&copy, unit.replace("/usr/bin/beid-gateway", GATEWAY)).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn the_shipped_config_lacks_only_what_the_city_provides() {
    let problems = beid_gateway::Config::check(&repo("gateway/packaging/config.toml"));
    assert!(!problems.is_empty());
    for problem in &problems {
        let message = problem.to_string();
        let provided = ["server.pem", "server.key", "device-ca.pem", "uitpas-secret"]
            .iter()
            .any(|file| message.contains(&format!("/etc/beid-gateway/{file}")));
        let state_dir =
            message.contains("/var/lib/beid-gateway/") && message.contains("folder does not exist");
        assert!(provided || state_dir, "unexpected problem: {message}");
    }
}

#[test]
fn the_debian_package_installs_the_gateway_without_pcsc_and_never_first_starts_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = tempfile::tempdir().unwrap();
    let packaged = Command::new(&cargo)
        .args([
            "deb",
            "-p",
            "beid-gateway",
            "--profile",
            "dev",
            "--no-build",
            "--fast",
        ])
        .args(["--locked", "--offline", "--manifest-path"])
        .arg(repo("Cargo.toml"))
        .arg("--output")
        .arg(out.path())
        .env("CARGO_BUILD_BUILD_DIR", out.path().join("build"))
        .output()
        .unwrap();
    assert!(
        packaged.status.success(),
        "cargo deb (cargo install cargo-deb --version 3.8.0 --locked):\n{}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    let deb = out.path().join(format!(
        "beid-gateway_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mut files: Vec<String> = listing
        .lines()
        .filter(|line| !line.starts_with('d'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], "0/0", "owner: {line}");
            format!("{} {}", fields[0], fields[5].trim_start_matches('.'))
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "-rw-r--r-- /etc/beid-gateway/config.toml",
            "-rw-r--r-- /usr/lib/systemd/system/beid-gateway.service",
            "-rw-r--r-- /usr/lib/sysusers.d/beid-gateway.conf",
            "-rw-r--r-- /usr/share/doc/beid-gateway/copyright",
            "-rw-r--r-- /usr/share/doc/beid-gateway/gateway.md",
            "-rw-r--r-- /usr/share/doc/beid-gateway/upstream-openapi.yaml",
            "-rwxr-xr-x /usr/bin/beid-gateway",
        ]
    );
    let root = out.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    for (installed, source) in [
        ("usr/lib/systemd/system/beid-gateway.service", UNIT),
        (
            "usr/lib/sysusers.d/beid-gateway.conf",
            "systemd/beid-gateway.sysusers",
        ),
        (
            "etc/beid-gateway/config.toml",
            "gateway/packaging/config.toml",
        ),
        ("usr/share/doc/beid-gateway/gateway.md", "docs/gateway.md"),
    ] {
        assert_eq!(
            std::fs::read(root.join(installed)).unwrap(),
            std::fs::read(repo(source)).unwrap(),
            "{installed}"
        );
    }
    let version = run_ok(Command::new(root.join("usr/bin/beid-gateway")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("beid-gateway {}", env!("CARGO_PKG_VERSION"))
    );

    let field = |name: &str| run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "beid-gateway");
    let depends = field("Depends");
    assert!(
        depends.contains("ca-certificates") && depends.contains("systemd-sysusers"),
        "{depends}"
    );
    assert!(!depends.contains("pcsc"), "{depends}");
    let control = out.path().join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/beid-gateway/config.toml");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers") && postinst.contains("beid-gateway.conf"),
        "{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper") && postinst.contains("enable"),
        "{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "never started by the package:\n{postinst}"
    );
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("rm -rf /var/lib/beid-gateway"));
}
