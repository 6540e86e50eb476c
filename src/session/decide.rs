//! From a read card to an advice: the agent's own rules first, then the upstream.
//!
//! The agent can only ever withhold a "yes" or a "no": a card that is not authentic, has a
//! broken national number, or has expired (unless policy allows it) gets `unknown` with its
//! reason and the upstream is not asked. Only the upstream says `not_eligible`.

use std::time::{Duration, Instant};

use time::Date;

use crate::advice::{Advice, AdviceRequest, AdviceService, Channel, Reason, UseCase};
use crate::beid::Identity;

/// What a card must be to get an advice (`[policy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CardPolicy {
    pub allow_expired_cards: bool,
}

/// One question: this card, this use case, from this device.
pub struct Question<'a> {
    pub identity: &'a Identity,
    /// The card's data proved authentic (signature, trusted root, chip when checked).
    pub authentic: bool,
    pub use_case: &'a UseCase,
    pub channel: Channel,
    pub device_id: &'a str,
    pub today: Date,
}

/// The agent's reason to answer `unknown` without asking, if there is one.
pub fn refusal(question: &Question, policy: CardPolicy) -> Option<Reason> {
    let number_ok = question
        .identity
        .national_number
        .as_ref()
        .is_some_and(|n| n.checksum().is_valid());
    if !question.authentic {
        Some(Reason::CardNotAuthentic)
    } else if !number_ok {
        Some(Reason::NationalNumberInvalid)
    } else if !policy.allow_expired_cards && question.identity.is_expired_on(question.today) {
        Some(Reason::CardExpired)
    } else if !question.use_case.allows(question.channel) {
        Some(Reason::UseCaseNotAllowed)
    } else {
        None
    }
}

/// Decides: the agent's rules, then the upstream.
pub async fn decide(
    service: &dyn AdviceService,
    question: &Question<'_>,
    policy: CardPolicy,
) -> Advice {
    let started = Instant::now();
    if let Some(reason) = refusal(question, policy) {
        return Advice::unknown(reason, started.elapsed());
    }
    let Some(national_number) = question.identity.national_number.as_ref() else {
        return Advice::unknown(Reason::NationalNumberInvalid, Duration::ZERO);
    };
    service
        .advise(AdviceRequest {
            national_number,
            use_case: question.use_case,
            channel: question.channel,
            device_id: question.device_id,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advice::{Catalogue, Decision, Fixture, SimulatedAdviceService};
    use time::macros::date;

    fn identity(number: &str, end: Date) -> Identity {
        Identity {
            national_number: crate::beid::NationalNumber::parse(number.as_bytes()).ok(),
            validity_end: Some(end),
            ..Identity::default()
        }
    }

    /// A service that fails the test if it is asked anything.
    struct NeverAsk;
    impl AdviceService for NeverAsk {
        fn advise<'a>(&'a self, _: AdviceRequest<'a>) -> crate::advice::AdviceFuture<'a> {
            Box::pin(async { panic!("the upstream must not be asked") })
        }
        fn status(&self) -> crate::advice::ServiceStatus {
            SimulatedAdviceService::with_fixture(Fixture::embedded().unwrap(), Duration::ZERO, 0.0)
                .status()
        }
    }

    #[tokio::test]
    async fn the_agent_never_says_no_on_its_own() {
        let catalogue = Catalogue::defaults();
        let use_case = catalogue.get("uitpas-kansentarief").unwrap();
        let valid = identity("85673003360", date!(2030 - 01 - 01));
        let expired = identity("85673003360", date!(2020 - 01 - 01));
        let broken = identity("85073003329", date!(2030 - 01 - 01));
        let cases = [
            (&valid, false, Reason::CardNotAuthentic),
            (&broken, true, Reason::NationalNumberInvalid),
            (&expired, true, Reason::CardExpired),
        ];
        for (identity, authentic, reason) in cases {
            let question = Question {
                identity,
                authentic,
                use_case,
                channel: Channel::Counter,
                device_id: "balie-1",
                today: date!(2026 - 11 - 23),
            };
            let advice = decide(&NeverAsk, &question, CardPolicy::default()).await;
            assert_eq!(advice.decision(), Decision::Unknown);
            assert_eq!(advice.reason(), Some(reason));
        }
    }

    #[tokio::test]
    async fn policy_may_let_expired_cards_through() {
        let catalogue = Catalogue::defaults();
        let use_case = catalogue.get("uitpas-kansentarief").unwrap();
        let expired = identity("85673003360", date!(2020 - 01 - 01));
        let question = Question {
            identity: &expired,
            authentic: true,
            use_case,
            channel: Channel::Counter,
            device_id: "balie-1",
            today: date!(2026 - 11 - 23),
        };
        let policy = CardPolicy {
            allow_expired_cards: true,
        };
        assert_eq!(refusal(&question, policy), None);
        let service =
            SimulatedAdviceService::with_fixture(Fixture::embedded().unwrap(), Duration::ZERO, 0.0);
        let advice = decide(&service, &question, policy).await;
        // The expired card is asked upstream, and the embedded fixture says eligible.
        assert_eq!(advice.decision(), Decision::Eligible);
        assert_eq!(advice.reason(), None);
    }
}
