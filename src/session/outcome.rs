//! The clerk's final decision on an advice, and what the counter needs to record it.
//!
//! The advice is advice: the clerk interprets it and may deviate (the citizen moved here
//! yesterday and the data lags; a household situation the data cannot see). A decision that
//! differs from the advice, or any decision on an `unknown` advice, carries a deviation
//! reason from a configured list, so the city learns where its data is stale. A free note
//! is allowed but short, and never holds a national number.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::engine::EngineError;
use crate::advice::{Decision, Labels};
use beid_core::contract::{Deviation, StaffDecision};

/// The longest note a clerk may add to a deviation.
pub const MAX_NOTE_CHARS: usize = 200;

/// A reason a clerk may give for deciding other than the advice (`[counter]
/// deviation_reasons`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviationReason {
    /// Stable id, sent upstream and counted (`recently_moved`).
    pub id: String,
    /// What the clerk reads.
    pub labels: Labels,
}

/// What the counter page and the outcome rules need: the deviation reasons and the clerk's
/// labels for the rule service's reason codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCatalogue {
    pub deviation_reasons: Vec<DeviationReason>,
    /// The rule service's `reasonCode` → the clerk's words. A code without a label is shown
    /// as it came (capped and redacted).
    pub reason_codes: BTreeMap<String, Labels>,
}

fn labels(nl: &str, fr: &str, de: &str, en: &str) -> Labels {
    Labels {
        nl: nl.into(),
        fr: fr.into(),
        de: de.into(),
        en: en.into(),
    }
}

impl Default for CounterCatalogue {
    /// The defaults: four deviation reasons, and labels for the codes the city's gateway
    /// sends.
    fn default() -> Self {
        let reason = |id: &str, labels| DeviationReason {
            id: id.into(),
            labels,
        };
        Self {
            deviation_reasons: vec![
                reason(
                    "recently_moved",
                    labels(
                        "Recent naar hier verhuisd",
                        "Récemment domicilié ici",
                        "Kürzlich hierher umgezogen",
                        "Recently moved here",
                    ),
                ),
                reason(
                    "household_situation",
                    labels(
                        "Gezinssituatie",
                        "Situation familiale",
                        "Haushaltssituation",
                        "Household situation",
                    ),
                ),
                reason(
                    "data_outdated",
                    labels(
                        "Gegevens niet actueel",
                        "Données pas à jour",
                        "Daten nicht aktuell",
                        "Data out of date",
                    ),
                ),
                reason("other", labels("Andere", "Autre", "Sonstiges", "Other")),
            ],
            reason_codes: [
                (
                    "not_registered",
                    labels(
                        "Geen kansentarief geregistreerd",
                        "Pas de tarif social enregistré",
                        "Kein Sozialtarif registriert",
                        "No social tariff registered",
                    ),
                ),
                (
                    "expired",
                    labels(
                        "Kansentarief verlopen",
                        "Tarif social expiré",
                        "Sozialtarif abgelaufen",
                        "Social tariff expired",
                    ),
                ),
                (
                    "suspended",
                    labels(
                        "Kansentarief opgeschort",
                        "Tarif social suspendu",
                        "Sozialtarif ausgesetzt",
                        "Social tariff suspended",
                    ),
                ),
                (
                    "card_blocked",
                    labels(
                        "UiTPAS geblokkeerd: controleer manueel",
                        "UiTPAS bloqué : vérifiez manuellement",
                        "UiTPAS gesperrt: bitte manuell prüfen",
                        "UiTPAS card blocked: check by hand",
                    ),
                ),
                (
                    "source_unavailable",
                    labels(
                        "Bron niet bereikbaar: controleer manueel",
                        "Source injoignable : vérifiez manuellement",
                        "Quelle nicht erreichbar: bitte manuell prüfen",
                        "Source unavailable: check by hand",
                    ),
                ),
                (
                    "source_timeout",
                    labels(
                        "Bron antwoordt te traag: controleer manueel",
                        "La source répond trop lentement : vérifiez manuellement",
                        "Quelle antwortet zu langsam: bitte manuell prüfen",
                        "Source too slow: check by hand",
                    ),
                ),
                (
                    "permission_missing",
                    labels(
                        "Toegang tot de bron ontbreekt: meld het aan IT",
                        "Accès à la source manquant : prévenez l'informatique",
                        "Zugriff auf die Quelle fehlt: IT informieren",
                        "No access to the source: tell IT",
                    ),
                ),
            ]
            .into_iter()
            .map(|(code, labels)| (code.to_owned(), labels))
            .collect(),
        }
    }
}

