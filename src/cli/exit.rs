//! How a command ends: one table of exit statuses ([`Exit`]), so that scripts and the
//! city's fleet tooling can tell "no card" from "pcscd down" without parsing text, and the
//! failure a command returns ([`Failure`]), printed as one line on stderr and, under
//! `--json`, as one JSON object on stdout.
//!
//! [`Exit`] is the only place an exit status is given a number or a meaning: each
//! command's `--help`, the man pages and the README's table are rendered from it.

use std::fmt;
use std::process::ExitCode;

use serde_json::json;

use crate::beid::{CardError, CardFault};
use crate::reader::{ReaderError, ReaderFault};

/// An exit status of `beid-agent`: its number, its stable code (the `code` of `--json`'s
/// error object) and its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Success,
    Other,
    Usage,
    NoService,
    NoReader,
    NoCard,
    NotBeid,
    NotActivated,
    CardRemoved,
    ReaderBusy,
    CardMute,
    SeveralCards,
    ChecksFailed,
    NotAuthentic,
    NoDecision,
}

impl Exit {
    /// Every status, in numeric order.
    pub const ALL: [Self; 15] = [
        Self::Success,
        Self::Other,
        Self::Usage,
        Self::NoService,
        Self::NoReader,
        Self::NoCard,
        Self::NotBeid,
        Self::NotActivated,
        Self::CardRemoved,
        Self::ReaderBusy,
        Self::CardMute,
        Self::SeveralCards,
        Self::ChecksFailed,
        Self::NotAuthentic,
        Self::NoDecision,
    ];

    /// The table: number, code, meaning. Meanings are written for every command at once;
    /// a command's `--help` lists only the statuses it can end with.
    const fn row(self) -> (u8, &'static str, &'static str) {
        match self {
            Self::Success => (0, "", "success"),
            Self::Other => (1, "error", "another error; the message says which"),
            Self::Usage => (
                2,
                "usage",
                "wrong usage: an unknown option, a missing or malformed argument",
            ),
            Self::NoService => (
                3,
                "no_service",
                "pcscd is not running, not reachable, or refuses this user",
            ),
            Self::NoReader => (4, "no_reader", "no reader, or not the one named"),
            Self::NoCard => (5, "no_card", "no card in the reader"),
            Self::NotBeid => (6, "not_beid", "the card is not a Belgian eID"),
            Self::NotActivated => (7, "not_activated", "the card is not activated"),
            Self::CardRemoved => (8, "card_removed", "the card was removed during the read"),
            Self::ReaderBusy => (
                9,
                "reader_busy",
                "another application holds the reader exclusively",
            ),
            Self::CardMute => (10, "card_mute", "the card does not answer"),
            Self::SeveralCards => (
                11,
                "several_cards",
                "cards in several readers and none named (--reader)",
            ),
            Self::ChecksFailed => (12, "checks_failed", "problems found; the report lists them"),
            Self::NotAuthentic => (
                13,
                "not_authentic",
                "the card data is not authentic; the report says why",
            ),
            Self::NoDecision => (
                14,
                "no_decision",
                "no decision, check by hand; the report says why",
            ),
        }
    }

    /// The process's exit status.
    pub const fn status(self) -> u8 {
        self.row().0
    }

    /// The stable code `--json` prints in `{"error": {"code", ...}}` (none for success).
    pub const fn code(self) -> &'static str {
        self.row().1
    }

    pub const fn meaning(self) -> &'static str {
        self.row().2
    }

    /// The "Exit status" section of a command's `--help`, for the statuses it can end with.
    pub fn help_section(statuses: &[Self]) -> String {
        let mut text = String::from("Exit status:");
        for exit in statuses {
            text.push_str(&format!(
                "\n  {:<3} {:<14} {}",
                exit.status(),
                exit.code(),
                exit.meaning()
            ));
        }
        text
    }

    /// The README's exit-status table (Markdown), every status.
    pub fn markdown_table() -> String {
        let mut text = String::from("| exit | `--json` code | meaning |\n|---|---|---|\n");
        for exit in Self::ALL {
            let code = match exit.code() {
                "" => "—".to_owned(),
                code => format!("`{code}`"),
            };
            text.push_str(&format!(
                "| {} | {code} | {} |\n",
                exit.status(),
                exit.meaning()
            ));
        }
        text
    }
}

/// A command's failure: what to print, and how the process ends ([`Failure::exit`]).
#[derive(Debug)]
pub enum Failure {
    /// 1: anything else.
    Other(String),
    /// 1: another error, with the stable code of the layer that raised it
    /// (`config_unreadable`, `dump_unreadable`, `card_unreadable`, ...).
    Coded { code: &'static str, message: String },
    /// 2: the command line itself is wrong.
    Usage(String),
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
    /// How the process ends.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Other(_) | Self::Coded { .. } => Exit::Other,
            Self::Usage(_) => Exit::Usage,
            Self::NoService(_) => Exit::NoService,
            Self::NoReader(_) => Exit::NoReader,
            Self::NoCard(_) => Exit::NoCard,
            Self::NotBeid(_) => Exit::NotBeid,
            Self::NotActivated(_) => Exit::NotActivated,
            Self::CardRemoved(_) => Exit::CardRemoved,
            Self::ReaderBusy(_) => Exit::ReaderBusy,
            Self::CardMute(_) => Exit::CardMute,
            Self::SeveralCards(_) => Exit::SeveralCards,
            Self::ChecksFailed => Exit::ChecksFailed,
            Self::NotAuthentic => Exit::NotAuthentic,
            Self::NoDecision => Exit::NoDecision,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit().status())
    }

    /// The report said it all already (on stdout, as text or as the one JSON object).
    pub fn already_reported(&self) -> bool {
        matches!(
            self,
            Self::ChecksFailed | Self::NotAuthentic | Self::NoDecision
        )
    }

    /// The stable machine name: the layer's own code, or the exit status's.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Coded { code, .. } => code,
            _ => self.exit().code(),
        }
    }

    /// What `--json` prints for a failure the report did not already tell:
    /// `{"error": {"code", "message"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(m)
            | Self::Coded { message: m, .. }
            | Self::Usage(m)
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
            // Exit 1, with the fault's own code (`card_unreadable`, `card_reset`, ...).
            other => Self::Coded {
                code: other.code(),
                message,
            },
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
