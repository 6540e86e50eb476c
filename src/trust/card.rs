//! One card's authenticity check from its files: what a card costs when its RRN key is not cached.

use std::fmt;

use time::Date;

use super::error::TrustError;
use super::roots::TrustStore;
use super::rrn_certificate::{verify_rrn_certificate, RrnCertificate};
use super::signature::{verify_identity_signature, SignatureAlgorithm};

/// The files one verification needs, exactly as read from the card.
#[derive(Clone, Copy)]
pub struct CardFiles<'a> {
    /// 4031, the identity file.
    pub identity: &'a [u8],
    /// 4032, the RRN signature over 4031.
    pub identity_signature: &'a [u8],
    /// 503C, the RRN certificate (card padding allowed).
    pub rrn_certificate: &'a [u8],
}

impl fmt::Debug for CardFiles<'_> {
    /// Lengths only: the identity file is personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardFiles")
            .field("identity_len", &self.identity.len())
            .field("identity_signature_len", &self.identity_signature.len())
            .field("rrn_certificate_len", &self.rrn_certificate.len())
            .finish()
    }
}

/// What [`verify_card`] established.
#[derive(Clone, Debug)]
pub struct CardVerification {
    /// The RRN certificate; check [`RrnCertificate::trusted`] before calling the data authentic.
    pub certificate: RrnCertificate,
    /// How 4032 was signed.
    pub algorithm: SignatureAlgorithm,
}

/// Full per-card verification without a cached key: RRN certificate against `store` at `at`
/// (the card's validity begin), then 4032 over 4031 with its key. Pure computation on bytes
/// already read: the unit to benchmark as "verification cost per card".
pub fn verify_card(
    store: &TrustStore,
    files: &CardFiles<'_>,
    at: Date,
) -> Result<CardVerification, TrustError> {
    let certificate = verify_rrn_certificate(store, files.rrn_certificate, at)?;
    let algorithm =
        verify_identity_signature(certificate.key(), files.identity, files.identity_signature)?;
    Ok(CardVerification {
        certificate,
        algorithm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::public_key::KeyKind;
    use crate::trust::signature::{
        check_photo_hash, verify_address_signature, PhotoCheck, PhotoHash,
    };
    use crate::trust::test_support::{
        card_file, card_issue_date, identity_tag, test_store, GENERATED_CARDS, SPECIMEN_CARDS,
    };
    use proptest::prelude::*;

    fn verify(store: &TrustStore, card: &str) -> Result<CardVerification, TrustError> {
        let (identity, signature, cert) = (
            card_file(card, "4031"),
            card_file(card, "4032"),
            card_file(card, "503C"),
        );
        let files = CardFiles {
            identity: &identity,
            identity_signature: &signature,
            rrn_certificate: &cert,
        };
        verify_card(store, &files, card_issue_date(card))
    }

    #[test]
    fn every_fixture_card_verifies_with_the_test_roots() {
        let expected = [
            ("alice-2009", true, SignatureAlgorithm::RsaPkcs1Sha1),
            ("alice-2010", true, SignatureAlgorithm::RsaPkcs1Sha1),
            ("nora-ec-2022", false, SignatureAlgorithm::EcdsaP384Sha384),
            ("gen-1.7-rsa2048", true, SignatureAlgorithm::RsaPkcs1Sha256),
            ("gen-1.8-ec", true, SignatureAlgorithm::EcdsaP384Sha384),
        ];
        for (card, trusted, algorithm) in expected {
            let verified = verify(&test_store(), card).unwrap_or_else(|e| panic!("{card}: {e}"));
            assert_eq!(verified.certificate.trusted(), trusted, "{card}");
            assert_eq!(verified.algorithm, algorithm, "{card}");
        }
    }

    #[test]
    fn no_fixture_card_is_trusted_by_the_production_roots() {
        for card in SPECIMEN_CARDS.into_iter().chain(GENERATED_CARDS) {
            let verified =
                verify(&TrustStore::production(), card).unwrap_or_else(|e| panic!("{card}: {e}"));
            assert!(!verified.certificate.trusted(), "{card}");
            assert_eq!(verified.certificate.root(), None, "{card}");
        }
    }

    #[test]
    fn generated_cards_chain_to_their_generated_roots() {
        let rsa = verify(&test_store(), "gen-1.7-rsa2048")
            .unwrap()
            .certificate;
        assert_eq!(rsa.root(), Some("beid-agent TEST Root CA4"));
        assert_eq!(rsa.key().kind(), KeyKind::Rsa { modulus_len: 256 });
        let ec = verify(&test_store(), "gen-1.8-ec").unwrap().certificate;
        assert_eq!(ec.root(), Some("beid-agent TEST Root CA6"));
        assert_eq!(ec.key().kind(), KeyKind::EcP384);
        // 503C on applet 1.8 carries 1100 bytes of zero padding after the DER.
        assert_eq!(card_file("gen-1.8-ec", "503C").len(), ec.der().len() + 1100);
    }

    #[test]
    fn generated_cards_address_and_photo() {
        for (card, hash) in GENERATED_CARDS
            .into_iter()
            .zip([PhotoHash::Sha256, PhotoHash::Sha384])
        {
            let verified = verify(&test_store(), card).unwrap();
            let key = verified.certificate.key();
            let address = verify_address_signature(
                key,
                &card_file(card, "4033"),
                &card_file(card, "4032"),
                &card_file(card, "4034"),
            );
            assert_eq!(address.unwrap(), verified.algorithm, "{card}");
            let expected = identity_tag(&card_file(card, "4031"), 0x11).unwrap();
            assert_eq!(
                check_photo_hash(&card_file(card, "4035"), &expected),
                PhotoCheck::Match(hash),
                "{card}"
            );
        }
    }

    #[test]
    fn card_files_debug_shows_lengths_only() {
        let identity = card_file("alice-2009", "4031");
        let files = CardFiles {
            identity: &identity,
            identity_signature: &[],
            rrn_certificate: &[],
        };
        let shown = format!("{files:?}");
        assert!(shown.contains("179"));
        assert!(!shown.contains("Alice") && !shown.contains("Geldig"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_single_byte_flip_in_generated_cards_breaks_verification(
            card in proptest::sample::select(GENERATED_CARDS.to_vec()),
            file in 0usize..3,
            position in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut files = [card_file(card, "4031"), card_file(card, "4032"), card_file(card, "503C")];
            let target = &mut files[file];
            let index = position.index(target.len());
            target[index] ^= flip;
            let outcome = verify_card(&test_store(), &CardFiles {
                identity: &files[0],
                identity_signature: &files[1],
                rrn_certificate: &files[2],
            }, card_issue_date(card));
            // A flip in 503C's card padding is cut away with it; anything else must fail.
            let in_cert_padding = file == 2 && index >= outcome.as_ref().map_or(usize::MAX, |v| v.certificate.der().len());
            prop_assert!(
                in_cert_padding || !matches!(&outcome, Ok(v) if v.certificate.trusted()),
                "{} file {} byte {} ^ {:#04x} still verifies", card, file, index, flip
            );
        }
    }
}
