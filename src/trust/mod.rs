//! trust: proves a card's data authentic — Belgian root CAs, the National Register (RRN)
//! certificate (503C), RRN signatures over the identity (4031/4032) and address (4033/4034)
//! files, the photo hash, the applet-1.8 basic key (anti-clone), and the cache of verified RRN
//! keys. No card I/O, no HTTP, no TLV parsing: it works on raw file bytes handed over by the
//! `beid` layer (and on the card's validity-begin date, identity tag 0x03).
//!
//! Never logs or `Debug`-prints identity contents: only lengths, algorithms, root names and key
//! fingerprints. No panics on any input.
//!
//! Typical flow for one card (`docs/card-protocol.md` §12–§14):
//! 1. try [`RrnKeyCache::find_identity_signer`] on 4031 + 4032;
//! 2. otherwise read 503C, [`verify_rrn_certificate`] at the card's validity begin,
//!    [`verify_identity_signature`], and [`RrnKeyCache::insert`] the certificate when trusted;
//! 3. report the data authentic only when the certificate is [trusted](RrnCertificate::trusted);
//! 4. applet 1.8, by policy only: [`BasicKey::from_file`] with tag 0x1A, send
//!    [`challenge_for`] a fresh nonce, [`BasicKey::verify_challenge_response`].

mod basic_key;
mod card;
mod certificate;
mod der;
mod error;
mod key_cache;
mod public_key;
mod roots;
mod rrn_certificate;
mod signature;
mod test_roots;
#[cfg(test)]
mod test_support;

pub use basic_key::{challenge_for, BasicKey, BASIC_KEY_FILE_LEN, NONCE_LEN, RESPONSE_LEN};
pub use card::{verify_card, CardFiles, CardVerification};
pub use error::TrustError;
pub use key_cache::{RrnKeyCache, MAX_ENTRIES as MAX_CACHED_KEYS};
pub use public_key::{KeyKind, RrnKey};
pub use roots::{Anchor, TrustStore};
pub use rrn_certificate::{verify_rrn_certificate, RrnCertificate};
pub use signature::{
    check_photo_hash, verify_address_signature, verify_identity_signature, PhotoCheck, PhotoHash,
    SignatureAlgorithm,
};
