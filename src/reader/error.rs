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
}

impl ReaderError {
    /// True when the card left the reader (or never was there): the read cannot go on.
    pub fn is_card_gone(&self) -> bool {
        matches!(
            self,
            Self::CardRemoved(_) | Self::NoCard | Self::ReaderGone(_)
        )
    }
}
