//! The OpenAPI document the agent serves (`GET /v1/openapi.json`), linted by Redocly CLI
//! with `recommended-strict`: every rule of its `recommended` set, warnings counted as
//! errors. The linter is pinned in scripts/openapi-lint/ and installed by
//! `scripts/install-deps.sh test` into target/tools/openapi-lint (`REDOCLY` names another
//! binary); it runs without network.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::simulated::SimulatedServe;
use serde_json::Value;

fn redocly() -> PathBuf {
    let path = std::env::var_os("REDOCLY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/tools/openapi-lint/node_modules/.bin/redocly")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-deps.sh test",
        path.display()
    );
    path
}

/// Lints `document` as a file of its own folder (no configuration file of the repository
/// applies) and returns the linter's JSON report.
fn lint(document: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    let output = Command::new(redocly())
        .args([
            "lint",
            "--extends",
            "recommended-strict",
            "--format",
            "json",
        ])
        .arg(&file)
        .current_dir(dir.path())
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let clean = report["totals"]["errors"] == 0 && report["totals"]["warnings"] == 0;
    assert_eq!(
        output.status.success(),
        clean,
        "the exit status and the report disagree: {report}"
    );
    report
}

#[tokio::test]
async fn the_served_openapi_document_passes_redocly_recommended_strict() {
    common::upstream::install_crypto();
    let agent = SimulatedServe::start();
    let served = reqwest::get(format!("{}/v1/openapi.json", agent.base)).await;
    let document: Value = served.unwrap().json().await.unwrap();

    let report = lint(&document);
    assert_eq!(
        (&report["totals"]["errors"], &report["totals"]["warnings"]),
        (&Value::from(0), &Value::from(0)),
        "{:#}",
        report["problems"]
    );

    // The linter is strict indeed: a schema nothing uses (a warning in `recommended`) fails.
    let mut loose = document.clone();
    loose["components"]["schemas"]["Unused"] = serde_json::json!({"type": "string"});
    let report = lint(&loose);
    let rules: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|problem| problem["ruleId"].as_str())
        .collect();
    assert_eq!(rules, ["no-unused-components"], "{report}");
}
