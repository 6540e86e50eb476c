//! config: the agent's one TOML file.
//!
//! Every table refuses unknown keys. Secrets (client key, certificates) are files referenced by
//! path, never inline; relative paths are taken from the configuration file's folder.
//! [`Config::load`] gives a checked configuration or every problem found;
//! [`Config::check`] gives the problems only (for `beid-agent config check`), each naming the
//! key, the line where known, and why.
//!
//! ```toml
//! [upstream]
//! kind = "http"                       # or "simulated"
//! url = "https://rules.city.example/"
//! client_cert = "/etc/beid-agent/client.pem"
//! client_key = "/etc/beid-agent/client.key"
//! ca_bundle = "/etc/beid-agent/upstream-ca.pem"
//! timeout_ms = 3000
//! connect_timeout_ms = 1000
//! retries = 2
//!
//! [upstream.simulated]                # used when kind = "simulated"
//! fixture = "fixtures/advice.toml"    # optional: the embedded demo fixture otherwise
//! latency_ms = 300
//! failure_rate = 0.1
//!
//! [[use_cases]]                       # optional: the three shipped use cases otherwise
//! id = "uitpas-kansentarief"
//! rule = "uitpas-kansentarief"        # optional: the id otherwise
//! labels = { nl = "…", fr = "…", de = "…", en = "…" }
//! channels = ["counter", "kiosk"]     # optional: both otherwise
//!
//! [device]
//! id = "balie-3"
//! channel = "counter"
//!
//! [trust]
//! extra_roots = ["/etc/beid-agent/roots/belgiumrs5.pem"]
//! rrn_key_cache = "/var/lib/beid-agent/rrn-keys.json"   # optional: memory only otherwise
//!
//! [policy]
//! allow_expired_cards = false         # an expired card gets unknown/card_expired
//! card_authentication = "kiosk"       # never | kiosk | always (applet 1.8 anti-clone)
//! ```
//!
//! Adding a section: a struct with `#[serde(deny_unknown_fields)]`, a field in [`Config`]
//! (with `#[serde(default)]` if it may be left out), and a `check(&self, &mut Checker)` call in
//! [`Config::problems`], plus its paths in [`Config::resolve_paths`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::advice::{
    self, AdviceError, Catalogue, Channel, CircuitSettings, Fixture, HttpSettings,
    SimulatedSettings, UpstreamSettings, UseCase,
};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[upstream]`: where advice comes from.
    pub upstream: UpstreamConfig,
    /// `[[use_cases]]`: the catalogue; the shipped defaults when absent.
    #[serde(default)]
    pub use_cases: Option<Vec<UseCase>>,
    /// `[device]`: who this agent is.
    pub device: DeviceConfig,
    /// `[trust]`: extra roots for the card checks.
    #[serde(default)]
    pub trust: TrustConfig,
    /// `[policy]`: what a card must be to get an advice.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[api]`: the local API and its clients.
    #[serde(default)]
    pub api: ApiConfig,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Loopback address to listen on.
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// `[[api.clients]]`.
    #[serde(default)]
    pub clients: Vec<ApiClientConfig>,
    /// Use cases asked as soon as a card is read.
    #[serde(default)]
    pub auto_advice: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            clients: Vec::new(),
            auto_advice: Vec::new(),
        }
    }
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8099))
}

/// `[[api.clients]]`: a POS or kiosk allowed to call the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClientConfig {
    pub name: String,
    /// File holding the client's bearer token (one line, at least 32 characters).
    pub token_file: PathBuf,
    pub scopes: Vec<crate::api::Scope>,
    /// Browser origins of this client (`https://pos.example`); empty for non-browser clients.
    #[serde(default)]
    pub origins: Vec<String>,
}

impl ApiConfig {
    fn check(&self, checker: &mut Checker<'_>) {
        if !self.listen.ip().is_loopback() {
            checker.report(
                "api",
                "listen",
                ProblemKind::Invalid("must be a loopback address".into()),
            );
        }
        for (index, client) in self.clients.iter().enumerate() {
            let key = format!("clients[{index}].token_file");
            if !checker.file_exists("api", &key, &client.token_file) {
                continue;
            }
            match std::fs::read_to_string(&client.token_file) {
                Ok(token) if token.trim().len() >= 32 => {}
                Ok(_) => checker.report(
                    "api",
                    &key,
                    ProblemKind::Invalid("the token must have at least 32 characters".into()),
                ),
                Err(error) => checker.report(
                    "api",
                    &key,
                    ProblemKind::FileUnreadable(client.token_file.clone(), error.to_string()),
                ),
            }
            for origin in &client.origins {
                if Url::parse(origin)
                    .map(|u| u.origin().ascii_serialization() != *origin)
                    .unwrap_or(true)
                {
                    checker.report(
                        "api",
                        &format!("clients[{index}].origins"),
                        ProblemKind::Invalid(format!(
                            "{origin:?} is not an origin like https://pos.example"
                        )),
                    );
                }
            }
        }
    }

