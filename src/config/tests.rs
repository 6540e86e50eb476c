use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::advice::{self, Channel};

/// A strong token, as `openssl rand -hex 32` writes them.
const TOKEN: &str = "e028403aec62f4d02b998181aab3af30013283a575c40ddece06d1f5e1ffc96d";
const OTHER_TOKEN: &str = "22879039254564165b46e741053200feb34a1bc081669431b9938715896780e9";

/// A configuration folder, removed on drop.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path
    }

    /// A secret file with this mode.
    fn secret(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.write(name, content);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A CA, a client certificate with its key (0600), and a second key, as PEM files.
    fn pki(&self) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["balie-3".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();
        self.write("ca.pem", &ca.pem());
        self.write("client.pem", &client.pem());
        self.secret("client.key", &client_key.serialize_pem(), 0o600);
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        self.secret("other.key", &other, 0o600);
    }

    /// The problems of `config.toml` (and its drop-ins), as `FILE:LINE KEY: problem`.
    fn problems(&self, text: &str) -> Vec<String> {
        let path = self.write("config.toml", text);
        let checked = Config::check(&path).unwrap();
        checked.problems.iter().map(|p| self.brief(p)).collect()
    }

    fn brief(&self, problem: &ConfigProblem) -> String {
        let file = problem
            .file
            .strip_prefix(self.0.path())
            .unwrap_or(&problem.file)
            .display();
        match problem.line {
            Some(line) => format!("{file}:{line} {}: {}", problem.key, problem.kind),
            None => format!("{file} {}: {}", problem.key, problem.kind),
        }
    }
}

const HTTP: &str = r#"
[upstream]
kind = "http"
url = "https://rules.gent.be/api"
client_cert = "client.pem"
client_key = "client.key"
ca_bundle = "ca.pem"
timeout_ms = 2000

[device]
id = "balie-3"
channel = "counter"
"#;

const SIMULATED: &str =
    "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"kiosk-1\"\nchannel = \"kiosk\"\n";

#[test]
fn a_good_http_configuration_loads_with_defaults_and_resolved_paths() {
    let dir = Scratch::new();
    dir.pki();
    let path = dir.write("config.toml", HTTP);
    let config = Config::load(&path).unwrap();
    assert_eq!(config.upstream.client_key, Some(dir.path("client.key")));
    assert_eq!(config.upstream.retries, 2);
    assert_eq!(config.upstream.circuit.failure_threshold, 5);
    assert_eq!(config.device.channel, Channel::Counter);
    assert_eq!(config.catalogue().unwrap(), Catalogue::defaults());
    assert_eq!(config.files(), [path]);
    let UpstreamSettings::Http(settings) = config.upstream.settings().unwrap() else {
        panic!("http settings expected");
    };
    assert_eq!(settings.timeout, Duration::from_secs(2));
    assert_eq!(settings.url.as_str(), "https://rules.gent.be/api");
    // The settings build a real service.
    assert!(advice::HttpAdviceService::new(&settings).is_ok());
}

#[test]
fn the_new_keys_have_their_defaults() {
    let config = Config::parse(SIMULATED, Path::new("/nonexistent")).unwrap();
    assert_eq!(config.speech_output(), SpeechOutput::Headset);
    let reasons: Vec<&str> = config
        .deviation_reasons()
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "recently_moved",
            "household_situation",
            "data_outdated",
            "other"
        ]
    );
    assert_eq!(
        config.deviation_reasons()[0].labels.nl,
        "Recent naar hier verhuisd"
    );
    for code in [
        "not_registered",
        "expired",
        "suspended",
        "card_blocked",
        "source_unavailable",
        "source_timeout",
        "permission_missing",
    ] {
        let labels = config.reason_code_labels(code).unwrap();
        for label in [&labels.nl, &labels.fr, &labels.de, &labels.en] {
            assert!(!label.is_empty(), "{code}");
        }
    }
    assert_eq!(config.metrics_textfile(), None);
    assert_eq!(config.metrics_textfile_interval(), Duration::from_secs(15));
}

