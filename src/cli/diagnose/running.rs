//! The checks of the running agent beyond its port: whether the configuration it has in
//! force is the one on disk (a refused reload, a change not reloaded yet, keys waiting for
//! a restart), from the state file it keeps for us; and whether its metrics textfile is
//! fresh.

use std::path::Path;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::report::Report;
use crate::cli::reload::fingerprint;
use crate::cli::reload::state::{ConfigState, FILE};
use crate::config::Config;

const NAME: &str = "running configuration";
const RELOAD: &str =
    "apply it with `systemctl reload beid-agent` (card sessions and the POS's event streams carry on)";

/// Where the running agent's API listens, as its state file says: after a change of
/// `api.listen` that waits for a restart, not where the configuration says.
pub fn agent_listen(state_dir: &Path) -> Option<std::net::SocketAddr> {
    ConfigState::read(state_dir)
        .ok()
        .flatten()
        .filter(|state| alive(state.pid))
        .map(|state| state.listen)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Compares the configuration on disk (`config`, when it loads) with the one the agent
/// runs, as its state file in `state_dir` tells.
pub fn check_running_configuration(report: &mut Report, state_dir: &Path, config: Option<&Config>) {
    let state = match ConfigState::read(state_dir) {
        Ok(Some(state)) => state,
        Ok(None) => {
            report.info(
                NAME,
                format!(
                    "no {FILE} in {}: the agent has not run here",
                    state_dir.display()
                ),
            );
            return;
        }
        Err(error) => {
            report.warn(
                NAME,
                format!("cannot read {}: {error}", state_dir.join(FILE).display()),
                "run diagnose as root or as the agent's user (the state directory is private)",
            );
            return;
        }
    };
    if !alive(state.pid) {
        report.info(
            NAME,
            format!(
                "the agent that last ran here (pid {}) is not running",
                state.pid
            ),
        );
        return;
    }
    let loaded = format!("loaded at {}", when(state.running.loaded_at));
    let on_disk = config.map(fingerprint);
    if !state.restart_pending.is_empty() {
        report.warn(
            "restart pending",
            format!(
                "{} changed: the agent applies them at its next restart only",
                state.restart_pending.join(", ")
            ),
            "restart it between citizens: `systemctl restart beid-agent` (card sessions end, the POS subscribes again)",
        );
    }
    let refused = state
        .last_reload
        .as_ref()
        .filter(|attempt| !attempt.applied);
    // The refused configuration is still what is on disk: nothing readable changed since,
    // or exactly what was refused.
    let still_refused = refused.filter(|attempt| match &on_disk {
        None => true,
        Some(disk) => attempt.fingerprint.as_ref() == Some(disk),
    });
    match (still_refused, on_disk) {
        (_, Some(disk)) if disk == state.running.fingerprint => report.pass(
            NAME,
            format!("the agent (pid {}) runs the configuration on disk, {loaded}", state.pid),
        ),
        (Some(attempt), _) => report.fail(
            NAME,
            format!(
                "the agent refused the configuration at its reload at {} ({}); it keeps running the previous one, {loaded}",
                when(attempt.at),
                attempt.problems.join("; ")
            ),
            "fix each problem (`beid-agent config check`), then reload: `systemctl reload beid-agent`",
        ),
        (None, Some(_)) => report.warn(
            NAME,
            format!("the configuration on disk changed since the agent (pid {}) loaded its own, {loaded}", state.pid),
            RELOAD,
        ),
        (None, None) => report.warn(
            NAME,
            format!("the agent (pid {}) runs the configuration {loaded}; the one on disk would be refused", state.pid),
            "fix the configuration before reloading: a reload keeps the running one until then",
        ),
    }
}

/// The metrics textfile, when one is configured: written within three intervals.
pub fn check_textfile(report: &mut Report, config: &Config) {
    const NAME: &str = "metrics textfile";
    let Some(path) = config.metrics_textfile() else {
        return;
    };
    let interval = config.metrics_textfile_interval();
    let hint = "the agent must run and may write there: see \"Monitoring\" in docs/operations.md (the folder's ACL and ReadWritePaths)";
    let modified = match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(modified) => modified,
        Err(error) => {
            report.fail(NAME, format!("{}: {error}", path.display()), hint);
            return;
        }
    };
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    let detail = format!("{} written {} s ago", path.display(), age.as_secs());
    if age > interval * 3 + Duration::from_secs(5) {
        report.fail(
            NAME,
            format!("{detail}, every {} s expected", interval.as_secs()),
            hint,
        );
    } else {
        report.pass(NAME, detail);
    }
}

