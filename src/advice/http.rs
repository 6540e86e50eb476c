//! The city's rule service over HTTPS with mutual TLS.
//!
//! Contract (`docs/upstream-openapi.yaml`): `POST {base_url}/v1/eligibility-checks` with
//! `{"requestId","useCase","nationalNumber","channel","deviceId"}`, answered by
//! `{"requestId","decision": "eligible"|"not_eligible","reasonCode"?,"validUntil"?}` with status
//! 200. Everything else is `unknown` with a distinct [`Reason`].
//!
//! - TLS: rustls with the ring provider, only the configured CA bundle as roots (no system
//!   roots), a client certificate and key from PEM files. No proxy, no redirects (a redirect
//!   would carry the national number elsewhere).
//! - Time: `timeout` bounds the whole question, retries and waits included;
//!   `connect_timeout` bounds each connection attempt.
//! - Retries, with jittered exponential backoff, only where the request cannot have been
//!   processed or the upstream says so: connect errors (not TLS errors: a certificate does not
//!   heal) and 502/503/504. `Retry-After` (seconds or HTTP date) replaces the backoff when it
//!   fits the remaining budget; when it does not, we stop at once.
//! - A fresh requestId (UUID v4) per question, checked on the answer.
//! - The body is read chunk by chunk and abandoned past `max_body_bytes`.
//! - A [circuit breaker](super::circuit) counts questions (not attempts) that ended in a
//!   transport failure, a 5xx or a 429; any other answer, even a refused one, shows the
//!   upstream is reachable and resets it.
//!
//! The national number is only written into the request body. Logs carry the request id, use
//! case, channel, device id, status, reason and latency.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use beid_core::contract::{AnswerDecision, Basis, EligibilityCheck, OutcomeFeedback};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use time::{Date, OffsetDateTime};
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;
use uuid::Uuid;

use super::circuit::{CircuitBreaker, CircuitSettings};
use super::error::AdviceError;
use super::expiry::{self, CertificateExpiry, ObservingVerifier, SeenServerExpiry};
use super::model::{Advice, AdviceRequest, Answered, Reason};
use super::{
    random_fraction, AdviceFuture, AdviceService, OutcomeDelivery, OutcomeFuture, ServiceKind,
    ServiceStatus,
};
use crate::pem;

/// The path of the contract's one operation, relative to the base URL.
pub const ELIGIBILITY_CHECKS_PATH: &str = "v1/eligibility-checks";

/// Settings of the HTTP service (`[upstream]` with `kind = "http"`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// The upstream's base URL (https).
    pub url: Url,
    /// PEM file with this device's client certificate (chain, leaf first).
    pub client_cert: PathBuf,
    /// PEM file with the client certificate's private key.
    pub client_key: PathBuf,
    /// PEM file with the CA certificates that may issue the upstream's certificate. The only
    /// roots trusted: system roots are not.
    pub ca_bundle: PathBuf,
    /// Budget of a whole question, retries included.
    pub timeout: Duration,
    /// Budget of one connection attempt (TCP + TLS).
    pub connect_timeout: Duration,
    /// Retries after the first attempt, where safe.
    pub retries: u32,
    /// First backoff; doubled at each retry, jittered down to half.
    pub retry_backoff: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
    /// The circuit breaker.
    pub circuit: CircuitSettings,
}

impl HttpSettings {
    /// Default timeout: 3 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default connect timeout: 1 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default retries: 2.
    pub const DEFAULT_RETRIES: u32 = 2;
    /// Default first backoff: 200 ms.
    pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(200);
    /// Default body limit: 64 KiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

    /// Settings with these files and the defaults for everything else.
    pub fn new(url: Url, client_cert: PathBuf, client_key: PathBuf, ca_bundle: PathBuf) -> Self {
        Self {
            url,
            client_cert,
            client_key,
            ca_bundle,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            retries: Self::DEFAULT_RETRIES,
            retry_backoff: Self::DEFAULT_RETRY_BACKOFF,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            circuit: CircuitSettings::default(),
        }
    }
}

