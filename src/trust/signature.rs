//! RRN signatures over the identity (4031 → 4032) and address (4033 ‖ 4032 → 4034) files, and
//! the photo hash.

use ring::signature::{
    VerificationAlgorithm, ECDSA_P384_SHA384_ASN1, RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
};
use serde::Serialize;

use super::error::TrustError;
use super::public_key::{KeyKind, RrnKey};

/// How a file was signed by the RRN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Root CA4 era).
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-1 (2003–2014 cards).
    RsaPkcs1Sha1,
    /// ECDSA P-384 with SHA-384, DER signature then zero padding (EC cards, applet 1.8).
    EcdsaP384Sha384,
}

impl SignatureAlgorithm {
    /// Stable short name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignatureAlgorithm::RsaPkcs1Sha1 => "rsa-pkcs1-sha1",
            SignatureAlgorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384",
        }
    }
}

/// Verifies 4032 over the whole identity file 4031, exactly as read (no trimming: foreign
/// cards may end with empty TLVs such as `1C 00`).
///
/// RSA: PKCS#1 v1.5, SHA-256 then SHA-1; the signature file must be exactly the modulus length.
/// EC: ECDSA P-384 SHA-384 over the DER signature `sig[..2 + sig[1]]`; the rest must be zeros.
pub fn verify_identity_signature(
    key: &RrnKey,
    identity_file: &[u8],
    signature_file: &[u8],
) -> Result<SignatureAlgorithm, TrustError> {
    verify_rrn_signature(key, identity_file, signature_file)
}

/// Verifies 4034 over (4033 without its trailing zero bytes) ‖ (the whole 4032 file, padding
/// included), as the RRN signs it (`docs/card-protocol.md` §12, verified on the specimen cards).
pub fn verify_address_signature(
    key: &RrnKey,
    address_file: &[u8],
    identity_signature_file: &[u8],
    address_signature_file: &[u8],
) -> Result<SignatureAlgorithm, TrustError> {
    let end = address_file
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |last| last + 1);
    let address = address_file.get(..end).unwrap_or_default();
    let mut message = Vec::with_capacity(address.len() + identity_signature_file.len());
    message.extend_from_slice(address);
    message.extend_from_slice(identity_signature_file);
    let result = verify_rrn_signature(key, &message, address_signature_file);
    message.fill(0);
    result
}

fn verify_rrn_signature(
    key: &RrnKey,
    message: &[u8],
    signature_file: &[u8],
) -> Result<SignatureAlgorithm, TrustError> {
    let kind = key.kind();
    let candidates: &[(SignatureAlgorithm, &'static dyn VerificationAlgorithm)] = match kind {
        KeyKind::Rsa { modulus_len } => {
            if signature_file.len() != modulus_len {
                return Err(TrustError::SignatureLength {
                    expected: modulus_len,
                    actual: signature_file.len(),
                });
            }
            &[
                (
                    SignatureAlgorithm::RsaPkcs1Sha256,
                    &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                ),
                (
                    SignatureAlgorithm::RsaPkcs1Sha1,
                    &RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                ),
            ]
        }
        KeyKind::EcP384 => &[(SignatureAlgorithm::EcdsaP384Sha384, &ECDSA_P384_SHA384_ASN1)],
    };
    let signature = match kind {
        KeyKind::Rsa { .. } => signature_file,
        KeyKind::EcP384 => ec_signature(signature_file)?,
    };
    for (name, algorithm) in candidates {
        if key.verifies(*algorithm, message, signature) {
            tracing::debug!(algorithm = name.name(), key = %key.fingerprint_hex(), "RRN signature verified");
            return Ok(*name);
        }
    }
    tracing::debug!(key = %key.fingerprint_hex(), "RRN signature does not verify");
    Err(TrustError::SignatureInvalid {
        key_algorithm: kind.name(),
    })
}

/// The DER ECDSA signature at the start of an EC signature file.
///
/// Card fact (CONT54 §6.2.5): "The length of the asn.1 encoded signature can be found by adding 2
/// to the value of its second byte"; the file is zero padded to a fixed size (256 in samples).
/// For P-384 the length is at most 0x68, always the short form.
fn ec_signature(file: &[u8]) -> Result<&[u8], TrustError> {
    let len = match file {
        [0x30, len @ 0x00..=0x7f, ..] => 2 + usize::from(*len),
        [0x30, ..] => {
            return Err(TrustError::MalformedSignature {
                reason: "DER length is not the short form",
            })
        }
        _ => {
            return Err(TrustError::MalformedSignature {
                reason: "not a DER SEQUENCE",
            })
        }
    };
    let (signature, padding) = match (file.get(..len), file.get(len..)) {
        (Some(signature), Some(padding)) => (signature, padding),
        _ => {
            return Err(TrustError::MalformedSignature {
                reason: "file shorter than its DER length",
            })
        }
    };
    if padding.iter().any(|b| *b != 0) {
        return Err(TrustError::MalformedSignature {
            reason: "non-zero bytes after the DER signature",
        });
    }
    Ok(signature)
}

/// Which hash the identity's photo hash (tag 0x11) uses, known from its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PhotoHash {
    Sha1,
    Sha256,
    Sha384,
}

