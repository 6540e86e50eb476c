//! metrics: counters for `/metrics` in Prometheus text. No personal data in any label: only
//! outcomes, decisions, routes and status codes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::advice::{Decision, OutcomeDelivery};
use beid_core::contract::StaffDecision;

/// Upper bounds (seconds) of the upstream latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// (use case, advice, staff decision, deviation reason or "none").
type OutcomeKey = (String, &'static str, &'static str, String);

#[derive(Default)]
pub struct Metrics {
    reads_ok: AtomicU64,
    reads_failed: AtomicU64,
    verification_failures: AtomicU64,
    advice: [AtomicU64; 3],
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
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
        out
    }
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

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.read(true, true);
        metrics.advice(Decision::Eligible, Duration::from_millis(20));
        metrics.advice(Decision::Unknown, Duration::from_secs(3));
        metrics.request("/v1/status", 200);
        metrics.outcome(
            "uitpas-kansentarief",
            Decision::NotEligible,
            StaffDecision::Granted,
            Some("recently_moved"),
        );
        metrics.outcome_delivery(OutcomeDelivery::Delivered);
        metrics.audit_write_failed();
        let text = metrics.render();
        assert!(text.contains("beid_outcomes_total{use_case=\"uitpas-kansentarief\",advice=\"not_eligible\",decision=\"granted\",reason=\"recently_moved\"} 1"));
        assert!(text.contains("beid_outcome_deliveries_total{result=\"delivered\"} 1"));
        assert!(text.contains("beid_audit_write_failures_total 1"));
        assert!(text.contains("beid_card_reads_total{outcome=\"ok\"} 1"));
        assert!(text.contains("beid_verification_failures_total 1"));
        assert!(text.contains("beid_advice_total{decision=\"eligible\"} 1"));
        assert!(text.contains("beid_advice_latency_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("beid_advice_latency_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("beid_advice_latency_seconds_count 2"));
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
        let text = metrics.render();
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
}
