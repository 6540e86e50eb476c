//! What the clerk and the kiosk read and hear: the deviation reasons, the reason-code labels,
//! and where the metrics go for the fleet.

use std::collections::BTreeSet;

use super::super::model::Sections;
use super::super::path::KeyPath;
use super::super::problem::ProblemKind;
use super::Checker;
use crate::advice::Labels;

const MAX_REASON_ID: usize = 40;
const MAX_REASON_CODE: usize = 64;
const MAX_TEXTFILE_INTERVAL_S: u64 = 300;

pub(super) fn check(checker: &mut Checker<'_>, sections: &Sections) {
    check_deviation_reasons(checker, sections);
    for (code, labels) in &sections.reason_codes {
        let key = KeyPath::of(&["reason_codes", code]);
        let ok = (1..=MAX_REASON_CODE).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !ok {
            checker.report(
                key.clone(),
                ProblemKind::invalid_with(
                    format!("must be 1 to {MAX_REASON_CODE} of A-Z a-z 0-9 _ - . :"),
                    "use the reasonCode exactly as the rule service sends it",
                ),
            );
        }
        check_labels(checker, &key, labels);
    }
    check_metrics(checker, sections);
}

fn check_deviation_reasons(checker: &mut Checker<'_>, sections: &Sections) {
    let array = KeyPath::of(&["counter", "deviation_reasons"]);
    let reasons = &sections.counter.deviation_reasons;
    if reasons.is_empty() && checker.written_empty(&array) {
        checker.report(
            array.clone(),
            ProblemKind::invalid_with(
                "must offer at least one reason",
                "leave the key out for the four defaults, or keep `other`",
            ),
        );
    }
    let mut ids = BTreeSet::new();
    for (position, reason) in reasons.iter().enumerate() {
        let path = checker.element(&array, position);
        let id_ok = (1..=MAX_REASON_ID).contains(&reason.id.len())
            && reason
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !id_ok {
            checker.report(
                path.key("id"),
                ProblemKind::invalid(format!("must be 1 to {MAX_REASON_ID} of a-z 0-9 _")),
            );
        } else if !ids.insert(reason.id.as_str()) {
            checker.report(
                path.key("id"),
                ProblemKind::invalid("is the id of an earlier reason"),
            );
        }
        check_labels(checker, &path.key("labels"), &reason.labels);
    }
}

/// Every language has a label: the kiosk and the clerk's page speak all four.
fn check_labels(checker: &mut Checker<'_>, path: &KeyPath, labels: &Labels) {
    for language in labels.blank() {
        checker.report(
            path.key(language.code()),
            ProblemKind::invalid("must not be blank"),
        );
    }
}

/// The textfile must be where node_exporter looks: a `*.prom` file in an existing folder.
fn check_metrics(checker: &mut Checker<'_>, sections: &Sections) {
    let table = KeyPath::of(&["metrics"]);
    let metrics = &sections.metrics;
    if let Some(path) = &metrics.textfile {
        let key = table.key("textfile");
        if path.extension().is_none_or(|e| e != "prom") {
            checker.report(
                key.clone(),
                ProblemKind::invalid_with(
                    "must end in .prom",
                    "node_exporter's textfile collector reads only *.prom files",
                ),
            );
        }
        match path.parent() {
            Some(folder) if folder.is_dir() => {}
            folder => checker.report(
                key,
                ProblemKind::invalid_with(
                    format!(
                        "its folder {} does not exist",
                        folder.unwrap_or(path).display()
                    ),
                    "install prometheus-node-exporter (it makes /var/lib/prometheus/node-exporter) or name another folder",
                ),
            ),
        }
    }
    if !(1..=MAX_TEXTFILE_INTERVAL_S).contains(&metrics.textfile_interval_s) {
        checker.report(
            table.key("textfile_interval_s"),
            ProblemKind::invalid(format!("must be between 1 and {MAX_TEXTFILE_INTERVAL_S}")),
        );
    }
}
