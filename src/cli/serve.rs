//! `beid-agent serve`: the agent itself. `serve --simulate` is the embedded default for
//! newcomers and demos: in-process simulated readers with the fixture cards, the simulated
//! rule service, the TEST roots trusted, and a demo token written to a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::exit::{sentence, Failure};
use super::reload::{self, Reloader};
use crate::advice::Channel;
use crate::api::{self, AppState, Client, Clients, Scope};
use crate::metrics::Metrics;
use crate::reader::{CardBackend, PcscBackend};
use crate::session::CardAuthentication;
use crate::session::{Engine, EngineSettings};
use crate::sim::SimulatedReaders;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (default /etc/beid-agent/config.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Demo without hardware or configuration: simulated readers and rule service.
    #[arg(long, conflicts_with = "config")]
    simulate: bool,
    /// Loopback address to listen on (overrides [api] listen; default 127.0.0.1:8099).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Where state lives (audit log, RRN key cache; the demo token with --simulate, by
    /// default in a private folder of the user's own: docs/local-api.md).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// With --simulate: answer as slowly as real cards on a T=0 wire.
    #[arg(long, requires = "simulate")]
    wire_time: bool,
    /// With --simulate: the device's channel (a kiosk checks applet 1.8 chips and never
    /// serves the upstream's texts).
    #[arg(long, requires = "simulate", value_enum, default_value = "counter")]
    channel: ChannelArg,
    /// With --simulate: a browser origin (e.g. https://pos.example:8443) whose page may
    /// call the API with the demo token, for POS developers trying the API from their own
    /// page. Repeatable.
    #[arg(long, requires = "simulate", value_name = "URL")]
    allow_origin: Vec<String>,
}

/// The channel on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ChannelArg {
    Counter,
    Kiosk,
}

/// Everything `serve` builds before listening.
struct Agent {
    backend: Arc<dyn CardBackend>,
    /// The simulated readers' controls, in simulation only.
    simulator: Option<Arc<SimulatedReaders>>,
    settings: EngineSettings,
    clients: Vec<Client>,
    listen: SocketAddr,
    /// What came from a configuration file (none in simulation).
    configured: Option<Configured>,
}

/// What `serve --config` keeps of its configuration to reload it.
struct Configured {
    path: PathBuf,
    fixed: reload::Fixed,
    fingerprint: String,
    textfile: Option<crate::metrics::textfile::TextfileSettings>,
}

/// Runtime threads: enough for a counter's load on any PC, and bounded so the unit's
/// `TasksMax=` holds (a few more threads are the reader watcher, card I/O and the engine).
const WORKER_THREADS: usize = 4;
const BLOCKING_THREADS: usize = 32;

