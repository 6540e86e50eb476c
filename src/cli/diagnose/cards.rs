//! The reader and card checks: pcscd reachable, readers present, and the card in each read
//! end to end (applet, identity file, national-number checksum; the number itself is never
//! printed). The health check (`--health`) stops before the cards: a card present is
//! noted, none is read, and an empty reader is what a healthy counter has between citizens.

use std::time::Duration;

use super::report::{Report, Verdict};
use crate::beid::{AtrHint, BeidCard, CardFault, LifeCycle};
use crate::cli::exit::{hint, sentence};
use crate::cli::read::hex;
use crate::reader::pcsc::{PcscContext, SlotState};
use crate::reader::CardTransport;
use crate::session::on_card;

/// Whether to read the cards present (full `diagnose`) or only note them (`--health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cards {
    Read { timeout: Duration },
    Note,
}

pub fn check_readers(report: &mut Report, cards_mode: Cards) {
    let session = match PcscContext::establish() {
        Ok(session) => session,
        Err(error) => {
            report.fail(
                "pcscd",
                sentence(&error),
                hint(CardFault::Reader(error.fault())),
            );
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
                match cards_mode {
                    Cards::Read { timeout } => {
                        check_card(report, &name, &status.atr, &status.name, timeout);
                    }
                    Cards::Note => report.info(name, "a card is present (not read by --health)"),
                }
            }
        }
    }
    if cards == 0 && cards_mode != Cards::Note {
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
    let atr_hint = AtrHint::from_atr(atr);
    report.push(
        format!("{name} ATR"),
        if atr_hint.is_known() {
            Verdict::Pass
        } else {
            Verdict::Info
        },
        format!("{} ({})", hex(atr), atr_hint),
        None,
    );
    let job = on_card(
        &super::super::read::pcscd(),
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
            report.push(
                format!("{name} card"),
                Verdict::Fail,
                sentence(&error),
                Some(hint(error.fault())),
            );
        }
    }
}
