use std::time::Duration;

/// What can go wrong between the agent and a card, in words a technician can act on.
///
/// Callers must be able to tell "card removed" from "card reset" from "pcscd gone": each
/// leads to a different recovery, so they are distinct variants and the underlying
/// `pcsc::Error` is kept as a typed source where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    #[error("the PC/SC service (pcscd) is not running or not reachable")]
    NoService(#[source] Option<pcsc::Error>),
    #[error("the PC/SC service (pcscd) refused access to this user")]
    AccessDenied(#[source] pcsc::Error),
    #[error("no smart-card reader is connected")]
    NoReaders,
    #[error("no reader named {0:?}")]
    UnknownReader(String),
    #[error("the reader was unplugged")]
    ReaderGone(#[source] Option<pcsc::Error>),
    #[error("no card in the reader")]
    NoCard,
    #[error("the card was removed")]
    CardRemoved(#[source] Option<pcsc::Error>),
    #[error("the card was reset by another application")]
    CardReset(#[source] Option<pcsc::Error>),
    #[error("the card does not respond (unpowered or mute)")]
    CardMute(#[source] Option<pcsc::Error>),
    #[error("another application holds the reader exclusively")]
    ReaderBusy(#[source] pcsc::Error),
    #[error("the card did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the response did not fit the receive buffer")]
    ResponseTooLong,
    #[error("PC/SC error")]
    Pcsc(#[source] pcsc::Error),
    #[error("no thread could be started for the card")]
    Thread(#[source] std::io::Error),
    #[error("the reader backend failed: {0}")]
    Backend(&'static str),
}

/// What a [`ReaderError`] means for whoever waits on the card: the stable classification
/// (and its code for events, APIs and reports), decided here once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReaderFault {
    /// pcscd is not running or not reachable.
    PcscdDown,
    /// pcscd refused this user (polkit on pcsc-lite 2.x).
    AccessDenied,
    /// No reader, not the named one, or it was unplugged.
    NoReader,
    /// No card in the reader.
    NoCard,
    /// The card left during the work.
    CardRemoved,
    /// The card does not answer (unpowered, mute, or no answer within the deadline).
    CardMute,
    /// Another application holds the reader exclusively.
    ReaderBusy,
    /// Another application reset the card.
    CardReset,
    /// Anything else of the reader or its driver.
    ReaderError,
}

impl ReaderFault {
    /// Every fault, for documents that list the codes.
    pub const ALL: [Self; 9] = [
        Self::PcscdDown,
        Self::AccessDenied,
        Self::NoReader,
        Self::NoCard,
        Self::CardRemoved,
        Self::CardMute,
        Self::ReaderBusy,
        Self::CardReset,
        Self::ReaderError,
    ];

    /// The stable code (`pcscd_down`, `card_removed`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Self::PcscdDown => "pcscd_down",
            Self::AccessDenied => "access_denied",
            Self::NoReader => "no_reader",
            Self::NoCard => "no_card",
            Self::CardRemoved => "card_removed",
            Self::CardMute => "card_mute",
            Self::ReaderBusy => "reader_busy",
            Self::CardReset => "card_reset",
            Self::ReaderError => "reader_error",
        }
    }
}

impl ReaderError {
    /// True when the card left the reader (or never was there): the read cannot go on.
    pub fn is_card_gone(&self) -> bool {
        matches!(
            self,
            Self::CardRemoved(_) | Self::NoCard | Self::ReaderGone(_)
        )
    }

    /// What this error means (see [`ReaderFault`]).
    pub fn fault(&self) -> ReaderFault {
        match self {
            Self::NoService(_) => ReaderFault::PcscdDown,
            Self::AccessDenied(_) => ReaderFault::AccessDenied,
            Self::NoReaders | Self::UnknownReader(_) | Self::ReaderGone(_) => ReaderFault::NoReader,
            Self::NoCard => ReaderFault::NoCard,
            Self::CardRemoved(_) => ReaderFault::CardRemoved,
            Self::CardMute(_) | Self::Timeout(_) => ReaderFault::CardMute,
            Self::ReaderBusy(_) => ReaderFault::ReaderBusy,
            Self::CardReset(_) => ReaderFault::CardReset,
            Self::ResponseTooLong | Self::Pcsc(_) | Self::Thread(_) | Self::Backend(_) => {
                ReaderFault::ReaderError
            }
        }
    }
}
