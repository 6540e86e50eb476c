//! The simulated upstream: answers from a fixture, for demos and tests.
//!
//! A fixture maps national numbers to an outcome per use case, plus a default for everything
//! not listed. TOML (or JSON, by the `.json` extension):
//!
//! ```toml
//! default = "not_eligible"            # numbers and use cases not listed below
//!
//! [numbers.85673003360]
//! uitpas-kansentarief = "eligible"
//! "*" = "not_eligible"                # this number's other use cases
//!
//! [numbers.75761512379]
//! "*" = "upstream_timeout"            # any unit reason code simulates that failure
//! ```
//!
//! Use cases are looked up by their upstream rule name (what the real upstream sees), then by
//! their id. Outcomes are `eligible`, `not_eligible`, or a [`Reason`] code, which answers
//! `unknown` with that reason. The optional failure rate answers `unknown` /
//! `upstream_unavailable` at random, like an unreliable upstream would.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::circuit::CircuitState;
use super::error::AdviceError;
use super::model::{Advice, AdviceRequest, AnswerDecision, Answered, Reason};
use super::{random_fraction, AdviceFuture, AdviceService, ServiceKind, ServiceStatus};

/// The fixture compiled into the agent, used when none is configured.
pub const EMBEDDED_FIXTURE: &str = r#"# beid-agent's embedded demo fixture. Every number has valid check digits and belongs to
# nobody: specimen cards (Alice 71715100070) or months of 60 + the birth month, which no
# national or BIS number uses. The fixture cards: alice-* and gen-1.8-ec eligible for
# UiTPAS, gen-1.7-rsa2048 not.
default = "not_eligible"

[numbers.71715100070]
uitpas-kansentarief = "eligible"
lez-social-tariff = "eligible"

[numbers.03641299855]
"*" = "eligible"

[numbers.85671599731]
lez-free-registration = "eligible"

[numbers.85673003360]
uitpas-kansentarief = "eligible"
lez-social-tariff = "eligible"

[numbers.90610100155]
lez-free-registration = "eligible"

[numbers.02630400596]
"*" = "eligible"

[numbers.75761512379]
"*" = "upstream_timeout"
"#;

/// Settings of the simulated service (`[upstream.simulated]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimulatedSettings {
    /// The fixture file; the embedded one when `None`.
    pub fixture: Option<PathBuf>,
    /// How long each answer takes.
    pub latency: Duration,
    /// The share of questions, 0.0 to 1.0, answered `unknown` / `upstream_unavailable`.
    pub failure_rate: f64,
}

/// One outcome in a fixture.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Eligible,
    NotEligible,
    Unknown(Reason),
}

