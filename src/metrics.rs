//! metrics: counters for `/metrics` in Prometheus text, and what a fleet watches: build
//! info, pcscd, readers and cards, the upstream's circuit and certificates, the last
//! decision, configuration reloads. No personal data in any label: only outcomes,
//! decisions, routes, status codes, states and the device's configured id.
//!
//! [`Metrics`] holds what is counted as it happens; [`Gauges`] is what is true now, read
//! from the engine at each rendering. [`textfile`] writes the same text for node_exporter.

pub mod textfile;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use crate::advice::{CertificateExpiry, Channel, CircuitState, Decision, OutcomeDelivery, Reason};
use crate::advice::{ServiceKind, ServiceStatus};
use beid_core::contract::StaffDecision;

/// Upper bounds (seconds) of the upstream latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// (use case, advice, staff decision, deviation reason or "none").
type OutcomeKey = (String, &'static str, &'static str, String);

/// What is true at the moment of a rendering, read from the engine.
#[derive(Debug, Clone)]
pub struct Gauges {
    /// `[device] id`, as the rule service knows the device (no personal data).
    pub device_id: String,
    pub channel: Channel,
    pub pcscd_up: bool,
    /// Readers pcscd reports.
    pub readers: usize,
    /// Readers holding a card (read or not).
    pub cards: usize,
    pub upstream: ServiceStatus,
    pub certificates: CertificateExpiry,
}

/// Unix time in milliseconds; 0 stands for "never".
#[derive(Default)]
struct Instant(AtomicI64);

impl Instant {
    fn set(&self, at: OffsetDateTime) {
        let millis = at.unix_timestamp_nanos() / 1_000_000;
        self.0
            .store(i64::try_from(millis).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Seconds, when it was ever set.
    fn seconds(&self) -> Option<f64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            #[allow(clippy::cast_precision_loss)] // milliseconds fit an f64 for 285 000 years
            millis => Some(millis as f64 / 1000.0),
        }
    }
}

/// Created when the process starts its metrics (the agent's start).
struct Started(OffsetDateTime);

impl Default for Started {
    fn default() -> Self {
        Self(OffsetDateTime::now_utc())
    }
}

#[derive(Default)]
pub struct Metrics {
    reads_ok: AtomicU64,
    reads_failed: AtomicU64,
    verification_failures: AtomicU64,
    advice: [AtomicU64; 3],
    /// Unknown advice by reason code (a bounded set: `Reason::code`).
    unknown: Mutex<BTreeMap<&'static str, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    /// (route template, status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    outcomes: Mutex<BTreeMap<OutcomeKey, u64>>,
    /// Outcomes sent to the rule service: delivered, not supported, failed.
    outcome_deliveries: [AtomicU64; 3],
    audit_write_failures: AtomicU64,
    /// The local API under pressure: connections, failed authentications, event streams.
    api: ApiPressure,
    started: Started,
    /// The last time the rule service decided (eligible or not eligible).
    last_decision: Instant,
    /// Reloads applied, refused.
    reloads: [AtomicU64; 2],
    /// The last reload was refused (the one before runs on).
    last_reload_refused: AtomicBool,
    /// When the configuration in force was loaded (at start or by a reload).
    config_loaded: Instant,
    /// A reload changed keys that only a restart applies.
    restart_pending: AtomicBool,
    textfile_write_failures: AtomicU64,
}

/// Why the agent closed an API connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionClosed {
    /// Evicted for a newcomer: idle and never authenticated.
    EvictedUnauthenticated = 0,
    /// Evicted for a newcomer: idle between requests of an authenticated client.
    EvictedIdle = 1,
    /// A deadline passed.
    TimedOut = 2,
}

/// Counters of the API's own defences (src/api/server.rs, backoff.rs, events.rs).
#[derive(Default)]
struct ApiPressure {
    connections_open: AtomicU64,
    /// Closed by the agent: evicted (never authenticated, idle), timed out.
    connections_closed: [AtomicU64; 3],
    connections_refused: AtomicU64,
    /// Failed authentications answered 401, answered 429.
    auth_failures: [AtomicU64; 2],
    event_streams_open: AtomicU64,
    /// Event streams refused: the client's cap, the agent's cap.
    event_streams_refused: [AtomicU64; 2],
}