/// Outcome of [`check_photo_hash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "hash")]
#[non_exhaustive]
pub enum PhotoCheck {
    /// The photo is the one the (signed) identity file names.
    Match(PhotoHash),
    /// The photo was replaced or damaged.
    Mismatch(PhotoHash),
    /// The expected hash has a length that is none of 20/32/48.
    UnknownHashLength(usize),
}

impl PhotoCheck {
    /// `true` only for [`PhotoCheck::Match`].
    pub fn is_match(self) -> bool {
        matches!(self, PhotoCheck::Match(_))
    }
}

/// Hashes the whole photo file 4035 and compares with `expected` (identity tag 0x11), choosing
/// SHA-1, SHA-256 or SHA-384 by the expected length 20/32/48. Only meaningful once the identity
/// file's signature has been verified.
pub fn check_photo_hash(photo: &[u8], expected: &[u8]) -> PhotoCheck {
    let (hash, algorithm) = match expected.len() {
        20 => (PhotoHash::Sha1, &ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        32 => (PhotoHash::Sha256, &ring::digest::SHA256),
        48 => (PhotoHash::Sha384, &ring::digest::SHA384),
        other => return PhotoCheck::UnknownHashLength(other),
    };
    if ring::digest::digest(algorithm, photo).as_ref() == expected {
        PhotoCheck::Match(hash)
    } else {
        PhotoCheck::Mismatch(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::roots::TrustStore;
    use crate::trust::rrn_certificate::verify_rrn_certificate;
    use crate::trust::test_support::{
        card_file, card_issue_date, identity_tag, test_store, SPECIMEN_CARDS,
    };
    use proptest::prelude::*;

    fn rrn_key(card: &str) -> RrnKey {
        verify_rrn_certificate(
            &test_store(),
            &card_file(card, "503C"),
            card_issue_date(card),
        )
        .unwrap()
        .key()
        .clone()
    }

    #[test]
    fn alice_identity_signatures_are_rsa_sha1() {
        for card in ["alice-2009", "alice-2010"] {
            let algorithm = verify_identity_signature(
                &rrn_key(card),
                &card_file(card, "4031"),
                &card_file(card, "4032"),
            )
            .unwrap();
            assert_eq!(algorithm, SignatureAlgorithm::RsaPkcs1Sha1, "{card}");
        }
    }

    #[test]
    fn nora_identity_signature_is_ecdsa_over_a_padded_file() {
        let card = "nora-ec-2022";
        let signature = card_file(card, "4032");
        assert_eq!(signature.len(), 256);
        let algorithm =
            verify_identity_signature(&rrn_key(card), &card_file(card, "4031"), &signature)
                .unwrap();
        assert_eq!(algorithm, SignatureAlgorithm::EcdsaP384Sha384);
        let cert = verify_rrn_certificate(
            &TrustStore::production(),
            &card_file(card, "503C"),
            card_issue_date(card),
        )
        .unwrap();
        assert!(!cert.trusted());
    }

    #[test]
    fn address_signature_rule_holds_on_all_specimens() {
        for card in SPECIMEN_CARDS {
            let key = rrn_key(card);
            let algorithm = verify_address_signature(
                &key,
                &card_file(card, "4033"),
                &card_file(card, "4032"),
                &card_file(card, "4034"),
            )
            .unwrap_or_else(|e| panic!("{card}: {e}"));
            assert_eq!(
                algorithm,
                verify_identity_signature(&key, &card_file(card, "4031"), &card_file(card, "4032"))
                    .unwrap()
            );
        }
    }

    #[test]
    fn address_signature_needs_the_whole_padded_4032() {
        let card = "nora-ec-2022";
        let full = card_file(card, "4032");
        let trimmed = ec_signature(&full).unwrap().to_vec();
        assert!(trimmed.len() < full.len());
        assert!(verify_address_signature(
            &rrn_key(card),
            &card_file(card, "4033"),
            &trimmed,
            &card_file(card, "4034")
        )
        .is_err());
    }

    #[test]
    fn identity_signature_does_not_verify_the_address() {
        let card = "alice-2009";
        assert!(matches!(
            verify_identity_signature(
                &rrn_key(card),
                &card_file(card, "4033"),
                &card_file(card, "4032")
            ),
            Err(TrustError::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn signatures_of_one_card_do_not_verify_another() {
        // Both Alice cards share the test RRN key; their 4031 files differ.
        let key = rrn_key("alice-2009");
        assert!(verify_identity_signature(
            &key,
            &card_file("alice-2009", "4031"),
            &card_file("alice-2010", "4032")
        )
        .is_err());
    }

    #[test]
    fn rsa_signature_length_must_equal_the_modulus() {
        let card = "alice-2009";
        let mut long = card_file(card, "4032");
        long.push(0);
        assert!(matches!(
            verify_identity_signature(&rrn_key(card), &card_file(card, "4031"), &long),
            Err(TrustError::SignatureLength {
                expected: 128,
                actual: 129
            })
        ));
    }

    #[test]
    fn ec_signature_framing_is_checked() {
        assert!(ec_signature(&[]).is_err());
        assert!(ec_signature(&[0x30]).is_err());
        assert!(ec_signature(&[0x30, 0x05, 1, 2]).is_err());
        // A long-form length is named as such (a technician reads the reason).
        assert!(matches!(
            ec_signature(&[0x30, 0x81, 0x66]),
            Err(TrustError::MalformedSignature {
                reason: "DER length is not the short form"
            })
        ));
        assert!(ec_signature(&[0x31, 0x00]).is_err());
        assert!(ec_signature(&[0x30, 0x01, 0x02, 0x00, 0x01]).is_err());
        assert_eq!(
            ec_signature(&[0x30, 0x01, 0x02, 0x00, 0x00]).unwrap(),
            &[0x30, 0x01, 0x02]
        );
    }

    #[test]
    fn photo_hash_matches_on_all_specimens() {
        let expected_kinds = [PhotoHash::Sha1, PhotoHash::Sha1, PhotoHash::Sha256];
        for (card, kind) in SPECIMEN_CARDS.into_iter().zip(expected_kinds) {
            let expected = identity_tag(&card_file(card, "4031"), 0x11).unwrap();
            let check = check_photo_hash(&card_file(card, "4035"), &expected);
            assert_eq!(check, PhotoCheck::Match(kind), "{card}");
            assert!(check.is_match(), "{card}");
        }
    }

    #[test]
    fn photo_hash_detects_a_swapped_photo_and_odd_lengths() {
        let expected = identity_tag(&card_file("alice-2009", "4031"), 0x11).unwrap();
        let other = card_file("nora-ec-2022", "4035");
        assert_eq!(
            check_photo_hash(&other, &expected),
            PhotoCheck::Mismatch(PhotoHash::Sha1)
        );
        assert_eq!(
            check_photo_hash(&other, &expected[..19]),
            PhotoCheck::UnknownHashLength(19)
        );
        assert!(!check_photo_hash(&other, &[]).is_match());
    }

    #[test]
    fn every_single_bit_flip_in_alice_2010_breaks_verification() {
        let card = "alice-2010";
        let store = test_store();
        let at = card_issue_date(card);
        let files = [
            card_file(card, "4031"),
            card_file(card, "4032"),
            card_file(card, "503C"),
        ];
        for file in 0..files.len() {
            for index in 0..files[file].len() {
                for bit in [0x01u8, 0x80] {
                    let mut mangled = files.clone();
                    mangled[file][index] ^= bit;
                    let [identity, signature, cert] = &mangled;
                    let verified = verify_rrn_certificate(&store, cert, at)
                        .ok()
                        .filter(|c| c.trusted())
                        .and_then(|c| verify_identity_signature(c.key(), identity, signature).ok());
                    assert!(
                        verified.is_none(),
                        "file {file} byte {index} ^ {bit:#04x} still verifies"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_single_byte_flip_in_alice_breaks_verification(
            file in 0usize..3,
            position in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let card = "alice-2009";
            let mut files = [card_file(card, "4031"), card_file(card, "4032"), card_file(card, "503C")];
            let target = &mut files[file];
            let index = position.index(target.len());
            target[index] ^= flip;
            let [identity, signature, cert] = files;
            let verified = verify_rrn_certificate(&test_store(), &cert, card_issue_date(card))
                .ok()
                .filter(|c| c.trusted())
                .and_then(|c| verify_identity_signature(c.key(), &identity, &signature).ok());
            prop_assert!(verified.is_none(), "file {} byte {} ^ {:#04x} still verifies", file, index, flip);
        }

        #[test]
        fn any_single_byte_flip_in_nora_breaks_the_ec_signature(
            file in 0usize..2,
            position in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let card = "nora-ec-2022";
            let key = rrn_key(card);
            let mut files = [card_file(card, "4031"), card_file(card, "4032")];
            let target = &mut files[file];
            let index = position.index(target.len());
            target[index] ^= flip;
            prop_assert!(verify_identity_signature(&key, &files[0], &files[1]).is_err());
        }

        #[test]
        fn arbitrary_signature_files_never_panic(signature in proptest::collection::vec(any::<u8>(), 0..300)) {
            for card in SPECIMEN_CARDS {
                let key = rrn_key(card);
                let identity = card_file(card, "4031");
                prop_assert!(verify_identity_signature(&key, &identity, &signature).is_err());
                prop_assert!(verify_address_signature(&key, &identity, &signature, &signature).is_err());
            }
        }
    }
}
