//! Reloading `serve`'s configuration without a restart: on SIGHUP (what `systemctl reload`
//! sends, the unit being `Type=notify-reload`) the configuration, its drop-ins and every
//! file they name (tokens, client certificate and key, CA bundle, extra roots, fixture)
//! are read again and everything is built from them as at start. Then either all of it is
//! put in force at once (engine settings, API clients, the metrics textfile), or, at the
//! first problem, none of it: the running configuration stays, the refusal is logged with
//! every problem, counted (`beid_config_reloads_total{result="failure"}`), and written to
//! the state file `diagnose` reads ([`state`]).
//!
//! Card sessions, their reads and advice in flight, and open event streams carry on. Three
//! keys cannot change under a running agent: `api.listen` (the socket is bound),
//! `device.id` and `device.channel` (the audit trail and the card policy name them). A
//! reload that changes them applies everything else, keeps their running values, and says
//! that they wait for a restart (log, metric, `diagnose`).
//!
//! systemd is told `RELOADING=1` (with the monotonic time it expects) before and `READY=1`
//! after, with a status line that says how the reload went.

pub mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::exit::{sentence, Failure};
use super::settings::{engine_settings, load_config};
use crate::advice::Channel;
use crate::api::{Client, Clients};
use crate::config::{Config, ConfigError};
use crate::metrics::textfile::TextfileSettings;
use crate::metrics::Metrics;
use crate::session::{Engine, EngineSettings};
use state::{Attempt, ConfigState, Loaded};

/// The keys a reload cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub listen: SocketAddr,
    pub device_id: String,
    pub channel: Channel,
}

impl Fixed {
    fn of(config: &Config) -> Self {
        Self {
            listen: config.api.listen,
            device_id: config.device.id.clone(),
            channel: config.device.channel,
        }
    }

    /// The keys whose value in `new` differs from `self`'s. `listen` only counts when it
    /// comes from the configuration (not from `serve --listen`).
    fn changed_in(&self, new: &Fixed, listen_from_config: bool) -> Vec<String> {
        let mut keys = Vec::new();
        if listen_from_config && self.listen != new.listen {
            keys.push("api.listen".to_owned());
        }
        if self.device_id != new.device_id {
            keys.push("device.id".to_owned());
        }
        if self.channel != new.channel {
            keys.push("device.channel".to_owned());
        }
        keys
    }
}

/// Everything `serve` runs that comes from the configuration.
pub struct Built {
    pub settings: EngineSettings,
    pub clients: Vec<Client>,
    pub textfile: Option<TextfileSettings>,
    pub fixed: Fixed,
    pub fingerprint: String,
}

/// Builds what `config` describes: reads the roots, the tokens, the client certificate
/// and key and the CA bundle. With `hold`, the keys a reload cannot apply keep those
/// values, so that what is built fits the running agent.
pub fn build(mut config: Config, hold: Option<&Fixed>) -> Result<Built, Failure> {
    let fixed = Fixed::of(&config);
    if let Some(running) = hold {
        config.device.id.clone_from(&running.device_id);
        config.device.channel = running.channel;
    }
    let fingerprint = fingerprint(&config);
    let store = config
        .trust_store()
        .map_err(|e| Failure::Other(sentence(&e)))?;
    Ok(Built {
        settings: engine_settings(&config, store)?,
        clients: config
            .api
            .clients()
            .map_err(|e| Failure::Other(sentence(&e)))?,
        textfile: config.metrics_textfile().map(|path| TextfileSettings {
            path: path.to_owned(),
            interval: config.metrics_textfile_interval(),
        }),
        fixed,
        fingerprint,
    })
}

/// A SHA-256 over every file a configuration is built from (the main file, its drop-ins,
/// and the certificates, key, CA bundle, roots, fixture and tokens they name), so that
/// `diagnose` can tell whether what is on disk is what the agent runs. A file that cannot
/// be read counts by its error.
pub fn fingerprint(config: &Config) -> String {
    let mut files: Vec<PathBuf> = config.files().to_vec();
    let upstream = &config.upstream;
    files.extend(
        [
            &upstream.client_cert,
            &upstream.client_key,
            &upstream.ca_bundle,
            &upstream.simulated.fixture,
        ]
        .into_iter()
        .flatten()
        .cloned(),
    );
    files.extend(config.trust.extra_roots.iter().cloned());
    files.extend(config.api.clients.iter().map(|c| c.token_file.clone()));
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for file in &files {
        let bytes = file.as_os_str().as_encoded_bytes();
        digest.update(&(bytes.len() as u64).to_be_bytes());
        digest.update(bytes);
        let content = std::fs::read(file).unwrap_or_else(|e| format!("{:?}", e.kind()).into());
        digest.update(&(content.len() as u64).to_be_bytes());
        digest.update(&content);
    }
    digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a reload was refused: every problem, and the fingerprint of what was read when
/// the configuration itself could be read.
struct Refusal {
    problems: Vec<String>,
    fingerprint: Option<String>,
}

/// Reads and builds the configuration at `path` for a reload (blocking: file I/O).
fn rebuild(path: &Path, hold: &Fixed) -> Result<Built, Refusal> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(ConfigError::Invalid { problems }) => {
            return Err(Refusal {
                problems: problems.iter().map(ToString::to_string).collect(),
                fingerprint: None,
            })
        }
        Err(error) => {
            return Err(Refusal {
                problems: vec![sentence(&error)],
                fingerprint: None,
            })
        }
    };
    let fingerprint = fingerprint(&config);
    build(config, Some(hold)).map_err(|failure| Refusal {
        problems: vec![failure.to_string()],
        fingerprint: Some(fingerprint),
    })
}

