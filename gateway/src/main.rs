//! `beid-gateway`: serve the agent's upstream contract (`--config FILE`), or check a
//! configuration (`config check FILE`). Thin: everything else is the library.

use std::path::PathBuf;
use std::process::ExitCode;

use beid_gateway::{serve, serve_metrics, Config, Gateway};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The city gateway behind beid-agent's upstream contract.
#[derive(Parser)]
#[command(name = "beid-gateway", version)]
struct Cli {
    /// The configuration file to serve with.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log detail: -v debug, -vv trace. `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log lines as text (the journal adds the time) or one JSON object each.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Configuration files.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print every problem of FILE with its line; exit 0 only when there is none.
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    // One crypto stack for every TLS configuration (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match (&cli.command, &cli.config) {
        (
            Some(Command::Config {
                action: ConfigAction::Check { file },
            }),
            _,
        ) => check(file),
        (None, Some(config)) => run(config, &cli),
        (None, None) => {
            eprintln!("beid-gateway: give --config FILE to serve, or `config check FILE`");
            ExitCode::from(2)
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let problems = Config::check(file);
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        eprintln!("{}: {problem}", file.display());
    }
    ExitCode::from(1)
}

fn init_logging(cli: &Cli) {
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps each line; colour only on a terminal.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(colour).init(),
    }
}

fn run(path: &std::path::Path, cli: &Cli) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("beid-gateway: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("beid-gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_until_signal(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "beid-gateway stopped");
            eprintln!("beid-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_until_signal(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Gateway::build(&config)?;
    let listener = TcpListener::bind(config.server.listen).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let wait = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let metrics = match &config.metrics {
        Some(settings) => {
            let listener = TcpListener::bind(settings.listen).await?;
            println!("metrics on http://{}/metrics", listener.local_addr()?);
            Some(tokio::spawn(serve_metrics(
                listener,
                gateway.metrics(),
                wait(stopped.clone()),
            )))
        }
        None => None,
    };
    println!("serving on https://{address}");
    tracing::info!(%address, version = env!("CARGO_PKG_VERSION"), "beid-gateway serving");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tokio::spawn(async move {
        signal().await;
        tracing::info!("stopping");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        let _ = stop.send(true);
    });
    serve(listener, &gateway, wait(stopped)).await?;
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    tokio::task::block_in_place(|| gateway.flush_audit());
    Ok(())
}

/// SIGTERM (systemd) or SIGINT (a terminal).
async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