    /// The clients with their tokens read from their files.
    pub fn clients(&self) -> Result<Vec<crate::api::Client>, ConfigError> {
        self.clients
            .iter()
            .map(|client| {
                let token = std::fs::read_to_string(&client.token_file).map_err(|source| {
                    ConfigError::Read {
                        path: client.token_file.clone(),
                        source,
                    }
                })?;
                Ok(crate::api::Client::new(
                    &client.name,
                    token.trim(),
                    client.scopes.clone(),
                    client.origins.clone(),
                ))
            })
            .collect()
    }
}

/// Which advice service to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// The city's rule service over HTTPS with mutual TLS.
    Http,
    /// Answers from a fixture (demos, tests).
    Simulated,
}

/// `[upstream]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http` or `simulated`.
    pub kind: UpstreamKind,
    /// Base URL of the rule service (https); required for `http`.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM file with this device's client certificate; required for `http`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM file with the client certificate's key; required for `http`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// PEM file with the CA(s) of the upstream's certificate, the only roots trusted; required
    /// for `http`.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Budget of a whole question, retries included (default 3000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Budget of one connection attempt (default 1000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Retries where safe (default 2, at most 5).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff between retries (default 200).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Largest answer body accepted (default 65536).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// `[upstream.circuit]`.
    #[serde(default)]
    pub circuit: CircuitConfig,
    /// `[upstream.simulated]`.
    #[serde(default)]
    pub simulated: SimulatedConfig,
}

/// `[upstream.circuit]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive failures that open the breaker (default 5; 0 disables it).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// How long it stays open before one probe goes through (default 30000).
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: default_failure_threshold(),
            cooldown_ms: default_cooldown_ms(),
        }
    }
}

/// `[upstream.simulated]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Fixture file (TOML, or JSON by extension); the embedded demo fixture when absent.
    #[serde(default)]
    pub fixture: Option<PathBuf>,
    /// Added latency per answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of questions, 0.0 to 1.0, answered unknown/upstream_unavailable.
    #[serde(default)]
    pub failure_rate: f64,
}

/// `[device]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// This device's id, sent upstream as `deviceId` (`A-Z a-z 0-9 . _ -`, at most 64).
    pub id: String,
    /// `counter` or `kiosk`.
    pub channel: Channel,
}

/// `[trust]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Extra root certificates (PEM or DER files) beside the built-in Belgian roots.
    #[serde(default)]
    pub extra_roots: Vec<PathBuf>,
    /// Where verified RRN keys are kept across restarts (re-validated at load), so a card
    /// needs no 503C read; in memory only when absent.
    #[serde(default)]
    pub rrn_key_cache: Option<PathBuf>,
}

/// `[policy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// May a card past its validity end get an advice? Default: no (`card_expired`).
    #[serde(default)]
    pub allow_expired_cards: bool,
    /// When an applet 1.8 chip must prove itself genuine (5000 uses per card without PIN).
    #[serde(default)]
    pub card_authentication: crate::session::CardAuthentication,
}

fn default_timeout_ms() -> u64 {
    3000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}
