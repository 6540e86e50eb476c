//! Applet 1.8 anti-clone check: the card's basic key (4040) answers a fresh challenge.
//!
//! The signature over 4031 proves the data came from the National Register, not that this chip
//! holds it: a clone can copy every file. Applet 1.8 cards also carry a private "basic key"
//! (PrK#1, reference 81) that never leaves the chip; its public half is file 4040, and SHA-384 of
//! 4040 is in the signed identity file (tag 0x1A). A fresh INTERNAL AUTHENTICATE answered with
//! that key proves the chip is genuine.
//!
//! The card allows only 5000 INTERNAL AUTHENTICATE without a PIN (SPEC18 §5.2): whether to run it
//! is a policy decision of the caller (e.g. kiosks), never done on every read.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::ECDSA_P384_SHA384_FIXED;

use super::error::TrustError;
use super::public_key::{KeyKind, RrnKey};

/// 4040 is a 120-byte P-384 SubjectPublicKeyInfo (CONT54 §6.2.7; the middleware rejects any
/// other length).
pub const BASIC_KEY_FILE_LEN: usize = 120;
/// Nonce and challenge length: one SHA-384 block.
pub const NONCE_LEN: usize = 48;
/// The raw `r ‖ s` answer of INTERNAL AUTHENTICATE with the basic key.
pub const RESPONSE_LEN: usize = 96;

/// The card's basic public key, checked against the signed identity file.
#[derive(Clone)]
pub struct BasicKey {
    key: RrnKey,
}

impl fmt::Debug for BasicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicKey")
            .field("fingerprint", &self.key.fingerprint_hex())
            .finish()
    }
}

impl BasicKey {
    /// Reads file 4040 and checks it is the key the identity file names: SHA-384 of the whole
    /// file must equal `expected_sha384`, identity tag 0x1A (whose signature must already be
    /// verified).
    pub fn from_file(file_4040: &[u8], expected_sha384: &[u8]) -> Result<BasicKey, TrustError> {
        if expected_sha384.len() != NONCE_LEN {
            return Err(TrustError::MalformedBasicKey {
                reason: "identity key hash is not 48 bytes",
            });
        }
        let digest = ring::digest::digest(&ring::digest::SHA384, file_4040);
        if digest.as_ref() != expected_sha384 {
            return Err(TrustError::BasicKeyHashMismatch);
        }
        if file_4040.len() != BASIC_KEY_FILE_LEN {
            return Err(TrustError::MalformedBasicKey {
                reason: "file is not 120 bytes",
            });
        }
        let key = RrnKey::from_spki_der(file_4040).map_err(|_| TrustError::MalformedBasicKey {
            reason: "not a P-384 SubjectPublicKeyInfo",
        })?;
        if key.kind() != KeyKind::EcP384 {
            return Err(TrustError::MalformedBasicKey {
                reason: "not a P-384 key",
            });
        }
        Ok(BasicKey { key })
    }

    /// A fresh random nonce from the system generator.
    pub fn new_nonce() -> Result<[u8; NONCE_LEN], TrustError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| TrustError::Random)?;
        Ok(nonce)
    }

    /// Checks the INTERNAL AUTHENTICATE answer: `raw_r_s` must be a P-384 ECDSA signature
    /// (96 bytes, `r ‖ s`) over SHA-384(`nonce`), i.e. over [`challenge_for`]`(nonce)` taken as a
    /// precomputed digest — which is what ring's `ECDSA_P384_SHA384_FIXED` checks over `nonce`.
    pub fn verify_challenge_response(
        &self,
        nonce: &[u8],
        raw_r_s: &[u8],
    ) -> Result<(), TrustError> {
        if raw_r_s.len() != RESPONSE_LEN {
            return Err(TrustError::ChallengeResponseInvalid);
        }
        if self.key.verifies(&ECDSA_P384_SHA384_FIXED, nonce, raw_r_s) {
            Ok(())
        } else {
            tracing::warn!(key = %self.key.fingerprint_hex(), "basic key challenge response does not verify");
            Err(TrustError::ChallengeResponseInvalid)
        }
    }

    /// SHA-256 fingerprint of the basic key's SubjectPublicKeyInfo.
    pub fn fingerprint_hex(&self) -> String {
        self.key.fingerprint_hex()
    }
}

