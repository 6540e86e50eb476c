//! The checks of the agent's own set-up: its configuration, the upstream (client certificate,
//! TLS handshake, latency, the upstream's certificate), the local API port, the RRN key cache
//! and the audit chain.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::report::Report;
use crate::advice::probe::{self, CertificateDates};
use crate::advice::{HttpSettings, Reason, UpstreamSettings};
use crate::cli::exit::sentence;
use crate::config::{Config, ConfigError};
use crate::trust::RrnKeyCache;

/// Certificates expiring within this many days get a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Loads the configuration, reporting every problem. `None` when there is nothing to check
/// the rest against.
pub fn check_configuration(report: &mut Report, path: &Path) -> Option<Config> {
    const NAME: &str = "configuration";
    if !path.exists() {
        report.fail(
            NAME,
            format!("no configuration at {}", path.display()),
            "install one (the package ships /etc/beid-agent/config.toml to fill in) or pass --config FILE",
        );
        return None;
    }
    // The same checks as `config check` and `serve`: one load, every problem.
    match Config::load(path) {
        Ok(config) => {
            let drop_ins = config.files().len() - 1;
            report.pass(
                NAME,
                format!(
                    "{} valid{} (device {}, channel {})",
                    path.display(),
                    match drop_ins {
                        0 => String::new(),
                        n => format!(" with {n} drop-in(s)"),
                    },
                    config.device.id,
                    config.device.channel
                ),
            );
            Some(config)
        }
        Err(ConfigError::Invalid { problems }) => {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            report.fail(
                NAME,
                format!("{} problem(s): {}", problems.len(), listed.join("; ")),
                "fix each one; `beid-agent config check` lists them, one per line",
            );
            None
        }
        Err(error) => {
            report.fail(
                NAME,
                sentence(&error),
                "`beid-agent config check FILE` says what is wrong",
            );
            None
        }
    }
}

/// Checks the upstream; returns its clock when it told it.
pub async fn check_upstream(
    report: &mut Report,
    config: &Config,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let settings = match config.upstream.settings() {
        Ok(UpstreamSettings::Http(settings)) => settings,
        Ok(UpstreamSettings::Simulated(_)) => {
            report.warn(
                "upstream",
                "the simulated rule service answers: advice does not come from the city",
                "on a counter or kiosk set [upstream] kind = \"http\" with the city's URL and certificates",
            );
            return None;
        }
        Err(error) => {
            report.fail(
                "upstream",
                sentence(&error),
                "fix [upstream] in the configuration",
            );
            return None;
        }
    };
    check_client_certificate(report, &settings, now);
    check_reachability(report, &settings, now).await
}

fn check_client_certificate(report: &mut Report, settings: &HttpSettings, now: OffsetDateTime) {
    const NAME: &str = "upstream client certificate";
    let dates = match probe::client_certificate_dates(&settings.client_cert) {
        Ok(dates) => dates,
        Err(error) => {
            report.fail(
                NAME,
                sentence(&error),
                "install the device's client certificate (PEM) at upstream.client_cert",
            );
            return;
        }
    };
    let days = dates.days_left(now);
    if now < dates.not_before {
        report.fail(
            NAME,
            format!(
                "{} is not valid before {}",
                dates.subject,
                day(dates.not_before)
            ),
            "check the system clock; otherwise install a certificate that is valid today",
        );
    } else if now >= dates.not_after {
        report.fail(
            NAME,
            format!("{} expired on {}", dates.subject, day(dates.not_after)),
            "renew the device's client certificate with the city's PKI and replace upstream.client_cert and upstream.client_key; until then every advice is unknown",
        );
    } else if days < EXPIRY_WARNING_DAYS {
        report.warn(
            NAME,
            format!(
                "{} expires on {} ({days} days left)",
                dates.subject,
                day(dates.not_after)
            ),
            "renew it now: once it expires the rule service refuses this device",
        );
    } else {
        report.pass(
            NAME,
            format!(
                "{} valid until {} ({days} days)",
                dates.subject,
                day(dates.not_after)
            ),
        );
    }
}

