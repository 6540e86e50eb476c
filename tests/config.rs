//! The configuration surface as a technician meets it: `beid-agent config check` (one problem
//! a line, `--json`, exit codes), drop-ins beside the main file, and `serve` refusing to start
//! on the same problems.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, stderr, stdout, write_secret, AGENT};
use serde_json::Value;

const TOKEN: &str = "5c1e9a0f7b3d2e8c4a6f1b9d0e7c3a5f8b2d4e6a1c9f0b7e3d5a2c8f6e4b1d09";

/// A simulated-upstream configuration in `dir` with a counter client, plus `extra`.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    write_secret(&dir.join("pos.token"), TOKEN);
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n\
             [[api.clients]]\nname = \"pos\"\ntoken_file = \"pos.token\"\nscopes = [\"advice\"]\n\
             origins = [\"https://pos.gent.be\"]\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn check_json(path: &Path) -> (Option<i32>, Value) {
    let output = run(Command::new(AGENT)
        .args(["config", "check", "--json"])
        .arg(path));
    let text = stdout(&output);
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {text:?}"));
    (output.status.code(), value)
}

#[test]
fn a_good_configuration_and_its_drop_ins_check_ok() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    std::fs::create_dir(dir.path().join("config.d")).unwrap();
    std::fs::write(
        dir.path().join("config.d/50-device.toml"),
        "[device]\nid = \"balie-7\"\n",
    )
    .unwrap();
    let output = run(Command::new(AGENT).args(["config", "check"]).arg(&path));
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("ok (with ")
            && stdout(&output).contains("config.d/50-device.toml"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        check_json(&path),
        (Some(0), serde_json::json!({"ok": true, "problems": []}))
    );
}

#[test]
fn every_problem_of_every_file_is_listed_in_one_run_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "\n[api]\nauto_advice = [\"uitpas-kansentarif\"]\ncolour = \"blue\"\n",
    );
    std::fs::create_dir(dir.path().join("config.d")).unwrap();
    let drop_in = dir.path().join("config.d/50-device.toml");
    std::fs::write(&drop_in, "# per device\n[device]\nid = \"change-me\"\n").unwrap();

    let output = run(Command::new(AGENT).args(["config", "check"]).arg(&path));
    assert_eq!(output.status.code(), Some(12));
    let text = stdout(&output);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            format!(
                "{}:15: api.auto_advice[0]: is not a use case of the catalogue (did you mean `uitpas-kansentarief`?)",
                path.display()
            ),
            format!(
                "{}:16: api.colour: unknown key (remove it; docs/configuration.md lists every key)",
                path.display()
            ),
            format!(
                "{}:3: device.id: is still the template's placeholder (the shipped template's example: set this device's id, as on its client certificate (e.g. \"balie-3\"))",
                drop_in.display()
            ),
        ]
    );
    assert!(
        stderr(&output).contains("3 problem(s)"),
        "{}",
        stderr(&output)
    );

    let (code, report) = check_json(&path);
    assert_eq!(code, Some(12));
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3);
    assert_eq!(
        problems[2],
        serde_json::json!({
            "file": drop_in.display().to_string(),
            "line": 3,
            "key": "device.id",
            "problem": "is still the template's placeholder",
            "hint": "the shipped template's example: set this device's id, as on its client certificate (e.g. \"balie-3\")",
        })
    );
    assert_eq!(
        problems[1]["hint"],
        "remove it; docs/configuration.md lists every key"
    );
}

#[test]
fn an_unreadable_file_is_one_json_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = check_json(&dir.path().join("absent.toml"));
    assert_eq!(code, Some(1));
    assert_eq!(report["error"]["code"], "config_unreadable");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("absent.toml"),
        "{report}"
    );
    assert_eq!(report.as_object().unwrap().len(), 1, "{report}");
}

#[test]
fn the_help_lists_the_exit_codes() {
    let output = run(Command::new(AGENT).args(["config", "check", "--help"]));
    let help = stdout(&output);
    for line in [
        "Exit status:",
        "0                  success",
        "1   error          another error",
        "2   usage          wrong usage",
        "12  checks_failed  problems found",
    ] {
        assert!(help.contains(line), "{line:?} missing from:\n{help}");
    }
}

#[test]
fn serve_refuses_to_start_on_the_problems_config_check_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    std::fs::set_permissions(
        dir.path().join("pos.token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let output = run(Command::new(AGENT)
        .args(["serve", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state")));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "{}:10: api.clients[0].token_file: secret file",
            path.display()
        )) && text.contains("has mode 0644"),
        "{text}"
    );
    // The same problem, word for word, from config check.
    let check = run(Command::new(AGENT).args(["config", "check"]).arg(&path));
    let listed = stdout(&check);
    assert!(
        text.contains(listed.trim()),
        "serve: {text}\ncheck: {listed}"
    );
}
