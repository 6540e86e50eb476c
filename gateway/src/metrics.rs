//! metrics: counters and histograms in Prometheus text, served on their own address. No
//! personal data in any label: sources, decisions, reason codes, configured use-case ids,
//! and the clerk's deviation reasons (a capped set).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use beid_core::contract::{AnswerDecision, StaffDecision};

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Distinct deviation reasons counted by name; more are counted as `other` (a client must
/// not grow the label set without bound).
const MAX_DEVIATION_REASONS: usize = 32;

/// Every metric: name, type, help.
const FAMILIES: [(&str, &str, &str); 9] = [
    (
        "beid_gateway_checks_total",
        "counter",
        "Eligibility checks answered, by use case and decision.",
    ),
    (
        "beid_gateway_check_duration_seconds",
        "histogram",
        "Time from a check's arrival to its answer.",
    ),
    (
        "beid_gateway_source_answers_total",
        "counter",
        "Source answers, by source and decision.",
    ),
    (
        "beid_gateway_source_errors_total",
        "counter",
        "Source answers without a decision, by source and reason.",
    ),
    (
        "beid_gateway_source_latency_seconds",
        "histogram",
        "Time a source took to answer, by source.",
    ),
    (
        "beid_gateway_token_refreshes_total",
        "counter",
        "Access token requests, by source and outcome.",
    ),
    (
        "beid_gateway_refused_total",
        "counter",
        "Requests refused before any source was asked, by reason.",
    ),
    (
        "beid_gateway_outcomes_total",
        "counter",
        "Clerks' final decisions received, by decision and deviation reason.",
    ),
    (
        "beid_gateway_audit_errors_total",
        "counter",
        "Audit records that could not be written.",
    ),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Series {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The gateway's metrics. Shared as `Arc<Metrics>`.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

impl Metrics {
    fn series(&self) -> MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, name: &'static str, labels: Labels) {
        *self.series().counters.entry((name, labels)).or_default() += 1;
    }

    fn observe(&self, name: &'static str, labels: Labels, value: Duration) {
        self.series()
            .histograms
            .entry((name, labels))
            .or_default()
            .observe(value);
    }

    /// A check answered (`use_case` is a configured id, or `unconfigured`).
    pub fn check(&self, use_case: &str, decision: AnswerDecision, took: Duration) {
        self.count(
            "beid_gateway_checks_total",
            vec![
                ("use_case", use_case.to_owned()),
                ("decision", decision_code(decision).into()),
            ],
        );
        self.observe("beid_gateway_check_duration_seconds", Vec::new(), took);
    }

    /// A source's answer: its decision, its reason when undecided, its latency.
    pub fn source(
        &self,
        source: &str,
        decision: AnswerDecision,
        reason: Option<&str>,
        took: Duration,
    ) {
        self.count(
            "beid_gateway_source_answers_total",
            vec![
                ("source", source.to_owned()),
                ("decision", decision_code(decision).into()),
            ],
        );
        if decision == AnswerDecision::Unknown {
            self.count(
                "beid_gateway_source_errors_total",
                vec![
                    ("source", source.to_owned()),
                    ("reason", reason.unwrap_or("none").to_owned()),
                ],
            );
        }
        self.observe(
            "beid_gateway_source_latency_seconds",
            vec![("source", source.to_owned())],
            took,
        );
    }

    /// A token request to a source's authorization server.
    pub fn token_refresh(&self, source: &str, ok: bool) {
        self.count(
            "beid_gateway_token_refreshes_total",
            vec![
                ("source", source.to_owned()),
                ("outcome", if ok { "ok" } else { "error" }.into()),
            ],
        );
    }

    /// A request refused before any source was asked (`device_mismatch`, `rate_limited`, ...).
    pub fn refused(&self, reason: &'static str) {
        self.count(
            "beid_gateway_refused_total",
            vec![("reason", reason.to_owned())],
        );
    }

    /// A clerk's final decision.
    pub fn outcome(&self, decision: StaffDecision, deviation: Option<&str>) {
        let mut series = self.series();
        let known = |reason: &str| {
            series.counters.keys().any(|(name, labels)| {
                *name == "beid_gateway_outcomes_total"
                    && labels
                        .iter()
                        .any(|(key, value)| *key == "deviation" && value == reason)
            })
        };
        let distinct = series
            .counters
            .keys()
            .filter(|(name, _)| *name == "beid_gateway_outcomes_total")
            .count();
        let deviation = match deviation {
            None => "none".to_owned(),
            Some(reason) if known(reason) || distinct < MAX_DEVIATION_REASONS => reason.to_owned(),
            Some(_) => "other".to_owned(),
        };
        *series
            .counters
            .entry((
                "beid_gateway_outcomes_total",
                vec![
                    ("decision", decision.code().to_owned()),
                    ("deviation", deviation),
                ],
            ))
            .or_default() += 1;
    }

    /// An audit record lost.
    pub fn audit_error(&self) {
        self.count("beid_gateway_audit_errors_total", Vec::new());
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let series = self.series();
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((_, labels), value) in series.counters.iter().filter(|((n, _), _)| *n == name) {
                let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
            }
            for ((_, labels), histogram) in
                series.histograms.iter().filter(|((n, _), _)| *n == name)
            {
                for (count, bound) in histogram.buckets.iter().zip(BUCKETS) {
                    let le = bound.to_string();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    histogram.count
                );
            }
        }
        out
    }
}

fn decision_code(decision: AnswerDecision) -> &'static str {
    match decision {
        AnswerDecision::Eligible => "eligible",
        AnswerDecision::NotEligible => "not_eligible",
        AnswerDecision::Unknown => "unknown",
    }
}

fn render_labels(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms_with_help() {
        let metrics = Metrics::default();
        metrics.check(
            "uitpas-kansentarief",
            AnswerDecision::Eligible,
            Duration::from_millis(30),
        );
        metrics.source(
            "uitpas",
            AnswerDecision::Unknown,
            Some("source_timeout"),
            Duration::from_secs(2),
        );
        metrics.token_refresh("uitpas", true);
        let text = metrics.render();
        assert!(text.contains(
            "beid_gateway_checks_total{use_case=\"uitpas-kansentarief\",decision=\"eligible\"} 1"
        ));
        assert!(text.contains("beid_gateway_check_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("beid_gateway_check_duration_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains(
            "beid_gateway_source_errors_total{source=\"uitpas\",reason=\"source_timeout\"} 1"
        ));
        assert!(text.contains(
            "beid_gateway_source_latency_seconds_bucket{source=\"uitpas\",le=\"2.5\"} 1"
        ));
        assert!(
            text.contains("beid_gateway_token_refreshes_total{source=\"uitpas\",outcome=\"ok\"} 1")
        );
        assert!(text.contains("# TYPE beid_gateway_source_latency_seconds histogram"));
    }

    #[test]
    fn deviation_reasons_are_capped() {
        let metrics = Metrics::default();
        for i in 0..(MAX_DEVIATION_REASONS + 5) {
            metrics.outcome(StaffDecision::Granted, Some(&format!("reason_{i}")));
        }
        metrics.outcome(StaffDecision::Granted, Some("reason_0"));
        let text = metrics.render();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("beid_gateway_outcomes_total"))
            .count();
        assert_eq!(lines, MAX_DEVIATION_REASONS + 1, "{text}");
        assert!(text.contains("deviation=\"other\"} 5"));
        assert!(text.contains("deviation=\"reason_0\"} 2"));
    }
}