pub fn run(args: &ServeArgs) -> Result<(), Failure> {
    let workers = std::thread::available_parallelism()
        .map_or(WORKER_THREADS, |n| n.get().min(WORKER_THREADS));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> Result<(), Failure> {
    raise_descriptor_limit();
    // At once: SIGHUP's default action would end the agent.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Failure::Other(format!("cannot handle SIGHUP: {e}")))?;
    let state_dir = match (&args.state_dir, args.simulate) {
        (Some(dir), _) => dir.clone(),
        (None, true) => demo_state_dir()?,
        (None, false) => PathBuf::from("/var/lib/beid-agent"),
    };
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| Failure::Other(format!("cannot create {}: {e}", state_dir.display())))?;
    let listen_hint = args.listen;
    let audit = open_audit(&state_dir)?;
    let mut agent = if args.simulate {
        simulated(args, &state_dir)?
    } else {
        configured(args)?
    };
    agent.settings.audit = Some(audit.clone());
    let started = crate::audit::AgentStarted::this_process(Some(agent.settings.device_id.clone()));
    audit
        .agent_started(&started)
        .map_err(|e| Failure::Other(format!("cannot write the audit log: {}", sentence(&e))))?;
    if let Some(listen) = listen_hint {
        agent.listen = listen;
    }
    if !agent.listen.ip().is_loopback() {
        return Err(Failure::Other(format!(
            "{} is not a loopback address: the agent never listens on the network",
            agent.listen
        )));
    }
    let listener = api::bind(agent.listen)
        .map_err(|e| Failure::Other(format!("cannot listen on {}: {e}", agent.listen)))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::Other(e.to_string()))?
        .port();
    let mut clients = agent.clients;
    // Printed once everything runs: whoever waits for it may use the agent at once.
    let banner = if args.simulate {
        let (token, token_file) = demo_token(&state_dir)?;
        let mut origins = vec![
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ];
        origins.extend(
            args.allow_origin
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned()),
        );
        clients.push(Client::new(
            "demo",
            &token,
            vec![
                Scope::Advice,
                Scope::Identity,
                Scope::NationalNumber,
                Scope::Metrics,
            ],
            origins,
        ));
        format!(
            "beid-agent (simulation) serving on http://127.0.0.1:{port}\n  \
             kiosk page:  http://127.0.0.1:{port}/kiosk/#token={token}\n  \
             counter page: http://127.0.0.1:{port}/counter/#token={token}\n  \
             demo token:  {} (scopes advice, identity, national-number, metrics)",
            token_file.display()
        )
    } else {
        format!("beid-agent serving on http://127.0.0.1:{port}")
    };
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(agent.backend, agent.settings, metrics.clone())
        .map_err(|e| Failure::Other(format!("cannot start the card engine: {e}")))?;
    let state = AppState::new(engine.clone(), Clients::new(clients), metrics.clone(), port)
        .with_simulator(agent.simulator);
    let (textfile, textfile_settings) = tokio::sync::watch::channel(
        agent
            .configured
            .as_ref()
            .and_then(|configured| configured.textfile.clone()),
    );
    let reloader = agent.configured.map(|configured| {
        Reloader::new(reload::Started {
            config: &configured.path,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            listen_from_config: listen_hint.is_none(),
            fixed: configured.fixed,
            fingerprint: configured.fingerprint,
            engine,
            clients: state.clients.clone(),
            metrics: metrics.clone(),
            textfile,
            state_dir: &state_dir,
        })
    });
    let rendered = state.clone();
    let counted = metrics.clone();
    let (first_written, textfile_out) = tokio::sync::oneshot::channel();
    let textfile_writer = tokio::spawn(crate::metrics::textfile::keep_written(
        textfile_settings,
        move || rendered.metrics_text(),
        move || counted.textfile_write_failed(),
        first_written,
    ));
    // Ready with the metrics out (a disk that hangs delays it, within a bound).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), textfile_out).await;
    let serving = format!("serving on 127.0.0.1:{port}");
    let reload_loop = tokio::spawn(reload::on_hangup(hangups, reloader, serving.clone()));
    out!("{banner}");
    tracing::info!(port, "ready");
    super::systemd::ready(&serving);
    super::systemd::spawn_watchdog();
    let seal_timer = tokio::spawn(seal_each_epoch(audit.clone()));
    let served = api::serve(listener, state, shutdown_signal()).await;
    seal_timer.abort();
    reload_loop.abort();
    textfile_writer.abort();
    close_audit(audit).await;
    served.map_err(|e| Failure::Other(format!("the API stopped: {e}")))
}

/// Seals the audit log just after each epoch ends, so that an idle agent's log still shows
/// it ran (and a log cut short shows where). Wakes at least every minute: a clock that
/// jumps is noticed.
async fn seal_each_epoch(audit: Arc<crate::audit::AuditLog>) {
    while let Some(wait) = audit.next_seal_in() {
        let wait =
            (wait + std::time::Duration::from_secs(1)).min(std::time::Duration::from_secs(60));
        tokio::time::sleep(wait).await;
        let log = audit.clone();
        match tokio::task::spawn_blocking(move || log.seal_due()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "audit seal not written"),
            Err(_) => tracing::error!("audit sealing task failed"),
        }
    }
}

