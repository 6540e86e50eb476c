//! `beid-agent diagnose`: one command that tells a technician what is wrong with a counter,
//! with one hint per failure. It checks pcscd (installed, its version, polkit access), the
//! readers and the card in each (read end to end), the configuration, the upstream (client
//! certificate expiry, mutual TLS handshake, latency, its certificate), the clock, the local
//! API port, the RRN key cache and the audit chain. It prints no personal data, and
//! `--support-bundle` packs the report with what support needs (see [`bundle`]).

mod bundle;
mod cards;
mod host;
mod report;
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
    cards::check_readers(&mut report, Duration::from_secs(args.timeout));
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

/// Everything beyond the readers: configuration, upstream, clock, API, cache, audit.
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
    let last_audit_record = setup::check_audit(report, &args.state_dir);
    host::check_clock(report, now, upstream_clock, last_audit_record);
    let listen = config.as_ref().map_or_else(
        || crate::config::ApiConfig::default().listen,
        |c| c.api.listen,
    );
    setup::check_local_api(report, listen);
    if let Some(config) = &config {
        setup::check_rrn_key_cache(report, config);
    }
    Ok(())
}
