//! The diagnose report: named checks, each with a verdict, what was found, and one hint a
//! technician can act on when it is not a pass.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Works today, needs attention soon (a certificate expiring within 30 days).
    Warn,
    Fail,
    /// Not a failure, worth knowing (an empty second reader, a check that does not apply).
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name, Verdict::Pass, detail, None);
    }

    pub fn info(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name, Verdict::Info, detail, None);
    }

    pub fn warn(&mut self, name: impl Into<String>, detail: impl Into<String>, hint: &str) {
        self.push(name, Verdict::Warn, detail, Some(hint));
    }

    pub fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>, hint: &str) {
        self.push(name, Verdict::Fail, detail, Some(hint));
    }

    pub fn push(
        &mut self,
        name: impl Into<String>,
        status: Verdict,
        detail: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
            hint: hint.map(str::to_owned),
        });
        self.ok = self.checks.iter().all(|c| c.status != Verdict::Fail);
    }

    /// The human form: one line per check, its hint under it.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let mark = match check.status {
                Verdict::Pass => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
                Verdict::Info => "info",
            };
            text.push_str(&format!("[{mark}] {}: {}\n", check.name, check.detail));
            if let Some(hint) = &check.hint {
                text.push_str(&format!("       hint: {hint}\n"));
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Verdict::Fail)
            .count();
        if failed == 0 {
            text.push_str("all checks passed\n");
        } else {
            text.push_str(&format!("{failed} check(s) failed\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failure_makes_the_report_fail_and_a_warning_does_not() {
        let mut report = Report::default();
        report.pass("a", "fine");
        report.warn("b", "expires in 12 days", "renew it");
        assert!(report.ok);
        report.fail("c", "broken", "fix it");
        report.info("d", "by the way");
        assert!(!report.ok);
        let text = report.text();
        assert!(text.contains("[WARN] b: expires in 12 days\n       hint: renew it\n"));
        assert!(text.contains("[FAIL] c: broken\n       hint: fix it\n"));
        assert!(text.ends_with("1 check(s) failed\n"));
    }
}
