use super::files::CardFile;
use super::status::StatusWord;
use super::tlv::TlvError;
use crate::reader::ReaderError;
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

impl CardError {
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