/// Asks the city's rule service. See the [module docs](self).
#[derive(Debug)]
pub struct HttpAdviceService {
    client: reqwest::Client,
    endpoint: Url,
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    max_body_bytes: usize,
    breaker: CircuitBreaker,
    /// Set once the service said it does not take outcomes (`404`/`501`).
    outcomes_unsupported: AtomicBool,
    /// The client certificate's not-after.
    client_not_after: Option<OffsetDateTime>,
    /// The upstream certificate's not-after, as the last verified handshake showed it.
    server_expiry: Arc<SeenServerExpiry>,
}

/// How often an outcome is tried (the first attempt included) when the service fails.
const OUTCOME_ATTEMPTS: u32 = 3;

impl HttpAdviceService {
    /// Reads the certificates and key, builds the TLS configuration and the client.
    pub fn new(settings: &HttpSettings) -> Result<Self, AdviceError> {
        let server_expiry = Arc::new(SeenServerExpiry::default());
        let tls = client(settings, ClientUse::Advice, &server_expiry)?;
        Ok(Self {
            client: tls.http,
            endpoint: endpoint(&settings.url)?,
            timeout: settings.timeout,
            retries: settings.retries,
            retry_backoff: settings.retry_backoff,
            max_body_bytes: settings.max_body_bytes,
            breaker: CircuitBreaker::new(settings.circuit),
            outcomes_unsupported: AtomicBool::new(false),
            client_not_after: tls.client_not_after,
            server_expiry,
        })
    }

