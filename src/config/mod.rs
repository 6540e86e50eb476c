//! config: the agent's configuration, `/etc/beid-agent/config.toml` and the drop-ins in
//! `config.d/*.toml` beside it (merged in lexical order: tables key by key, `[[api.clients]]`
//! by `name`, `[[use_cases]]` by `id`, other values replaced by the later file).
//!
//! [`Config::load`] gives a checked configuration or every problem found, each with the file
//! and line its value came from (`FILE:LINE: KEY: what is wrong (hint)`); [`Config::check`]
//! gives the problems only (`beid-agent config check`, `diagnose`). Every table refuses
//! unknown keys. Secrets are files referenced by path, never values; relative paths are
//! taken from the main file's folder. The keys, their defaults and an example drop-in:
//! `docs/configuration.md`.
//!
//! The layer reads files and judges them; it starts nothing and opens no socket.
//!
//! - [`source`]: the files, parsed with positions ([`tree`]) and merged;
//! - [`de`]: the typed [`model`] read from the tree with serde, every problem in one run;
//! - [`checks`]: what serde cannot judge (files, secrets, URLs, references, the template);
//! - [`problem`]: how a problem is told.
//!
//! Adding a key: a field in its section in [`model`] (its default in that section's `Default`
//! or in `model::defaults`), a check in [`checks`] when a value can be wrong beyond its type,
//! a path in [`Config::resolve_paths`] when it names a file, and a line in
//! `docs/configuration.md` and `packaging/config.toml`.

mod checks;
mod de;
mod entropy;
mod model;
mod path;
mod problem;
mod secrets;
mod source;
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::advice::{
    Catalogue, CircuitSettings, HttpSettings, Labels, SimulatedSettings, UpstreamSettings,
};
pub use model::{
    ApiClientConfig, ApiConfig, CircuitConfig, CounterConfig, DeviationReason, DeviceConfig,
    KioskConfig, MetricsConfig, PolicyConfig, SimulatedConfig, SpeechOutput, TrustConfig,
    UpstreamConfig, UpstreamKind,
};
pub use problem::{ConfigError, ConfigProblem, ProblemKind};
pub use source::DROP_IN_DIR;

use de::Finding;
use model::Sections;
use source::Sources;

/// What [`Config::check`] found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The files read: the main file, then its drop-ins in merge order.
    pub files: Vec<PathBuf>,
    /// Every problem, in file and line order.
    pub problems: Vec<ConfigProblem>,
}

/// A checked configuration: every file read, no problem found.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[upstream]`: where advice comes from.
    pub upstream: UpstreamConfig,
    /// `[[use_cases]]`: the catalogue; the shipped defaults when absent.
    pub use_cases: Option<Vec<crate::advice::UseCase>>,
    /// `[device]`: who this agent is.
    pub device: DeviceConfig,
    /// `[trust]`: extra roots for the card checks.
    pub trust: TrustConfig,
    /// `[policy]`: what a card must be to get an advice.
    pub policy: PolicyConfig,
    /// `[api]`: the local API and its clients.
    pub api: ApiConfig,
    /// `[kiosk]`.
    pub kiosk: KioskConfig,
    /// `[counter]`.
    pub counter: CounterConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// The shipped reason-code labels with `[reason_codes.*]` over them.
    reason_codes: BTreeMap<String, Labels>,
    /// The files read, main file first.
    files: Vec<PathBuf>,
}