impl Outcome {
    fn parse(value: &str) -> Result<Self, AdviceError> {
        match value {
            "eligible" => Ok(Self::Eligible),
            "not_eligible" => Ok(Self::NotEligible),
            other => Reason::from_code(other).map(Self::Unknown).ok_or_else(|| {
                AdviceError::FixtureValue {
                    value: other.to_owned(),
                }
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    default: String,
    #[serde(default)]
    numbers: BTreeMap<String, BTreeMap<String, String>>,
}

/// A parsed fixture. Its `Debug` shows how many numbers it holds, never the numbers.
#[derive(Clone)]
pub struct Fixture {
    default: Outcome,
    numbers: HashMap<String, HashMap<String, Outcome>>,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("numbers", &self.numbers.len())
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// The embedded demo fixture.
    /// The embedded demo fixture. A failure here is a bug of the build (the text is
    /// tested), and it is an error, never a fall-back: an empty fixture would answer
    /// "not eligible" to every card, and no failure of ours may become a "no".
    pub fn embedded() -> Result<Self, AdviceError> {
        Self::from_toml(EMBEDDED_FIXTURE)
    }

    /// Parse a TOML fixture.
    pub fn from_toml(text: &str) -> Result<Self, AdviceError> {
        Self::compile(toml::from_str(text).map_err(AdviceError::FixtureToml)?)
    }

    /// Parse a JSON fixture.
    pub fn from_json(text: &str) -> Result<Self, AdviceError> {
        Self::compile(serde_json::from_str(text).map_err(AdviceError::FixtureJson)?)
    }

    /// Read a fixture file: JSON if its name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, AdviceError> {
        let text = std::fs::read_to_string(path).map_err(|source| AdviceError::Read {
            what: "fixture",
            path: path.to_owned(),
            source,
        })?;
        if path.extension().is_some_and(|ext| ext == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    fn compile(file: FixtureFile) -> Result<Self, AdviceError> {
        let default = Outcome::parse(&file.default)?;
        let mut numbers = HashMap::with_capacity(file.numbers.len());
        for (index, (number, use_cases)) in file.numbers.into_iter().enumerate() {
            if number.len() != 11 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AdviceError::FixtureEntry {
                    index,
                    why: "the key is not a national number of 11 digits",
                });
            }
            let mut outcomes = HashMap::with_capacity(use_cases.len());
            for (use_case, value) in use_cases {
                outcomes.insert(use_case, Outcome::parse(&value)?);
            }
            numbers.insert(number, outcomes);
        }
        Ok(Self { default, numbers })
    }

    fn outcome(&self, request: &AdviceRequest<'_>) -> Outcome {
        let Some(outcomes) = self.numbers.get(request.national_number.expose()) else {
            return self.default;
        };
        [request.use_case.rule(), request.use_case.id(), "*"]
            .iter()
            .find_map(|key| outcomes.get(*key).copied())
            .unwrap_or(self.default)
    }
}

/// Answers from a [`Fixture`], with optional latency and random failures.
#[derive(Debug)]
pub struct SimulatedAdviceService {
    fixture: Fixture,
    latency: Duration,
    failure_rate: f64,
}

impl SimulatedAdviceService {
    /// The service these settings describe (reads the fixture file, if any).
    pub fn new(settings: &SimulatedSettings) -> Result<Self, AdviceError> {
        let fixture = match &settings.fixture {
            Some(path) => Fixture::load(path)?,
            None => Fixture::embedded()?,
        };
        Ok(Self::with_fixture(
            fixture,
            settings.latency,
            settings.failure_rate,
        ))
    }

    /// A service answering from this fixture. `failure_rate` is clamped to 0.0..=1.0.
    pub fn with_fixture(fixture: Fixture, latency: Duration, failure_rate: f64) -> Self {
        let failure_rate = if failure_rate.is_nan() {
            0.0
        } else {
            failure_rate.clamp(0.0, 1.0)
        };
        Self {
            fixture,
            latency,
            failure_rate,
        }
    }

    async fn answer(&self, request: AdviceRequest<'_>) -> Advice {
        let started = Instant::now();
        if !request.use_case.allows(request.channel) {
            return Advice::unknown(Reason::UseCaseNotAllowed, started.elapsed());
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let outcome = if self.failure_rate > 0.0 && random_fraction() < self.failure_rate {
            Outcome::Unknown(Reason::UpstreamUnavailable)
        } else {
            self.fixture.outcome(&request)
        };
        let decided = |decision| {
            Advice::answered(
                Answered {
                    decision,
                    reason_code: None,
                    valid_until: None,
                    basis: None,
                    clerk_message: None,
                },
                started.elapsed(),
            )
        };
        let advice = match outcome {
            Outcome::Eligible => decided(AnswerDecision::Eligible),
            Outcome::NotEligible => decided(AnswerDecision::NotEligible),
            Outcome::Unknown(reason) => Advice::unknown(reason, started.elapsed()),
        };
        tracing::debug!(
            use_case = request.use_case.id(),
            channel = %request.channel,
            decision = %advice.decision(),
            reason = advice.reason().map(Reason::code),
            "simulated advice"
        );
        advice
    }
}

impl AdviceService for SimulatedAdviceService {
    fn advise<'a>(&'a self, request: AdviceRequest<'a>) -> AdviceFuture<'a> {
        Box::pin(self.answer(request))
    }

    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            kind: ServiceKind::Simulated,
            circuit: CircuitState::Closed,
            consecutive_failures: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advice::{Catalogue, Channel, Decision, Labels, UseCase};
    use crate::beid::NationalNumber;

    fn number(digits: &str) -> NationalNumber {
        NationalNumber::parse(digits.as_bytes()).unwrap()
    }

    async fn ask(
        service: &SimulatedAdviceService,
        digits: &str,
        use_case: &str,
        channel: Channel,
    ) -> Advice {
        let catalogue = Catalogue::default();
        let national_number = number(digits);
        service
            .advise(AdviceRequest {
                national_number: &national_number,
                use_case: catalogue.get(use_case).unwrap(),
                channel,
                device_id: "balie-3",
            })
            .await
    }

    #[tokio::test]
    async fn embedded_fixture_answers_per_number_and_use_case() {
        let service = SimulatedAdviceService::new(&SimulatedSettings::default()).unwrap();
        let counter = Channel::Counter;
        let advice = ask(&service, "85673003360", "uitpas-kansentarief", counter).await;
        assert_eq!(advice.decision(), Decision::Eligible);
        let advice = ask(&service, "85673003360", "lez-free-registration", counter).await;
        assert_eq!(advice.decision(), Decision::NotEligible);
        let advice = ask(&service, "02630400596", "lez-free-registration", counter).await;
        assert_eq!(advice.decision(), Decision::Eligible);
        let advice = ask(&service, "75761512379", "lez-social-tariff", Channel::Kiosk).await;
        assert_eq!(advice.decision(), Decision::Unknown);
        assert_eq!(advice.reason(), Some(Reason::UpstreamTimeout));
        // A number not in the fixture gets the default.
        let advice = ask(&service, "90610100155", "uitpas-kansentarief", counter).await;
        assert_eq!(advice.decision(), Decision::NotEligible);
        assert!(!format!("{:?}", service).contains("85673003360"));
    }

    #[tokio::test]
    async fn json_fixture_and_rule_names() {
        let fixture = Fixture::from_json(
            r#"{"default": "upstream_unavailable",
                "numbers": {"85673003360": {"lez_v2": "not_eligible"}}}"#,
        )
        .unwrap();
        let service = SimulatedAdviceService::with_fixture(fixture, Duration::ZERO, 0.0);
        let labels = Labels {
            nl: "n".into(),
            fr: "f".into(),
            de: "d".into(),
            en: "e".into(),
        };
        let use_case = UseCase::new("lez", Some("lez_v2".into()), labels, vec![Channel::Counter]);
        let national_number = number("85673003360");
        let request = AdviceRequest {
            national_number: &national_number,
            use_case: &use_case,
            channel: Channel::Counter,
            device_id: "balie-3",
        };
        assert_eq!(
            service.advise(request).await.decision(),
            Decision::NotEligible
        );
        let other = number("90610100155");
        let advice = service
            .advise(AdviceRequest {
                national_number: &other,
                ..request
            })
            .await;
        assert_eq!(advice.reason(), Some(Reason::UpstreamUnavailable));
        let kiosk = service
            .advise(AdviceRequest {
                channel: Channel::Kiosk,
                ..request
            })
            .await;
        assert_eq!(kiosk.reason(), Some(Reason::UseCaseNotAllowed));
    }

    #[tokio::test]
    async fn failure_rate_one_always_fails_and_never_says_no() {
        let service =
            SimulatedAdviceService::with_fixture(Fixture::embedded().unwrap(), Duration::ZERO, 1.0);
        for _ in 0..20 {
            let advice = ask(
                &service,
                "85673003360",
                "uitpas-kansentarief",
                Channel::Kiosk,
            )
            .await;
            assert_eq!(advice.reason(), Some(Reason::UpstreamUnavailable));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_simulated() {
        let service = SimulatedAdviceService::with_fixture(
            Fixture::embedded().unwrap(),
            Duration::from_millis(1500),
            0.0,
        );
        let started = Instant::now();
        let advice = ask(
            &service,
            "85673003360",
            "uitpas-kansentarief",
            Channel::Kiosk,
        )
        .await;
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        assert_eq!(advice.latency(), Duration::from_millis(1500));
    }

    #[test]
    fn bad_fixtures_are_refused_without_naming_the_number() {
        let bad_key =
            Fixture::from_toml("default = \"eligible\"\n[numbers.1234]\nx = \"eligible\"\n");
        let message = bad_key.unwrap_err().to_string();
        assert!(message.contains("entry 0"), "{message}");
        assert!(!message.contains("1234"), "{message}");
        assert!(matches!(
            Fixture::from_toml("default = \"maybe\"\n"),
            Err(AdviceError::FixtureValue { .. })
        ));
        assert!(matches!(
            Fixture::from_toml("default = \"eligible\"\nextra = 1\n"),
            Err(AdviceError::FixtureToml(_))
        ));
        assert!(matches!(
            Fixture::from_json("{"),
            Err(AdviceError::FixtureJson(_))
        ));
        assert!(Fixture::from_toml(EMBEDDED_FIXTURE).is_ok());
    }
}
