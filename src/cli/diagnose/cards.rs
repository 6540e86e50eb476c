//! The reader and card checks: pcscd reachable, readers present, and the card in each read
//! end to end (applet, identity file, national-number checksum; the number itself is never
//! printed).

use std::time::Duration;

use super::report::{Report, Verdict};
use crate::beid::{AtrHint, BeidCard, CardError, LifeCycle};
use crate::cli::exit::sentence;
use crate::cli::read::hex;
use crate::reader::pcsc::{PcscSession, SlotState};
use crate::reader::CardTransport;
use crate::session::run_on_card;

pub fn check_readers(report: &mut Report, timeout: Duration) {
    let session = match PcscSession::establish() {
        Ok(session) => session,
        Err(error) => {
            let hint = match error {
                crate::reader::ReaderError::AccessDenied(_) => {
                    "pcscd refused this user: install the polkit rule (see the pcscd access check) or run as the agent's user"
                }
                _ => "start pcscd: `systemctl start pcscd.socket` (install it with `apt install pcscd` if missing)",
            };
            report.fail("pcscd", sentence(&error), hint);
            return;
        }
    };
    report.push("pcscd", Verdict::Pass, "reachable", None);
    let statuses = match session.statuses() {
        Ok(statuses) => statuses,
        Err(error) => {
            report.push(
                "readers",
                Verdict::Fail,
                sentence(&error),
                Some("restart pcscd"),
            );
            return;
        }
    };
    if statuses.is_empty() {
        report.push(
            "readers",
            Verdict::Fail,
            "no reader connected",
            Some("plug the reader in (USB); `lsusb` must list it; see hardware/readers.md"),
        );
        return;
    }
    report.push(
        "readers",
        Verdict::Pass,
        format!("{} connected", statuses.len()),
        None,
    );
    let mut cards = 0;
    for status in &statuses {
        let name = format!("reader {:?}", status.name);
        match status.state {
            SlotState::Empty => report.push(name, Verdict::Info, "no card", None),
            SlotState::Unavailable => report.push(
                name,
                Verdict::Fail,
                "unavailable",
                Some("unplug and replug the reader; check its driver (ccid)"),
            ),
            SlotState::CardMute => {
                cards += 1;
                report.push(
                    name,
                    Verdict::Fail,
                    "a card is present but does not answer",
                    Some("clean the chip and insert it again, chip first and up; try another card"),
                )
            }
            SlotState::CardInUseExclusively => {
                cards += 1;
                report.push(
                    name,
                    Verdict::Fail,
                    "another application holds the card exclusively",
                    Some("close other eID software (eID viewer, browser extension)"),
                )
            }
            SlotState::CardPresent => {
                cards += 1;
                check_card(report, &name, &status.atr, &status.name, timeout);
            }
        }
    }
    if cards == 0 {
        report.push(
            "card",
            Verdict::Fail,
            "no card in any reader",
            Some("insert a Belgian eID to test the reader end to end"),
        );
    }
}

/// What the card check learns, without personal data.
struct CardFacts {
    applet: String,
    life_cycle: LifeCycle,
    checksum_valid: bool,
    apdus: u32,
}

fn check_card(report: &mut Report, name: &str, atr: &[u8], reader: &str, timeout: Duration) {
    let hint = AtrHint::from_atr(atr);
    report.push(
        format!("{name} ATR"),
        if hint.is_known() {
            Verdict::Pass
        } else {
            Verdict::Info
        },
        format!("{} ({})", hex(atr), hint),
        None,
    );
    let job = run_on_card(
        reader,
        timeout,
        |card: &mut BeidCard<&mut dyn CardTransport>| {
            let applet = card.card_data().applet_version().to_string();
            let life_cycle = card.card_data().life_cycle();
            let files = card.read_identity()?;
            let checksum_valid = files.identity.national_number()?.checksum().is_valid();
            Ok(CardFacts {
                applet,
                life_cycle,
                checksum_valid,
                apdus: card.stats().apdus,
            })
        },
    );
    match job {
        Ok(job) => {
            let facts = job.result;
            report.push(
                format!("{name} applet"),
                Verdict::Pass,
                format!("Belgian eID applet {}, {}", facts.applet, facts.life_cycle),
                None,
            );
            report.push(
                format!("{name} identity"),
                Verdict::Pass,
                format!(
                    "readable ({} APDUs, {:.0} ms)",
                    facts.apdus,
                    job.elapsed.as_secs_f64() * 1000.0
                ),
                None,
            );
            report.push(
                format!("{name} national number"),
                if facts.checksum_valid {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                if facts.checksum_valid {
                    "checksum valid"
                } else {
                    "checksum INVALID"
                },
                (!facts.checksum_valid).then_some(
                    "the card's data is corrupt or forged: refer the citizen to the municipality",
                ),
            );
        }
        Err(error) => {
            let hint = card_hint(&error);
            report.push(
                format!("{name} card"),
                Verdict::Fail,
                sentence(&error),
                Some(hint),
            );
        }
    }
}

fn card_hint(error: &CardError) -> &'static str {
    match error {
        CardError::NotBelpic(_) => "this is not a Belgian eID; try a Belgian eID card",
        CardError::NotActivated => "the card is not activated: the citizen must have it activated at the municipality",
        CardError::Reader(e) if e.is_card_gone() => "leave the card in the reader during the check",
        CardError::Reader(crate::reader::ReaderError::Timeout(_)) => {
            "the card does not answer: clean the chip, try another card; if all fail, replace the reader"
        }
        _ => "try again; if it persists, run with -v and send the output to support",
    }
}