fn default_retries() -> u32 {
    2
}
fn default_retry_backoff_ms() -> u64 {
    200
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_failure_threshold() -> u32 {
    5
}
fn default_cooldown_ms() -> u64 {
    30_000
}

const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_RETRIES: u32 = 5;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_LATENCY_MS: u64 = 60_000;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file has problems; all those found are listed.
    #[error("the configuration has {} problem(s):{}", problems.len(), ProblemList(problems))]
    Invalid {
        /// The problems, in file order where known.
        problems: Vec<ConfigProblem>,
    },
    /// The checked settings could not be turned into a service.
    #[error(transparent)]
    Advice(#[from] AdviceError),
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// One thing wrong with the configuration: which key, where, why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// The key's path, e.g. `upstream.url`, `use_cases[1].labels.fr`; empty for the whole file.
    pub key: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The configuration file itself cannot be read.
    Unreadable(String),
    /// The file is not valid TOML.
    Syntax(String),
    /// The key is not known here.
    UnknownKey,
    /// The key is required (in this context).
    Missing(&'static str),
    /// The value has the wrong type or is out of range.
    Invalid(String),
    /// The referenced file does not exist.
    FileMissing(PathBuf),
    /// The referenced file cannot be read.
    FileUnreadable(PathBuf, String),
    /// The referenced file is not usable PEM (or the key does not fit the certificate).
    BadPem(PathBuf, String),
    /// The URL cannot be used.
    BadUrl(String),
    /// The URL is not https, while `kind = "http"` needs it.
    NotHttps,
    /// A secret is written inline; it belongs in a file referenced by path.
    InlineSecret,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(why) => write!(f, "cannot read the file: {why}"),
            Self::Syntax(why) => write!(f, "not valid TOML: {why}"),
            Self::UnknownKey => f.write_str("unknown key"),
            Self::Missing("") => f.write_str("is required"),
            Self::Missing(when) => write!(f, "is required {when}"),
            Self::Invalid(why) => f.write_str(why),
            Self::FileMissing(path) => write!(f, "file {} does not exist", path.display()),
            Self::FileUnreadable(path, why) => {
                write!(f, "file {} cannot be read: {why}", path.display())
            }
            Self::BadPem(path, why) => write!(f, "file {}: {why}", path.display()),
            Self::BadUrl(why) => write!(f, "not a usable URL: {why}"),
            Self::NotHttps => f.write_str("must be an https URL for kind = \"http\""),
            Self::InlineSecret => {
                f.write_str("secrets must not be written inline: give the path of a file")
            }
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)
    }
}

impl Config {
    /// Read, parse and check the file. Relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, base_dir(path))
    }

    /// Every problem of the file; empty when it is fine.
    pub fn check(path: &Path) -> Vec<ConfigProblem> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::analyse(&text, base_dir(path)).1,
            Err(error) => vec![ConfigProblem {
                key: String::new(),
                line: None,
                kind: ProblemKind::Unreadable(error.to_string()),
            }],
        }
    }

    /// Parse and check configuration text; relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        match Self::analyse(text, base_dir) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::Invalid { problems }),
        }
    }

    fn analyse(text: &str, base_dir: &Path) -> (Option<Config>, Vec<ConfigProblem>) {
        if let Err(error) = text.parse::<toml::Table>() {
            let line = error.span().map(|span| line_of(text, span.start));
            let problem = ConfigProblem {
                key: String::new(),
                line,
                kind: ProblemKind::Syntax(error.message().to_owned()),
            };
            return (None, vec![problem]);
        }
        let mut config = match toml::from_str::<Config>(text) {
            Ok(config) => config,
            Err(error) => return (None, vec![data_problem(text, &error)]),
        };
        config.resolve_paths(base_dir);
        let problems = config.problems(text);
        (Some(config), problems)
    }

    /// Make every relative path absolute against the configuration's folder.
    fn resolve_paths(&mut self, base_dir: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && !looks_inline(path) {
                *path = base_dir.join(&*path);
            }
        };
        let upstream = &mut self.upstream;
        for path in [
            &mut upstream.client_cert,
            &mut upstream.client_key,
            &mut upstream.ca_bundle,
            &mut upstream.simulated.fixture,
        ]
        .into_iter()
        .flatten()
        {
            resolve(path);
        }
        self.trust.extra_roots.iter_mut().for_each(resolve);
        if let Some(path) = &mut self.trust.rrn_key_cache {
            resolve(path);
        }
        for client in &mut self.api.clients {
            resolve(&mut client.token_file);
        }
    }

    /// The built-in Belgian roots plus `[trust] extra_roots` (PEM or DER).
    pub fn trust_store(&self) -> Result<crate::trust::TrustStore, crate::trust::TrustError> {
        let mut store = crate::trust::TrustStore::production();
        for path in &self.trust.extra_roots {
            store = store.with_extra_root_file(path)?;
        }
        Ok(store)
    }

    /// Every semantic problem, located in `text` where possible.
    fn problems(&self, text: &str) -> Vec<ConfigProblem> {
        let mut checker = Checker {
            text,
            problems: Vec::new(),
        };
        self.upstream.check(&mut checker);
        if let Some(use_cases) = &self.use_cases {
            for problem in Catalogue::problems(use_cases) {
                match problem {
                    AdviceError::UseCase { index, field, why } => checker.report(
                        &format!("use_cases[{index}]"),
                        field,
                        ProblemKind::Invalid(why.to_owned()),
                    ),
                    other => {
                        checker.report("", "use_cases", ProblemKind::Invalid(other.to_string()))
                    }
                }
            }
        }
        self.device.check(&mut checker);
        self.trust.check(&mut checker);
        self.api.check(&mut checker);
        checker
            .problems
            .sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
        checker.problems
    }

    /// The use-case catalogue: the configured one, or the shipped defaults.
    pub fn catalogue(&self) -> Result<Catalogue, ConfigError> {
        match &self.use_cases {
            Some(use_cases) => Ok(Catalogue::new(use_cases.clone())?),
            None => Ok(Catalogue::defaults()),
        }
    }
}