async fn check_reachability(
    report: &mut Report,
    settings: &HttpSettings,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    const NAME: &str = "upstream";
    let target = host_port(settings);
    let health = match probe::probe(settings).await {
        Err(error) => {
            report.fail(
                NAME,
                sentence(&error),
                "fix the [upstream] files (`beid-agent config check`)",
            );
            return None;
        }
        Ok(Err(failure)) => {
            report.fail(
                NAME,
                format!(
                    "{target}: {} after {} ms ({})",
                    failure.reason.code(),
                    failure.latency.as_millis(),
                    failure.detail
                ),
                unreachable_hint(failure.reason),
            );
            return None;
        }
        Ok(Ok(health)) => health,
    };
    let latency_ms = health.latency.as_millis();
    let what = format!(
        "{target} answered {} to the health probe in {latency_ms} ms (mutual TLS accepted)",
        health.status
    );
    match health.status {
        200 => {
            if health.latency > settings.timeout / 2 {
                report.warn(
                    NAME,
                    what,
                    "slow: advice may run out of its time budget (upstream.timeout_ms); check the network path",
                );
            } else {
                report.pass(NAME, what);
            }
        }
        404 | 405 | 501 => report.pass(
            NAME,
            format!("{what}; it has no health endpoint, the handshake is what counts"),
        ),
        401 | 403 => report.fail(
            NAME,
            what,
            "the rule service does not accept this device: ask the city to register its client certificate",
        ),
        status if status >= 500 => report.fail(
            NAME,
            what,
            "the rule service is in trouble: advice is unknown until it recovers; tell the city's service desk",
        ),
        _ => report.warn(
            NAME,
            what,
            "unexpected answer to GET /v1/health; send a support bundle to the city",
        ),
    }
    if let Some(server) = &health.server_certificate {
        check_server_certificate(report, server, now);
    }
    health.server_date
}

fn check_server_certificate(report: &mut Report, dates: &CertificateDates, now: OffsetDateTime) {
    const NAME: &str = "upstream server certificate";
    let days = dates.days_left(now);
    let detail = format!(
        "{} valid until {} ({days} days)",
        dates.subject,
        day(dates.not_after)
    );
    if days < EXPIRY_WARNING_DAYS {
        report.warn(
            NAME,
            detail,
            "tell the city's service desk: the rule service's certificate must be renewed",
        );
    } else {
        report.pass(NAME, detail);
    }
}

fn unreachable_hint(reason: Reason) -> &'static str {
    match reason {
        Reason::UpstreamUnavailable => {
            "no connection: check the network cable, DNS and the firewall towards the upstream, and upstream.url"
        }
        Reason::UpstreamTimeout | Reason::UpstreamBodyTimeout => {
            "no answer in time: check the network path to the upstream (no proxy is used) or raise upstream.timeout_ms"
        }
        Reason::UpstreamTls => {
            "the upstream's certificate is not trusted: check upstream.ca_bundle and that upstream.url names the host in its certificate; check the clock"
        }
        Reason::UpstreamTlsRejected => {
            "the upstream refused this device's client certificate: is it issued by the city's CA, current, and registered?"
        }
        _ => "send a support bundle (`beid-agent diagnose --support-bundle FILE`) to the city",
    }
}

fn host_port(settings: &HttpSettings) -> String {
    format!(
        "{}:{}",
        settings.url.host_str().unwrap_or("?"),
        settings.url.port_or_known_default().unwrap_or(443)
    )
}