/// How a reload went, for systemd's status line.
pub enum Outcome {
    Applied {
        restart_pending: Vec<String>,
    },
    Refused {
        problems: usize,
    },
    /// `serve --simulate` has no configuration.
    NothingToReload,
}

/// What a reload replaces, and where it tells how it went.
pub struct Reloader {
    config: PathBuf,
    /// `serve --listen` overrides `[api] listen`: then a changed `listen` needs no restart.
    listen_from_config: bool,
    running: Fixed,
    engine: Engine,
    clients: Arc<Clients>,
    metrics: Arc<Metrics>,
    textfile: watch::Sender<Option<TextfileSettings>>,
    state_dir: PathBuf,
    state: ConfigState,
}

/// What [`Reloader::new`] takes: the agent as `serve` started it.
pub struct Started<'a> {
    pub config: &'a Path,
    /// The address the API is bound to.
    pub listen: SocketAddr,
    pub listen_from_config: bool,
    pub fixed: Fixed,
    pub fingerprint: String,
    pub engine: Engine,
    pub clients: Arc<Clients>,
    pub metrics: Arc<Metrics>,
    pub textfile: watch::Sender<Option<TextfileSettings>>,
    pub state_dir: &'a Path,
}

impl Reloader {
    /// Records the configuration the agent started with (metrics, state file).
    pub fn new(started: Started<'_>) -> Self {
        let now = OffsetDateTime::now_utc();
        started.metrics.config_loaded(now);
        let reloader = Self {
            config: started.config.to_owned(),
            listen_from_config: started.listen_from_config,
            running: started.fixed,
            engine: started.engine,
            clients: started.clients,
            metrics: started.metrics,
            textfile: started.textfile,
            state_dir: started.state_dir.to_owned(),
            state: ConfigState {
                pid: std::process::id(),
                config: started.config.to_owned(),
                listen: started.listen,
                running: Loaded {
                    loaded_at: now,
                    fingerprint: started.fingerprint,
                },
                last_reload: None,
                restart_pending: Vec::new(),
            },
        };
        reloader.save_state();
        reloader
    }

    /// One reload: the configuration is read and built off the async threads, then put in
    /// force whole, or refused whole.
    pub async fn reload(&mut self) -> Outcome {
        tracing::info!(config = %self.config.display(), "reloading the configuration");
        let (path, hold) = (self.config.clone(), self.running.clone());
        let rebuilt = tokio::task::spawn_blocking(move || rebuild(&path, &hold))
            .await
            .unwrap_or_else(|_| {
                Err(Refusal {
                    problems: vec!["the reload task failed".into()],
                    fingerprint: None,
                })
            });
        let at = OffsetDateTime::now_utc();
        let outcome = match rebuilt {
            Ok(built) => self.apply(built, at),
            Err(refusal) => self.refuse(refusal, at),
        };
        self.save_state();
        outcome
    }

    fn apply(&mut self, built: Built, at: OffsetDateTime) -> Outcome {
        let restart_pending = self
            .running
            .changed_in(&built.fixed, self.listen_from_config);
        let names: Vec<&str> = built.clients.iter().map(|c| c.name.as_str()).collect();
        tracing::info!(
            files = ?self.config_files(),
            clients = %names.join(", "),
            use_cases = built.settings.catalogue.len(),
            textfile = built.textfile.as_ref().map(|t| t.path.display().to_string()),
            "configuration reloaded"
        );
        if !restart_pending.is_empty() {
            tracing::warn!(
                keys = %restart_pending.join(", "),
                "changed keys take effect at the next restart only (systemctl restart beid-agent); everything else is in force"
            );
        }
        self.engine.reload(built.settings);
        self.clients.replace(built.clients);
        self.textfile.send_replace(built.textfile);
        self.metrics.reloaded(true);
        self.metrics
            .set_restart_pending(!restart_pending.is_empty());
        self.state.running = Loaded {
            loaded_at: at,
            fingerprint: built.fingerprint.clone(),
        };
        self.state.last_reload = Some(Attempt {
            at,
            applied: true,
            problems: Vec::new(),
            fingerprint: Some(built.fingerprint),
        });
        self.state.restart_pending.clone_from(&restart_pending);
        Outcome::Applied { restart_pending }
    }