    /// The full URL questions are posted to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    async fn ask(&self, request: AdviceRequest<'_>) -> Advice {
        let started = Instant::now();
        if !request.use_case.allows(request.channel) {
            tracing::info!(
                use_case = request.use_case.id(),
                channel = %request.channel,
                "use case not offered on this channel"
            );
            return Advice::unknown(Reason::UseCaseNotAllowed, started.elapsed());
        }
        let Some(permit) = self.breaker.admit() else {
            tracing::warn!(
                use_case = request.use_case.id(),
                channel = %request.channel,
                "circuit open: upstream not asked"
            );
            return Advice::unknown(Reason::CircuitOpen, started.elapsed());
        };
        let request_id = Uuid::new_v4();
        let span = tracing::info_span!(
            "upstream_advice",
            %request_id,
            use_case = request.use_case.id(),
            rule = request.use_case.rule(),
            channel = %request.channel,
            device_id = request.device_id,
            probe = permit.is_probe(),
        );
        let outcome = self
            .exchange(request_id, &request, started + self.timeout)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let latency = started.elapsed();
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(answer) => {
                permit.record(true);
                tracing::info!(decision = %answer.decision(), latency_ms, "upstream answered");
                answer.with_latency(latency).with_request_id(request_id)
            }
            Err(failure) => {
                permit.record(failure.healthy());
                tracing::warn!(
                    reason = %failure.reason,
                    detail = failure.detail.as_deref(),
                    latency_ms,
                    "no decision from upstream"
                );
                Advice::unknown(failure.reason, latency)
            }
        }
    }

    async fn exchange(
        &self,
        request_id: Uuid,
        request: &AdviceRequest<'_>,
        deadline: Instant,
    ) -> Result<Advice, AttemptFailure> {
        let body = serde_json::to_vec(&EligibilityCheck {
            request_id,
            use_case: request.use_case.rule().to_owned(),
            national_number: request.national_number.clone(),
            channel: request.channel,
            device_id: request.device_id.to_owned(),
        })
        .map_err(|error| AttemptFailure::new(Reason::UpstreamError).detail(&error))?;
        let mut attempt = 0_u32;
        loop {
            tracing::debug!(attempt, "posting eligibility check");
            let failure = match self.attempt(request_id, body.clone(), deadline).await {
                Ok(advice) => return Ok(advice),
                Err(failure) => failure,
            };
            if attempt >= self.retries {
                return Err(failure);
            }
            let wait = match failure.retry {
                Retry::No => return Err(failure),
                Retry::After(wait) => wait,
                Retry::Backoff => backoff(self.retry_backoff, attempt, random_fraction()),
            };
            if Instant::now() + wait >= deadline {
                tracing::debug!(
                    attempt,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "no time left to retry"
                );
                return Err(failure);
            }
            tracing::debug!(
                attempt,
                reason = %failure.reason,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        request_id: Uuid,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<Advice, AttemptFailure> {
        let send = self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send();
        let mut response = match tokio::time::timeout_at(deadline, send).await {
            Err(_elapsed) => return Err(AttemptFailure::new(Reason::UpstreamTimeout)),
            Ok(Err(error)) => return Err(AttemptFailure::from_transport(&error)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        tracing::debug!(status = status.as_u16(), version = ?response.version(), "upstream status");
        if status != StatusCode::OK {
            let mut failure = AttemptFailure::new(Reason::UpstreamStatus(status.as_u16()));
            if matches!(status.as_u16(), 502..=504) {
                failure.retry = match retry_after(response.headers()) {
                    Some(wait) => Retry::After(wait),
                    None => Retry::Backoff,
                };
            }
            return Err(failure);
        }
        let body = match tokio::time::timeout_at(
            deadline,
            read_limited(&mut response, self.max_body_bytes),
        )
        .await
        {
            Err(_elapsed) => return Err(AttemptFailure::new(Reason::UpstreamBodyTimeout)),
            Ok(body) => body?,
        };
        parse_answer(&body, request_id)
    }
}

impl HttpAdviceService {
    /// `POST {base}/v1/eligibility-checks/{requestId}/outcome`: a few attempts on transport
    /// failures and `5xx`, each within the question's time budget; `404`/`501` mean the
    /// service does not take outcomes, and none is sent again.
    async fn deliver(&self, request_id: Uuid, outcome: &OutcomeFeedback) -> OutcomeDelivery {
        if self.outcomes_unsupported.load(Ordering::Relaxed) {
            return OutcomeDelivery::NotSupported;
        }
        let Ok(body) = serde_json::to_vec(outcome) else {
            return OutcomeDelivery::Failed;
        };
        let url = format!(
            "{}/{request_id}/outcome",
            self.endpoint.as_str().trim_end_matches('/')
        );
        for attempt in 0..OUTCOME_ATTEMPTS {
            if let Some(before) = attempt.checked_sub(1) {
                tokio::time::sleep(backoff(self.retry_backoff, before, random_fraction())).await;
            }
            let send = self
                .client
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send();
            let status = match tokio::time::timeout(self.timeout, send).await {
                Ok(Ok(response)) => response.status(),
                Ok(Err(error)) => {
                    tracing::debug!(%request_id, attempt, error = %error_chain(&error), "outcome not delivered");
                    continue;
                }
                Err(_elapsed) => continue,
            };
            if status.is_success() {
                tracing::debug!(%request_id, "outcome delivered");
                return OutcomeDelivery::Delivered;
            }
            if matches!(status.as_u16(), 404 | 501) {
                self.outcomes_unsupported.store(true, Ordering::Relaxed);
                tracing::info!(
                    status = status.as_u16(),
                    "the rule service does not take outcomes"
                );
                return OutcomeDelivery::NotSupported;
            }
            if !status.is_server_error() && status.as_u16() != 429 {
                tracing::warn!(%request_id, status = status.as_u16(), "outcome refused");
                return OutcomeDelivery::Failed;
            }
        }
        tracing::warn!(%request_id, "outcome not delivered after retries (kept in the audit log)");
        OutcomeDelivery::Failed
    }
}

impl AdviceService for HttpAdviceService {
    fn advise<'a>(&'a self, request: AdviceRequest<'a>) -> AdviceFuture<'a> {
        Box::pin(self.ask(request))
    }

    fn send_outcome<'a>(
        &'a self,
        request_id: Uuid,
        outcome: &'a OutcomeFeedback,
    ) -> OutcomeFuture<'a> {
        Box::pin(self.deliver(request_id, outcome))
    }

    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            kind: ServiceKind::Http,
            circuit: self.breaker.state(),
            consecutive_failures: self.breaker.consecutive_failures(),
        }
    }

    fn certificate_expiry(&self) -> CertificateExpiry {
        CertificateExpiry {
            client: self.client_not_after,
            server: self.server_expiry.get(),
        }
    }
}

/// A lenient reading of [`beid_core::contract::EligibilityAnswer`]: the same fields, taken
/// as text first so that each way an answer can be wrong gets its own reason (a foreign
/// `requestId` is a mismatch, an unheard-of `decision` is not a mere malformation), and
/// `validUntil` may also be a date-time. Unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpstreamAnswer {
    request_id: String,
    decision: String,
    #[serde(default)]
    reason_code: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    basis: Option<Basis>,
    #[serde(default)]
    clerk_message: Option<String>,
}