#[test]
fn the_new_keys_are_read_and_checked() {
    let dir = Scratch::new();
    std::fs::create_dir_all(dir.path("prom")).unwrap();
    let text = format!(
        "{SIMULATED}\n[kiosk]\nspeech_output = \"speaker\"\n\n\
         [counter]\ndeviation_reasons = [\n  {{ id = \"verhuisd\", labels = {{ nl = \"Verhuisd\", fr = \"Déménagé\", de = \"Umgezogen\", en = \"Moved\" }} }},\n]\n\n\
         [reason_codes.K7]\nnl = \"Zeven\"\nfr = \"Sept\"\nde = \"Sieben\"\nen = \"Seven\"\n\n\
         [reason_codes.expired]\nnl = \"Verlopen\"\nfr = \"Expiré\"\nde = \"Abgelaufen\"\nen = \"Expired\"\n\n\
         [metrics]\ntextfile = \"prom/beid_agent.prom\"\ntextfile_interval_s = 5\n"
    );
    let config = Config::load(&dir.write("config.toml", &text)).unwrap();
    assert_eq!(config.speech_output(), SpeechOutput::Speaker);
    assert_eq!(config.deviation_reasons().len(), 1);
    assert_eq!(config.reason_code_labels("K7").unwrap().de, "Sieben");
    assert_eq!(config.reason_code_labels("expired").unwrap().nl, "Verlopen");
    assert!(
        config.reason_code_labels("card_blocked").is_some(),
        "defaults stay"
    );
    assert_eq!(
        config.metrics_textfile(),
        Some(dir.path("prom/beid_agent.prom").as_path())
    );
    assert_eq!(config.metrics_textfile_interval(), Duration::from_secs(5));

    let bad = format!(
        "{SIMULATED}\n[kiosk]\nspeech_output = \"loud\"\n\n\
         [[counter.deviation_reasons]]\nid = \"Recent Moved\"\nlabels = {{ nl = \"a\", fr = \"b\", de = \"c\", en = \"d\" }}\n\n\
         [[counter.deviation_reasons]]\nid = \"other\"\nlabels = {{ nl = \"a\", fr = \"\", de = \"c\", en = \"d\" }}\n\n\
         [[counter.deviation_reasons]]\nid = \"other\"\nlabels = {{ nl = \"a\", fr = \"b\", de = \"c\", en = \"d\" }}\n\n\
         [reason_codes.\"bad code\"]\nnl = \"a\"\nfr = \"b\"\nde = \"c\"\nen = \"d\"\n\n\
         [metrics]\ntextfile = \"nowhere/beid.txt\"\ntextfile_interval_s = 0\n"
    );
    assert_eq!(
        dir.problems(&bad),
        [
            "config.toml:9 kiosk.speech_output: \"loud\" is not a known value",
            "config.toml:12 counter.deviation_reasons[0].id: must be 1 to 40 of a-z 0-9 _",
            "config.toml:17 counter.deviation_reasons[1].labels.fr: must not be blank",
            "config.toml:20 counter.deviation_reasons[2].id: is the id of an earlier reason",
            "config.toml:23 reason_codes.\"bad code\": must be 1 to 64 of A-Z a-z 0-9 _ - . :",
            "config.toml:30 metrics.textfile: must end in .prom",
            format!(
                "config.toml:30 metrics.textfile: its folder {} does not exist",
                dir.path("nowhere").display()
            )
            .as_str(),
            "config.toml:31 metrics.textfile_interval_s: must be between 1 and 300",
        ]
    );
}

