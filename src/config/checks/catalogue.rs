//! `[[use_cases]]`: the advice layer's own rules for a catalogue, placed at their keys.

use super::super::path::KeyPath;
use super::super::problem::ProblemKind;
use super::Checker;
use crate::advice::{AdviceError, Catalogue, UseCase};

/// Checks the configured use cases; returns the ids of the catalogue that applies (the
/// configured one, or the shipped defaults), for the keys that name use cases.
pub(super) fn check(checker: &mut Checker<'_>, use_cases: Option<&[UseCase]>) -> Vec<String> {
    let Some(use_cases) = use_cases else {
        return Catalogue::defaults()
            .iter()
            .map(|u| u.id().to_owned())
            .collect();
    };
    let array = KeyPath::of(&["use_cases"]);
    for problem in Catalogue::problems(use_cases) {
        match problem {
            AdviceError::UseCase { index, field, why } => {
                let mut path = checker.element(&array, index);
                for part in field.split('.') {
                    path = path.key(part);
                }
                checker.report(path, ProblemKind::invalid(why));
            }
            other => checker.report(array.clone(), ProblemKind::invalid(other.to_string())),
        }
    }
    use_cases.iter().map(|u| u.id().to_owned()).collect()
}
