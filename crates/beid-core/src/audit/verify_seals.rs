//! What the seals of a chain say. Without the verification key: where the agent stopped and
//! what was written after, and bytes another process wrote. With it, every seal's MAC, and
//! the rules that make the seals forward-secure (module documentation, "Verifying seals").

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::record::SealReason;
use super::sealing::{KeyId, KeyWalk, Schedule, SealMessage, VerificationKey};
use super::verify::{when, Finding, Problem};
use super::walk::{Link, LinkKind, SealLink};

/// How late after its epoch's end a running agent's seal may come before `verify` calls it
/// missing: the serve loop seals within a second or two; this leaves room for a busy disk.
pub const SEAL_GRACE: Duration = Duration::from_secs(120);

/// What the seals say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Sealing {
    /// No seal record: sealing was never set up for this log.
    Unsealed,
    /// Seals present but not verified: no verification key, or not this log's.
    NotVerified { seals: u64, key_id: KeyId },
    /// Every seal checked with the verification key.
    Verified {
        key_id: KeyId,
        seals: u64,
        first: SealSeen,
        last: SealSeen,
        /// Records before the first seal: written before sealing was set up.
        before_sealing: u64,
        #[serde(with = "time::serde::rfc3339")]
        schedule_start: OffsetDateTime,
        epoch_seconds: u32,
    },
}

/// A seal, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SealSeen {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub epoch: u64,
    pub reason: SealReason,
}

/// Records after the last seal, not sealed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub first_seq: u64,
    pub records: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

pub(crate) struct SealCheck {
    pub(crate) sealing: Sealing,
    pub(crate) pending: Option<Pending>,
    pub(crate) findings: Vec<Finding>,
}

/// Judges the seals of `links` (a chain, whole if `complete`), with `key` if given, as of
/// `as_of`.
pub(crate) fn check(
    links: &[Link],
    key: Option<&VerificationKey>,
    as_of: OffsetDateTime,
    complete: bool,
) -> SealCheck {
    let mut findings = structure(links);
    let seals: Vec<(&Link, &SealLink)> = links
        .iter()
        .filter_map(|link| link.seal().map(|seal| (link, seal)))
        .collect();
    let pending = seals.last().and_then(|(last, _)| {
        let after: Vec<&Link> = links
            .iter()
            .filter(|link| link.seq > last.seq && link.kind == LinkKind::Content)
            .collect();
        after.first().map(|first| Pending {
            first_seq: first.seq,
            records: after.len() as u64,
            since: first.at,
        })
    });
    let sealing = match (seals.first(), key) {
        (None, None) => Sealing::Unsealed,
        (None, Some(_)) => {
            findings.push(Finding::about_log(None, Problem::NotSealed));
            Sealing::Unsealed
        }
        (Some((_, first)), None) => Sealing::NotVerified {
            seals: seals.len() as u64,
            key_id: first.seal.key_id,
        },
        (Some((_, first)), Some(key)) => {
            let foreign = seals
                .iter()
                .find(|(_, seal)| seal.seal.key_id != key.key_id());
            match foreign {
                Some((link, seal)) => {
                    findings.push(link.finding(Problem::KeyMismatch {
                        log_key: seal.seal.key_id,
                        given_key: key.key_id(),
                    }));
                    Sealing::NotVerified {
                        seals: seals.len() as u64,
                        key_id: first.seal.key_id,
                    }
                }
                None => {
                    let mut keyed = Keyed::new(key, links, &mut findings);
                    keyed.run(as_of, complete);
                    keyed.sealing(&seals)
                }
            }
        }
    };
    SealCheck {
        sealing,
        pending,
        findings,
    }
}

/// Checks that need no key: bytes another process wrote, and records after a stop seal.
fn structure(links: &[Link]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut stopped: Option<u64> = None;
    for link in links {
        match &link.kind {
            LinkKind::Foreign(fragment) => findings.push(link.finding(Problem::ForeignBytes {
                offset: fragment.offset,
                length: fragment.length,
            })),
            LinkKind::Seal(seal) if seal.seal.reason == SealReason::Start => stopped = None,
            _ => {
                if let Some(stop_seq) = stopped.take() {
                    findings.push(link.finding(Problem::AfterStop { stop_seq }));
                }
            }
        }
        if let Some(seal) = link.seal() {
            if seal.seal.reason == SealReason::Stop {
                stopped = Some(link.seq);
            }
        }
    }
    findings
}