impl Config {
    /// Reads the file and its drop-ins, and checks them. Relative paths are taken from the
    /// main file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let sources = Sources::read(path)?;
        let (config, problems) = Self::analyse(sources, source::base_dir(path));
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid { problems }),
        }
    }

    /// Every problem of the file and its drop-ins, in file and line order; none when all is
    /// well. An error only when the main file cannot be read at all.
    pub fn check(path: &Path) -> Result<Checked, ConfigError> {
        let sources = Sources::read(path)?;
        let files = sources.files.clone();
        let (_, problems) = Self::analyse(sources, source::base_dir(path));
        Ok(Checked { files, problems })
    }

    /// Parses and checks configuration text alone (no drop-ins); relative paths are taken
    /// from `base_dir`, and problems name the file `config.toml` there.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let sources = Sources::text(text, &base_dir.join("config.toml"));
        match Self::analyse(sources, base_dir) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::Invalid { problems }),
        }
    }

    fn analyse(sources: Sources, base_dir: &Path) -> (Option<Config>, Vec<ConfigProblem>) {
        let Sources {
            files,
            mut tree,
            mut findings,
            incomplete,
        } = sources;
        let read = de::read::<Sections>(&mut tree);
        findings.extend(read.findings);
        let mut config = None;
        if let Some(mut sections) = read.value {
            sections.resolve_paths(base_dir);
            findings.extend(checks::check(&sections, &tree));
            let root = tree::Origin { file: 0, line: 0 };
            for (present, key) in [
                (sections.upstream.is_some(), "upstream"),
                (sections.device.is_some(), "device"),
            ] {
                // Unless it was read and refused (told already), or a file was not read.
                let refused = tree.get(&path::KeyPath::of(&[key])).is_some();
                if !present && !refused && !incomplete {
                    findings.push(Finding {
                        path: path::KeyPath::of(&[key]),
                        at: root,
                        kind: ProblemKind::Missing { when: None },
                    });
                }
            }
            config = Self::from_sections(sections, files.clone());
        }
        if incomplete {
            // What a file that was not read might have held is not missing.
            findings.retain(|f| !matches!(f.kind, ProblemKind::Missing { .. }));
        }
        findings.sort_by_key(|f| (f.at.file, f.at.line));
        let problems = findings
            .into_iter()
            .map(|finding| ConfigProblem {
                file: files.get(finding.at.file).cloned().unwrap_or_default(),
                line: (finding.at.line > 0).then_some(finding.at.line),
                key: finding.path.to_string(),
                kind: finding.kind,
            })
            .collect();
        (config, problems)
    }

    fn from_sections(sections: Sections, files: Vec<PathBuf>) -> Option<Config> {
        let mut reason_codes = model::reason_code_defaults();
        reason_codes.extend(sections.reason_codes);
        Some(Config {
            upstream: sections.upstream?,
            use_cases: sections.use_cases,
            device: sections.device?,
            trust: sections.trust,
            policy: sections.policy,
            api: sections.api,
            kiosk: sections.kiosk,
            counter: sections.counter,
            metrics: sections.metrics,
            reason_codes,
            files,
        })
    }

    /// The files this configuration was read from: the main file, then its drop-ins in the
    /// order they were merged.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The built-in Belgian roots plus `[trust] extra_roots` (PEM or DER).
    pub fn trust_store(&self) -> Result<crate::trust::TrustStore, crate::trust::TrustError> {
        self.trust
            .extra_roots
            .iter()
            .try_fold(crate::trust::TrustStore::production(), |store, path| {
                store.with_extra_root_file(path)
            })
    }

    /// The use-case catalogue: the configured one, or the shipped defaults.
    pub fn catalogue(&self) -> Result<Catalogue, ConfigError> {
        match &self.use_cases {
            Some(use_cases) => Ok(Catalogue::new(use_cases.clone())?),
            None => Ok(Catalogue::defaults()),
        }
    }

    /// `[kiosk] speech_output`: whether the kiosk speaks the outcome into the citizen's
    /// headset only (the default: an outcome tied to a social tariff is nobody else's
    /// business), through its speaker, or not at all.
    pub fn speech_output(&self) -> SpeechOutput {
        self.kiosk.speech_output
    }

    /// `[counter] deviation_reasons`: what a clerk may choose when deciding otherwise than
    /// the advice, in configuration order; ids unique. The four defaults when not configured.
    pub fn deviation_reasons(&self) -> &[DeviationReason] {
        &self.counter.deviation_reasons
    }

    /// The clerk's words for the rule service's `reasonCode`s: the shipped labels for the
    /// codes the city's gateway sends, with `[reason_codes.<code>]` added over them.
    pub fn reason_codes(&self) -> &BTreeMap<String, Labels> {
        &self.reason_codes
    }

    /// The labels of one `reasonCode`; `None` for a code nobody described (show the code).
    pub fn reason_code_labels(&self, code: &str) -> Option<&Labels> {
        self.reason_codes.get(code)
    }

    /// `[metrics] textfile`: the node_exporter textfile-collector file to keep up to date,
    /// if the fleet scrapes the agent that way.
    pub fn metrics_textfile(&self) -> Option<&Path> {
        self.metrics.textfile.as_deref()
    }

    /// `[metrics] textfile_interval_s`: how often the textfile is rewritten.
    pub fn metrics_textfile_interval(&self) -> Duration {
        Duration::from_secs(self.metrics.textfile_interval_s)
    }
}

impl Sections {
    /// Makes every relative path absolute against the configuration's folder.
    fn resolve_paths(&mut self, base_dir: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && !checks::looks_inline(path) {
                *path = base_dir.join(&*path);
            }
        };
        if let Some(upstream) = &mut self.upstream {
            [
                &mut upstream.client_cert,
                &mut upstream.client_key,
                &mut upstream.ca_bundle,
                &mut upstream.simulated.fixture,
            ]
            .into_iter()
            .flatten()
            .for_each(resolve);
        }
        self.trust.extra_roots.iter_mut().for_each(resolve);
        [&mut self.trust.rrn_key_cache, &mut self.metrics.textfile]
            .into_iter()
            .flatten()
            .for_each(resolve);
        for client in &mut self.api.clients {
            resolve(&mut client.token_file);
        }
    }
}

impl ApiConfig {
    /// The clients with their tokens read from their files.
    pub fn clients(&self) -> Result<Vec<crate::api::Client>, ConfigError> {
        self.clients
            .iter()
            .map(|client| {
                let token = secrets::read_token(&client.token_file).map_err(|source| {
                    ConfigError::Read {
                        path: client.token_file.clone(),
                        source,
                    }
                })?;
                Ok(crate::api::Client::new(
                    &client.name,
                    &token,
                    client.scopes.clone(),
                    client.origins.clone(),
                ))
            })
            .collect()
    }
}

impl UpstreamConfig {
    /// The advice layer's settings for this section (checked: a loaded configuration has
    /// what `kind` needs).
    pub fn settings(&self) -> Result<UpstreamSettings, ConfigError> {
        let invalid = |key: &str, kind: ProblemKind| ConfigError::Invalid {
            problems: vec![ConfigProblem {
                file: PathBuf::new(),
                line: None,
                key: format!("upstream.{key}"),
                kind,
            }],
        };
        let missing = |key: &str| {
            invalid(
                key,
                ProblemKind::Missing {
                    when: Some("when kind = \"http\""),
                },
            )
        };
        match self.kind {
            UpstreamKind::Simulated => Ok(UpstreamSettings::Simulated(SimulatedSettings {
                fixture: self.simulated.fixture.clone(),
                latency: Duration::from_millis(self.simulated.latency_ms),
                failure_rate: self.simulated.failure_rate,
            })),
            UpstreamKind::Http => {
                let url = self.url.as_deref().ok_or_else(|| missing("url"))?;
                let url = Url::parse(url).map_err(|error| {
                    invalid(
                        "url",
                        ProblemKind::invalid(format!("not a usable URL: {error}")),
                    )
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
}

#[cfg(test)]
mod tests;
