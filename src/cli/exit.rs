//! One-line failures with stable exit codes, so scripts and the city's fleet tooling can
//! tell "no card" from "pcscd down" without parsing text.

use std::fmt;
use std::process::ExitCode;

use crate::beid::CardError;
use crate::reader::ReaderError;

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

impl From<ReaderError> for Failure {
    fn from(error: ReaderError) -> Self {
        let text = sentence(&error);
        match error {
            ReaderError::NoService(_) => Self::NoService(format!(
                "{text}: start it (systemctl start pcscd.socket) or check PCSCLITE_CSOCK_NAME"
            )),
            ReaderError::AccessDenied(_) => Self::NoService(format!(
                "{text}: on pcsc-lite 2.x install the polkit rule from hardware/ for this user"
            )),
            ReaderError::NoReaders | ReaderError::UnknownReader(_) | ReaderError::ReaderGone(_) => {
                Self::NoReader(format!("{text}: check the USB cable and `beid-agent diagnose`"))
            }
            ReaderError::NoCard => Self::NoCard(format!("{text}: insert the card, chip first and up")),
            ReaderError::CardRemoved(_) => {
                Self::CardRemoved(format!("{text} during the read: leave it in until the read ends"))
            }
            ReaderError::ReaderBusy(_) => Self::ReaderBusy(format!(
                "{text}: close the other eID software (eID viewer, browser plug-in) and try again"
            )),
            ReaderError::CardMute(_) | ReaderError::Timeout(_) => Self::CardMute(format!(
                "{text}: take the card out, clean the chip, insert it again; if it persists the chip is broken"
            )),
            ReaderError::CardReset(_) => Self::Other(format!("{text}; try again")),
            _ => Self::Other(text),
        }
    }
}

impl From<CardError> for Failure {
    fn from(error: CardError) -> Self {
        match error {
            CardError::Reader(reader) => reader.into(),
            CardError::NotBelpic(_) => Self::NotBeid(format!(
                "{}: this card is not a Belgian eID",
                sentence(&error)
            )),
            CardError::NotActivated => Self::NotActivated(sentence(&error)),
            other => Self::Other(format!("reading the card failed: {}", sentence(&other))),
        }
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