impl UpstreamConfig {
    /// The advice layer's settings for this section.
    pub fn settings(&self) -> Result<UpstreamSettings, ConfigError> {
        let missing = |key: &str| ConfigError::Invalid {
            problems: vec![ConfigProblem {
                key: format!("upstream.{key}"),
                line: None,
                kind: ProblemKind::Missing("when kind = \"http\""),
            }],
        };
        match self.kind {
            UpstreamKind::Simulated => Ok(UpstreamSettings::Simulated(SimulatedSettings {
                fixture: self.simulated.fixture.clone(),
                latency: Duration::from_millis(self.simulated.latency_ms),
                failure_rate: self.simulated.failure_rate,
            })),
            UpstreamKind::Http => {
                let url = self.url.as_deref().ok_or_else(|| missing("url"))?;
                let url = Url::parse(url).map_err(|error| ConfigError::Invalid {
                    problems: vec![ConfigProblem {
                        key: "upstream.url".into(),
                        line: None,
                        kind: ProblemKind::BadUrl(error.to_string()),
                    }],
                })?;
                let path = |value: &Option<PathBuf>, key| value.clone().ok_or_else(|| missing(key));
                let mut settings = HttpSettings::new(
                    url,
                    path(&self.client_cert, "client_cert")?,
                    path(&self.client_key, "client_key")?,
                    path(&self.ca_bundle, "ca_bundle")?,
                );
                settings.timeout = Duration::from_millis(self.timeout_ms);
                settings.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
                settings.retries = self.retries;
                settings.retry_backoff = Duration::from_millis(self.retry_backoff_ms);
                settings.max_body_bytes = self.max_body_bytes;
                settings.circuit = CircuitSettings {
                    failure_threshold: self.circuit.failure_threshold,
                    cooldown: Duration::from_millis(self.circuit.cooldown_ms),
                };
                Ok(UpstreamSettings::Http(settings))
            }
        }
    }

    fn check(&self, checker: &mut Checker<'_>) {
        const TABLE: &str = "upstream";
        if self.kind == UpstreamKind::Http {
            self.check_http(checker);
        }
        let mut range = |key: &str, ok: bool, why: String| {
            if !ok {
                checker.report(TABLE, key, ProblemKind::Invalid(why));
            }
        };
        let timeout_ok = (1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms);
        range(
            "timeout_ms",
            timeout_ok,
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        );
        // Checked against timeout_ms only when that one is fine: one mistake, one problem.
        range(
            "connect_timeout_ms",
            !timeout_ok || (1..=self.timeout_ms).contains(&self.connect_timeout_ms),
            "must be between 1 and timeout_ms".into(),
        );
        range(
            "retries",
            self.retries <= MAX_RETRIES,
            format!("must be at most {MAX_RETRIES}"),
        );
        range(
            "retry_backoff_ms",
            !timeout_ok || self.retry_backoff_ms <= self.timeout_ms,
            "must not exceed timeout_ms".into(),
        );
        range(
            "max_body_bytes",
            (256..=MAX_BODY_BYTES).contains(&self.max_body_bytes),
            format!("must be between 256 and {MAX_BODY_BYTES}"),
        );
        if self.circuit.failure_threshold > 0 && self.circuit.cooldown_ms == 0 {
            checker.report(
                "upstream.circuit",
                "cooldown_ms",
                ProblemKind::Invalid("must be above 0 when failure_threshold is set".into()),
            );
        }
        self.simulated.check(checker);
    }