/// The longest `reasonCode` kept (a code, not prose).
const MAX_REASON_CODE_CHARS: usize = 64;
/// The longest clerk message kept.
const MAX_CLERK_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    No,
    Backoff,
    After(Duration),
}

/// Why one attempt gave no decision.
#[derive(Debug)]
struct AttemptFailure {
    reason: Reason,
    retry: Retry,
    detail: Option<String>,
}

impl AttemptFailure {
    fn new(reason: Reason) -> Self {
        Self {
            reason,
            retry: Retry::No,
            detail: None,
        }
    }

    fn detail(mut self, error: &(dyn StdError + 'static)) -> Self {
        self.detail = Some(error_chain(error));
        self
    }

    fn from_transport(error: &reqwest::Error) -> Self {
        let mut failure = if let Some(tls) = find_tls_error(error) {
            Self::new(tls)
        } else if error.is_timeout() {
            Self::new(Reason::UpstreamTimeout)
        } else if error.is_connect() {
            Self::new(Reason::UpstreamUnavailable)
        } else {
            Self::new(Reason::UpstreamError)
        };
        // A connect failure means nothing was sent: safe to retry. TLS failures are not retried.
        if error.is_connect()
            && !matches!(
                failure.reason,
                Reason::UpstreamTls | Reason::UpstreamTlsRejected
            )
        {
            failure.retry = Retry::Backoff;
        }
        failure.detail(error)
    }

    /// For the circuit breaker: did the upstream show it is reachable and working?
    fn healthy(&self) -> bool {
        match self.reason {
            Reason::UpstreamUnavailable
            | Reason::UpstreamTimeout
            | Reason::UpstreamBodyTimeout
            | Reason::UpstreamTls
            | Reason::UpstreamTlsRejected
            | Reason::UpstreamError => false,
            Reason::UpstreamStatus(status) => status < 500 && status != 429,
            _ => true,
        }
    }
}

/// Who a client is for: asking for advice, or `diagnose`'s probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientUse {
    Advice,
    /// HTTP/1.1 only, so that a TLS alert after the handshake (TLS 1.3 servers refuse a
    /// client certificate then) reaches the request as a rustls error rather than as an h2
    /// "connection closed"; and keeps the upstream's certificate on the response.
    Probe,
}

/// An HTTP client, and the not-after of the client certificate it presents.
pub(crate) struct TlsClient {
    pub(crate) http: reqwest::Client,
    pub(crate) client_not_after: Option<OffsetDateTime>,
}

/// The HTTP client of `settings`: the configured CA bundle only, the client certificate,
/// https only, no proxy, no redirects. Every upstream certificate it accepts has its
/// not-after noted in `server_expiry`.
pub(crate) fn client(
    settings: &HttpSettings,
    purpose: ClientUse,
    server_expiry: &Arc<SeenServerExpiry>,
) -> Result<TlsClient, AdviceError> {
    let probe = purpose == ClientUse::Probe;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = pem::read_roots(&settings.ca_bundle)?;
    let identity = pem::read_client_identity(&settings.client_cert, &settings.client_key)?;
    let client_not_after = identity
        .chain
        .first()
        .and_then(|leaf| expiry::not_after(leaf));
    // The standard verifier over the configured roots, as `with_root_certificates` builds
    // it, wrapped to note what it accepts.
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(AdviceError::Verifier)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AdviceError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ObservingVerifier::new(
            verifier,
            server_expiry.clone(),
        )))
        .with_client_auth_cert(identity.chain, identity.key)
        .map_err(|source| pem::PemError::KeyMismatch {
            path: settings.client_key.clone(),
            source,
        })?;
    tls.alpn_protocols = if probe {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    let builder = reqwest::Client::builder();
    let builder = if probe { builder.http1_only() } else { builder };
    builder
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION")
        ))
        .tls_info(probe)
        .build()
        .map(|http| TlsClient {
            http,
            client_not_after,
        })
        .map_err(AdviceError::Client)
}

/// The reason and the error chain of a failed request, as the advice path judges them.
pub(crate) fn transport_failure(error: &reqwest::Error) -> (Reason, String) {
    let failure = AttemptFailure::from_transport(error);
    (failure.reason, failure.detail.unwrap_or_default())
}