impl Metrics {
    pub fn read(&self, ok: bool, not_authentic: bool) {
        let counter = if ok {
            &self.reads_ok
        } else {
            &self.reads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if not_authentic {
            self.verification_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn advice(&self, decision: Decision, latency: Duration) {
        let index = match decision {
            Decision::Eligible => 0,
            Decision::NotEligible => 1,
            Decision::Unknown => 2,
        };
        self.advice[index].fetch_add(1, Ordering::Relaxed);
        if decision != Decision::Unknown {
            self.last_decision.set(OffsetDateTime::now_utc());
        }
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            latency.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Why an advice was unknown, so that the fleet tells the rule service's trouble
    /// (`upstream_*`, `circuit_open`) from the cards' (`card_expired`, ...).
    pub fn unknown(&self, reason: Reason) {
        *self
            .unknown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(reason.code())
            .or_default() += 1;
    }

    /// A clerk's outcome. Use cases and deviation reasons are configured ids, never
    /// personal data.
    pub fn outcome(
        &self,
        use_case: &str,
        advice: Decision,
        decision: StaffDecision,
        reason: Option<&str>,
    ) {
        let key = (
            use_case.to_owned(),
            advice.code(),
            decision.code(),
            reason.unwrap_or("none").to_owned(),
        );
        *self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    pub fn outcome_delivery(&self, delivery: OutcomeDelivery) {
        let index = match delivery {
            OutcomeDelivery::Delivered => 0,
            OutcomeDelivery::NotSupported => 1,
            OutcomeDelivery::Failed => 2,
        };
        self.outcome_deliveries[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn audit_write_failed(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The configuration in force was loaded at `at` (at start, or by a reload that was
    /// applied).
    pub fn config_loaded(&self, at: OffsetDateTime) {
        self.config_loaded.set(at);
    }

    /// A reload was applied (`true`) or refused as a whole (`false`).
    pub fn reloaded(&self, applied: bool) {
        self.reloads[usize::from(!applied)].fetch_add(1, Ordering::Relaxed);
        self.last_reload_refused.store(!applied, Ordering::Relaxed);
        if applied {
            self.config_loaded(OffsetDateTime::now_utc());
        }
    }

    /// Whether the configuration on disk changed keys that only a restart applies.
    pub fn set_restart_pending(&self, pending: bool) {
        self.restart_pending.store(pending, Ordering::Relaxed);
    }

    /// The textfile could not be written.
    pub fn textfile_write_failed(&self) {
        self.textfile_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self, route: &str, status: u16) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route.to_owned(), status)).or_default() += 1;
        }
    }

    /// A connection was accepted into the API's budget.
    pub fn api_connection_opened(&self) {
        self.api.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// The agent closed a connection of the API.
    pub fn api_connection_closed_by_agent(&self, why: ConnectionClosed) {
        self.api.connections_closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn api_connection_closed(&self) {
        self.api.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection refused: every connection in the budget was busy.
    pub fn api_connection_refused(&self) {
        self.api.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed authentication, answered 401 or (`throttled`) 429.
    pub fn api_auth_failed(&self, throttled: bool) {
        self.api.auth_failures[usize::from(throttled)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn api_event_stream_opened(&self) {
        self.api.event_streams_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn api_event_stream_closed(&self) {
        self.api.event_streams_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// An event stream refused: the client's cap (`in_all` false) or the agent's.
    pub fn api_event_stream_refused(&self, in_all: bool) {
        self.api.event_streams_refused[usize::from(in_all)].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition: the counters, and `now` (the engine's gauges).
    pub fn render(&self, now: &Gauges) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP beid_card_reads_total Card reads by outcome.\n# TYPE beid_card_reads_total counter");
        let _ = writeln!(
            out,
            "beid_card_reads_total{{outcome=\"ok\"}} {}",
            get(&self.reads_ok)
        );
        let _ = writeln!(
            out,
            "beid_card_reads_total{{outcome=\"error\"}} {}",
            get(&self.reads_failed)
        );
        let _ = writeln!(out, "# HELP beid_verification_failures_total Cards whose data was not authentic.\n# TYPE beid_verification_failures_total counter");
        let _ = writeln!(
            out,
            "beid_verification_failures_total {}",
            get(&self.verification_failures)
        );
        let _ = writeln!(
            out,
            "# HELP beid_advice_total Advice by decision.\n# TYPE beid_advice_total counter"
        );
        for (name, counter) in ["eligible", "not_eligible", "unknown"]
            .iter()
            .zip(&self.advice)
        {
            let _ = writeln!(
                out,
                "beid_advice_total{{decision=\"{name}\"}} {}",
                get(counter)
            );
        }
        family(
            &mut out,
            "beid_advice_unknown_total",
            "counter",
            "Unknown advice by reason (upstream_* and circuit_open: the rule service could not decide).",
        );
        for (reason, count) in self
            .unknown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "beid_advice_unknown_total{{reason=\"{reason}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# HELP beid_advice_latency_seconds Time to decide an advice (upstream included).\n# TYPE beid_advice_latency_seconds histogram");
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "beid_advice_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "beid_advice_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "beid_advice_latency_seconds_sum {}",
            get(&self.latency_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "beid_advice_latency_seconds_count {count}");
        let _ = writeln!(out, "# HELP beid_outcomes_total The clerk's final decisions by use case, advice, decision and deviation reason.\n# TYPE beid_outcomes_total counter");
        for ((use_case, advice, decision, reason), count) in self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "beid_outcomes_total{{use_case=\"{use_case}\",advice=\"{advice}\",decision=\"{decision}\",reason=\"{reason}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# HELP beid_outcome_deliveries_total Outcomes sent to the rule service, by result.\n# TYPE beid_outcome_deliveries_total counter");
        for (name, counter) in ["delivered", "not_supported", "failed"]
            .iter()
            .zip(&self.outcome_deliveries)
        {
            let _ = writeln!(
                out,
                "beid_outcome_deliveries_total{{result=\"{name}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(out, "# HELP beid_audit_write_failures_total Audit records that could not be written.\n# TYPE beid_audit_write_failures_total counter");
        let _ = writeln!(
            out,
            "beid_audit_write_failures_total {}",
            get(&self.audit_write_failures)
        );
        let _ = writeln!(out, "# HELP beid_api_requests_total API requests by route and status.\n# TYPE beid_api_requests_total counter");
        if let Ok(requests) = self.requests.lock() {
            for ((route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "beid_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        self.api.render(&mut out);
        self.render_fleet(&mut out, now);
        out
    }

    /// What a fleet watches (docs/operations.md, packaging/prometheus/beid-agent.rules.yml).
    fn render_fleet(&self, out: &mut String, now: &Gauges) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let flag = |b: bool| u8::from(b);
        let seconds = |at: Option<OffsetDateTime>| at.map(OffsetDateTime::unix_timestamp);
        labelled(
            out,
            "beid_agent_build_info",
            "The agent's version (always 1).",
            &[(format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)],
        );
        gauge(
            out,
            "beid_agent_start_time_seconds",
            "When the agent started, in Unix time.",
            Some(self.started.0.unix_timestamp()),
        );
        labelled(
            out,
            "beid_device_info",
            "The device's configured id and channel (always 1).",
            &[(
                format!(
                    "device=\"{}\",channel=\"{}\"",
                    escape(&now.device_id),
                    now.channel
                ),
                1,
            )],
        );
        gauge(
            out,
            "beid_pcscd_up",
            "Whether pcscd answers the agent (1) or not (0).",
            Some(flag(now.pcscd_up)),
        );
        gauge(
            out,
            "beid_readers_present",
            "Card readers pcscd reports.",
            Some(now.readers),
        );
        gauge(
            out,
            "beid_cards_present",
            "Readers that hold a card.",
            Some(now.cards),
        );
        let kind = match now.upstream.kind {
            ServiceKind::Http => "http",
            ServiceKind::Simulated => "simulated",
        };
        labelled(
            out,
            "beid_upstream_info",
            "Which rule service answers: http (the city's) or simulated (always 1).",
            &[(format!("kind=\"{kind}\""), 1)],
        );
        let circuit: Vec<(String, u8)> = [
            ("closed", CircuitState::Closed),
            ("open", CircuitState::Open),
            ("half_open", CircuitState::HalfOpen),
        ]
        .iter()
        .map(|(name, state)| {
            (
                format!("state=\"{name}\""),
                flag(now.upstream.circuit == *state),
            )
        })
        .collect();
        labelled(
            out,
            "beid_upstream_circuit_state",
            "The upstream circuit breaker's state: 1 for the current one.",
            &circuit,
        );
        gauge(
            out,
            "beid_upstream_consecutive_failures",
            "Questions in a row the upstream failed to answer.",
            Some(now.upstream.consecutive_failures),
        );
        gauge(
            out,
            "beid_upstream_client_certificate_expiry_timestamp_seconds",
            "When this device's client certificate expires (its not-after), in Unix time.",
            seconds(now.certificates.client),
        );
        gauge(
            out,
            "beid_upstream_server_certificate_expiry_timestamp_seconds",
            "When the upstream's certificate, as last seen in a handshake, expires, in Unix time.",
            seconds(now.certificates.server),
        );
        gauge(
            out,
            "beid_advice_last_decision_timestamp_seconds",
            "When the rule service last decided (eligible or not eligible), in Unix time.",
            self.last_decision.seconds(),
        );
        let reloads: Vec<(String, u64)> = ["success", "failure"]
            .iter()
            .zip(&self.reloads)
            .map(|(name, counter)| (format!("result=\"{name}\""), get(counter)))
            .collect();
        family(out, "beid_config_reloads_total", "counter", "Configuration reloads, by result (a refused one leaves the running configuration in force).");
        samples(out, "beid_config_reloads_total", &reloads);
        gauge(
            out,
            "beid_config_last_reload_successful",
            "Whether the last reload was applied (1) or refused (0).",
            Some(flag(!self.last_reload_refused.load(Ordering::Relaxed))),
        );
        gauge(
            out,
            "beid_config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded, in Unix time.",
            self.config_loaded.seconds(),
        );
        gauge(out, "beid_config_restart_pending", "Whether the configuration changed keys only a restart applies (1): api.listen, device.id, device.channel.", Some(flag(self.restart_pending.load(Ordering::Relaxed))));
        family(
            out,
            "beid_metrics_textfile_write_failures_total",
            "counter",
            "Writes of the node_exporter textfile that failed.",
        );
        samples(
            out,
            "beid_metrics_textfile_write_failures_total",
            &[(String::new(), get(&self.textfile_write_failures))],
        );
    }
}

/// A gauge without labels; no sample while its value is not known.
fn gauge(out: &mut String, name: &str, help: &str, value: Option<impl std::fmt::Display>) {
    family(out, name, "gauge", help);
    if let Some(value) = value {
        let _ = writeln!(out, "{name} {value}");
    }
}

/// A gauge with one sample per label set.
fn labelled(out: &mut String, name: &str, help: &str, values: &[(String, impl std::fmt::Display)]) {
    family(out, name, "gauge", help);
    samples(out, name, values);
}

/// `name{labels} value` lines (no braces for empty labels).
fn samples(out: &mut String, name: &str, values: &[(String, impl std::fmt::Display)]) {
    for (labels, value) in values {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it (`\`, `"` and line feeds escaped).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl ApiPressure {
    fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP beid_api_connections Open connections to the local API.\n# TYPE beid_api_connections gauge\nbeid_api_connections {}", get(&self.connections_open));
        let _ = writeln!(out, "# HELP beid_api_connections_closed_total API connections the agent closed: evicted for a new one (never authenticated, or idle between requests), or past a deadline.\n# TYPE beid_api_connections_closed_total counter");
        for (label, counter) in ["evicted_unauthenticated", "evicted_idle", "timed_out"]
            .iter()
            .zip(&self.connections_closed)
        {
            let _ = writeln!(
                out,
                "beid_api_connections_closed_total{{reason=\"{label}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(out, "# HELP beid_api_connections_refused_total API connections refused because every connection had a request in flight.\n# TYPE beid_api_connections_refused_total counter\nbeid_api_connections_refused_total {}", get(&self.connections_refused));
        let _ = writeln!(out, "# HELP beid_api_auth_failures_total Failed API authentications (missing or wrong token, unknown ticket), by the status answered.\n# TYPE beid_api_auth_failures_total counter");
        for (status, counter) in ["401", "429"].iter().zip(&self.auth_failures) {
            let _ = writeln!(
                out,
                "beid_api_auth_failures_total{{status=\"{status}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(out, "# HELP beid_api_event_streams Open event streams.\n# TYPE beid_api_event_streams gauge\nbeid_api_event_streams {}", get(&self.event_streams_open));
        let _ = writeln!(out, "# HELP beid_api_event_streams_refused_total Event streams refused, by the cap that was reached.\n# TYPE beid_api_event_streams_refused_total counter");
        for (cap, counter) in ["client", "agent"].iter().zip(&self.event_streams_refused) {
            let _ = writeln!(
                out,
                "beid_api_event_streams_refused_total{{cap=\"{cap}\"}} {}",
                get(counter)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            device_id: "balie-3".into(),
            channel: Channel::Counter,
            pcscd_up: true,
            readers: 2,
            cards: 1,
            upstream: ServiceStatus {
                kind: ServiceKind::Http,
                circuit: CircuitState::Open,
                consecutive_failures: 5,
            },
            certificates: CertificateExpiry {
                client: Some(time::macros::datetime!(2027-01-31 12:00 UTC)),
                server: None,
            },
        }
    }

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.read(true, true);
        metrics.advice(Decision::Eligible, Duration::from_millis(20));
        metrics.advice(Decision::Unknown, Duration::from_secs(3));
        metrics.unknown(Reason::UpstreamTimeout);
        metrics.request("/v1/status", 200);
        metrics.outcome(
            "uitpas-kansentarief",
            Decision::NotEligible,
            StaffDecision::Granted,
            Some("recently_moved"),
        );
        metrics.outcome_delivery(OutcomeDelivery::Delivered);
        metrics.audit_write_failed();
        let text = metrics.render(&gauges());
        assert!(text.contains("beid_outcomes_total{use_case=\"uitpas-kansentarief\",advice=\"not_eligible\",decision=\"granted\",reason=\"recently_moved\"} 1"));
        assert!(text.contains("beid_outcome_deliveries_total{result=\"delivered\"} 1"));
        assert!(text.contains("beid_audit_write_failures_total 1"));
        assert!(text.contains("beid_card_reads_total{outcome=\"ok\"} 1"));
        assert!(text.contains("beid_verification_failures_total 1"));
        assert!(text.contains("beid_advice_total{decision=\"eligible\"} 1"));
        assert!(text.contains("beid_advice_latency_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("beid_advice_latency_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("beid_advice_latency_seconds_count 2"));
        assert!(text.contains("beid_advice_unknown_total{reason=\"upstream_timeout\"} 1"));
        assert!(text.contains("beid_api_requests_total{route=\"/v1/status\",status=\"200\"} 1"));
    }

    #[test]
    fn renders_the_apis_defences() {
        let metrics = Metrics::default();
        metrics.api_connection_opened();
        metrics.api_connection_opened();
        metrics.api_connection_closed_by_agent(ConnectionClosed::EvictedUnauthenticated);
        metrics.api_connection_closed();
        metrics.api_connection_refused();
        metrics.api_auth_failed(true);
        metrics.api_event_stream_opened();
        metrics.api_event_stream_refused(false);
        let text = metrics.render(&gauges());
        for line in [
            "beid_api_connections 1",
            "beid_api_connections_closed_total{reason=\"evicted_unauthenticated\"} 1",
            "beid_api_connections_closed_total{reason=\"timed_out\"} 0",
            "beid_api_connections_refused_total 1",
            "beid_api_auth_failures_total{status=\"429\"} 1",
            "beid_api_event_streams 1",
            "beid_api_event_streams_refused_total{cap=\"client\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn renders_what_a_fleet_watches() {
        let metrics = Metrics::default();
        let text = metrics.render(&gauges());
        for line in [
            concat!(
                "beid_agent_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
            "beid_device_info{device=\"balie-3\",channel=\"counter\"} 1",
            "beid_pcscd_up 1",
            "beid_readers_present 2",
            "beid_cards_present 1",
            "beid_upstream_info{kind=\"http\"} 1",
            "beid_upstream_circuit_state{state=\"closed\"} 0",
            "beid_upstream_circuit_state{state=\"open\"} 1",
            "beid_upstream_circuit_state{state=\"half_open\"} 0",
            "beid_upstream_consecutive_failures 5",
            "beid_upstream_client_certificate_expiry_timestamp_seconds 1801396800",
            "beid_config_reloads_total{result=\"success\"} 0",
            "beid_config_last_reload_successful 1",
            "beid_config_restart_pending 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        // Not known yet: no sample rather than a misleading 0.
        for name in [
            "beid_upstream_server_certificate_expiry_timestamp_seconds ",
            "beid_advice_last_decision_timestamp_seconds ",
            "beid_config_last_reload_success_timestamp_seconds ",
        ] {
            assert!(!text.lines().any(|l| l.starts_with(name)), "{name}");
        }

        metrics.advice(Decision::Unknown, Duration::from_millis(1));
        let sample = |text: &str, name: &str| text.lines().any(|l| l.starts_with(name));
        assert!(!sample(
            &metrics.render(&gauges()),
            "beid_advice_last_decision_timestamp_seconds "
        ));
        metrics.advice(Decision::NotEligible, Duration::from_millis(1));
        metrics.config_loaded(OffsetDateTime::now_utc());
        metrics.reloaded(false);
        metrics.set_restart_pending(true);
        let text = metrics.render(&gauges());
        for line in [
            "beid_config_reloads_total{result=\"failure\"} 1",
            "beid_config_last_reload_successful 0",
            "beid_config_restart_pending 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        assert!(sample(
            &text,
            "beid_advice_last_decision_timestamp_seconds "
        ));
        assert!(sample(
            &text,
            "beid_config_last_reload_success_timestamp_seconds "
        ));
        metrics.reloaded(true);
        let text = metrics.render(&gauges());
        assert!(text
            .lines()
            .any(|l| l == "beid_config_last_reload_successful 1"));
        assert!(text
            .lines()
            .any(|l| l == "beid_config_reloads_total{result=\"success\"} 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