    fn check_http(&self, checker: &mut Checker<'_>) {
        const TABLE: &str = "upstream";
        const WHEN: &str = "when kind = \"http\"";
        match self.url.as_deref().map(Url::parse) {
            None => checker.report(TABLE, "url", ProblemKind::Missing(WHEN)),
            Some(Err(error)) => {
                checker.report(TABLE, "url", ProblemKind::BadUrl(error.to_string()))
            }
            Some(Ok(url)) if url.scheme() != "https" => {
                checker.report(TABLE, "url", ProblemKind::NotHttps)
            }
            Some(Ok(url)) if !url.username().is_empty() || url.password().is_some() => {
                checker.report(TABLE, "url", ProblemKind::InlineSecret)
            }
            Some(Ok(url)) => {
                if let Err(AdviceError::Url { why, .. }) = advice::http_endpoint(&url) {
                    checker.report(TABLE, "url", ProblemKind::BadUrl(why.to_owned()));
                }
            }
        }

        let mut file = |key: &'static str, path: &Option<PathBuf>| -> Option<PathBuf> {
            match path {
                None => {
                    checker.report(TABLE, key, ProblemKind::Missing(WHEN));
                    None
                }
                Some(path) if looks_inline(path) => {
                    checker.report(TABLE, key, ProblemKind::InlineSecret);
                    None
                }
                Some(path) => checker.file_exists(TABLE, key, path).then(|| path.clone()),
            }
        };
        let cert = file("client_cert", &self.client_cert);
        let key = file("client_key", &self.client_key);
        let ca = file("ca_bundle", &self.ca_bundle);

        if let (Some(cert), Some(key)) = (cert, key) {
            let result = crate::pem::read_client_identity(&cert, &key);
            checker.pem(TABLE, "client_key", result.map_err(AdviceError::from));
        }
        if let Some(path) = ca {
            checker.pem(
                TABLE,
                "ca_bundle",
                crate::pem::read_roots(&path).map_err(AdviceError::from),
            );
        }
    }
}

impl SimulatedConfig {
    fn check(&self, checker: &mut Checker<'_>) {
        const TABLE: &str = "upstream.simulated";
        if let Some(path) = &self.fixture {
            if checker.file_exists(TABLE, "fixture", path) {
                if let Err(error) = Fixture::load(path) {
                    checker.report(TABLE, "fixture", ProblemKind::Invalid(error.to_string()));
                }
            }
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            checker.report(
                TABLE,
                "failure_rate",
                ProblemKind::Invalid("must be between 0.0 and 1.0".into()),
            );
        }
        if self.latency_ms > MAX_LATENCY_MS {
            checker.report(
                TABLE,
                "latency_ms",
                ProblemKind::Invalid(format!("must be at most {MAX_LATENCY_MS}")),
            );
        }
    }
}

impl DeviceConfig {
    fn check(&self, checker: &mut Checker<'_>) {
        let ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            checker.report(
                "device",
                "id",
                ProblemKind::Invalid("must be 1 to 64 of A-Z a-z 0-9 . _ -".into()),
            );
        }
    }
}

impl TrustConfig {
    fn check(&self, checker: &mut Checker<'_>) {
        for (index, path) in self.extra_roots.iter().enumerate() {
            let key = format!("extra_roots[{index}]");
            if !checker.file_exists("trust", &key, path) {
                continue;
            }
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    let kind = ProblemKind::FileUnreadable(path.clone(), error.to_string());
                    checker.report("trust", &key, kind);
                    continue;
                }
            };
            let is_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
            if is_pem {
                if let Err(error) = crate::pem::read_certificates("root certificate", path) {
                    checker.report("trust", &key, pem_kind(path, &AdviceError::from(error)));
                }
            } else if bytes.first() != Some(&0x30) {
                let why = "is neither a PEM nor a DER certificate".to_owned();
                checker.report("trust", &key, ProblemKind::BadPem(path.clone(), why));
            }
        }
    }
}