/// Read the body, refusing more than `limit` bytes (by `Content-Length` up front, or while
/// streaming).
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, AttemptFailure> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(AttemptFailure::new(Reason::UpstreamTooLarge));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| AttemptFailure::from_transport(&error))?
    {
        if body.len() + chunk.len() > limit {
            return Err(AttemptFailure::new(Reason::UpstreamTooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The wait before retry number `attempt + 1`: the base doubled per attempt (capped at
/// 2^16), scaled by `fraction` (in [0, 1)) into [half, whole] so that devices that failed
/// together do not retry together.
fn backoff(base: Duration, attempt: u32, fraction: f64) -> Duration {
    let doubled = base.saturating_mul(2_u32.saturating_pow(attempt.min(16)));
    // Not `mul_f64`: it panics when the product leaves Duration's range.
    Duration::try_from_secs_f64(doubled.as_secs_f64() * (0.5 + 0.5 * fraction))
        .unwrap_or(Duration::MAX)
}

/// Judge a 200 body against the contract.
fn parse_answer(body: &[u8], request_id: Uuid) -> Result<Advice, AttemptFailure> {
    // serde_json's messages may quote values of the body; log only where it broke.
    let answer: UpstreamAnswer = serde_json::from_slice(body).map_err(|error| AttemptFailure {
        detail: Some(format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        )),
        ..AttemptFailure::new(Reason::UpstreamMalformed)
    })?;
    if Uuid::parse_str(&answer.request_id).ok() != Some(request_id) {
        return Err(AttemptFailure::new(Reason::UpstreamMismatch));
    }
    let decision = serde_json::from_value::<AnswerDecision>(answer.decision.into())
        .map_err(|_| AttemptFailure::new(Reason::UpstreamUnknownDecision))?;
    let valid_until = match answer.valid_until.as_deref() {
        None => None,
        Some(text) => Some(parse_valid_until(text).ok_or_else(|| AttemptFailure {
            detail: Some("validUntil is not an RFC 3339 date".into()),
            ..AttemptFailure::new(Reason::UpstreamMalformed)
        })?),
    };
    // Upstream text is untrusted: capped, stripped of control characters and of anything
    // shaped like a national number before anything logs, prints or serves it.
    let clean = |text: Option<String>, max| {
        text.map(|t| beid_core::text::untrusted(&t, max))
            .filter(|t| !t.is_empty())
    };
    Ok(Advice::answered(
        Answered {
            decision,
            reason_code: clean(answer.reason_code, MAX_REASON_CODE_CHARS),
            valid_until,
            basis: answer.basis,
            clerk_message: clean(answer.clerk_message, MAX_CLERK_MESSAGE_CHARS),
        },
        Duration::ZERO,
    ))
}

/// `validUntil`: an RFC 3339 full-date (`2026-12-31`), or a date-time whose date is taken.
fn parse_valid_until(text: &str) -> Option<Date> {
    let full_date = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &full_date).ok().or_else(|| {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(OffsetDateTime::date)
    })
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The TLS reason for an error, from the first rustls error in its chain (looking inside
/// `io::Error`s, whose `source` skips the error they wrap): an alert from the peer is
/// [`Reason::UpstreamTlsRejected`], anything else [`Reason::UpstreamTls`].
///
/// Over HTTP/2 the `h2` crate keeps only the kind and text of I/O errors, so a rustls error
/// met after the handshake (TLS 1.3 servers refuse a client certificate then) arrives as an
/// `InvalidData` error with rustls' text; that text is recognised too.
fn find_tls_error(error: &(dyn StdError + 'static)) -> Option<Reason> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::AlertReceived(_) => Reason::UpstreamTlsRejected,
                _ => Reason::UpstreamTls,
            });
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if io.kind() == std::io::ErrorKind::InvalidData
                    && inner.downcast_ref::<rustls::Error>().is_none()
                    && inner.to_string().starts_with("received fatal alert")
                {
                    return Some(Reason::UpstreamTlsRejected);
                }
                current = Some(inner);
                continue;
            }
        }
        current = error.source();
    }
    None
}

/// An error and its sources, for logs. (None of our errors carries the national number.)
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        text.push_str(": ");
        text.push_str(&source.to_string());
        current = source.source();
    }
    text
}

