//! The card's elementary files that the agent may read (`docs/card-protocol.md` §4).

use std::fmt;

/// A dedicated file (directory) under the MF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Df {
    /// DF00: the PKCS#15 application (certificates).
    Belpic,
    /// DF01: the identity files.
    Id,
}

impl Df {
    pub fn fid(self) -> u16 {
        match self {
            Self::Belpic => 0xDF00,
            Self::Id => 0xDF01,
        }
    }
}

/// How much of a file is worth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Until the card says the file ends.
    Whole,
    /// Up to the DER length announced by the first bytes: certificate files carry
    /// 50 to 1100 bytes of zero padding that would cost APDUs for nothing.
    DerLength,
    /// Until the card says the file ends, or this many bytes: the file is never longer,
    /// so a full last chunk needs no further READ BINARY to learn that it was the last.
    AtMost(usize),
}

/// The signature files (4032, 4034) hold 128 bytes (RSA-1024), 256 (RSA-2048) or a DER
/// ECDSA signature zero-padded to 256 (`docs/card-protocol.md` §4, CONT54 §6.2.5).
pub const MAX_SIGNATURE_FILE_LEN: usize = 256;

/// A file the agent reads, named by what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CardFile {
    /// DF01/4031: identity, TLV, exact size (never padded).
    Identity,
    /// DF01/4032: National Register signature over the whole 4031.
    IdentitySignature,
    /// DF01/4033: address, TLV, zero padded.
    Address,
    /// DF01/4034: National Register signature over 4033 (unpadded) ‖ 4032.
    AddressSignature,
    /// DF01/4035: JPEG photo.
    Photo,
    /// DF01/4040: basic public key (applet 1.8), 120-byte P-384 SPKI.
    BasicPublicKey,
    /// DF00/5038: authentication certificate.
    AuthenticationCertificate,
    /// DF00/5039: non-repudiation certificate.
    SigningCertificate,
    /// DF00/503A: citizen or foreigner CA.
    CaCertificate,
    /// DF00/503B: the Belgian root as stored on the card.
    RootCertificate,
    /// DF00/503C: the National Register (RRN) certificate.
    RrnCertificate,
}

impl CardFile {
    pub const ALL: [CardFile; 11] = [
        Self::Identity,
        Self::IdentitySignature,
        Self::Address,
        Self::AddressSignature,
        Self::Photo,
        Self::BasicPublicKey,
        Self::AuthenticationCertificate,
        Self::SigningCertificate,
        Self::CaCertificate,
        Self::RootCertificate,
        Self::RrnCertificate,
    ];

    pub fn df(self) -> Df {
        match self {
            Self::Identity
            | Self::IdentitySignature
            | Self::Address
            | Self::AddressSignature
            | Self::Photo
            | Self::BasicPublicKey => Df::Id,
            Self::AuthenticationCertificate
            | Self::SigningCertificate
            | Self::CaCertificate
            | Self::RootCertificate
            | Self::RrnCertificate => Df::Belpic,
        }
    }

    pub fn fid(self) -> u16 {
        match self {
            Self::Identity => 0x4031,
            Self::IdentitySignature => 0x4032,
            Self::Address => 0x4033,
            Self::AddressSignature => 0x4034,
            Self::Photo => 0x4035,
            Self::BasicPublicKey => 0x4040,
            Self::AuthenticationCertificate => 0x5038,
            Self::SigningCertificate => 0x5039,
            Self::CaCertificate => 0x503A,
            Self::RootCertificate => 0x503B,
            Self::RrnCertificate => 0x503C,
        }
    }

    pub fn from_fid(fid: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|file| file.fid() == fid)
    }

    pub fn extent(self) -> Extent {
        match (self.df(), self) {
            (Df::Belpic, _) => Extent::DerLength,
            (Df::Id, Self::IdentitySignature | Self::AddressSignature) => {
                Extent::AtMost(MAX_SIGNATURE_FILE_LEN)
            }
            (Df::Id, _) => Extent::Whole,
        }
    }
}

impl fmt::Display for CardFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}/{:04X}", self.df().fid(), self.fid())
    }
}

/// The total length of a DER element from its first bytes, if they announce one.
pub fn der_length(head: &[u8]) -> Option<usize> {
    match head {
        [0x30, len @ 0..=0x7F, ..] => Some(2 + usize::from(*len)),
        [0x30, 0x81, len, ..] => Some(3 + usize::from(*len)),
        [0x30, 0x82, hi, lo, ..] => Some(4 + usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_round_trip() {
        for file in CardFile::ALL {
            assert_eq!(CardFile::from_fid(file.fid()), Some(file));
        }
        assert_eq!(CardFile::RrnCertificate.to_string(), "DF00/503C");
    }

    #[test]
    fn der_lengths_in_every_form() {
        assert_eq!(der_length(&[0x30, 0x82, 0x03, 0x44, 0x30]), Some(4 + 0x344));
        assert_eq!(der_length(&[0x30, 0x81, 0x90]), Some(3 + 0x90));
        assert_eq!(der_length(&[0x30, 0x66]), Some(0x68));
        assert_eq!(der_length(&[0x00, 0x00, 0x00]), None);
        assert_eq!(der_length(&[0x30]), None);
        assert_eq!(der_length(&[0x30, 0x83, 1, 2, 3]), None);
    }
}