/// Collects problems, locating keys in the source text.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Checker<'_> {
    fn report(&mut self, table: &str, key: &str, kind: ProblemKind) {
        let line = locate(self.text, table, key);
        let key = if table.is_empty() {
            key.to_owned()
        } else {
            format!("{table}.{key}")
        };
        self.problems.push(ConfigProblem { key, line, kind });
    }

    /// Whether the file exists and is a readable file; reports why not.
    fn file_exists(&mut self, table: &str, key: &str, path: &Path) -> bool {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => match std::fs::File::open(path) {
                Ok(_) => true,
                Err(error) => {
                    let kind = ProblemKind::FileUnreadable(path.to_owned(), error.to_string());
                    self.report(table, key, kind);
                    false
                }
            },
            Ok(_) => {
                let kind = ProblemKind::FileUnreadable(path.to_owned(), "not a file".into());
                self.report(table, key, kind);
                false
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.report(table, key, ProblemKind::FileMissing(path.to_owned()));
                false
            }
            Err(error) => {
                let kind = ProblemKind::FileUnreadable(path.to_owned(), error.to_string());
                self.report(table, key, kind);
                false
            }
        }
    }

    fn pem<T>(&mut self, table: &str, key: &str, result: Result<T, AdviceError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                let path = PathBuf::new();
                self.report(table, key, pem_kind(&path, &error));
                None
            }
        }
    }
}

fn pem_kind(path: &Path, error: &AdviceError) -> ProblemKind {
    let why = error.to_string();
    ProblemKind::BadPem(path.to_owned(), why)
}

fn base_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A "path" that is in fact PEM text pasted into the file.
fn looks_inline(path: &Path) -> bool {
    path.to_string_lossy().contains("-----BEGIN")
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The table a line belongs to: `upstream.simulated`, `use_cases[1]`, or "" for the root.
fn table_at(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (number, content) in text.lines().enumerate() {
        if number + 1 > line {
            break;
        }
        if let Some(header) = header_of(content) {
            table = header.table(&mut counts);
        }
    }
    table
}

enum Header<'a> {
    Table(&'a str),
    Array(&'a str),
}

impl Header<'_> {
    fn table(&self, counts: &mut Vec<(String, usize)>) -> String {
        match self {
            Header::Table(name) => (*name).to_owned(),
            Header::Array(name) => {
                let index = match counts.iter_mut().find(|(n, _)| n == name) {
                    Some((_, count)) => {
                        *count += 1;
                        *count
                    }
                    None => {
                        counts.push(((*name).to_owned(), 0));
                        0
                    }
                };
                format!("{name}[{index}]")
            }
        }
    }
}

fn header_of(line: &str) -> Option<Header<'_>> {
    let line = line.split('#').next().unwrap_or("").trim();
    if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        return Some(Header::Array(inner.trim()));
    }
    line.strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .map(|inner| Header::Table(inner.trim()))
}

