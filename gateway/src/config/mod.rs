//! config: the gateway's TOML file, read into typed settings. Every problem is reported
//! with its line (the parser keeps positions), not only the first: `beid-gateway config
//! check FILE` prints them all.
//!
//! Relative paths are resolved against the file's folder. Secrets are files (the UiTPAS
//! client secret, keys), never values in this file. Unknown keys are refused: a misspelt
//! key must not silently fall back to a default.

mod reader;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use beid_core::contract::Basis;
use url::Url;

use reader::Reader;

/// `[server]`: where agents connect.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// PEM: the gateway's server certificate (chain, leaf first).
    pub cert: PathBuf,
    /// PEM: its private key.
    pub key: PathBuf,
    /// PEM: the city's device CA(s); only their client certificates are accepted.
    pub client_ca: PathBuf,
    /// Every check is answered within this time, whatever the sources do: below the
    /// agent's budget (3 s by default) minus the network.
    pub answer_within: Duration,
    /// Checks a device may ask per minute, sustained.
    pub rate_per_minute: u32,
    /// Checks a device may ask at once above the sustained rate.
    pub rate_burst: u32,
}

/// `[metrics]`: Prometheus text on its own plain-HTTP address, for the city's scraper.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
}

/// `[audit]`: the hash-chained audit log (`beid_core::audit`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    pub log: PathBuf,
    /// The pseudonymisation key (32 bytes, created if missing). Give every replica the
    /// same file so that one citizen has one pseudonym across them.
    pub secret_file: PathBuf,
}

/// `[uitpas]`: the UiTPAS API 4.0 source.
#[derive(Debug, Clone, PartialEq)]
pub struct UitpasSettings {
    pub api_url: Url,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    pub organizer_id: String,
    /// PEM: the roots for UiTPAS's and the token endpoint's certificates; the system's
    /// bundle when absent.
    pub ca_bundle: Option<PathBuf>,
    /// One call (token, permissions or search).
    pub timeout: Duration,
    /// A token is renewed this long before it expires (at most half its lifetime).
    pub token_margin: Duration,
    /// How often `GET /permissions` is asked again.
    pub permissions_refresh: Duration,
    /// The `endUserMessage` language passed on to the clerk (`nl` when it lacks this one).
    pub message_language: String,
}

/// `[rules_http]`: the city's rule engine, a generic JSON connector.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesHttpSettings {
    /// `POST`ed to, with `{<national_number_field>: "...", <rule_field>: "<rule>"}`.
    pub url: Url,
    /// PEM client certificate and key, when the engine wants mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_bundle: Option<PathBuf>,
    pub timeout: Duration,
    pub national_number_field: String,
    pub rule_field: String,
    /// JSON pointers (RFC 6901) into the answer.
    pub decision_pointer: String,
    pub reason_pointer: Option<String>,
    pub valid_until_pointer: Option<String>,
    /// Values at `decision_pointer` (strings, or `true`/`false` written as text) that mean
    /// eligible and not eligible; anything else is `unknown`.
    pub eligible_values: Vec<String>,
    pub not_eligible_values: Vec<String>,
    /// What the engine's decisions rest on.
    pub basis: Basis,
}

/// How a use case's sources combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Ask in order; the first `eligible` or `not_eligible` decides. All undecided:
    /// `unknown` with the first source's reason.
    FirstDecisive,
    /// Ask all at once; `eligible` if one says so, `not_eligible` only if every one says
    /// so, `unknown` otherwise.
    EligibleIfAny,
}

impl Combine {
    pub fn code(self) -> &'static str {
        match self {
            Self::FirstDecisive => "first_decisive",
            Self::EligibleIfAny => "eligible_if_any",
        }
    }
}

/// The sources a use case can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Uitpas,
    RulesHttp,
}

impl SourceKind {
    /// Its name in `use_cases.sources`, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uitpas => "uitpas",
            Self::RulesHttp => "rules-http",
        }
    }
}

/// `[[use_cases]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UseCaseSettings {
    /// The contract's `useCase` (the agent's upstream rule name).
    pub id: String,
    pub sources: Vec<SourceKind>,
    pub combine: Combine,
    /// The rule name sent to the rule engine; the id when absent.
    pub rule: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerSettings,
    pub metrics: Option<MetricsSettings>,
    pub audit: AuditSettings,
    pub uitpas: Option<UitpasSettings>,
    pub rules_http: Option<RulesHttpSettings>,
    pub use_cases: Vec<UseCaseSettings>,
}

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based; absent when the problem has no place (an unreadable file).
    pub line: Option<usize>,
    /// Dotted key (`uitpas.api_url`, `use_cases[1].sources`), empty for the file itself.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {count} problem(s):{list}", count = problems.len(), list = ProblemList(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and checks `path`: the settings, or every problem.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (config, problems) = Self::analyse(path);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            }),
        }
    }

    /// Every problem of `path`; empty when it is fine.
    pub fn check(path: &Path) -> Vec<Problem> {
        Self::analyse(path).1
    }

    /// Parses configuration text; relative paths resolve against `base_dir`. Files named in
    /// it are checked too (they exist, are readable, hold what they should).
    pub fn parse(text: &str, base_dir: &Path) -> (Option<Config>, Vec<Problem>) {
        Reader::read(text, base_dir)
    }

    fn analyse(path: &Path) -> (Option<Config>, Vec<Problem>) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let base = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                Self::parse(&text, base)
            }
            Err(error) => (
                None,
                vec![Problem {
                    line: None,
                    key: String::new(),
                    message: format!("cannot read the file: {error}"),
                }],
            ),
        }
    }
}
