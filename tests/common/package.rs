//! The Debian package built from the tree under test, and the host tools around it: the
//! binary `cargo test` has just built, packed with `cargo deb --profile dev --no-build`, so
//! no release build is needed. Include it on its own:
//! `#[path = "common/package.rs"] mod package;`.

// Each test binary uses part of this harness.
#![allow(dead_code)]
// Test support: a failed set-up step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The full path of `tool`, or a failure naming the Debian package that brings it.
pub fn require(tool: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(tool))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is missing: install the Debian package `{package}` \
                 (scripts/install-deps.sh test does)"
            )
        })
}

/// Runs `command` to its end; a failure to start it names the command.
pub fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs `command` and returns its stdout; any failure shows its stderr.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Builds the package from the binary under test into `out` (one package per folder);
/// returns the .deb. `version` replaces the package's version (`cargo deb --deb-version`),
/// e.g. to make an upgrade of the same tree.
pub fn build_package(out: &Path, version: Option<&str>) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let installed = run(Command::new(&cargo).args(["deb", "--version"]));
    assert!(
        installed.status.success(),
        "cargo-deb is missing: `cargo install cargo-deb --version 3.8.0 --locked` \
         (scripts/install-deps.sh test does)\n{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    require("dpkg-deb", "dpkg");
    require("strip", "binutils");
    generate_package_files();
    // cargo-deb strips into its build dir: a private one, so parallel runs in a shared tree
    // never share a file.
    let build_dir = out.join("build");
    let mut command = Command::new(&cargo);
    command
        .args(["deb", "--profile", "dev", "--no-build", "--strip", "--fast"])
        .args(["--locked", "--offline", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--output")
        .arg(out)
        .env("CARGO_BUILD_BUILD_DIR", &build_dir);
    if let Some(version) = version {
        command.args(["--deb-version", version]);
    }
    let packaged = run(&mut command);
    assert!(
        packaged.status.success(),
        "cargo deb failed:\n{}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package: {debs:?}");
    debs.into_iter().next().unwrap()
}

/// What `scripts/package.sh` has the binary write before `cargo deb` (the man pages and
/// completions the package's assets name), written by the binary under test into the
/// dev profile's folder, where `cargo deb --profile dev` looks for `target/release/...`.
/// Each file is replaced whole, so parallel package builds may write them at once.
fn generate_package_files() {
    let agent = Path::new(env!("CARGO_BIN_EXE_beid-agent"));
    let generated = agent.parent().unwrap().join("generated");
    for what in [&["man", "--gzip"][..], &["completions"]] {
        let output = run(Command::new(agent)
            .arg("generate")
            .args(what)
            .arg(generated.join(what[0])));
        assert!(
            output.status.success(),
            "beid-agent generate {what:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The package names a .deb's `Depends` asks for: the first alternative of each, without
/// version constraints (what to preinstall so the package installs offline).
pub fn depends(deb: &Path) -> Vec<String> {
    run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"))
        .split(',')
        .filter_map(|dependency| {
            let first = dependency.split('|').next()?;
            let name = first.split(['(', ' ']).find(|part| !part.is_empty())?;
            Some(name.trim().to_owned())
        })
        .collect()
}
