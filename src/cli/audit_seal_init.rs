//! `beid-agent audit seal-init`: sets forward-secure sealing up for the agent's audit log
//! (the sealing state `audit.jsonl.seal`, 0600, owned like the state directory) and prints
//! the verification key once. The agent seals from its next start.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::exit::{sentence, Failure};
use super::json::{self, JsonFlag};
use crate::audit::{seal_init, seal_state_path, VerificationKey};

#[derive(Debug, clap::Args)]
pub struct SealInitArgs {
    /// The agent's state directory, which holds audit.jsonl.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/beid-agent")]
    state_dir: PathBuf,
    /// How long the sealing key of an epoch lives (s, m or h; 1m to 24h). An intruder can
    /// rewrite at most the current epoch; each epoch adds a seal record.
    #[arg(long, value_name = "DURATION", value_parser = parse_epoch, default_value = "15m")]
    epoch: Duration,
    #[command(flatten)]
    pub(super) output: JsonFlag,
}

pub fn run(args: &SealInitArgs) -> Result<(), Failure> {
    let dir = &args.state_dir;
    let owner = std::fs::metadata(dir).map_err(|e| {
        Failure::Other(format!(
            "state directory {}: {e}; create it first: install -d -o beid-agent -g beid-agent \
             -m 0700 {}",
            dir.display(),
            dir.display()
        ))
    })?;
    let log = dir.join("audit.jsonl");
    let now = OffsetDateTime::now_utc();
    let key = seal_init(&log, args.epoch, now).map_err(|e| Failure::Other(sentence(&e)))?;
    let state = seal_state_path(&log);
    let ownership = give_to_directory_owner(&state, &owner);
    if args.output.json {
        json::print(&report_json(&key, &state, ownership.as_deref()))?;
    } else {
        report_text(&key, &log, &state, ownership.as_deref());
    }
    Ok(())
}

/// The sealing state takes the owner and group of the state directory (seal-init runs as
/// root; the agent as its own user). `Some(warning)` when that failed.
fn give_to_directory_owner(state: &Path, dir: &std::fs::Metadata) -> Option<String> {
    let owned = std::fs::metadata(state)
        .map(|meta| meta.uid() == dir.uid() && meta.gid() == dir.gid())
        .unwrap_or(false);
    if owned {
        return None;
    }
    std::os::unix::fs::chown(state, Some(dir.uid()), Some(dir.gid()))
        .err()
        .map(|e| {
            format!(
                "{} could not be given to uid {} (the state directory's owner): {e}; the agent \
                 must be able to read and write it",
                state.display(),
                dir.uid()
            )
        })
}

fn report_text(key: &VerificationKey, log: &Path, state: &Path, warning: Option<&str>) {
    let schedule = key.schedule();
    let start = schedule.start_of(0).format(&Rfc3339).unwrap_or_default();
    out!(
        "Sealing set up for {} (key id {}): epochs of {} s from {start}.",
        log.display(),
        key.key_id(),
        schedule.length().as_secs()
    );
    out!("Sealing state: {} (the agent's alone).", state.display());
    out!("");
    out!("Verification key, shown this once. Keep it OFF this computer, in the city's key");
    out!("vault under this device's id: whoever holds it can check the seals, and forge them.");
    out!("");
    out!("    {}", &*key.expose());
    out!("");
    out!("The agent seals the log from its next start (systemctl restart beid-agent).");
    out!("Verify: beid-agent audit verify audit.jsonl --verification-key @key --anchors journal.json");
    if let Some(warning) = warning {
        out!("");
        out!("warning: {warning}");
    }
}

fn report_json(key: &VerificationKey, state: &Path, warning: Option<&str>) -> serde_json::Value {
    let schedule = key.schedule();
    json!({
        "verificationKey": &*key.expose(),
        "keyId": key.key_id().to_string(),
        "sealingState": state.display().to_string(),
        "scheduleStart": schedule.start_of(0).format(&Rfc3339).unwrap_or_default(),
        "epochSeconds": schedule.length().as_secs(),
        "warning": warning,
    })
}

/// `900`, `900s`, `15m`, `1h`: whole seconds between [`crate::audit::MIN_EPOCH`] and
/// [`crate::audit::MAX_EPOCH`].
fn parse_epoch(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return Err(format!("{text}: expected a number of s, m or h, e.g. 15m")),
    };
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{text}: expected a number of s, m or h, e.g. 15m"))?;
    let epoch = Duration::from_secs(seconds);
    if !(crate::audit::MIN_EPOCH..=crate::audit::MAX_EPOCH).contains(&epoch) {
        return Err(format!("{text}: an epoch lasts from 1m to 24h"));
    }
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::DEFAULT_EPOCH;

    #[test]
    fn epoch_lengths_parse_with_their_unit() {
        assert_eq!(parse_epoch("15m"), Ok(DEFAULT_EPOCH));
        assert_eq!(parse_epoch("900"), Ok(DEFAULT_EPOCH));
        assert_eq!(parse_epoch("900s"), Ok(DEFAULT_EPOCH));
        assert_eq!(parse_epoch("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "m", "15x", "30s", "25h", "99999999999999999999h"] {
            assert!(parse_epoch(bad).is_err(), "{bad}");
        }
    }
}