#[test]
fn unknown_keys_are_named_with_their_line_and_a_suggestion() {
    let dir = Scratch::new();
    let text = "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"k1\"\nchannel = \"kiosk\"\ncolour = \"blue\"\n\
                [upstream.simulated]\nlatency = 3\n[api]\nauto_advise = []\n";
    assert_eq!(
        dir.problems(&format!("surprise = 1\n{text}")),
        [
            "config.toml:1 surprise: unknown key",
            "config.toml:8 device.colour: unknown key",
            "config.toml:10 upstream.simulated.latency: unknown key",
            "config.toml:12 api.auto_advise: unknown key",
        ]
    );
    let checked = Config::check(&dir.path("config.toml")).unwrap();
    assert_eq!(
        checked.problems[3].hint().as_deref(),
        Some("did you mean `auto_advice`?")
    );
    assert_eq!(
        checked.problems[2].hint().as_deref(),
        Some("did you mean `latency_ms`?")
    );
}

#[test]
fn missing_keys_bad_values_and_syntax_are_located() {
    let dir = Scratch::new();
    assert_eq!(
        dir.problems("[upstream]\nkind = \"simulated\"\n[device]\nid = \"k1\"\n"),
        ["config.toml:3 device.channel: is required"]
    );
    assert_eq!(
        dir.problems("[device]\nid = \"k1\"\nchannel = \"kiosk\"\n"),
        ["config.toml upstream: is required"]
    );
    assert_eq!(
        dir.problems(
            "[upstream]\nkind = \"ftp\"\ntimeout_ms = \"fast\"\n[device]\nid = \"k1\"\nchannel = \"bus\"\n"
        ),
        [
            "config.toml:2 upstream.kind: \"ftp\" is not a known value",
            "config.toml:3 upstream.timeout_ms: must be u64, not string \"fast\"",
            "config.toml:6 device.channel: \"bus\" is not a known value",
        ]
    );
    let found = dir.problems("[upstream\nkind = 1\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("config.toml:1 : not valid TOML"),
        "{found:?}"
    );
    assert!(matches!(
        Config::check(&dir.path("absent.toml")),
        Err(ConfigError::Read { .. })
    ));
    assert!(matches!(
        Config::load(&dir.path("absent.toml")),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn http_needs_an_https_url_and_usable_files() {
    let dir = Scratch::new();
    dir.pki();
    dir.write("garbage.pem", "this is not PEM\n");
    let text = HTTP
        .replace("https://rules.gent.be/api", "http://rules.gent.be")
        .replace("\"client.pem\"", "\"missing.pem\"")
        .replace("\"ca.pem\"", "\"garbage.pem\"");
    assert_eq!(
        dir.problems(&text),
        [
            "config.toml:4 upstream.url: must be an https URL for kind = \"http\"".to_owned(),
            format!(
                "config.toml:5 upstream.client_cert: file {} does not exist",
                dir.path("missing.pem").display()
            ),
            format!(
                "config.toml:7 upstream.ca_bundle: the CA bundle file {} holds no PEM item usable as CA bundle",
                dir.path("garbage.pem").display()
            ),
        ]
    );
    let bad_url = HTTP.replace("https://rules.gent.be/api", "not a url");
    assert_eq!(
        dir.problems(&bad_url),
        ["config.toml:4 upstream.url: not a usable URL: relative URL without a base"]
    );
    let with_query = HTTP.replace("/api", "/api?x=1");
    assert_eq!(
        dir.problems(&with_query),
        ["config.toml:4 upstream.url: not a usable URL: must not have a query or fragment"]
    );
}

#[test]
fn the_client_key_must_fit_and_be_private() {
    let dir = Scratch::new();
    dir.pki();
    let text = HTTP.replace("\"client.key\"", "\"other.key\"");
    let found = dir.problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("config.toml:6 upstream.client_key: the client key ")
            && found[0].contains("does not fit the client certificate"),
        "{found:?}"
    );
    std::fs::set_permissions(
        dir.path("client.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(
        dir.problems(HTTP),
        [format!(
            "config.toml:6 upstream.client_key: secret file {} has mode 0644: every user may use it",
            dir.path("client.key").display()
        )]
    );
}

#[test]
fn a_version_1_client_certificate_is_refused_by_name() {
    let dir = Scratch::new();
    dir.pki();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/test-pki");
    std::fs::copy(fixtures.join("client-v1.pem"), dir.path("v1.pem")).unwrap();
    let key = std::fs::read_to_string(fixtures.join("client-v1.key")).unwrap();
    dir.secret("v1.key", &key, 0o600);
    let text = HTTP
        .replace("\"client.pem\"", "\"v1.pem\"")
        .replace("\"client.key\"", "\"v1.key\"");
    let path = dir.write("config.toml", &text);
    let checked = Config::check(&path).unwrap();
    assert_eq!(checked.problems.len(), 1, "{:?}", checked.problems);
    let problem = &checked.problems[0];
    assert_eq!(
        (problem.key.as_str(), problem.line),
        ("upstream.client_cert", Some(5))
    );
    assert!(problem.problem().contains("X.509 version 1"), "{problem}");
    assert!(!problem.problem().contains("does not fit"), "{problem}");
    assert!(problem.hint().unwrap().contains("version 3"), "{problem}");
}

#[test]
fn http_requires_its_keys_and_refuses_inline_secrets() {
    let dir = Scratch::new();
    let text = "[upstream]\nkind = \"http\"\nclient_key = \"-----BEGIN PRIVATE KEY-----\\nMIIE\"\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n";
    assert_eq!(
        dir.problems(text),
        [
            "config.toml:1 upstream.url: is required when kind = \"http\"",
            "config.toml:1 upstream.client_cert: is required when kind = \"http\"",
            "config.toml:1 upstream.ca_bundle: is required when kind = \"http\"",
            "config.toml:3 upstream.client_key: secrets must not be written inline",
        ]
    );
    let creds = "[upstream]\nkind = \"http\"\nurl = \"https://me:secret@rules.gent.be\"\n[device]\nid = \"b\"\nchannel = \"counter\"\n";
    assert!(dir
        .problems(creds)
        .contains(&"config.toml:3 upstream.url: secrets must not be written inline".to_owned()));
}

#[test]
fn simulated_use_cases_device_and_trust_are_checked_together() {
    let dir = Scratch::new();
    dir.write("root.der", "not der");
    let text = r#"[upstream]
kind = "simulated"
timeout_ms = 0

[upstream.simulated]
fixture = "nope.toml"
failure_rate = 1.5

[[use_cases]]
id = "a"
labels = { nl = "a", fr = "b", de = "c", en = "d" }

[[use_cases]]
id = "a"
labels = { nl = "a", fr = "", de = "c", en = "d" }

[device]
id = "balie 3"
channel = "kiosk"

[trust]
extra_roots = ["root.der"]
"#;
    assert_eq!(
        dir.problems(text),
        [
            "config.toml:3 upstream.timeout_ms: must be between 1 and 60000".to_owned(),
            format!(
                "config.toml:6 upstream.simulated.fixture: file {} does not exist",
                dir.path("nope.toml").display()
            ),
            "config.toml:7 upstream.simulated.failure_rate: must be between 0.0 and 1.0".to_owned(),
            "config.toml:14 use_cases[1].id: is used by an earlier use case".to_owned(),
            "config.toml:15 use_cases[1].labels.fr: must not be blank".to_owned(),
            "config.toml:18 device.id: must be 1 to 64 of A-Z a-z 0-9 . _ -".to_owned(),
            format!(
                "config.toml:22 trust.extra_roots[0]: the root certificate file {} is neither a PEM nor a DER certificate",
                dir.path("root.der").display()
            ),
        ]
    );
    assert!(matches!(
        Config::parse(text, dir.0.path()),
        Err(ConfigError::Invalid { problems }) if problems.len() == 7
    ));
}

#[test]
fn a_simulated_configuration_builds_its_service() {
    let dir = Scratch::new();
    dir.write("fixture.json", r#"{"default": "eligible"}"#);
    let text = "[upstream]\nkind = \"simulated\"\n[upstream.simulated]\nfixture = \"fixture.json\"\nlatency_ms = 5\n[device]\nid = \"kiosk-1\"\nchannel = \"kiosk\"\n";
    let config = Config::parse(text, dir.0.path()).unwrap();
    let settings = config.upstream.settings().unwrap();
    let service = advice::build(&settings).unwrap();
    assert_eq!(service.status().kind, advice::ServiceKind::Simulated);
}

// ------------------------------------------------------------------ clients and secrets

/// A simulated configuration with these `[api]` lines appended.
fn with_api(api: &str) -> String {
    format!("{SIMULATED}\n[api]\nlisten = \"127.0.0.1:8099\"\n{api}")
}

#[test]
fn a_good_client_loads_with_its_token() {
    let dir = Scratch::new();
    dir.secret("tokens/pos", &format!("{TOKEN}\n"), 0o640);
    let text = with_api(
        "[[api.clients]]\nname = \"pos\"\ntoken_file = \"tokens/pos\"\nscopes = [\"advice\", \"metrics\"]\norigins = [\"https://pos.gent.be\", \"http://127.0.0.1:8099\"]\n",
    );
    let config = Config::load(&dir.write("config.toml", &text)).unwrap();
    let clients = config.api.clients().unwrap();
    assert_eq!(clients.len(), 1);
    assert!(clients[0].has(crate::api::Scope::Metrics));
}

#[test]
fn two_clients_may_not_share_a_name_a_token_file_or_a_token() {
    let dir = Scratch::new();
    dir.secret("a", TOKEN, 0o600);
    dir.secret("b", TOKEN, 0o600);
    dir.secret("c", OTHER_TOKEN, 0o600);
    let text = with_api(
        "[[api.clients]]\nname = \"pos\"\ntoken_file = \"a\"\nscopes = [\"advice\"]\n\
         [[api.clients]]\nname = \"pos\"\ntoken_file = \"c\"\nscopes = [\"advice\"]\n\
         [[api.clients]]\nname = \"kiosk\"\ntoken_file = \"./a\"\nscopes = [\"advice\"]\n\
         [[api.clients]]\nname = \"admin\"\ntoken_file = \"b\"\nscopes = [\"national-number\"]\n",
    );
    assert_eq!(
        dir.problems(&text),
        [
            "config.toml:15 api.clients[1].name: is also the name of api.clients[0] (\"pos\")",
            "config.toml:20 api.clients[2].token_file: is also the token file of api.clients[0] (\"pos\"): both would hold one token",
            "config.toml:24 api.clients[3].token_file: holds the same token as the token file of api.clients[0] (\"pos\")",
        ]
    );
}

#[test]
fn scopes_origins_and_auto_advice_are_checked() {
    let dir = Scratch::new();
    dir.secret("t1", TOKEN, 0o600);
    dir.secret("t2", OTHER_TOKEN, 0o600);
    let text = with_api(
        "auto_advice = [\"uitpas-kansentarief\", \"uitpas-kansentarif\", \"parking\"]\n\
         [[api.clients]]\nname = \"pos\"\ntoken_file = \"t1\"\nscopes = []\n\
         origins = [\"https://pos.gent.be\", \"http://pos.gent.be\", \"http://127.0.0.1:3000\", \"http://localhost:8099\", \"https://pos.gent.be/app\"]\n\
         [[api.clients]]\nname = \"tool\"\ntoken_file = \"t2\"\nscopes = [\"root\"]\n",
    );
    let path = dir.write("config.toml", &text);
    let found: Vec<String> = Config::check(&path)
        .unwrap()
        .problems
        .iter()
        .map(|p| dir.brief(p) + &p.hint().map(|h| format!(" ({h})")).unwrap_or_default())
        .collect();
    assert_eq!(
        found,
        [
            "config.toml:10 api.auto_advice[1]: is not a use case of the catalogue (did you mean `uitpas-kansentarief`?)",
            "config.toml:10 api.auto_advice[2]: is not a use case of the catalogue (one of: uitpas-kansentarief, lez-free-registration, lez-social-tariff)",
            "config.toml:14 api.clients[0].scopes: names no scope: the client could call nothing (give it the least it needs, e.g. scopes = [\"advice\"])",
            "config.toml:15 api.clients[0].origins[1]: is not https; only the agent's own pages (http://127.0.0.1:8099) may be http (serve the POS over https: Chromium keeps http pages from reaching the agent)",
            "config.toml:15 api.clients[0].origins[2]: is not https; only the agent's own pages (http://127.0.0.1:8099) may be http (serve the POS over https: Chromium keeps http pages from reaching the agent)",
            "config.toml:15 api.clients[0].origins[4]: \"https://pos.gent.be/app\" is not an origin like https://pos.example (scheme, host and port only: no path, no trailing slash)",
            "config.toml:19 api.clients[1].scopes[0]: \"root\" is not a known value (one of: advice, identity, national-number, metrics)",
        ]
    );
}

#[test]
fn token_files_must_be_private_and_their_tokens_strong() {
    let dir = Scratch::new();
    dir.secret("open", TOKEN, 0o644);
    dir.secret("group-writable", OTHER_TOKEN, 0o660);
    dir.secret("weak", &"a".repeat(32), 0o600);
    dir.secret(
        "fine",
        "vneH/EaPBJ1NBSLrqwvtT43kNoAjgC8BU2trcpCwG2A=\n",
        0o640,
    );
    let text = with_api(
        "[[api.clients]]\nname = \"a\"\ntoken_file = \"open\"\nscopes = [\"advice\"]\n\
         [[api.clients]]\nname = \"b\"\ntoken_file = \"group-writable\"\nscopes = [\"advice\"]\n\
         [[api.clients]]\nname = \"c\"\ntoken_file = \"weak\"\nscopes = [\"advice\"]\n\
         [[api.clients]]\nname = \"d\"\ntoken_file = \"fine\"\nscopes = [\"advice\"]\n",
    );
    let path = dir.write("config.toml", &text);
    let checked = Config::check(&path).unwrap();
    let found: Vec<String> = checked.problems.iter().map(|p| dir.brief(p)).collect();
    assert_eq!(
        found,
        [
            format!(
                "config.toml:12 api.clients[0].token_file: secret file {} has mode 0644: every user may use it",
                dir.path("open").display()
            ),
            format!(
                "config.toml:16 api.clients[1].token_file: secret file {} has mode 0660: its group (writing) may use it",
                dir.path("group-writable").display()
            ),
            "config.toml:20 api.clients[2].token_file: the token has about 9 bits of entropy; at least 128 are needed".to_owned(),
        ]
    );
    assert_eq!(
        checked.problems[0].hint(),
        Some(format!(
            "chown root:beid-agent {0} && chmod 0640 {0}",
            dir.path("open").display()
        ))
    );
    assert_eq!(
        checked.problems[2].hint().as_deref(),
        Some("make one with `openssl rand -hex 32`")
    );
}

#[test]
fn the_shipped_template_untouched_is_named() {
    let dir = Scratch::new();
    dir.pki();
    dir.secret("pos", TOKEN, 0o640);
    let text = HTTP
        .replace("rules.gent.be", "rules.city.example")
        .replace("\"balie-3\"", "\"change-me\"")
        + "[[api.clients]]\nname = \"pos\"\ntoken_file = \"pos\"\nscopes = [\"advice\"]\norigins = [\"https://pos.city.example\"]\n";
    let path = dir.write("config.toml", &text);
    let checked = Config::check(&path).unwrap();
    let found: Vec<String> = checked.problems.iter().map(|p| dir.brief(p)).collect();
    assert_eq!(
        found,
        [
            "config.toml:4 upstream.url: is still the template's placeholder",
            "config.toml:11 device.id: is still the template's placeholder",
            "config.toml:17 api.clients[0].origins[0]: is still the template's placeholder",
        ]
    );
    assert!(checked.problems[1].hint().unwrap().contains("device's id"));
}

// ------------------------------------------------------------------ one run, every problem

/// Issue 18's six mistakes, one of them in a drop-in: six problems in one run, each on its
/// own line of its own file. (Two clients named `pos` with one token file are one mistake,
/// told as the duplicate name.)
#[test]
fn six_mistakes_give_six_problems_in_one_run() {
    let dir = Scratch::new();
    dir.pki();
    dir.secret("tokens/pos", TOKEN, 0o640);
    dir.secret("tokens/kiosk", OTHER_TOKEN, 0o644);
    let main = HTTP.replace("\"balie-3\"", "\"change-me\"")
        + "\n[api]\nauto_advice = [\"uitpas-kansentarif\"]\n\n\
           [[api.clients]]\nname = \"pos\"\ntoken_file = \"tokens/pos\"\nscopes = []\n\
           origins = [\"http://pos.gent.be\"]\n\n\
           [[api.clients]]\nname = \"pos\"\ntoken_file = \"tokens/pos\"\nscopes = [\"advice\"]\n";
    dir.write(
        "config.d/50-kiosk.toml",
        "[[api.clients]]\nname = \"kiosk\"\ntoken_file = \"tokens/kiosk\"\nscopes = [\"advice\"]\n",
    );
    assert_eq!(
        dir.problems(&main),
        [
            "config.toml:11 device.id: is still the template's placeholder".to_owned(),
            "config.toml:15 api.auto_advice[0]: is not a use case of the catalogue".to_owned(),
            "config.toml:20 api.clients[0].scopes: names no scope: the client could call nothing"
                .to_owned(),
            "config.toml:21 api.clients[0].origins[0]: is not https; only the agent's own pages (http://127.0.0.1:8099) may be http".to_owned(),
            "config.toml:24 api.clients[1].name: is also the name of api.clients[0] (\"pos\")"
                .to_owned(),
            format!(
                "config.d/50-kiosk.toml:3 api.clients[2].token_file: secret file {} has mode 0644: every user may use it",
                dir.path("tokens/kiosk").display()
            ),
        ]
    );
}

// ------------------------------------------------------------------ drop-ins

#[test]
fn drop_ins_merge_in_lexical_order_and_the_later_wins() {
    let dir = Scratch::new();
    dir.secret("tokens/pos", TOKEN, 0o640);
    dir.secret("tokens/pos-new", OTHER_TOKEN, 0o640);
    let main = dir.write(
        "config.toml",
        "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"change-me\"\nchannel = \"counter\"\n\n\
         [api]\nauto_advice = [\"uitpas-kansentarief\"]\n\n\
         [[api.clients]]\nname = \"pos\"\ntoken_file = \"tokens/pos\"\nscopes = [\"advice\"]\n",
    );
    // 50 sets the device and replaces the pos client; 60 comes later and wins on listen;
    // 10 comes first, so 50 overrides its id; hidden and non-.toml files are ignored.
    dir.write(
        "config.d/50-device.toml",
        "[device]\nid = \"balie-3\"\n\n[api]\nlisten = \"127.0.0.1:8100\"\n\n\
         [[api.clients]]\nname = \"pos\"\ntoken_file = \"tokens/pos-new\"\nscopes = [\"advice\", \"identity\"]\n",
    );
    dir.write(
        "config.d/60-listen.toml",
        "[api]\nlisten = \"127.0.0.1:8101\"\n",
    );
    dir.write("config.d/10-first.toml", "[device]\nid = \"from-10\"\n");
    dir.write("config.d/.50-device.toml.swp", "garbage");
    dir.write("config.d/README", "not toml");
    let config = Config::load(&main).unwrap();
    assert_eq!(config.device.id, "balie-3");
    assert_eq!(
        config.device.channel,
        Channel::Counter,
        "kept from the main file"
    );
    assert_eq!(config.api.listen.port(), 8101);
    assert_eq!(config.api.auto_advice, ["uitpas-kansentarief"]);
    assert_eq!(config.api.clients.len(), 1);
    assert_eq!(config.api.clients[0].token_file, dir.path("tokens/pos-new"));
    assert_eq!(config.api.clients[0].scopes.len(), 2);
    let names: Vec<String> = config
        .files()
        .iter()
        .map(|f| f.strip_prefix(dir.0.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "config.toml",
            "config.d/10-first.toml",
            "config.d/50-device.toml",
            "config.d/60-listen.toml"
        ]
    );
}

#[test]
fn use_cases_merge_by_id_and_other_arrays_are_replaced() {
    let dir = Scratch::new();
    let labels = "labels = { nl = \"a\", fr = \"b\", de = \"c\", en = \"d\" }";
    let main = dir.write(
        "config.toml",
        &format!(
            "{SIMULATED}\n[api]\nauto_advice = [\"one\", \"two\"]\n\n\
             [[use_cases]]\nid = \"one\"\nrule = \"rule-1\"\n{labels}\n\n\
             [[use_cases]]\nid = \"two\"\n{labels}\n"
        ),
    );
    dir.write(
        "config.d/20-cases.toml",
        &format!(
            "[api]\nauto_advice = [\"three\"]\n\n\
             [[use_cases]]\nid = \"one\"\nrule = \"rule-1b\"\n{labels}\n\n\
             [[use_cases]]\nid = \"three\"\n{labels}\n"
        ),
    );
    let config = Config::load(&main).unwrap();
    let catalogue = config.catalogue().unwrap();
    let cases: Vec<(&str, &str)> = catalogue.iter().map(|u| (u.id(), u.rule())).collect();
    assert_eq!(
        cases,
        [("one", "rule-1b"), ("two", "two"), ("three", "three")]
    );
    assert_eq!(config.api.auto_advice, ["three"]);
}

#[test]
fn a_problem_names_the_drop_in_and_line_it_came_from() {
    let dir = Scratch::new();
    let main = format!("{SIMULATED}\n[api]\nlisten = \"127.0.0.1:8099\"\n");
    dir.write(
        "config.d/50-device.toml",
        "# per device\n[device]\nid = \"balie 3\"\n[api]\nlisten = \"0.0.0.0:8099\"\nlisen = 1\n",
    );
    dir.write("config.d/70-broken.toml", "[device\n");
    assert_eq!(
        dir.problems(&main),
        [
            "config.d/50-device.toml:3 device.id: must be 1 to 64 of A-Z a-z 0-9 . _ -",
            "config.d/50-device.toml:5 api.listen: must be a loopback address",
            "config.d/50-device.toml:6 api.lisen: unknown key",
            "config.d/70-broken.toml:1 : not valid TOML: invalid table header\nexpected `.`, `]`",
        ]
    );
}

#[test]
fn a_broken_file_hides_no_other_problem_and_invents_no_missing_key() {
    let dir = Scratch::new();
    // The main file does not parse: its [upstream] is unknown, so nothing is "required".
    dir.write(
        "config.d/50-device.toml",
        "[device]\nid = \"balie 3\"\nchannel = \"counter\"\n",
    );
    let found = dir.problems("[upstream]\nkind = \"simulated\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("config.toml:2 : not valid TOML"),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        "config.d/50-device.toml:2 device.id: must be 1 to 64 of A-Z a-z 0-9 . _ -"
    );
}