fn when(at: OffsetDateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        at.date(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::diagnose::report::Verdict;
    use crate::cli::reload::state::{Attempt, Loaded};

    fn state(fingerprint: &str, last_reload: Option<Attempt>, pending: &[&str]) -> ConfigState {
        ConfigState {
            pid: std::process::id(),
            config: "/etc/beid-agent/config.toml".into(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8099)),
            running: Loaded {
                loaded_at: time::macros::datetime!(2026-11-23 10:00 UTC),
                fingerprint: fingerprint.into(),
            },
            last_reload,
            restart_pending: pending.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn refused(fingerprint: Option<&str>) -> Option<Attempt> {
        Some(Attempt {
            at: time::macros::datetime!(2026-11-23 11:00 UTC),
            applied: false,
            problems: vec![
                "config.d/60-broken.toml:2: api.auto_advice[0]: no such use case".into(),
            ],
            fingerprint: fingerprint.map(str::to_owned),
        })
    }

    /// The verdicts of the check with this state in the folder and `config` on disk.
    fn judge(
        state: Option<ConfigState>,
        config: Option<&Config>,
    ) -> Vec<(String, Verdict, String)> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(state) = state {
            state.write(dir.path()).unwrap();
        }
        let mut report = Report::default();
        check_running_configuration(&mut report, dir.path(), config);
        report
            .checks
            .into_iter()
            .map(|c| (c.name, c.status, c.detail))
            .collect()
    }

    fn simulated_config(dir: &Path) -> Config {
        let text = "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n";
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn the_running_configuration_is_compared_with_the_one_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let config = simulated_config(dir.path());
        let disk = fingerprint(&config);

        let same = judge(Some(state(&disk, None, &[])), Some(&config));
        assert_eq!(same[0].1, Verdict::Pass, "{same:?}");

        let changed = judge(Some(state("older", None, &[])), Some(&config));
        assert_eq!(changed[0].1, Verdict::Warn, "{changed:?}");
        assert!(changed[0].2.contains("changed since"), "{changed:?}");

        let broken = judge(Some(state("older", refused(None), &[])), None);
        assert_eq!(broken[0].1, Verdict::Fail, "{broken:?}");
        assert!(broken[0].2.contains("60-broken.toml:2"), "{broken:?}");

        // Refused while building (a key that does not fit its certificate): same files.
        let unusable = judge(
            Some(state("older", refused(Some(&disk)), &[])),
            Some(&config),
        );
        assert_eq!(unusable[0].1, Verdict::Fail, "{unusable:?}");

        // Changed again after the refusal: a reload may now be applied.
        let fixed = judge(
            Some(state("older", refused(Some("other")), &[])),
            Some(&config),
        );
        assert_eq!(fixed[0].1, Verdict::Warn, "{fixed:?}");

        let pending = judge(Some(state(&disk, None, &["api.listen"])), Some(&config));
        assert_eq!(pending[0].0, "restart pending");
        assert_eq!(pending[0].1, Verdict::Warn);
        assert!(pending[0].2.contains("api.listen"));
        assert_eq!(pending[1].1, Verdict::Pass);

        let never = judge(None, Some(&config));
        assert_eq!(never[0].1, Verdict::Info);
    }

    #[test]
    fn a_state_left_by_an_agent_that_is_gone_is_only_noted() {
        let mut gone = state("older", refused(None), &[]);
        gone.pid = u32::MAX;
        let verdicts = judge(Some(gone), None);
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].1, Verdict::Info);
    }
}
