//! The configuration's sections as serde reads them. Every default is written once, here:
//! in a section's `Default` when the whole section may be left out, in [`defaults`] for the
//! optional keys of a section that also has required ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::advice::{Channel, Labels, UseCase};
use crate::session::CounterCatalogue;
pub use crate::session::DeviationReason;

/// The defaults of the optional keys of `[upstream]`.
mod defaults {
    pub fn timeout_ms() -> u64 {
        3000
    }
    pub fn connect_timeout_ms() -> u64 {
        1000
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn retry_backoff_ms() -> u64 {
        200
    }
    pub fn max_body_bytes() -> usize {
        64 * 1024
    }
}

/// Every section as written; a section that cannot be read is `None` or its default, so
/// that the others are still checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sections {
    #[serde(default)]
    pub upstream: Option<UpstreamConfig>,
    #[serde(default)]
    pub use_cases: Option<Vec<UseCase>>,
    #[serde(default)]
    pub device: Option<DeviceConfig>,
    #[serde(default)]
    pub trust: TrustConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub kiosk: KioskConfig,
    #[serde(default)]
    pub counter: CounterConfig,
    /// Only the codes configured; [`reason_code_defaults`] fills in the others.
    #[serde(default)]
    pub reason_codes: BTreeMap<String, Labels>,
    #[serde(default)]
    pub metrics: MetricsConfig,
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
    /// PEM file with the CA(s) of the upstream's certificate, the only roots trusted;
    /// required for `http`.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Budget of a whole question, retries included.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Budget of one connection attempt.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Retries where safe (at most 5).
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// First backoff between retries.
    #[serde(default = "defaults::retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Largest answer body accepted.
    #[serde(default = "defaults::max_body_bytes")]
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
#[serde(default, deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive failures that open the breaker (0 disables it).
    pub failure_threshold: u32,
    /// How long it stays open before one probe goes through.
    pub cooldown_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

/// `[upstream.simulated]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Fixture file (TOML, or JSON by extension); the embedded demo fixture when absent.
    pub fixture: Option<PathBuf>,
    /// Added latency per answer.
    pub latency_ms: u64,
    /// Share of questions, 0.0 to 1.0, answered unknown/upstream_unavailable.
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
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// Extra root certificates (PEM or DER files) beside the built-in Belgian roots.
    pub extra_roots: Vec<PathBuf>,
    /// Where verified RRN keys are kept across restarts (re-validated at load), so a card
    /// needs no 503C read; in memory only when absent.
    pub rrn_key_cache: Option<PathBuf>,
}

/// `[policy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// May a card past its validity end get an advice? Default: no (`card_expired`).
    pub allow_expired_cards: bool,
    /// When an applet 1.8 chip must prove itself genuine (5000 uses per card without PIN).
    pub card_authentication: crate::session::CardAuthentication,
}

/// `[api]`: the local API and its clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Loopback address to listen on.
    pub listen: SocketAddr,
    /// `[[api.clients]]`.
    pub clients: Vec<ApiClientConfig>,
    /// Use cases asked as soon as a card is read.
    pub auto_advice: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8099)),
            clients: Vec::new(),
            auto_advice: Vec::new(),
        }
    }
}

/// `[[api.clients]]`: a POS or kiosk allowed to call the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClientConfig {
    /// Its name, unique: logs, metrics and rate limits name the client by it.
    pub name: String,
    /// File holding the client's bearer token (one line, at least 128 bits of entropy).
    pub token_file: PathBuf,
    /// What the token may see.
    pub scopes: Vec<crate::api::Scope>,
    /// Browser origins of this client (`https://pos.example`); empty for non-browser clients.
    #[serde(default)]
    pub origins: Vec<String>,
}

pub use crate::session::SpeechOutput;

/// `[kiosk]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KioskConfig {
    /// Where the outcome is spoken.
    pub speech_output: SpeechOutput,
}

/// `[counter]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CounterConfig {
    /// The reasons a clerk chooses from when deviating from the advice.
    pub deviation_reasons: Vec<DeviationReason>,
}

impl Default for CounterConfig {
    /// The session layer's defaults: the four reasons, labelled in the four languages.
    fn default() -> Self {
        Self {
            deviation_reasons: CounterCatalogue::default().deviation_reasons,
        }
    }
}

/// The clerk's words for the `reasonCode`s the city's gateway sends (the session layer's
/// defaults); `[reason_codes.<code>]` adds codes or replaces these.
pub fn reason_code_defaults() -> BTreeMap<String, Labels> {
    CounterCatalogue::default().reason_codes
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A node_exporter textfile-collector file (`*.prom`) the agent rewrites atomically, so
    /// the fleet's node_exporter exposes the agent's metrics without leaving loopback.
    pub textfile: Option<PathBuf>,
    /// Seconds between two writes of the textfile.
    pub textfile_interval_s: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            textfile: None,
            textfile_interval_s: 15,
        }
    }
}
