//! beid: the Belgian eID (Belpic) card protocol over any [`CardTransport`].
//!
//! No async, no HTTP, no PC/SC: this layer turns APDU exchanges into typed card data.
//! What it sends and why: `docs/card-protocol.md`; each command names its source.
//!
//! [`CardTransport`]: crate::reader::CardTransport

mod apdu;
mod card;
mod card_data;
mod dates;
mod error;
mod files;
mod identity;

mod status;
pub mod tlv;

pub use apdu::{Apdu, Response, BELPIC_APPLET_AID};
pub use beid_core::national_number::{Checksum, NationalNumber, NationalNumberError};
pub use card::{BeidCard, IdentityFiles, MAX_FILE_LEN};
pub use card_data::{AppletVersion, AtrHint, CardData, LifeCycle};
pub use dates::{parse_card_date, BirthDate};
pub use error::{CardError, CardFault};
pub use files::{der_length, CardFile, Df, Extent};
pub use identity::{Address, Gender, Identity, SpecialStatus};
pub use status::StatusWord;