    fn refuse(&mut self, refusal: Refusal, at: OffsetDateTime) -> Outcome {
        for problem in &refusal.problems {
            tracing::error!(%problem, "configuration problem");
        }
        tracing::error!(
            config = %self.config.display(),
            problems = refusal.problems.len(),
            "configuration refused as a whole; the running configuration stays in force"
        );
        self.metrics.reloaded(false);
        let problems = refusal.problems.len();
        self.state.last_reload = Some(Attempt {
            at,
            applied: false,
            problems: refusal.problems,
            fingerprint: refusal.fingerprint,
        });
        Outcome::Refused { problems }
    }

    /// The main file and its drop-ins as they are now (for the log).
    fn config_files(&self) -> Vec<String> {
        Config::check(&self.config)
            .map(|checked| {
                checked
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn save_state(&self) {
        if let Err(error) = self.state.write(&self.state_dir) {
            tracing::warn!(
                %error,
                dir = %self.state_dir.display(),
                "cannot write the configuration state for diagnose"
            );
        }
    }
}

/// Reloads on every SIGHUP until the process ends, telling systemd before and after.
/// Without a configuration (`serve --simulate`) it only says there is nothing to reload.
pub async fn on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    mut reloader: Option<Reloader>,
    serving: String,
) {
    while hangups.recv().await.is_some() {
        super::systemd::reloading();
        let outcome = match &mut reloader {
            Some(reloader) => reloader.reload().await,
            None => {
                tracing::info!("SIGHUP: nothing to reload (simulation, no configuration)");
                Outcome::NothingToReload
            }
        };
        super::systemd::reloaded(&status_line(&serving, &outcome));
    }
}

/// What `systemctl status` shows after a reload.
fn status_line(serving: &str, outcome: &Outcome) -> String {
    let time = OffsetDateTime::now_utc();
    let at = format!(
        "{:02}:{:02}:{:02} UTC",
        time.hour(),
        time.minute(),
        time.second()
    );
    match outcome {
        Outcome::Applied { restart_pending } if restart_pending.is_empty() => {
            format!("{serving}; configuration reloaded at {at}")
        }
        Outcome::Applied { restart_pending } => format!(
            "{serving}; configuration reloaded at {at}; {} change(s) at the next restart",
            restart_pending.join(", ")
        ),
        Outcome::Refused { problems } => format!(
            "{serving}; reload at {at} REFUSED ({problems} problem(s), see the journal): the previous configuration runs"
        ),
        Outcome::NothingToReload => serving.to_owned(),
    }
}

/// The configuration for `serve` at start, built; a refusal stops the start with every
/// problem (as `config check` lists them).
pub fn initial(path: Option<&Path>) -> Result<(PathBuf, Built), Failure> {
    let path = path.map_or_else(
        || PathBuf::from(super::settings::DEFAULT_CONFIG),
        Path::to_path_buf,
    );
    let config = load_config(Some(&path))?;
    Ok((path, build(config, None)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keys_a_reload_cannot_apply_wait_for_a_restart() {
        let running = Fixed {
            listen: SocketAddr::from(([127, 0, 0, 1], 8099)),
            device_id: "balie-3".into(),
            channel: Channel::Counter,
        };
        assert!(running.changed_in(&running.clone(), true).is_empty());
        let moved = Fixed {
            listen: SocketAddr::from(([127, 0, 0, 1], 8100)),
            channel: Channel::Kiosk,
            ..running.clone()
        };
        assert_eq!(
            running.changed_in(&moved, true),
            ["api.listen", "device.channel"]
        );
        assert_eq!(
            running.changed_in(&moved, false),
            ["device.channel"],
            "serve --listen decides the address, not the file"
        );
    }

    #[test]
    fn the_status_line_says_how_the_reload_went() {
        let applied = status_line(
            "serving on 127.0.0.1:8099",
            &Outcome::Applied {
                restart_pending: vec!["api.listen".into()],
            },
        );
        assert!(applied.starts_with("serving on 127.0.0.1:8099; configuration reloaded at "));
        assert!(applied.ends_with("; api.listen change(s) at the next restart"));
        let refused = status_line(
            "serving on 127.0.0.1:8099",
            &Outcome::Refused { problems: 2 },
        );
        assert!(refused.contains("REFUSED (2 problem(s), see the journal)"));
    }
}
