//! `[upstream]`: the rule service's URL, the device's TLS identity, the time budgets, and the
//! simulated service's fixture.

use std::path::PathBuf;

use url::Url;

use super::super::model::{SimulatedConfig, UpstreamConfig, UpstreamKind};
use super::super::path::KeyPath;
use super::super::problem::ProblemKind;
use super::{looks_inline, Checker};
use crate::advice::{self, AdviceError, Fixture};
use crate::config::secrets;
use crate::pem::{self, PemError};

const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_RETRIES: u32 = 5;
const MIN_BODY_BYTES: usize = 256;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_LATENCY_MS: u64 = 60_000;
const WHEN_HTTP: &str = "when kind = \"http\"";

pub(super) fn check(checker: &mut Checker<'_>, upstream: &UpstreamConfig) {
    let table = KeyPath::of(&["upstream"]);
    if upstream.kind == UpstreamKind::Http {
        check_url(checker, &table, upstream.url.as_deref());
        check_identity(checker, &table, upstream);
    }
    check_budgets(checker, &table, upstream);
    check_simulated(checker, &table.key("simulated"), &upstream.simulated);
}

fn check_url(checker: &mut Checker<'_>, table: &KeyPath, url: Option<&str>) {
    let key = table.key("url");
    let kind = match url.map(Url::parse) {
        None => ProblemKind::Missing {
            when: Some(WHEN_HTTP),
        },
        Some(Err(error)) => ProblemKind::invalid(format!("not a usable URL: {error}")),
        Some(Ok(url)) if url.scheme() != "https" => ProblemKind::invalid_with(
            "must be an https URL for kind = \"http\"",
            "the rule service is only asked over HTTPS with the device's certificate",
        ),
        Some(Ok(url)) if !url.username().is_empty() || url.password().is_some() => {
            ProblemKind::InlineSecret
        }
        Some(Ok(url)) => match advice::http_endpoint(&url) {
            Err(AdviceError::Url { why, .. }) => {
                ProblemKind::invalid(format!("not a usable URL: {why}"))
            }
            _ => return,
        },
    };
    checker.report(key, kind);
}

/// The client certificate, its key (a secret: permissions checked) and the CA bundle.
fn check_identity(checker: &mut Checker<'_>, table: &KeyPath, upstream: &UpstreamConfig) {
    let file = |checker: &mut Checker<'_>, name: &str, path: &Option<PathBuf>| {
        let key = table.key(name);
        match path {
            None => {
                let when = Some(WHEN_HTTP);
                checker.report(key, ProblemKind::Missing { when });
                None
            }
            Some(path) if looks_inline(path) => {
                checker.report(key, ProblemKind::InlineSecret);
                None
            }
            Some(path) => checker.readable_file(&key, path).then(|| path.clone()),
        }
    };
    let cert = file(checker, "client_cert", &upstream.client_cert);
    let key = file(checker, "client_key", &upstream.client_key);
    let ca = file(checker, "ca_bundle", &upstream.ca_bundle);
    if let Some(problem) = key.as_deref().and_then(secrets::exposure) {
        checker.report(table.key("client_key"), problem);
    }
    if let (Some(cert), Some(key)) = (cert, key) {
        if let Err(error) = pem::read_client_identity(&cert, &key) {
            let about_key = match &error {
                PemError::KeyMismatch { .. } => true,
                PemError::Read { path, .. }
                | PemError::Syntax { path, .. }
                | PemError::NoItem { path, .. } => *path == key,
                _ => false,
            };
            let at = if about_key {
                "client_key"
            } else {
                "client_cert"
            };
            checker.report(table.key(at), credentials(&error));
        }
    }
    if let Some(ca) = ca {
        if let Err(error) = pem::read_roots(&ca) {
            checker.report(table.key("ca_bundle"), credentials(&error));
        }
    }
}

pub(super) fn credentials(error: &PemError) -> ProblemKind {
    ProblemKind::Credentials {
        why: error.to_string(),
        hint: error.hint(),
    }
}

fn check_budgets(checker: &mut Checker<'_>, table: &KeyPath, upstream: &UpstreamConfig) {
    let mut range = |key: &str, ok: bool, why: String| {
        if !ok {
            checker.report(table.key(key), ProblemKind::invalid(why));
        }
    };
    let timeout_ok = (1..=MAX_TIMEOUT_MS).contains(&upstream.timeout_ms);
    range(
        "timeout_ms",
        timeout_ok,
        format!("must be between 1 and {MAX_TIMEOUT_MS}"),
    );
    // Compared with timeout_ms only when that one is fine: one mistake, one problem.
    range(
        "connect_timeout_ms",
        !timeout_ok || (1..=upstream.timeout_ms).contains(&upstream.connect_timeout_ms),
        "must be between 1 and timeout_ms".into(),
    );
    range(
        "retries",
        upstream.retries <= MAX_RETRIES,
        format!("must be at most {MAX_RETRIES}"),
    );
    range(
        "retry_backoff_ms",
        !timeout_ok || upstream.retry_backoff_ms <= upstream.timeout_ms,
        "must not exceed timeout_ms".into(),
    );
    range(
        "max_body_bytes",
        (MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&upstream.max_body_bytes),
        format!("must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES}"),
    );
    let circuit = &upstream.circuit;
    if circuit.failure_threshold > 0 && circuit.cooldown_ms == 0 {
        checker.report(
            table.key("circuit").key("cooldown_ms"),
            ProblemKind::invalid("must be above 0 when failure_threshold is set"),
        );
    }
}

fn check_simulated(checker: &mut Checker<'_>, table: &KeyPath, simulated: &SimulatedConfig) {
    if let Some(path) = &simulated.fixture {
        let key = table.key("fixture");
        if checker.readable_file(&key, path) {
            if let Err(error) = Fixture::load(path) {
                checker.report(key, ProblemKind::invalid(error.to_string()));
            }
        }
    }
    if !(0.0..=1.0).contains(&simulated.failure_rate) {
        checker.report(
            table.key("failure_rate"),
            ProblemKind::invalid("must be between 0.0 and 1.0"),
        );
    }
    if simulated.latency_ms > MAX_LATENCY_MS {
        checker.report(
            table.key("latency_ms"),
            ProblemKind::invalid(format!("must be at most {MAX_LATENCY_MS}")),
        );
    }
}
