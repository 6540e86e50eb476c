//! The advice surface end to end: `beid-agent advice` reads a simulated card through real
//! pcscd, verifies it, and asks the rule service (simulated, or a real local HTTPS server
//! requiring a client certificate). And `beid-agent config check`.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::upstream;

use std::path::Path;
use std::process::Command;

use common::{card_variant, file_of, forge_national_number, json, run, stderr, Pcscd};
use upstream::{Pki, Reply, Upstream};

fn advise(
    pcscd: &Pcscd,
    card: &str,
    use_case: &str,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value) {
    let _inserted = pcscd.insert(card);
    let output = run(pcscd
        .agent()
        .args(["advice", "--use-case", use_case, "--wait", "10", "--json"])
        .args(extra));
    let code = output.status.code();
    assert!(!output.stdout.is_empty(), "{card}: {}", stderr(&output));
    (code, json(&output))
}

#[test]
fn the_simulated_service_answers_through_real_pcscd() {
    let pcscd = Pcscd::start();
    let (code, report) = advise(&pcscd, "gen-1.8-ec", "uitpas-kansentarief", &["--simulate"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["decision"], "eligible");
    assert_eq!(report["authentic"], true);
    assert!(report["timings"]["card_ms"].as_f64().unwrap() > 0.0);

    let (code, report) = advise(
        &pcscd,
        "gen-1.7-rsa2048",
        "uitpas-kansentarief",
        &["--simulate"],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["decision"], "not_eligible");
}

#[test]
fn the_agent_itself_never_says_no() {
    let pcscd = Pcscd::start();
    // An expired card (the specimen expired in 2014): unknown, the upstream is not asked.
    let (code, report) = advise(&pcscd, "alice-2009", "uitpas-kansentarief", &["--simulate"]);
    assert_eq!(code, Some(14));
    assert_eq!(report["decision"], "unknown");
    assert_eq!(report["reason"], "card_expired");

    // A forged card: unknown, not authentic.
    let forged = card_variant("gen-1.7-rsa2048", |dir| {
        forge_national_number(&file_of(dir, "4031"));
    });
    let (code, report) = advise(
        &pcscd,
        forged.path().to_str().unwrap(),
        "uitpas-kansentarief",
        &["--simulate"],
    );
    assert_eq!(code, Some(14));
    assert_eq!(report["decision"], "unknown");
    assert_eq!(report["reason"], "card_not_authentic");
    assert_eq!(report["authentic"], false);
}

fn write_config(dir: &Path, upstream: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let roots = common::fixtures().join("test-pki");
    std::fs::write(
        &path,
        format!(
            "{upstream}\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n[trust]\n\
             extra_roots = [\"{}\", \"{}\"]\nrrn_key_cache = \"rrn-keys.json\"\n",
            roots.join("gen-root-ca4.der").display(),
            roots.join("gen-root-ca6.der").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_configured_simulated_upstream_and_the_key_cache_work() {
    let pcscd = Pcscd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[upstream]\nkind = \"simulated\"\n");
    let config = config.to_str().unwrap();
    let (code, report) = advise(
        &pcscd,
        "gen-1.7-rsa2048",
        "lez-free-registration",
        &["--config", config],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["decision"], "eligible");
    let cold = report["apdus"].as_u64().unwrap();
    let (_, report) = advise(
        &pcscd,
        "gen-1.7-rsa2048",
        "lez-free-registration",
        &["--config", config],
    );
    let warm = report["apdus"].as_u64().unwrap();
    assert!(warm + 4 <= cold, "cold {cold}, warm {warm}");
    assert!(dir.path().join("rrn-keys.json").exists());
}

/// Runs `advise` for gen-1.8-ec with this configuration on a blocking thread, so the test's
/// runtime keeps serving the upstream meanwhile.
async fn advise_off_runtime(config: &Path) -> (Option<i32>, serde_json::Value) {
    let config = config.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let pcscd = Pcscd::start();
        advise(
            &pcscd,
            "gen-1.8-ec",
            "uitpas-kansentarief",
            &["--config", &config],
        )
    })
    .await
    .unwrap()
}

/// The `[upstream]` section for the mTLS test upstream.
fn mtls_upstream(server: &Upstream, pki: &Pki) -> String {
    format!(
        "[upstream]\nkind = \"http\"\nurl = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nca_bundle = \"{}\"\n",
        server.url,
        pki.client_cert.display(),
        pki.client_key.display(),
        pki.ca_bundle.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_https_upstream_is_asked_over_mutual_tls() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mtls_upstream(&server, &pki));
    let (code, report) = advise_off_runtime(&config).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["decision"], "eligible");
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["useCase"], "uitpas-kansentarief");
    assert_eq!(bodies[0]["deviceId"], "balie-3");
    assert_eq!(bodies[0]["channel"], "counter");
    assert_eq!(
        bodies[0]["nationalNumber"],
        common::expected("gen-1.8-ec")["national_number"]
    );

    // The upstream fails: unknown, never not eligible.
    server.reply(Reply::Status(500, None));
    let (code, report) = advise_off_runtime(&config).await;
    assert_eq!(code, Some(14));
    assert_eq!(report["decision"], "unknown");
    assert!(
        report["reason"].as_str().unwrap().starts_with("upstream"),
        "{report}"
    );
}

