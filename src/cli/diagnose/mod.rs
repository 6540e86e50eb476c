//! `beid-agent diagnose`: one command that tells a technician what is wrong with a counter,
//! with one hint per failure. It checks pcscd (installed, its version, polkit access), the
//! readers and the card in each (read end to end), the configuration, the upstream (client
//! certificate expiry, mutual TLS handshake, latency, its certificate), the clock, the local
//! API port, the configuration the running agent has in force and its metrics textfile,
//! the RRN key cache and the audit chain. It prints no personal data, and
//! `--support-bundle` packs the report with what support needs (see [`bundle`]).
//!
//! `--health` is the quick check for monitoring and configuration management: everything
//! above except reading cards (a card present is noted; none is needed), the RRN key cache
//! and the audit chain (it reads the whole log); the upstream gets its one health probe,
//! within `upstream.timeout_ms`. A healthy counter with empty readers passes.

mod bundle;
mod cards;
mod host;
mod report;
mod running;
mod setup;

use std::path::PathBuf;
use std::time::Duration;

use super::exit::Failure;
use super::json::{self, JsonFlag};
use super::settings::DEFAULT_CONFIG;
use report::Report;

#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub(super) output: JsonFlag,
    /// Give up on a card that has not answered within this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// The configuration file (default /etc/beid-agent/config.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The agent's state directory (audit log, RRN key cache).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/beid-agent")]
    state_dir: PathBuf,
    /// Check pcscd, the readers and the cards only.
    #[arg(long)]
    readers_only: bool,
    /// Quick health check: reads no card (none needs to be inserted), skips the audit
    /// chain and the RRN key cache; exit 0 when healthy, 12 when a check fails.
    #[arg(long, conflicts_with = "readers_only")]
    health: bool,
    /// Also write a support bundle (.tar.gz, no personal data) to FILE.
    #[arg(long, value_name = "FILE")]
    support_bundle: Option<PathBuf>,
    /// With --support-bundle: take the agent's log from FILE instead of the journal.
    #[arg(long, value_name = "FILE", requires = "support_bundle")]
    log_file: Option<PathBuf>,
}

pub fn run(args: &DiagnoseArgs) -> Result<(), Failure> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut report = Report::default();
    let pcscd_version = host::check_pcscd_install(&mut report, &host::HostPaths::default());
    let cards_mode = if args.health {
        cards::Cards::Note
    } else {
        cards::Cards::Read {
            timeout: Duration::from_secs(args.timeout),
        }
    };
    cards::check_readers(&mut report, cards_mode);
    if !args.readers_only {
        check_setup(&mut report, args, &config_path)?;
    }

    if let Some(path) = &args.support_bundle {
        let inputs = bundle::BundleInputs {
            report: &report,
            config_path: &config_path,
            log_file: args.log_file.as_deref(),
            pcscd_version: pcscd_version.as_deref(),
        };
        let files = bundle::write(path, &inputs).map_err(|e| {
            Failure::Other(format!(
                "cannot write the support bundle {}: {e}",
                path.display()
            ))
        })?;
        eprintln!(
            "support bundle written to {} ({}); it holds no personal data",
            path.display(),
            files.join(", ")
        );
    }

    if args.output.json {
        json::print(&report)?;
    } else {
        out!("{}", report.text().trim_end());
    }
    if report.ok {
        Ok(())
    } else {
        Err(Failure::ChecksFailed)
    }
}

/// Everything beyond the readers: configuration, upstream, clock, API, the running
/// configuration, the textfile, cache, audit (the last two not with `--health`).
fn check_setup(
    report: &mut Report,
    args: &DiagnoseArgs,
    config_path: &std::path::Path,
) -> Result<(), Failure> {
    let now = time::OffsetDateTime::now_utc();
    let config = setup::check_configuration(report, config_path);
    let upstream_clock = match &config {
        Some(config) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::Other(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(setup::check_upstream(report, config, now))
        }
        None => None,
    };
    let last_audit_record = if args.health {
        None
    } else {
        setup::check_audit(report, &args.state_dir)
    };
    host::check_clock(report, now, upstream_clock, last_audit_record);
    let listen = running::agent_listen(&args.state_dir).unwrap_or_else(|| {
        config.as_ref().map_or_else(
            || crate::config::ApiConfig::default().listen,
            |c| c.api.listen,
        )
    });
    setup::check_local_api(report, listen);
    running::check_running_configuration(report, &args.state_dir, config.as_ref());
    if let Some(config) = &config {
        running::check_textfile(report, config);
        if !args.health {
            setup::check_rrn_key_cache(report, config);
        }
    }
    Ok(())
}
