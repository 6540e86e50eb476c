//! The checks of the machine around the agent: pcscd's version and whether it asks polkit
//! (pcsc-lite built with polkit, the default from 2.0 and on Debian trixie), and the clock.

use std::path::{Path, PathBuf};
use std::process::Command;

use time::{Duration, OffsetDateTime};

use super::report::Report;
use super::setup::day;

/// The polkit rule the Debian package installs (`hardware/polkit/60-beid-agent.rules` in the
/// source): it lets exactly the `beid-agent` user use pcscd where pcscd asks polkit.
const POLKIT_RULE: &str = "/usr/share/polkit-1/rules.d/60-beid-agent.rules";

/// Where to look for pcscd and for polkit's files; the tests point it elsewhere.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub pcscd: Vec<PathBuf>,
    /// pcsc-lite's polkit action file: present when pcscd asks polkit.
    pub pcsc_policy: PathBuf,
    /// Where polkit rules are read from.
    pub rules_dirs: Vec<PathBuf>,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            pcscd: ["/usr/sbin/pcscd", "/usr/bin/pcscd", "/sbin/pcscd"]
                .map(PathBuf::from)
                .to_vec(),
            pcsc_policy: PathBuf::from("/usr/share/polkit-1/actions/org.debian.pcsc-lite.policy"),
            rules_dirs: ["/etc/polkit-1/rules.d", "/usr/share/polkit-1/rules.d"]
                .map(PathBuf::from)
                .to_vec(),
        }
    }
}

/// pcscd's version, and whether the agent's user may talk to it when it asks polkit.
/// Returns the version when pcscd is installed.
pub fn check_pcscd_install(report: &mut Report, paths: &HostPaths) -> Option<String> {
    let Some(binary) = paths.pcscd.iter().find(|path| path.is_file()) else {
        report.fail(
            "pcscd installed",
            "pcscd is not installed",
            "install it: `apt install pcscd` (the beid-agent package depends on it)",
        );
        return None;
    };
    let version = pcscd_version(binary);
    let shown = version.as_deref().unwrap_or("unknown version");
    report.pass("pcscd installed", format!("{} ({shown})", binary.display()));
    check_polkit(report, paths, shown);
    version
}

fn check_polkit(report: &mut Report, paths: &HostPaths, version: &str) {
    const NAME: &str = "pcscd access (polkit)";
    if !paths.pcsc_policy.exists() {
        report.info(
            NAME,
            format!("pcsc-lite {version} does not ask polkit: no rule needed"),
        );
        return;
    }
    match agent_rule(&paths.rules_dirs) {
        Some(rule) => report.pass(
            NAME,
            format!(
                "pcsc-lite {version} asks polkit; {} grants the beid-agent user",
                rule.display()
            ),
        ),
        None => {
            let dirs: Vec<String> = paths
                .rules_dirs
                .iter()
                .map(|dir| dir.display().to_string())
                .collect();
            report.fail(
                NAME,
                format!(
                    "pcsc-lite {version} asks polkit, and no rule in {} grants the beid-agent user \
                     access: pcscd refuses the agent without the rule {POLKIT_RULE}",
                    dirs.join(" or ")
                ),
                &format!(
                    "install the polkit rule {POLKIT_RULE}: `apt install --reinstall beid-agent` \
                     restores it (polkitd reads rules at once, nothing to restart); without the \
                     package, copy hardware/polkit/60-beid-agent.rules from the agent's source \
                     into /etc/polkit-1/rules.d/"
                ),
            );
        }
    }
}

/// A rules file that grants the agent's user pcsc access.
fn agent_rule(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "rules"))
        .find(|path| {
            std::fs::read_to_string(path).is_ok_and(|text| {
                text.contains("beid-agent") && text.contains("org.debian.pcsc-lite.access_pcsc")
            })
        })
}

/// `pcscd --version` prints `pcsc-lite version 1.9.9.` first.
fn pcscd_version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    parse_pcscd_version(&String::from_utf8_lossy(&output.stdout))
}

