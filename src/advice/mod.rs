//! advice: asks the city's rule service whether a citizen is eligible for a use case.
//!
//! Knows nothing of cards or readers: it gets a [`NationalNumber`](crate::beid::NationalNumber)
//! and a [`UseCase`] and answers an [`Advice`]. Only the upstream can say `not_eligible`; every
//! failure on the way is `unknown` with a [`Reason`]. The national number leaves this layer
//! only in the body of the upstream request: never in logs, errors or `Debug` output.
//!
//! This is the only module that names `reqwest`.

mod catalogue;
mod circuit;
mod error;
mod expiry;
mod http;
mod model;
pub mod probe;
mod simulated;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use beid_core::contract::OutcomeFeedback;
use serde::Serialize;

pub use catalogue::{Catalogue, Labels, Language, UseCase};
pub use circuit::{CircuitSettings, CircuitState};
pub use error::AdviceError;
pub use expiry::CertificateExpiry;
pub use http::{HttpAdviceService, HttpSettings};
pub use model::{Advice, AdviceRequest, AnswerDecision, Basis, Channel, Decision, Reason};
pub use simulated::{Fixture, SimulatedAdviceService, SimulatedSettings, EMBEDDED_FIXTURE};

// For `config check`: the same URL rule the service uses, so the same URLs pass or fail.
pub(crate) use http::endpoint as http_endpoint;

/// The future an [`AdviceService`] returns: boxed so that `Arc<dyn AdviceService>` works.
pub type AdviceFuture<'a> = Pin<Box<dyn Future<Output = Advice> + Send + 'a>>;

/// The future of [`AdviceService::send_outcome`].
pub type OutcomeFuture<'a> = Pin<Box<dyn Future<Output = OutcomeDelivery> + Send + 'a>>;

/// What became of a clerk's outcome sent to the rule service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeDelivery {
    /// The service took it (`2xx`).
    Delivered,
    /// The service does not take outcomes (`404`/`501`, or a service without the
    /// operation): not sent again until the agent restarts.
    NotSupported,
    /// It could not be delivered (after retries); it stays in the agent's audit log.
    Failed,
}

/// Something that answers eligibility questions.
///
/// `advise` never fails: whatever goes wrong becomes [`Decision::Unknown`] with a [`Reason`].
/// Dropping the future (the card was removed) cancels the question.
pub trait AdviceService: Send + Sync {
    /// Ask one question.
    fn advise<'a>(&'a self, request: AdviceRequest<'a>) -> AdviceFuture<'a>;

    /// What this service is and how its upstream is doing, for status pages.
    fn status(&self) -> ServiceStatus;

    /// The not-after times of the certificates on the way to the upstream, for monitoring
    /// (none for a service without TLS).
    fn certificate_expiry(&self) -> CertificateExpiry {
        CertificateExpiry::default()
    }

    /// Tells the service what the clerk decided on its answer to `request_id` (the
    /// optional outcome operation of the contract). No national number travels: the
    /// request id ties it to the question.
    fn send_outcome<'a>(
        &'a self,
        request_id: uuid::Uuid,
        outcome: &'a OutcomeFeedback,
    ) -> OutcomeFuture<'a> {
        let _ = (request_id, outcome);
        Box::pin(std::future::ready(OutcomeDelivery::NotSupported))
    }
}

/// Which kind of service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// The city's rule service over HTTPS with mutual TLS.
    Http,
    /// A fixture file, for demos and tests.
    Simulated,
}

/// A service's status: its kind and its circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Which kind of service answers.
    pub kind: ServiceKind,
    /// The breaker's state ([`CircuitState::Closed`] for the simulated service).
    pub circuit: CircuitState,
    /// Failures in a row since the last answer.
    pub consecutive_failures: u32,
}

/// How to reach the upstream: the `[upstream]` configuration section, checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UpstreamSettings {
    /// The real rule service.
    Http(HttpSettings),
    /// The simulated service.
    Simulated(SimulatedSettings),
}

/// A uniform fraction in [0, 1) from the OS random source (through uuid v4): for jitter and
/// simulated failures, no extra dependency.
pub(crate) fn random_fraction() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75; // 53 random bits
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 mantissa exactly
    let fraction = bits as f64 / (1_u64 << 53) as f64;
    fraction
}

/// Build the service these settings describe.
pub fn build(settings: &UpstreamSettings) -> Result<Arc<dyn AdviceService>, AdviceError> {
    Ok(match settings {
        UpstreamSettings::Http(http) => Arc::new(HttpAdviceService::new(http)?),
        UpstreamSettings::Simulated(simulated) => Arc::new(SimulatedAdviceService::new(simulated)?),
    })
}