impl CounterCatalogue {
    /// Whether `id` is a configured deviation reason.
    pub fn has_reason(&self, id: &str) -> bool {
        self.deviation_reasons.iter().any(|r| r.id == id)
    }
}

/// What the clerk asks to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeInput {
    pub use_case: String,
    pub decision: StaffDecision,
    pub deviation: Option<Deviation>,
}

/// A recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub use_case: String,
    /// The advice the clerk decided on.
    pub advice: Decision,
    pub decision: StaffDecision,
    pub deviation: Option<Deviation>,
    pub recorded_at: OffsetDateTime,
}

/// Whether the clerk's decision deviates from the advice: a different answer, or any
/// answer to an `unknown`.
pub fn deviates(advice: Decision, decision: StaffDecision) -> bool {
    !matches!(
        (advice, decision),
        (Decision::Eligible, StaffDecision::Granted)
            | (Decision::NotEligible, StaffDecision::NotGranted)
    )
}

/// Checks `input` against the advice and the catalogue: a deviation exactly when the
/// decision deviates, a configured reason, a short note without a national number.
pub fn check(
    input: &OutcomeInput,
    advice: Decision,
    catalogue: &CounterCatalogue,
) -> Result<(), EngineError> {
    match (&input.deviation, deviates(advice, input.decision)) {
        (None, true) => Err(EngineError::DeviationRequired),
        (Some(_), false) => Err(EngineError::DeviationNotApplicable),
        (None, false) => Ok(()),
        (Some(deviation), true) => {
            if !catalogue.has_reason(&deviation.reason) {
                return Err(EngineError::UnknownDeviationReason);
            }
            if let Some(note) = &deviation.note {
                if note.chars().count() > MAX_NOTE_CHARS {
                    return Err(EngineError::NoteTooLong);
                }
                if beid_core::text::redact_national_numbers(note) != *note {
                    return Err(EngineError::NoteHasNationalNumber);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(decision: StaffDecision, reason: Option<&str>, note: Option<&str>) -> OutcomeInput {
        OutcomeInput {
            use_case: "uitpas-kansentarief".into(),
            decision,
            deviation: reason.map(|reason| Deviation {
                reason: reason.into(),
                note: note.map(Into::into),
            }),
        }
    }

    #[test]
    fn a_deviation_is_required_exactly_when_the_decision_deviates() {
        let catalogue = CounterCatalogue::default();
        use Decision::*;
        use StaffDecision::*;
        for (advice, decision, deviating) in [
            (Eligible, Granted, false),
            (NotEligible, NotGranted, false),
            (Eligible, NotGranted, true),
            (NotEligible, Granted, true),
            (Unknown, Granted, true),
            (Unknown, NotGranted, true),
        ] {
            assert_eq!(deviates(advice, decision), deviating);
            let without = check(&input(decision, None, None), advice, &catalogue);
            let with = check(&input(decision, Some("other"), None), advice, &catalogue);
            if deviating {
                assert_eq!(without, Err(EngineError::DeviationRequired));
                assert_eq!(with, Ok(()));
            } else {
                assert_eq!(without, Ok(()));
                assert_eq!(with, Err(EngineError::DeviationNotApplicable));
            }
        }
    }

    #[test]
    fn reasons_come_from_the_catalogue_and_notes_are_short_and_anonymous() {
        let catalogue = CounterCatalogue::default();
        let advice = Decision::NotEligible;
        let granted = StaffDecision::Granted;
        assert_eq!(
            check(&input(granted, Some("bribe"), None), advice, &catalogue),
            Err(EngineError::UnknownDeviationReason)
        );
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            check(
                &input(granted, Some("other"), Some(&long)),
                advice,
                &catalogue
            ),
            Err(EngineError::NoteTooLong)
        );
        let exactly = "é".repeat(MAX_NOTE_CHARS);
        assert_eq!(
            check(
                &input(granted, Some("other"), Some(&exactly)),
                advice,
                &catalogue
            ),
            Ok(())
        );
        for note in ["INSZ 85.61.30-033.18", "8561300331８"] {
            assert_eq!(
                check(
                    &input(granted, Some("recently_moved"), Some(note)),
                    advice,
                    &catalogue
                ),
                Err(EngineError::NoteHasNationalNumber),
                "{note}"
            );
        }
        assert_eq!(
            check(
                &input(
                    granted,
                    Some("recently_moved"),
                    Some("Verhuisd op 2 december")
                ),
                advice,
                &catalogue
            ),
            Ok(())
        );
    }
}
