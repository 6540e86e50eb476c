use std::os::unix::fs::PermissionsExt;

use super::*;

/// A folder with the files a configuration names: PEM certificate and key, secret.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    for name in ["server.pem", "ca.pem"] {
        std::fs::write(dir.path().join(name), cert.pem()).unwrap();
    }
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    dir
}

const GOOD: &str = r#"
[server]
listen = "0.0.0.0:8443"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"

[metrics]
listen = "127.0.0.1:9464"

[audit]
log = "audit.jsonl"
secret_file = "audit.key"

[uitpas]
api_url = "https://api-test.uitpas.be"
token_url = "https://account-test.uitid.be/realms/uitid/protocol/openid-connect/token"
client_id = "id"
client_secret_file = "secret"
organizer_id = "0ce87cbc-9299-4528-8d35-92225dc9489f"

[rules_http]
url = "https://rules.city.example/v1/decide"

[[use_cases]]
id = "uitpas-kansentarief"
sources = ["uitpas"]

[[use_cases]]
id = "lez-social-tariff"
sources = ["rules-http", "uitpas"]
combine = "eligible_if_any"
"#;

#[test]
fn a_good_file_reads_with_defaults_and_resolved_paths() {
    let dir = folder();
    let (config, problems) = Config::parse(GOOD, dir.path());
    assert_eq!(problems, []);
    let config = config.unwrap();
    assert_eq!(config.server.cert, dir.path().join("server.pem"));
    assert_eq!(config.server.answer_within, Duration::from_millis(2500));
    let uitpas = config.uitpas.unwrap();
    assert_eq!(uitpas.api_url.as_str(), "https://api-test.uitpas.be/");
    assert_eq!(uitpas.token_margin, Duration::from_secs(60));
    assert_eq!(uitpas.permissions_refresh, Duration::from_secs(86_400));
    assert_eq!(uitpas.message_language, "nl");
    let rules = config.rules_http.unwrap();
    assert_eq!(rules.decision_pointer, "/decision");
    assert_eq!(rules.basis, Basis::EntitlementRule);
    assert_eq!(
        config.use_cases[1].sources,
        [SourceKind::RulesHttp, SourceKind::Uitpas]
    );
    assert_eq!(config.use_cases[1].combine, Combine::EligibleIfAny);
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let dir = folder();
    let text = r#"
[server]
listen = "everywhere"
cert = "missing.pem"
key = "server.key"
client_ca = "ca.pem"
rate_limit_burst = -1
colour = "blue"

[audit]
log = "no/such/folder/audit.jsonl"
secret_file = "audit.key"

[uitpas]
api_url = "http://api-test.uitpas.be"
token_url = "https://account-test.uitid.be/token"
client_id = 42
client_secret_file = "secret"

[[use_cases]]
id = "uitpas-kansentarief"
sources = ["uitpas", "magda"]

[[use_cases]]
id = "lez"
sources = ["rules-http"]
"#;
    let (config, problems) = Config::parse(text, dir.path());
    assert!(config.is_none());
    let found: Vec<(Option<usize>, &str)> =
        problems.iter().map(|p| (p.line, p.key.as_str())).collect();
    for expected in [
        (Some(3), "server.listen"),
        (Some(4), "server.cert"),
        (Some(7), "server.rate_limit_burst"),
        (Some(8), "server.colour"),
        (Some(11), "audit.log"),
        (Some(15), "uitpas.api_url"),
        (Some(17), "uitpas.client_id"),
        (Some(14), "uitpas.organizer_id"),
        (Some(22), "use_cases[0].sources"),
        (Some(26), "use_cases[1].sources"),
    ] {
        assert!(
            found.contains(&expected),
            "{expected:?} not in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 10, "{problems:#?}");
    let shown = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        shown.contains(
            "line 26: use_cases[1].sources: names \"rules-http\" but the file has no [rules_http]"
        ),
        "{shown}"
    );
}

#[test]
fn syntax_errors_and_missing_tables_are_located() {
    let dir = folder();
    let (_, problems) = Config::parse("[server]\nlisten = \n", dir.path());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, Some(2));
    let (_, problems) = Config::parse("", dir.path());
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["server", "audit", "use_cases"]);
}

#[test]
fn a_secret_readable_by_others_is_refused() {
    let dir = folder();
    std::fs::set_permissions(
        dir.path().join("secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (_, problems) = Config::parse(GOOD, dir.path());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "uitpas.client_secret_file");
    assert!(problems[0].message.contains("readable by others"));
}