/// The checks that need the verification key, walking the chain once.
struct Keyed<'a> {
    key: &'a VerificationKey,
    schedule: Schedule,
    keys: KeyWalk,
    links: &'a [Link],
    findings: &'a mut Vec<Finding>,
    /// The epoch the next seal must be of.
    expected: u64,
    /// Content records since the last seal (or the start, before the first seal).
    since_seal: Vec<&'a Link>,
    before_sealing: u64,
    /// The first seq after the last seal that verified.
    verified_up_to: u64,
    /// The first seal of a run that does not verify, and how many follow it.
    invalid: Option<(&'a Link, u64)>,
}

impl<'a> Keyed<'a> {
    fn new(key: &'a VerificationKey, links: &'a [Link], findings: &'a mut Vec<Finding>) -> Self {
        Self {
            key,
            schedule: key.schedule(),
            keys: KeyWalk::new(key),
            links,
            findings,
            expected: 0,
            since_seal: Vec::new(),
            before_sealing: 0,
            verified_up_to: 0,
            invalid: None,
        }
    }

    fn run(&mut self, as_of: OffsetDateTime, complete: bool) {
        let mut seen_seal = false;
        let links = self.links;
        let mut last_seal = None;
        for link in links {
            match &link.kind {
                LinkKind::Content => self.since_seal.push(link),
                LinkKind::Seal(seal) => {
                    self.seal(link, seal);
                    if seen_seal {
                        self.dates(seal.seal.epoch);
                    } else {
                        self.before_sealing = self.since_seal.len() as u64;
                        seen_seal = true;
                    }
                    self.since_seal.clear();
                    last_seal = Some((link, seal));
                }
                LinkKind::Recovered(_) | LinkKind::Foreign(_) => {}
            }
        }
        self.close_invalid_run();
        if let Some((link, seal)) = last_seal {
            self.tail(link, seal, as_of, complete);
        }
    }

    /// One seal: its epoch, its MAC, its date.
    fn seal(&mut self, link: &'a Link, seal: &SealLink) {
        let epoch = seal.seal.epoch;
        if epoch != self.expected {
            self.findings.push(link.finding(Problem::SealEpoch {
                expected: self.expected,
                found: epoch,
            }));
        }
        let message = SealMessage {
            seq: link.seq,
            at: &seal.at_text,
            reason: seal.seal.reason,
            epoch,
            key_id: seal.seal.key_id,
            prev: link.prev,
        };
        let verifies = match self.keys.at(epoch) {
            Some(key) => key.verifies(&message, &seal.seal.mac),
            None => KeyWalk::new(self.key)
                .at(epoch)
                .is_some_and(|key| key.verifies(&message, &seal.seal.mac)),
        };
        if verifies {
            self.close_invalid_run();
            self.verified_up_to = link.seq + 1;
        } else {
            match &mut self.invalid {
                Some((_, count)) => *count += 1,
                None => self.invalid = Some((link, 1)),
            }
        }
        let earliest = match seal.seal.reason {
            SealReason::Epoch => self.schedule.start_of(epoch.saturating_add(1)),
            SealReason::Start | SealReason::Stop => self.schedule.start_of(epoch),
        };
        if link.at < earliest {
            self.findings
                .push(link.finding(Problem::SealMisdated { epoch }));
        }
        self.expected = match seal.seal.reason {
            SealReason::Stop => epoch,
            SealReason::Start | SealReason::Epoch => self
                .schedule
                .epoch_of(link.at)
                .map_or(epoch, |at| at.max(epoch)),
        };
    }

    fn close_invalid_run(&mut self) {
        if let Some((first, seals)) = self.invalid.take() {
            self.findings.push(first.finding(Problem::SealInvalid {
                since_seq: self.verified_up_to,
                seals,
            }));
        }
    }