/// The 48 bytes to send in INTERNAL AUTHENTICATE (`00 88 02 81 32 94 30 <challenge>`):
/// SHA-384(nonce). The card signs them as a precomputed digest ("CHL is an off-card hash").
pub fn challenge_for(nonce: &[u8; NONCE_LEN]) -> [u8; NONCE_LEN] {
    let digest = ring::digest::digest(&ring::digest::SHA384, nonce);
    let mut challenge = [0u8; NONCE_LEN];
    challenge.copy_from_slice(digest.as_ref());
    challenge
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::ecdsa::signature::hazmat::PrehashSigner;
    use p384::ecdsa::{Signature, SigningKey};

    /// 4040 for a P-384 key: `30 76 30 10 06 07 2A8648CE3D0201 06 05 2B81040022 03 62 00 04 X Y`.
    fn basic_key_file(key: &SigningKey) -> Vec<u8> {
        let mut file = hex_bytes("3076301006072a8648ce3d020106052b81040022036200");
        file.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
        assert_eq!(file.len(), BASIC_KEY_FILE_LEN);
        file
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        crate::trust::der::from_hex(text).unwrap()
    }

    /// What the card does: sign the 48-byte challenge as a precomputed SHA-384 digest, raw r‖s.
    fn card_answer(key: &SigningKey, challenge: &[u8; NONCE_LEN]) -> Vec<u8> {
        let signature: Signature = key.sign_prehash(challenge).unwrap();
        signature.to_bytes().to_vec()
    }

    fn sha384(bytes: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA384, bytes)
            .as_ref()
            .to_vec()
    }

    fn card_key() -> SigningKey {
        SigningKey::from_slice(&[0x42; 48]).unwrap()
    }

    #[test]
    fn challenge_is_sha384_of_the_nonce() {
        let nonce = [7u8; NONCE_LEN];
        assert_eq!(challenge_for(&nonce).to_vec(), sha384(&nonce));
    }

    #[test]
    fn genuine_card_answer_verifies() {
        let card = card_key();
        let file = basic_key_file(&card);
        let basic = BasicKey::from_file(&file, &sha384(&file)).unwrap();
        let nonce = BasicKey::new_nonce().unwrap();
        let answer = card_answer(&card, &challenge_for(&nonce));
        assert_eq!(answer.len(), RESPONSE_LEN);
        basic.verify_challenge_response(&nonce, &answer).unwrap();
    }

    #[test]
    fn answer_from_another_key_or_to_another_nonce_fails() {
        let card = card_key();
        let file = basic_key_file(&card);
        let basic = BasicKey::from_file(&file, &sha384(&file)).unwrap();
        let nonce = [1u8; NONCE_LEN];
        let clone = SigningKey::from_slice(&[0x43; 48]).unwrap();
        assert!(basic
            .verify_challenge_response(&nonce, &card_answer(&clone, &challenge_for(&nonce)))
            .is_err());
        let replay = card_answer(&card, &challenge_for(&[2u8; NONCE_LEN]));
        assert!(basic.verify_challenge_response(&nonce, &replay).is_err());
        // Signing the nonce itself as the digest (no hashing) is not the protocol.
        assert!(basic
            .verify_challenge_response(&nonce, &card_answer(&card, &nonce))
            .is_err());
        assert!(basic.verify_challenge_response(&nonce, &[0u8; 95]).is_err());
        assert!(basic.verify_challenge_response(&nonce, &[0u8; 96]).is_err());
    }

    #[test]
    fn swapped_or_altered_4040_is_refused() {
        let file = basic_key_file(&card_key());
        let expected = sha384(&file);
        let other = basic_key_file(&SigningKey::from_slice(&[0x43; 48]).unwrap());
        assert!(matches!(
            BasicKey::from_file(&other, &expected),
            Err(TrustError::BasicKeyHashMismatch)
        ));
        let mut altered = file.clone();
        altered[100] ^= 1;
        assert!(matches!(
            BasicKey::from_file(&altered, &expected),
            Err(TrustError::BasicKeyHashMismatch)
        ));
        assert!(matches!(
            BasicKey::from_file(&file, &expected[..47]),
            Err(TrustError::MalformedBasicKey { .. })
        ));
    }

    #[test]
    fn a_matching_hash_does_not_make_garbage_a_key() {
        let garbage = [0x30u8; BASIC_KEY_FILE_LEN];
        assert!(matches!(
            BasicKey::from_file(&garbage, &sha384(&garbage)),
            Err(TrustError::MalformedBasicKey { .. })
        ));
        let short = [0x30u8, 0x00];
        assert!(matches!(
            BasicKey::from_file(&short, &sha384(&short)),
            Err(TrustError::MalformedBasicKey { .. })
        ));
    }

    #[test]
    fn generated_1_8_card_passes_the_anti_clone_check() {
        use crate::trust::rrn_certificate::verify_rrn_certificate;
        use crate::trust::signature::verify_identity_signature;
        use crate::trust::test_support::{card_file, card_issue_date, identity_tag, test_store};
        use p384::pkcs8::DecodePrivateKey;

        let card = "gen-1.8-ec";
        // Tag 0x1A only counts once the identity file's signature is verified.
        let identity = card_file(card, "4031");
        let cert = verify_rrn_certificate(
            &test_store(),
            &card_file(card, "503C"),
            card_issue_date(card),
        )
        .unwrap();
        assert!(cert.trusted());
        verify_identity_signature(cert.key(), &identity, &card_file(card, "4032")).unwrap();
        let expected = identity_tag(&identity, 0x1A).unwrap();

        let file = card_file(card, "4040");
        assert_eq!(file.len(), BASIC_KEY_FILE_LEN);
        let basic = BasicKey::from_file(&file, &expected).unwrap();
        // Named .pk8, but the generator writes a SEC1 ECPrivateKey (RFC 5915); accept both.
        let private = card_file(card, "basic-private-key");
        let chip = SigningKey::from_pkcs8_der(&private)
            .or_else(|_| p384::SecretKey::from_sec1_der(&private).map(SigningKey::from))
            .unwrap();
        assert_eq!(basic_key_file(&chip), file, "the .pk8 is the key of 4040");

        let nonce = BasicKey::new_nonce().unwrap();
        let challenge = challenge_for(&nonce);
        basic
            .verify_challenge_response(&nonce, &card_answer(&chip, &challenge))
            .unwrap();

        let clone = SigningKey::from_slice(&[0x43; 48]).unwrap();
        assert!(matches!(
            basic.verify_challenge_response(&nonce, &card_answer(&clone, &challenge)),
            Err(TrustError::ChallengeResponseInvalid)
        ));

        // A clone that brings its own 4040 (matching its key) is caught by the signed hash.
        assert!(matches!(
            BasicKey::from_file(&basic_key_file(&clone), &expected),
            Err(TrustError::BasicKeyHashMismatch)
        ));
        for index in [0, 30, 119] {
            let mut altered = file.clone();
            altered[index] ^= 0x01;
            assert!(matches!(
                BasicKey::from_file(&altered, &expected),
                Err(TrustError::BasicKeyHashMismatch)
            ));
        }
    }
}