/// The key assigned on a line, if any (`key = ...`, quotes removed).
fn key_on(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[') && !key.starts_with('#')).then_some(key)
}

/// Where `table`'s `key` is written (its first segment: `labels.fr` → `labels`,
/// `extra_roots[1]` → `extra_roots`), or the table's header line when the key is absent.
fn locate(text: &str, table: &str, key: &str) -> Option<usize> {
    let first = key.split(['.', '[']).next().unwrap_or(key);
    let mut current = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut header_line = None;
    for (number, content) in text.lines().enumerate() {
        if let Some(header) = header_of(content) {
            current = header.table(&mut counts);
            if current == table {
                header_line = Some(number + 1);
            }
            continue;
        }
        if current == table && key_on(content) == Some(first) {
            return Some(number + 1);
        }
    }
    header_line
}

/// A serde error of a syntactically valid file: unknown key, missing key, bad value.
fn data_problem(text: &str, error: &toml::de::Error) -> ConfigProblem {
    let message = error.message();
    let line = error.span().map(|span| line_of(text, span.start));
    let table = line.map(|line| table_at(text, line)).unwrap_or_default();
    let join = |key: &str| {
        if table.is_empty() {
            key.to_owned()
        } else {
            format!("{table}.{key}")
        }
    };
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    if let Some(name) = quoted("unknown field `") {
        let line = line.and_then(|l| find_key_from(text, l, &name)).or(line);
        return ConfigProblem {
            key: join(&name),
            line,
            kind: ProblemKind::UnknownKey,
        };
    }
    if let Some(name) = quoted("missing field `") {
        return ConfigProblem {
            key: join(&name),
            line,
            kind: ProblemKind::Missing(""),
        };
    }
    let key = line
        .and_then(|l| text.lines().nth(l - 1))
        .and_then(key_on)
        .map(join)
        .unwrap_or_else(|| table.clone());
    ConfigProblem {
        key,
        line,
        kind: ProblemKind::Invalid(message.to_owned()),
    }
}

/// The first line at or after `from` that assigns `key`.
fn find_key_from(text: &str, from: usize, key: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| key_on(line) == Some(key))
        .map(|(number, _)| number + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("beid-config-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A CA, a client certificate with its key, and a second key, as PEM files.
    fn pki(dir: &Scratch) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["balie-3".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();
        dir.write("ca.pem", &ca.pem());
        dir.write("client.pem", &client.pem());
        dir.write("client.key", &client_key.serialize_pem());
        dir.write(
            "other.key",
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );
    }

    const HTTP: &str = r#"
[upstream]
kind = "http"
url = "https://rules.city.example/api"
client_cert = "client.pem"
client_key = "client.key"
ca_bundle = "ca.pem"
timeout_ms = 2000

[device]
id = "balie-3"
channel = "counter"
"#;

    fn problems(dir: &Scratch, text: &str) -> Vec<String> {
        let path = dir.write("agent.toml", text);
        Config::check(&path)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_http_configuration_loads_with_defaults_and_resolved_paths() {
        let dir = Scratch::new();
        pki(&dir);
        let path = dir.write("agent.toml", HTTP);
        let config = Config::load(&path).unwrap();
        assert_eq!(config.upstream.client_key, Some(dir.0.join("client.key")));
        assert_eq!(config.upstream.retries, 2);
        assert_eq!(config.device.channel, Channel::Counter);
        assert_eq!(config.catalogue().unwrap(), Catalogue::defaults());
        let UpstreamSettings::Http(settings) = config.upstream.settings().unwrap() else {
            panic!("http settings expected");
        };
        assert_eq!(settings.timeout, Duration::from_secs(2));
        assert_eq!(settings.url.as_str(), "https://rules.city.example/api");
        // The settings build a real service.
        assert!(advice::HttpAdviceService::new(&settings).is_ok());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let dir = Scratch::new();
        let text = "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"k1\"\nchannel = \"kiosk\"\ncolour = \"blue\"\n";
        assert_eq!(problems(&dir, text), ["line 7: device.colour: unknown key"]);
        let nested = "[upstream]\nkind = \"simulated\"\n[upstream.simulated]\nlatency = 3\n[device]\nid = \"k1\"\nchannel = \"kiosk\"\n";
        assert_eq!(
            problems(&dir, nested),
            ["line 4: upstream.simulated.latency: unknown key"]
        );
        let top = "surprise = 1\n[upstream]\nkind = \"simulated\"\n[device]\nid = \"k1\"\nchannel = \"kiosk\"\n";
        assert_eq!(problems(&dir, top), ["line 1: surprise: unknown key"]);
    }

    #[test]
    fn missing_keys_bad_values_and_syntax_are_located() {
        let dir = Scratch::new();
        let no_channel = "[upstream]\nkind = \"simulated\"\n[device]\nid = \"k1\"\n";
        assert_eq!(
            problems(&dir, no_channel),
            ["line 3: device.channel: is required"]
        );
        let bad_kind = "[upstream]\nkind = \"ftp\"\n[device]\nid = \"k1\"\nchannel = \"kiosk\"\n";
        let found = problems(&dir, bad_kind);
        assert!(
            found[0].starts_with("line 2: upstream.kind: unknown variant `ftp`"),
            "{found:?}"
        );
        let bad_type = "[upstream]\nkind = \"simulated\"\ntimeout_ms = \"fast\"\n[device]\nid = \"k1\"\nchannel = \"kiosk\"\n";
        let found = problems(&dir, bad_type);
        assert!(
            found[0].starts_with("line 3: upstream.timeout_ms: invalid type"),
            "{found:?}"
        );
        let syntax = "[upstream\nkind = 1\n";
        let found = problems(&dir, syntax);
        assert!(found[0].starts_with("line 1: not valid TOML"), "{found:?}");
        let unreadable = Config::check(&dir.0.join("absent.toml"));
        assert!(matches!(unreadable[0].kind, ProblemKind::Unreadable(_)));
        assert!(matches!(
            Config::load(&dir.0.join("absent.toml")),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn http_needs_https_url_and_usable_files() {
        let dir = Scratch::new();
        pki(&dir);
        dir.write("garbage.pem", "this is not PEM\n");
        let text = HTTP
            .replace(
                "https://rules.city.example/api",
                "http://rules.city.example",
            )
            .replace("\"client.pem\"", "\"missing.pem\"")
            .replace("\"ca.pem\"", "\"garbage.pem\"");
        let found = problems(&dir, &text);
        let missing = dir.0.join("missing.pem");
        let garbage = dir.0.join("garbage.pem");
        assert_eq!(
            found,
            [
                "line 4: upstream.url: must be an https URL for kind = \"http\"".to_owned(),
                format!(
                    "line 5: upstream.client_cert: file {} does not exist",
                    missing.display()
                ),
                format!(
                    "line 7: upstream.ca_bundle: file {}: holds no PEM item usable as CA bundle",
                    garbage.display()
                ),
            ]
        );

        let bad_url = HTTP.replace("https://rules.city.example/api", "not a url");
        assert_eq!(
            problems(&dir, &bad_url),
            ["line 4: upstream.url: not a usable URL: relative URL without a base"]
        );
        let with_query = HTTP.replace("/api", "/api?x=1");
        assert_eq!(
            problems(&dir, &with_query),
            ["line 4: upstream.url: not a usable URL: must not have a query or fragment"]
        );
    }

    #[test]
    fn a_key_that_does_not_fit_the_certificate_is_refused() {
        let dir = Scratch::new();
        pki(&dir);
        let text = HTTP.replace("\"client.key\"", "\"other.key\"");
        let found = problems(&dir, &text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("line 6: upstream.client_key: file ")
                && found[0].contains("the key does not fit the client certificate"),
            "{found:?}"
        );
        let unreadable_pem = HTTP.replace("\"client.key\"", "\"client.pem\"");
        let found = problems(&dir, &unreadable_pem);
        assert!(
            found[0].contains("holds no PEM item usable as client key"),
            "{found:?}"
        );
    }

    #[test]
    fn http_requires_its_keys_and_refuses_inline_secrets() {
        let dir = Scratch::new();
        let text = "[upstream]\nkind = \"http\"\nclient_key = \"-----BEGIN PRIVATE KEY-----\\nMIIE\"\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n";
        let found = problems(&dir, text);
        assert_eq!(
            found,
            [
                "line 1: upstream.url: is required when kind = \"http\"",
                "line 1: upstream.client_cert: is required when kind = \"http\"",
                "line 1: upstream.ca_bundle: is required when kind = \"http\"",
                "line 3: upstream.client_key: secrets must not be written inline: give the path of a file",
            ]
        );
        let creds = "[upstream]\nkind = \"http\"\nurl = \"https://me:secret@rules.example\"\n[device]\nid = \"b\"\nchannel = \"counter\"\n";
        assert!(problems(&dir, creds).contains(
            &"line 3: upstream.url: secrets must not be written inline: give the path of a file"
                .to_owned()
        ));
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
        let found = problems(&dir, text);
        let fixture = dir.0.join("nope.toml");
        let root = dir.0.join("root.der");
        assert_eq!(
            found,
            [
                "line 3: upstream.timeout_ms: must be between 1 and 60000".to_owned(),
                format!("line 6: upstream.simulated.fixture: file {} does not exist", fixture.display()),
                "line 7: upstream.simulated.failure_rate: must be between 0.0 and 1.0".to_owned(),
                "line 14: use_cases[1].id: is used by an earlier use case".to_owned(),
                "line 15: use_cases[1].labels.fr: must not be blank".to_owned(),
                "line 18: device.id: must be 1 to 64 of A-Z a-z 0-9 . _ -".to_owned(),
                format!(
                    "line 22: trust.extra_roots[0]: file {}: is neither a PEM nor a DER certificate",
                    root.display()
                ),
            ]
        );
        assert!(matches!(
            Config::parse(text, &dir.0),
            Err(ConfigError::Invalid { problems }) if problems.len() == 7
        ));
    }

    #[test]
    fn a_simulated_configuration_builds_its_service() {
        let dir = Scratch::new();
        dir.write("fixture.json", r#"{"default": "eligible"}"#);
        let text = "[upstream]\nkind = \"simulated\"\n[upstream.simulated]\nfixture = \"fixture.json\"\nlatency_ms = 5\n[device]\nid = \"kiosk-1\"\nchannel = \"kiosk\"\n";
        let config = Config::parse(text, &dir.0).unwrap();
        let settings = config.upstream.settings().unwrap();
        let service = advice::build(&settings).unwrap();
        assert_eq!(service.status().kind, advice::ServiceKind::Simulated);
    }
}