    /// The records since the last seal must be dated in the epoch of the key sealing them.
    fn dates(&mut self, sealed: u64) {
        let schedule = self.schedule;
        let epoch_of = |link: &Link| schedule.epoch_of(link.at).unwrap_or(u64::MAX);
        let (late, after): (Vec<&Link>, Vec<&Link>) = self
            .since_seal
            .iter()
            .copied()
            .filter(|link| epoch_of(link) != sealed)
            .partition(|link| epoch_of(link) < sealed);
        for (links, is_late) in [(late, true), (after, false)] {
            let Some(first) = links.first() else {
                continue;
            };
            let (records, dated) = (links.len() as u64, epoch_of(first));
            let problem = if is_late {
                Problem::SealedLate {
                    records,
                    dated,
                    sealed,
                }
            } else {
                Problem::DatedAfterSeal {
                    records,
                    dated,
                    sealed,
                }
            };
            self.findings.push(first.finding(problem));
        }
    }

    /// After the last seal: unsealed records must be of the current key's epoch, and a
    /// running agent's next seal must not be overdue.
    fn tail(&mut self, last: &Link, seal: &SealLink, as_of: OffsetDateTime, complete: bool) {
        let expected = self.expected;
        let due = self.schedule.start_of(expected.saturating_add(1));
        let backdated: Vec<&Link> = self
            .since_seal
            .iter()
            .copied()
            .filter(|link| link.at < self.schedule.start_of(expected))
            .collect();
        if let Some(first) = backdated.first() {
            let dated = self.schedule.epoch_of(first.at).unwrap_or(0);
            self.findings.push(first.finding(Problem::SealedLate {
                records: backdated.len() as u64,
                dated,
                sealed: expected,
            }));
        }
        let overdue_record = self.since_seal.iter().find(|link| link.at >= due);
        if let Some(record) = overdue_record {
            self.findings.push(record.finding(Problem::Unsealed {
                since: last.at,
                due,
            }));
        } else if complete && seal.seal.reason != SealReason::Stop && as_of > due + SEAL_GRACE {
            self.findings.push(last.finding(Problem::Unsealed {
                since: last.at,
                due,
            }));
        }
    }

    fn sealing(&self, seals: &[(&Link, &SealLink)]) -> Sealing {
        let seen = |(link, seal): &(&Link, &SealLink)| SealSeen {
            seq: link.seq,
            at: link.at,
            epoch: seal.seal.epoch,
            reason: seal.seal.reason,
        };
        match (seals.first(), seals.last()) {
            (Some(first), Some(last)) => Sealing::Verified {
                key_id: self.key.key_id(),
                seals: seals.len() as u64,
                first: seen(first),
                last: seen(last),
                before_sealing: self.before_sealing,
                schedule_start: self.schedule.start_of(0),
                epoch_seconds: self.schedule.length,
            },
            _ => Sealing::Unsealed,
        }
    }
}

impl fmt::Display for Sealing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsealed => f.write_str(
                "none: this log is not sealed (`beid-agent audit seal-init` sets sealing up)",
            ),
            Self::NotVerified { seals, key_id } => write!(
                f,
                "{seals} seal(s) under key id {key_id}, NOT VERIFIED: give the verification \
                 key (--verification-key) to check them"
            ),
            Self::Verified {
                key_id,
                seals,
                first,
                last,
                before_sealing,
                schedule_start,
                epoch_seconds,
            } => {
                write!(
                    f,
                    "{seals} seal(s) verified under key id {key_id} (epochs of {epoch_seconds} s \
                     from {}); sealed from seq {} ({}) to seq {} ({} seal, {})",
                    when(*schedule_start),
                    first.seq,
                    when(first.at),
                    last.seq,
                    last.reason,
                    when(last.at)
                )?;
                if last.reason == SealReason::Stop {
                    f.write_str("; the agent stopped cleanly")?;
                }
                if *before_sealing > 0 {
                    write!(
                        f,
                        "; {before_sealing} record(s) before the first seal were written \
                         before sealing was set up"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} record(s) from seq {} on, since {} (the agent seals them when the epoch ends)",
            self.records,
            self.first_seq,
            when(self.since)
        )
    }
}
