//! One-line failures with stable exit codes, so scripts and the city's fleet tooling can
//! tell "no card" from "pcscd down" without parsing text.

use std::fmt;
use std::process::ExitCode;

use crate::beid::{CardError, CardFault};
use crate::reader::{ReaderError, ReaderFault};

/// A command's failure: what to print, and which exit code (documented in the README).
#[derive(Debug)]
pub enum Failure {
    /// 1: anything else.
    Other(String),
    /// 3: pcscd not running or not reachable.
    NoService(String),
    /// 4: no reader, or not the named one.
    NoReader(String),
    /// 5: no card in the reader(s).
    NoCard(String),
    /// 6: a card, but not a Belgian eID.
    NotBeid(String),
    /// 7: a Belgian eID that is not activated.
    NotActivated(String),
    /// 8: the card left during the read.
    CardRemoved(String),
    /// 9: another application holds the reader exclusively.
    ReaderBusy(String),
    /// 10: the card does not answer.
    CardMute(String),
    /// 11: several readers hold a card and none was named.
    SeveralCards(String),
    /// 12: checks failed; the report was already printed.
    ChecksFailed,
    /// 13: the card data is not authentic; the report was already printed.
    NotAuthentic,
    /// 14: no decision (the advice is unknown); the report was already printed.
    NoDecision,
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Other(_) => 1,
            Self::NoService(_) => 3,
            Self::NoReader(_) => 4,
            Self::NoCard(_) => 5,
            Self::NotBeid(_) => 6,
            Self::NotActivated(_) => 7,
            Self::CardRemoved(_) => 8,
            Self::ReaderBusy(_) => 9,
            Self::CardMute(_) => 10,
            Self::SeveralCards(_) => 11,
            Self::ChecksFailed => 12,
            Self::NotAuthentic => 13,
            Self::NoDecision => 14,
        })
    }

    pub fn already_reported(&self) -> bool {
        matches!(
            self,
            Self::ChecksFailed | Self::NotAuthentic | Self::NoDecision
        )
    }

    /// A short machine name for JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Other(_) => "error",
            Self::NoService(_) => "no_service",
            Self::NoReader(_) => "no_reader",
            Self::NoCard(_) => "no_card",
            Self::NotBeid(_) => "not_beid",
            Self::NotActivated(_) => "not_activated",
            Self::CardRemoved(_) => "card_removed",
            Self::ReaderBusy(_) => "reader_busy",
            Self::CardMute(_) => "card_mute",
            Self::SeveralCards(_) => "several_cards",
            Self::ChecksFailed => "checks_failed",
            Self::NotAuthentic => "not_authentic",
            Self::NoDecision => "no_decision",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(m)
            | Self::NoService(m)
            | Self::NoReader(m)
            | Self::NoCard(m)
            | Self::NotBeid(m)
            | Self::NotActivated(m)
            | Self::CardRemoved(m)
            | Self::ReaderBusy(m)
            | Self::CardMute(m)
            | Self::SeveralCards(m) => f.write_str(m),
            Self::ChecksFailed => f.write_str("some checks failed"),
            Self::NotAuthentic => f.write_str("the card data is not authentic"),
            Self::NoDecision => f.write_str("no decision: check by hand"),
        }
    }
}

/// What a technician should do about a card fault: one table for `read`, `advice` and
/// `diagnose`.
pub fn hint(fault: CardFault) -> &'static str {
    match fault {
        CardFault::Reader(reader) => match reader {
            ReaderFault::PcscdDown => {
                "start pcscd: `systemctl start pcscd.socket` (install it with `apt install pcscd` if missing), or check PCSCLITE_CSOCK_NAME"
            }
            ReaderFault::AccessDenied => {
                "pcscd refused this user: on pcsc-lite 2.x install the polkit rule /usr/share/polkit-1/rules.d/60-beid-agent.rules (shipped by the beid-agent package) or run as the agent's user"
            }
            ReaderFault::NoReader => "check the reader's USB cable, then run `beid-agent diagnose`",
            ReaderFault::NoCard => "insert the card, chip first and facing up",
            ReaderFault::CardRemoved => "leave the card in the reader until the read ends",
            ReaderFault::ReaderBusy => {
                "close the other eID software (eID viewer, browser plug-in) and try again"
            }
            ReaderFault::CardMute => {
                "take the card out, clean the chip, insert it again; if it persists the chip is broken or the reader is"
            }
            ReaderFault::CardReset => "another application reset the card: try again",
            _ => "try again; if it persists, run with -v and send the output to support",
        },
        CardFault::NotBeid => "this card is not a Belgian eID; use a Belgian eID card",
        CardFault::NotActivated => {
            "the card is not activated: the citizen must have it activated at the municipality"
        }
        CardFault::CardDamaged => {
            "the chip reports a memory failure: the citizen needs a new card (population desk)"
        }
        _ => "take the card out and try again; if it persists the card may be damaged",
    }
}

impl Failure {
    /// The failure for a card fault, with `text` (what happened) and the fault's hint.
    pub fn from_fault(fault: CardFault, text: &str) -> Self {
        let message = format!("{text}: {}", hint(fault));
        match fault {
            CardFault::Reader(ReaderFault::PcscdDown | ReaderFault::AccessDenied) => {
                Self::NoService(message)
            }
            CardFault::Reader(ReaderFault::NoReader) => Self::NoReader(message),
            CardFault::Reader(ReaderFault::NoCard) => Self::NoCard(message),
            CardFault::Reader(ReaderFault::CardRemoved) => Self::CardRemoved(message),
            CardFault::Reader(ReaderFault::ReaderBusy) => Self::ReaderBusy(message),
            CardFault::Reader(ReaderFault::CardMute) => Self::CardMute(message),
            CardFault::NotBeid => Self::NotBeid(message),
            CardFault::NotActivated => Self::NotActivated(message),
            _ => Self::Other(message),
        }
    }
}

impl From<ReaderError> for Failure {
    fn from(error: ReaderError) -> Self {
        Self::from_fault(CardFault::Reader(error.fault()), &sentence(&error))
    }
}

impl From<CardError> for Failure {
    fn from(error: CardError) -> Self {
        Self::from_fault(error.fault(), &sentence(&error))
    }
}

/// The error and its sources in one line ("a: b: c"), without duplicates.
pub fn sentence(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