/// Issue 12, finding 10: a rule service that puts a national number in its `reasonCode` (an
/// echo of the request, a debugging aid left on) does not get it printed by `advice --json`,
/// in any spelling, nor its control characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advice_json_prints_the_upstreams_reason_code_cleaned() {
    upstream::install_crypto();
    let pki = Pki::new();
    // The card's own number (gen-1.8-ec), dotted, and spaced in full-width digits.
    let server = Upstream::start(
        &pki,
        Reply::DecideWithReason(
            "eligible",
            "OK-03.64.12-998.55 (03641299855, \u{ff10}\u{ff13} \u{ff16}\u{ff14} 12 998 55)\u{1b}[31m",
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mtls_upstream(&server, &pki));
    let (code, report) = advise_off_runtime(&config).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["decision"], "eligible");
    let number = common::expected("gen-1.8-ec")["national_number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        report["reasonCode"], "OK-[redacted] ([redacted], [redacted])[31m",
        "{report}"
    );
    let printed = report.to_string();
    assert!(!printed.contains(&number), "{printed}");
    assert!(!printed.contains('\u{1b}'), "{printed}");
}

#[test]
fn config_check_names_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[upstream]\nkind = \"http\"\nurl = \"http://rules.gent.be/\"\nclient_cert = \"missing.pem\"\n\
         client_key = \"missing.key\"\nca_bundle = \"missing-ca.pem\"\n\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n",
    )
    .unwrap();
    let output = run(Command::new(common::AGENT)
        .args(["config", "check"])
        .arg(&bad));
    assert_eq!(output.status.code(), Some(12));
    // One problem a line, each `FILE:LINE: KEY: what (hint)`.
    let text = common::stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    let at = |line: usize, key: &str| format!("{}:{line}: {key}: ", bad.display());
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with(&at(3, "upstream.url")), "{text}");
    assert!(
        lines[1].starts_with(&at(4, "upstream.client_cert")),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&at(5, "upstream.client_key")),
        "{text}"
    );
    assert!(lines[3].starts_with(&at(6, "upstream.ca_bundle")), "{text}");

    let good = write_config(dir.path(), "[upstream]\nkind = \"simulated\"\n");
    let output = run(Command::new(common::AGENT)
        .args(["config", "check"])
        .arg(&good));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn no_national_number_in_any_output_of_a_traced_round_trip() {
    let pcscd = Pcscd::start();
    for card in ["gen-1.8-ec", "alice-2009", "gen-1.7-rsa2048"] {
        let number = common::expected(card)["national_number"]
            .as_str()
            .unwrap()
            .to_owned();
        let _inserted = pcscd.insert(card);
        let output = run(pcscd.agent().args([
            "-vv",
            "advice",
            "--use-case",
            "uitpas-kansentarief",
            "--simulate",
            "--wait",
            "10",
        ]));
        let everything = format!("{}{}", common::stdout(&output), stderr(&output));
        assert!(everything.contains("TRACE"), "trace logging was not on");
        assert!(
            !everything.contains(&number),
            "{card}: national number in the output"
        );
    }
}
