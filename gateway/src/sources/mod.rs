//! sources: where decisions come from. Each source answers a [`Question`] with a
//! [`SourceAnswer`]: `eligible`, `not_eligible`, or `unknown` with a [`Reason`]. A source
//! says `not_eligible` only when the source itself said no; every failure of ours or of
//! the source (down, slow, refusing us, an answer we do not understand) is `unknown`.
//!
//! Sources hold the credentials of their services (publiq's client credentials, the rule
//! engine's client certificate): those never leave the gateway.

pub mod backoff;
mod http;
pub mod rules_http;
pub mod uitpas;

use std::future::Future;
use std::pin::Pin;

use beid_core::contract::{AnswerDecision, Basis};
use beid_core::national_number::NationalNumber;
use time::Date;
use uuid::Uuid;

/// One question to a source.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub request_id: Uuid,
    pub national_number: &'a NationalNumber,
    /// The rule name for the use case (the rule engine's; UiTPAS ignores it).
    pub rule: &'a str,
}

/// Why there is no decision, or what qualifies one: the contract's `reasonCode`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// No passholder, or no membership in the organizer's card systems.
    NotRegistered,
    /// A membership in the organizer's card systems, without social tariff.
    NoSocialTariff,
    SocialTariffExpired,
    SocialTariffSuspended,
    /// Eligible, but the social tariff's end date has passed (UiTPAS's grace period).
    InGracePeriod,
    /// A blocked card or membership: the source will not say.
    CardBlocked,
    /// The source failed, refused to serve (429, 5xx), or is in back-off after failing.
    SourceUnavailable,
    /// The source did not answer in time.
    SourceTimeout,
    /// The source's answer could not be read or mapped.
    SourceMalformed,
    /// The source refused the question (4xx other than the ones above).
    SourceRejected,
    /// The source refused our credentials, even after a fresh token.
    SourceUnauthorized,
    /// The source does not let us ask (a permission missing): a configuration error.
    PermissionMissing,
    /// The source is starting: its permissions are not known yet.
    SourceNotReady,
    /// The use case is not configured on this gateway.
    UseCaseNotConfigured,
    /// The rule engine's own code (untrusted text, cleaned).
    Engine(String),
}

impl Reason {
    /// The stable code sent as `reasonCode`, logged and counted.
    pub fn code(&self) -> &str {
        match self {
            Self::Engine(code) => code,
            other => other.label(),
        }
    }

    /// The code as a metric label: the engine's own codes, not a bounded set, are `engine`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotRegistered => "not_registered",
            Self::NoSocialTariff => "no_social_tariff",
            Self::SocialTariffExpired => "social_tariff_expired",
            Self::SocialTariffSuspended => "social_tariff_suspended",
            Self::InGracePeriod => "in_grace_period",
            Self::CardBlocked => "card_blocked",
            Self::SourceUnavailable => "source_unavailable",
            Self::SourceTimeout => "source_timeout",
            Self::SourceMalformed => "source_malformed",
            Self::SourceRejected => "source_rejected",
            Self::SourceUnauthorized => "source_unauthorized",
            Self::PermissionMissing => "permission_missing",
            Self::SourceNotReady => "source_not_ready",
            Self::UseCaseNotConfigured => "use_case_not_configured",
            Self::Engine(_) => "engine",
        }
    }
}

/// A source's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAnswer {
    pub decision: AnswerDecision,
    pub reason: Option<Reason>,
    pub basis: Option<Basis>,
    pub valid_until: Option<Date>,
    /// The source's sentence for the clerk (UiTPAS's `endUserMessage`), already cleaned.
    pub clerk_message: Option<String>,
}

impl SourceAnswer {
    /// A decision resting on `basis`.
    pub fn decided(decision: AnswerDecision, basis: Basis, reason: Option<Reason>) -> Self {
        Self {
            decision,
            reason,
            basis: Some(basis),
            valid_until: None,
            clerk_message: None,
        }
    }

    /// No decision, for this reason.
    pub fn unknown(reason: Reason) -> Self {
        Self {
            decision: AnswerDecision::Unknown,
            reason: Some(reason),
            basis: None,
            valid_until: None,
            clerk_message: None,
        }
    }

    /// With the source's message for the clerk.
    pub fn with_message(mut self, message: Option<String>) -> Self {
        self.clerk_message = message;
        self
    }

    pub fn is_decisive(&self) -> bool {
        self.decision != AnswerDecision::Unknown
    }
}

/// Whether a source can answer now (for `GET /v1/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Not now, with a stable code (`permission_missing`, `permissions_unknown`, `backoff`).
    NotReady(&'static str),
}

pub type AnswerFuture<'a> = Pin<Box<dyn Future<Output = SourceAnswer> + Send + 'a>>;

/// A source of decisions.
pub trait Source: Send + Sync {
    /// Its name in the configuration, logs, metrics and audit (`uitpas`, `rules-http`).
    fn name(&self) -> &'static str;

    /// Answers one question. The caller bounds it by the check's deadline (and answers
    /// `source_timeout` past it); the source also bounds each of its own calls.
    fn check<'a>(&'a self, question: Question<'a>) -> AnswerFuture<'a>;

    fn health(&self) -> Health;
}
