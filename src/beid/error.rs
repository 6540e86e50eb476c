use super::files::CardFile;
use super::status::StatusWord;
use super::tlv::TlvError;
use crate::reader::{ReaderError, ReaderFault};
use beid_core::national_number::NationalNumberError;

/// Why reading a Belgian eID failed. Never carries card data, only what went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error("not a Belgian eID card (the Belpic applet answered {0})")]
    NotBelpic(StatusWord),
    #[error("the card is not activated (ask the municipality to activate it)")]
    NotActivated,
    #[error("file {0} is not on this card")]
    FileNotFound(CardFile),
    #[error("{command} failed with status {status}")]
    Status {
        command: &'static str,
        status: StatusWord,
    },
    #[error("{command}: {reason}")]
    Malformed {
        command: &'static str,
        reason: &'static str,
    },
    #[error("file {file} is longer than {limit} bytes")]
    FileTooLarge { file: CardFile, limit: usize },
    #[error("identity file: {0}")]
    Tlv(#[from] TlvError),
    #[error("the identity file has no national number")]
    MissingNationalNumber,
    #[error("identity file: {0}")]
    NationalNumber(#[from] NationalNumberError),
}

/// What a [`CardError`] means for the citizen and the clerk: the stable classification
/// (and its code for events, APIs and reports), decided here once for every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CardFault {
    /// The reader, pcscd or the card's presence (see [`ReaderFault`]).
    Reader(ReaderFault),
    /// A card, but not a Belgian eID.
    NotBeid,
    /// A Belgian eID that is not activated.
    NotActivated,
    /// The chip reports a memory failure (`6581`): this card will not get better.
    CardDamaged,
    /// Any other refusal or malformed data: try again, then a new card.
    CardUnreadable,
}

impl CardFault {
    /// The stable code: the reader's (`card_removed`, `card_mute`, `pcscd_down`, ...) or
    /// `not_beid`, `not_activated`, `card_damaged`, `card_unreadable`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Reader(fault) => fault.code(),
            Self::NotBeid => "not_beid",
            Self::NotActivated => "not_activated",
            Self::CardDamaged => "card_damaged",
            Self::CardUnreadable => "card_unreadable",
        }
    }
}

impl serde::Serialize for CardFault {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl schemars::JsonSchema for CardFault {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CardFault".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = ReaderFault::ALL
            .iter()
            .map(|fault| fault.code())
            .chain([
                "not_beid",
                "not_activated",
                "card_damaged",
                "card_unreadable",
            ])
            .collect();
        schemars::json_schema!({
            "type": "string",
            "enum": codes,
            "description": "Why a card or reader cannot be used (stable codes)."
        })
    }
}

impl std::fmt::Display for CardFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl CardError {
    /// What this error means (see [`CardFault`]).
    pub fn fault(&self) -> CardFault {
        match self {
            Self::Reader(error) => CardFault::Reader(error.fault()),
            Self::NotBelpic(_) => CardFault::NotBeid,
            Self::NotActivated => CardFault::NotActivated,
            Self::Status {
                status: StatusWord::MemoryFailure,
                ..
            } => CardFault::CardDamaged,
            Self::FileNotFound(_)
            | Self::Status { .. }
            | Self::Malformed { .. }
            | Self::FileTooLarge { .. }
            | Self::Tlv(_)
            | Self::MissingNationalNumber
            | Self::NationalNumber(_) => CardFault::CardUnreadable,
        }
    }

    /// The transport failure underneath, if any.
    pub fn reader_error(&self) -> Option<&ReaderError> {
        match self {
            Self::Reader(error) => Some(error),
            _ => None,
        }
    }

    pub fn is_card_reset(&self) -> bool {
        matches!(self, Self::Reader(ReaderError::CardReset(_)))
    }
}