/// `{base}/v1/eligibility-checks`, keeping any path prefix of the base URL. Refuses non-https
/// URLs, URLs with user info (secrets belong in files), queries and fragments.
pub(crate) fn endpoint(base: &Url) -> Result<Url, AdviceError> {
    let refuse = |why| AdviceError::Url {
        url: base.to_string(),
        why,
    };
    if base.scheme() != "https" {
        return Err(refuse("is not https"));
    }
    if base.host().is_none() {
        return Err(refuse("has no host"));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(refuse("carries credentials: use the client certificate"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(refuse("must not have a query or fragment"));
    }
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(ELIGIBILITY_CHECKS_PATH)
        .map_err(|_| refuse("cannot be joined with the contract's path"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advice::Decision;

    /// A transport failure is logged with every source, outermost first.
    #[test]
    fn an_error_chain_names_every_source() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connect failed")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&error), "connect failed: refused");
    }

    /// Only rustls' alert text in an `InvalidData` error (h2's copy of a rustls error) is a
    /// rejection by the server: other invalid data, or an alert's text in another kind of
    /// error, is not a TLS failure at all.
    #[test]
    fn only_a_tls_alert_in_invalid_data_reads_as_rejected() {
        use std::io::{Error, ErrorKind};
        let alert = "received fatal alert: CertificateRequired";
        let h2_copy = Error::new(ErrorKind::InvalidData, alert);
        assert_eq!(find_tls_error(&h2_copy), Some(Reason::UpstreamTlsRejected));
        let rustls_alert = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        assert_eq!(
            find_tls_error(&rustls_alert),
            Some(Reason::UpstreamTlsRejected)
        );
        let rustls_other = Error::new(ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(find_tls_error(&rustls_other), Some(Reason::UpstreamTls));
        let bad_chunk = Error::new(ErrorKind::InvalidData, "invalid chunk size line");
        assert_eq!(find_tls_error(&bad_chunk), None);
        let alert_elsewhere = Error::new(ErrorKind::ConnectionReset, alert);
        assert_eq!(find_tls_error(&alert_elsewhere), None);
    }

    /// The log says where a malformed answer broke (the body itself is never logged).
    #[test]
    fn a_malformed_answer_says_where_it_broke() {
        let failure = parse_answer(b"{\"requestId\": 12,\n", Uuid::nil()).unwrap_err();
        assert_eq!(failure.reason, Reason::UpstreamMalformed);
        let detail = failure.detail.expect("a detail for the log");
        assert!(detail.contains("error at line 1 column"), "{detail}");
    }

    #[test]
    fn endpoint_keeps_the_base_path_and_refuses_what_it_must() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            endpoint(&url("https://rules.example")).unwrap().as_str(),
            "https://rules.example/v1/eligibility-checks"
        );
        assert_eq!(
            endpoint(&url("https://rules.example/city/api"))
                .unwrap()
                .as_str(),
            "https://rules.example/city/api/v1/eligibility-checks"
        );
        assert_eq!(
            endpoint(&url("https://rules.example/city/"))
                .unwrap()
                .as_str(),
            "https://rules.example/city/v1/eligibility-checks"
        );
        for bad in [
            "http://rules.example",
            "https://user:pw@rules.example",
            "https://user@rules.example",
            "https://:pw@rules.example",
            "https://rules.example/?x=1",
            "https://rules.example/#part",
        ] {
            assert!(endpoint(&url(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_judged_against_the_contract() {
        let id = Uuid::new_v4();
        let ok = format!(
            r#"{{"requestId":"{id}","decision":"eligible","reasonCode":"K1","validUntil":"2026-12-31","extra":1}}"#
        );
        let advice = parse_answer(ok.as_bytes(), id).unwrap();
        assert_eq!(advice.decision(), Decision::Eligible);
        assert_eq!(advice.reason_code(), Some("K1"));
        assert_eq!(
            advice.valid_until().map(|d| d.to_string()),
            Some("2026-12-31".into())
        );

        let with_time = format!(
            r#"{{"requestId":"{id}","decision":"not_eligible","validUntil":"2026-12-31T23:00:00+01:00"}}"#
        );
        let advice = parse_answer(with_time.as_bytes(), id).unwrap();
        assert_eq!(advice.decision(), Decision::NotEligible);
        assert_eq!(
            advice.valid_until().map(|d| d.to_string()),
            Some("2026-12-31".into())
        );

        let reason = |body: String| parse_answer(body.as_bytes(), id).unwrap_err().reason;
        assert_eq!(reason("nope".into()), Reason::UpstreamMalformed);
        assert_eq!(
            reason(format!(r#"{{"requestId":"{id}"}}"#)),
            Reason::UpstreamMalformed
        );
        assert_eq!(
            reason(format!(
                r#"{{"requestId":"{id}","decision":"eligible","validUntil":"soon"}}"#
            )),
            Reason::UpstreamMalformed
        );
        assert_eq!(
            reason(format!(
                r#"{{"requestId":"{id}","decision":"NOT_ELIGIBLE"}}"#
            )),
            Reason::UpstreamUnknownDecision
        );
        assert_eq!(
            reason(format!(
                r#"{{"requestId":"{}","decision":"eligible"}}"#,
                Uuid::new_v4()
            )),
            Reason::UpstreamMismatch
        );
        assert_eq!(
            reason(r#"{"requestId":"x","decision":"eligible"}"#.into()),
            Reason::UpstreamMismatch
        );
    }

    #[test]
    fn the_backoff_doubles_per_attempt_within_half_and_whole() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(base, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 1, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 2, 0.5), Duration::from_millis(300));
        assert_eq!(backoff(base, 3, 1.0), Duration::from_millis(800));
        // Capped, never overflowing.
        assert_eq!(backoff(base, 40, 1.0), backoff(base, 16, 1.0));
        assert_eq!(backoff(Duration::MAX, 3, 1.0), Duration::MAX);
    }

    #[test]
    fn an_undecided_answer_is_unknown_with_the_upstreams_reason_for_the_clerk() {
        let id = Uuid::new_v4();
        let body = format!(
            r#"{{"requestId":"{id}","decision":"unknown","reasonCode":"card_blocked","clerkMessage":"Kaart geblokkeerd","basis":"registered_status"}}"#
        );
        let advice = parse_answer(body.as_bytes(), id).unwrap();
        assert_eq!(advice.decision(), Decision::Unknown);
        assert_eq!(advice.reason(), Some(Reason::UpstreamUndecided));
        assert_eq!(advice.reason_code(), Some("card_blocked"));
        assert_eq!(advice.clerk_message(), Some("Kaart geblokkeerd"));
    }

    #[test]
    fn upstream_texts_are_capped_and_never_carry_a_national_number() {
        let id = Uuid::new_v4();
        let long = "x".repeat(500);
        let body = format!(
            r#"{{"requestId":"{id}","decision":"not_eligible","reasonCode":"NN 85.61.30-033.18\u001b[31m","clerkMessage":"{long}"}}"#
        );
        let advice = parse_answer(body.as_bytes(), id).unwrap();
        assert_eq!(advice.reason_code(), Some("NN [redacted][31m"));
        assert_eq!(
            advice.clerk_message().map(|m| m.chars().count()),
            Some(MAX_CLERK_MESSAGE_CHARS + 1)
        );
    }

    #[test]
    fn a_malformed_body_is_not_quoted_in_the_failure() {
        let id = Uuid::new_v4();
        let body =
            format!(r#"{{"requestId":"{id}","decision":"eligible","reasonCode":85673003360}}"#);
        let failure = parse_answer(body.as_bytes(), id).unwrap_err();
        assert_eq!(failure.reason, Reason::UpstreamMalformed);
        let detail = failure.detail.unwrap();
        assert!(detail.starts_with("Data error at line 1"), "{detail}");
        assert!(!detail.contains("85673003360"), "{detail}");
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn only_unreachable_or_failing_upstreams_trip_the_breaker() {
        assert!(!AttemptFailure::new(Reason::UpstreamTimeout).healthy());
        assert!(!AttemptFailure::new(Reason::UpstreamStatus(503)).healthy());
        assert!(!AttemptFailure::new(Reason::UpstreamStatus(429)).healthy());
        assert!(AttemptFailure::new(Reason::UpstreamStatus(400)).healthy());
        assert!(AttemptFailure::new(Reason::UpstreamMismatch).healthy());
    }
}
