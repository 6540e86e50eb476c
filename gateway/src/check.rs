//! check: a use case's sources asked for one question and their answers combined, within
//! the check's deadline. `unknown` never becomes `not_eligible`: only a source's own "no"
//! is a "no".

use std::sync::Arc;
use std::time::Duration;

use beid_core::contract::AnswerDecision;
use beid_core::national_number::NationalNumber;
use futures_util::future::join_all;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::Combine;
use crate::metrics::Metrics;
use crate::sources::{Question, Reason, Source, SourceAnswer};

/// A configured use case.
pub struct UseCase {
    pub id: String,
    /// The rule name sent to the rule engine.
    pub rule: String,
    pub combine: Combine,
    pub sources: Vec<Arc<dyn Source>>,
}

/// The combined answer and the source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub answer: SourceAnswer,
    pub source: Option<&'static str>,
}

impl UseCase {
    /// Asks the sources as `combine` says, all within `deadline`.
    pub async fn decide(
        &self,
        request_id: Uuid,
        national_number: &NationalNumber,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Decided {
        let question = Question {
            request_id,
            national_number,
            rule: &self.rule,
        };
        let asked = |source: &Arc<dyn Source>| {
            let source = source.clone();
            async move {
                let answer = ask(source.as_ref(), question, deadline, metrics).await;
                (source.name(), answer)
            }
        };
        match self.combine {
            Combine::FirstDecisive => {
                let mut first_unknown = None;
                for source in &self.sources {
                    let (name, answer) = asked(source).await;
                    if answer.is_decisive() {
                        return decided(name, answer);
                    }
                    first_unknown.get_or_insert((name, answer));
                }
                undecided(first_unknown)
            }
            Combine::EligibleIfAny => {
                let answers = join_all(self.sources.iter().map(asked)).await;
                if let Some((name, answer)) = answers
                    .iter()
                    .find(|(_, a)| a.decision == AnswerDecision::Eligible)
                {
                    return decided(name, answer.clone());
                }
                if let Some((name, answer)) = answers.first().filter(|_| {
                    answers
                        .iter()
                        .all(|(_, a)| a.decision == AnswerDecision::NotEligible)
                }) {
                    return decided(name, answer.clone());
                }
                undecided(answers.into_iter().find(|(_, a)| !a.is_decisive()))
            }
        }
    }
}

fn decided(source: &'static str, answer: SourceAnswer) -> Decided {
    Decided {
        answer,
        source: Some(source),
    }
}

fn undecided(first: Option<(&'static str, SourceAnswer)>) -> Decided {
    match first {
        Some((source, answer)) => decided(source, answer),
        None => Decided {
            answer: SourceAnswer::unknown(Reason::SourceUnavailable),
            source: None,
        },
    }
}

/// One source, bounded by the deadline, measured and logged (decision and reason only).
async fn ask(
    source: &dyn Source,
    question: Question<'_>,
    deadline: Instant,
    metrics: &Metrics,
) -> SourceAnswer {
    let started = Instant::now();
    let answer = tokio::time::timeout_at(deadline, source.check(question))
        .await
        .unwrap_or_else(|_| SourceAnswer::unknown(Reason::SourceTimeout));
    let took: Duration = started.elapsed();
    let reason = answer.reason.as_ref().map(Reason::label);
    metrics.source(source.name(), answer.decision, reason, took);
    tracing::debug!(
        request_id = %question.request_id,
        source = source.name(),
        decision = ?answer.decision,
        reason,
        latency_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        "source answered"
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{AnswerFuture, Health};
    use beid_core::contract::Basis;

    struct Fixed(&'static str, SourceAnswer, Option<Duration>);

    impl Source for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check<'a>(&'a self, _: Question<'a>) -> AnswerFuture<'a> {
            Box::pin(async move {
                if let Some(wait) = self.2 {
                    tokio::time::sleep(wait).await;
                }
                self.1.clone()
            })
        }
        fn health(&self) -> Health {
            Health::Ready
        }
    }

    fn yes() -> SourceAnswer {
        SourceAnswer::decided(AnswerDecision::Eligible, Basis::EntitlementRule, None)
    }
    fn no() -> SourceAnswer {
        SourceAnswer::decided(
            AnswerDecision::NotEligible,
            Basis::RegisteredStatus,
            Some(Reason::NotRegistered),
        )
    }
    fn down() -> SourceAnswer {
        SourceAnswer::unknown(Reason::SourceUnavailable)
    }

    async fn decide(combine: Combine, answers: Vec<(&'static str, SourceAnswer)>) -> Decided {
        let sources: Vec<Arc<dyn Source>> = answers
            .into_iter()
            .map(|(name, answer)| Arc::new(Fixed(name, answer, None)) as Arc<dyn Source>)
            .collect();
        let use_case = UseCase {
            id: "u".into(),
            rule: "u".into(),
            combine,
            sources,
        };
        let number = NationalNumber::parse(b"85610100147").unwrap();
        use_case
            .decide(
                Uuid::nil(),
                &number,
                Instant::now() + Duration::from_secs(3),
                &Metrics::default(),
            )
            .await
    }

    #[tokio::test]
    async fn first_decisive_takes_the_first_decision_in_order() {
        let d = decide(
            Combine::FirstDecisive,
            vec![("a", down()), ("b", no()), ("c", yes())],
        )
        .await;
        assert_eq!(
            (d.source, d.answer.decision),
            (Some("b"), AnswerDecision::NotEligible)
        );
        let d = decide(
            Combine::FirstDecisive,
            vec![
                ("a", down()),
                ("b", SourceAnswer::unknown(Reason::CardBlocked)),
            ],
        )
        .await;
        assert_eq!(
            (d.source, d.answer.reason),
            (Some("a"), Some(Reason::SourceUnavailable))
        );
    }

    #[tokio::test]
    async fn eligible_if_any_never_turns_an_unknown_into_a_no() {
        let d = decide(Combine::EligibleIfAny, vec![("a", no()), ("b", yes())]).await;
        assert_eq!(
            (d.source, d.answer.decision),
            (Some("b"), AnswerDecision::Eligible)
        );
        let d = decide(Combine::EligibleIfAny, vec![("a", no()), ("b", down())]).await;
        assert_eq!(
            (d.source, d.answer.decision),
            (Some("b"), AnswerDecision::Unknown)
        );
        let d = decide(Combine::EligibleIfAny, vec![("a", no()), ("b", no())]).await;
        assert_eq!(d.answer.decision, AnswerDecision::NotEligible);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_past_the_deadline_is_a_timeout() {
        let slow: Arc<dyn Source> = Arc::new(Fixed("slow", yes(), Some(Duration::from_secs(10))));
        let use_case = UseCase {
            id: "u".into(),
            rule: "u".into(),
            combine: Combine::FirstDecisive,
            sources: vec![slow],
        };
        let number = NationalNumber::parse(b"85610100147").unwrap();
        let d = use_case
            .decide(
                Uuid::nil(),
                &number,
                Instant::now() + Duration::from_secs(2),
                &Metrics::default(),
            )
            .await;
        assert_eq!(d.answer.reason, Some(Reason::SourceTimeout));
    }
}