/// At shutdown: the stop seal; nothing is written to the log after it.
async fn close_audit(audit: Arc<crate::audit::AuditLog>) {
    match tokio::task::spawn_blocking(move || audit.close()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "audit log not sealed at shutdown"),
        Err(_) => tracing::error!("audit closing task failed"),
    }
}

fn simulated(args: &ServeArgs, state_dir: &Path) -> Result<Agent, Failure> {
    let readers = Arc::new(SimulatedReaders::new(
        &["Simulated reader 1", "Simulated reader 2"],
        args.wire_time,
    ));
    let mut settings = EngineSettings::simulated(Some(state_dir.join("rrn-keys.json")))
        .map_err(|e| Failure::Other(sentence(&e)))?;
    if args.channel == ChannelArg::Kiosk {
        settings.channel = Channel::Kiosk;
        settings.authenticate_chip = CardAuthentication::default().applies(true);
    }
    Ok(Agent {
        backend: readers.clone(),
        simulator: Some(readers),
        settings,
        clients: Vec::new(),
        listen: SocketAddr::from(([127, 0, 0, 1], 8099)),
        configured: None,
    })
}

fn configured(args: &ServeArgs) -> Result<Agent, Failure> {
    let (path, built) = reload::initial(args.config.as_deref())?;
    Ok(Agent {
        backend: Arc::new(PcscBackend::default()),
        simulator: None,
        settings: built.settings,
        clients: built.clients,
        listen: built.fixed.listen,
        configured: Some(Configured {
            path,
            fixed: built.fixed,
            fingerprint: built.fingerprint,
            textfile: built.textfile,
        }),
    })
}

/// The audit log in the state directory (`audit.jsonl`, its head file, and the secret
/// `audit.key` that keys the national-number pseudonyms). A log whose end no crash
/// explains is refused: it is evidence, and `beid-agent audit verify` says what happened.
fn open_audit(state_dir: &Path) -> Result<Arc<crate::audit::AuditLog>, Failure> {
    let log = state_dir.join("audit.jsonl");
    crate::audit::AuditLog::open(&log, state_dir.join("audit.key"))
        .map(Arc::new)
        .map_err(|e| {
            Failure::Other(format!(
                "audit log {}: {} (run `beid-agent audit verify {}`)",
                log.display(),
                sentence(&e),
                log.display()
            ))
        })
}

/// A fresh random demo token, written for the newcomer (mode 0600, never through a
/// symbolic link); the token and its file.
fn demo_token(state_dir: &Path) -> Result<(String, PathBuf), Failure> {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let file =
        super::demo_folder::write_private_file(state_dir, "demo-token", &format!("{token}\n"))
            .map_err(|e| {
                Failure::Other(format!(
                    "cannot write the demo token in {}: {e}",
                    state_dir.display()
                ))
            })?;
    Ok((token, file))
}

/// The demo's state directory when none is given: the user's own private folder.
fn demo_state_dir() -> Result<PathBuf, Failure> {
    let folder = super::demo_folder::demo_folder()
        .map_err(|e| Failure::Other(format!("cannot create a private demo folder: {e}")))?;
    if let Some(reason) = &folder.refused {
        tracing::warn!(
            folder = %folder.path.display(),
            "the usual demo folder is not safe to use ({reason}): using a fresh private folder instead"
        );
    }
    Ok(folder.path)
}

/// Raises the soft limit on open files to the hard one (systemd's `LimitNOFILE=`, or 1024
/// soft under a 512Ki hard limit without it): the API's connection budget is taken from it,
/// with room kept for card I/O and the audit log (`api::ServeLimits`).
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "the open-file limit stays as it was");
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    super::systemd::stopping();
}