fn parse_pcscd_version(text: &str) -> Option<String> {
    let rest = text.lines().next()?.split("version").nth(1)?;
    let version = rest.trim().trim_end_matches('.');
    (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then(|| version.to_owned())
}

/// The earliest date this release can be running at: a clock before it is wrong.
const RELEASED: OffsetDateTime = time::macros::datetime!(2026-11-01 00:00 UTC);

/// How far our clock may be from the upstream's before certificates and card dates suffer.
const MAX_SKEW: Duration = Duration::minutes(5);

/// The system clock: not before this release, not before the last audit record, and close to
/// the upstream's when it told its time.
pub fn check_clock(
    report: &mut Report,
    now: OffsetDateTime,
    upstream: Option<OffsetDateTime>,
    last_audit_record: Option<OffsetDateTime>,
) {
    const NAME: &str = "clock";
    const HINT: &str =
        "set the time and keep it synchronised: `timedatectl set-ntp true` (card and certificate checks depend on the date)";
    if now < RELEASED {
        report.fail(
            NAME,
            format!("the system date {} is before this release", day(now)),
            HINT,
        );
        return;
    }
    if let Some(last) = last_audit_record {
        if last > now + Duration::minutes(1) {
            report.fail(
                NAME,
                format!(
                    "the clock went back: the audit log's last record is dated {last}, now is {now}"
                ),
                HINT,
            );
            return;
        }
    }
    match upstream {
        Some(theirs) => {
            let skew = now - theirs;
            if skew.abs() > MAX_SKEW {
                report.fail(
                    NAME,
                    format!("{} s away from the upstream's clock", skew.whole_seconds()),
                    HINT,
                );
            } else {
                report.pass(
                    NAME,
                    format!(
                        "agrees with the upstream's within {} s",
                        skew.whole_seconds().abs()
                    ),
                );
            }
        }
        None => report.info(NAME, format!("{now} (no upstream clock to compare with)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::diagnose::report::Verdict;

    fn status(report: &Report, name: &str) -> Verdict {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap()
    }

    #[test]
    fn pcscd_versions_are_read_from_its_banner() {
        assert_eq!(
            parse_pcscd_version("pcsc-lite version 1.9.9.\nCopyright (C) 1999\n").as_deref(),
            Some("1.9.9")
        );
        assert_eq!(
            parse_pcscd_version("pcsc-lite version 2.3.0.\n").as_deref(),
            Some("2.3.0")
        );
        assert_eq!(parse_pcscd_version("usage: pcscd [-f]"), None);
        assert_eq!(parse_pcscd_version(""), None);
    }

    fn paths(dir: &Path, pcscd: bool, policy: bool) -> HostPaths {
        let binary = dir.join("pcscd");
        if pcscd {
            std::fs::write(&binary, "#!/bin/sh\necho 'pcsc-lite version 2.3.0.'\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let policy_file = dir.join("org.debian.pcsc-lite.policy");
        if policy {
            std::fs::write(&policy_file, "<policyconfig/>").unwrap();
        }
        let rules = dir.join("rules.d");
        std::fs::create_dir_all(&rules).unwrap();
        HostPaths {
            pcscd: vec![binary],
            pcsc_policy: policy_file,
            rules_dirs: vec![rules],
        }
    }

    #[test]
    fn a_polkit_pcscd_without_the_rule_fails_and_with_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path(), true, true);
        let mut report = Report::default();
        assert_eq!(
            check_pcscd_install(&mut report, &paths).as_deref(),
            Some("2.3.0")
        );
        assert_eq!(status(&report, "pcscd access (polkit)"), Verdict::Fail);
        let check = &report.checks[1];
        assert!(check.detail.contains("polkit") && check.detail.contains(POLKIT_RULE));
        let hint = check.hint.as_deref().unwrap();
        assert!(hint.contains(POLKIT_RULE), "{hint}");
        assert!(
            hint.contains("apt install --reinstall beid-agent"),
            "{hint}"
        );

        std::fs::write(
            paths.rules_dirs[0].join("60-beid-agent.rules"),
            include_str!("../../../hardware/polkit/60-beid-agent.rules"),
        )
        .unwrap();
        let mut report = Report::default();
        check_pcscd_install(&mut report, &paths);
        assert_eq!(status(&report, "pcscd access (polkit)"), Verdict::Pass);
    }

    #[test]
    fn without_polkit_no_rule_is_needed_and_without_pcscd_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = Report::default();
        check_pcscd_install(&mut report, &paths(dir.path(), true, false));
        assert_eq!(status(&report, "pcscd access (polkit)"), Verdict::Info);

        let empty = tempfile::tempdir().unwrap();
        let mut report = Report::default();
        assert_eq!(
            check_pcscd_install(&mut report, &paths(empty.path(), false, false)),
            None
        );
        assert_eq!(status(&report, "pcscd installed"), Verdict::Fail);
        assert!(report.checks[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("apt install pcscd"));
    }

    #[test]
    fn the_clock_is_judged_against_the_release_the_audit_log_and_the_upstream() {
        let now = time::macros::datetime!(2026-11-23 10:00 UTC);
        let judge = |now, upstream, audit| {
            let mut report = Report::default();
            check_clock(&mut report, now, upstream, audit);
            report.checks[0].status
        };
        assert_eq!(judge(now, None, None), Verdict::Info);
        assert_eq!(
            judge(time::macros::datetime!(2001-01-01 0:00 UTC), None, None),
            Verdict::Fail
        );
        assert_eq!(
            judge(now, Some(now - Duration::seconds(20)), None),
            Verdict::Pass
        );
        assert_eq!(
            judge(now, Some(now + Duration::minutes(6)), None),
            Verdict::Fail
        );
        assert_eq!(
            judge(now, None, Some(now + Duration::hours(2))),
            Verdict::Fail
        );
        assert_eq!(
            judge(now, None, Some(now - Duration::hours(2))),
            Verdict::Info
        );
    }
}