/// Is the agent serving its API on `listen`? Nothing listening is a failure: the POS and the
/// kiosk page cannot work without it.
pub fn check_local_api(report: &mut Report, listen: SocketAddr) {
    const NAME: &str = "local API";
    match TcpStream::connect_timeout(&listen, Duration::from_secs(1)) {
        Ok(stream) => match health(stream, listen) {
            Some(true) => report.pass(NAME, format!("the agent answers on http://{listen}")),
            _ => report.fail(
                NAME,
                format!("another program answers on {listen}"),
                "find it with `ss -ltnp` and stop it, or move the agent with [api] listen (and tell the POS)",
            ),
        },
        Err(_) => match TcpListener::bind(listen) {
            Ok(_) => report.fail(
                NAME,
                format!("nothing listens on {listen}: the agent is not running"),
                "start it: `systemctl start beid-agent`; `journalctl -u beid-agent` says why it stopped",
            ),
            Err(error) => report.fail(
                NAME,
                format!("{listen} is neither served nor free: {error}"),
                "check [api] listen: it must be a loopback address of this machine",
            ),
        },
    }
}

/// `GET /healthz`; `Some(true)` when the answer is the agent's.
fn health(mut stream: TcpStream, listen: SocketAddr) -> Option<bool> {
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    Some(answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\nok"))
}

/// The RRN key cache: readable, and how many verified keys it holds.
pub fn check_rrn_key_cache(report: &mut Report, config: &Config) {
    const NAME: &str = "RRN key cache";
    let Some(path) = &config.trust.rrn_key_cache else {
        report.info(
            NAME,
            "not configured: kept in memory, so after each restart a card needs its certificate read once",
        );
        return;
    };
    if !path.exists() {
        report.info(
            NAME,
            format!(
                "{} not written yet (no card read since it was set)",
                path.display()
            ),
        );
        return;
    }
    let store = match config.trust_store() {
        Ok(store) => store,
        Err(error) => {
            report.fail(NAME, sentence(&error), "fix [trust] extra_roots");
            return;
        }
    };
    match RrnKeyCache::load(path, &store) {
        Ok(cache) => report.pass(
            NAME,
            format!("{}: {} verified key(s)", path.display(), cache.len()),
        ),
        Err(error) => report.fail(
            NAME,
            sentence(&error),
            "delete the file: it holds only public keys and the agent rebuilds it from the next cards",
        ),
    }
}

/// The audit chain in the state directory; returns the time of its last record.
pub fn check_audit(report: &mut Report, state_dir: &Path) -> Option<OffsetDateTime> {
    const NAME: &str = "audit log";
    let log = state_dir.join("audit.jsonl");
    if !log.exists() {
        report.info(
            NAME,
            format!(
                "{} does not exist yet (the agent has not run here)",
                log.display()
            ),
        );
        return None;
    }
    match crate::audit::verify(&log) {
        Ok(verified) if verified.is_intact() => {
            let detail = format!(
                "{}: {} records, chain intact",
                log.display(),
                verified.records
            );
            if verified.sealing == crate::audit::Sealing::Unsealed {
                report.warn(
                    NAME,
                    format!("{detail}, not sealed: the agent's user could rewrite it unnoticed"),
                    "run `beid-agent audit seal-init` as root, keep the verification key it prints off this computer, restart the agent (docs/audit.md)",
                );
            } else {
                report.pass(NAME, format!("{detail}, sealed"));
            }
            last_record_time(&log)
        }
        Ok(verified) => {
            let problem = verified
                .problem
                .as_ref()
                .or(verified.findings.first())
                .map_or_else(String::new, |finding| format!(": {finding}"));
            report.fail(
                NAME,
                format!(
                    "{}: chain broken after record {}{problem}",
                    log.display(),
                    verified.records
                ),
                "keep the file as evidence, do not edit it; report it to the city's security officer (`beid-agent audit verify` gives the details)",
            );
            None
        }
        Err(error) => {
            report.fail(
                NAME,
                sentence(&error),
                "run diagnose as root or as the agent's user (the state directory is private)",
            );
            None
        }
    }
}

fn last_record_time(log: &Path) -> Option<OffsetDateTime> {
    let text = std::fs::read_to_string(log).ok()?;
    let last = text.lines().rev().find(|line| !line.trim().is_empty())?;
    let record: serde_json::Value = serde_json::from_str(last).ok()?;
    OffsetDateTime::parse(
        record.get("at")?.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
}

/// A date as `YYYY-MM-DD`.
pub fn day(at: OffsetDateTime) -> String {
    at.date().to_string()
}
