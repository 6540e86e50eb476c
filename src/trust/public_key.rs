//! Public keys as the trust layer uses them: RSA or EC P-384, held as their SubjectPublicKeyInfo.

use std::fmt;
use std::sync::Arc;

use ring::signature::{UnparsedPublicKey, VerificationAlgorithm};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::der::{from_hex, to_hex};
use super::error::TrustError;

/// Length of an uncompressed P-384 point `04 ‖ X ‖ Y`.
const P384_POINT_LEN: usize = 97;
/// ring accepts RSA moduli of 1024..=8192 bits (`docs/card-protocol.md` §12: RRN keys are 1024 or 2048).
const RSA_MIN_MODULUS_LEN: usize = 1024 / 8;
const RSA_MAX_MODULUS_LEN: usize = 8192 / 8;

/// Which kind of key, with what the verifier needs to know about its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// RSA; signatures are exactly `modulus_len` bytes.
    Rsa { modulus_len: usize },
    /// ECDSA on NIST P-384.
    EcP384,
}

impl KeyKind {
    /// Short name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa { .. } => "rsa",
            KeyKind::EcP384 => "ec-p384",
        }
    }
}

/// A National Register (RRN) public key — or, inside the layer, a root or basic key.
///
/// Cheap to clone (shared). Identified by its [fingerprint](RrnKey::fingerprint): SHA-256 of the
/// DER SubjectPublicKeyInfo, stable across certificates that re-certify the same key.
/// Serialises as the hex of its SubjectPublicKeyInfo.
#[derive(Clone)]
pub struct RrnKey(Arc<KeyInner>);

struct KeyInner {
    kind: KeyKind,
    spki: Vec<u8>,
    /// What ring takes: PKCS#1 `RSAPublicKey` (the SPKI bit string) or the point `04‖X‖Y`.
    ring_key: Vec<u8>,
    fingerprint: [u8; 32],
}

impl RrnKey {
    /// Reads a DER SubjectPublicKeyInfo (nothing may follow it).
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, TrustError> {
        match SubjectPublicKeyInfo::from_der(spki) {
            Ok(([], info)) => Self::from_spki(&info),
            Ok(_) => Err(TrustError::UnsupportedKey {
                reason: "bytes after the SubjectPublicKeyInfo",
            }),
            Err(_) => Err(TrustError::UnsupportedKey {
                reason: "not a DER SubjectPublicKeyInfo",
            }),
        }
    }

    pub(crate) fn from_spki(info: &SubjectPublicKeyInfo<'_>) -> Result<Self, TrustError> {
        let bits = info.subject_public_key.data.as_ref();
        let kind = if info.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
            let Ok(PublicKey::RSA(rsa)) = info.parsed() else {
                return Err(TrustError::UnsupportedKey {
                    reason: "malformed RSA public key",
                });
            };
            // x509-parser's key_size() only strips a sign byte; count significant bytes.
            let modulus_len = rsa.modulus.iter().skip_while(|b| **b == 0).count();
            if !(RSA_MIN_MODULUS_LEN..=RSA_MAX_MODULUS_LEN).contains(&modulus_len) {
                return Err(TrustError::UnsupportedKey {
                    reason: "RSA modulus outside 1024..8192 bits",
                });
            }
            KeyKind::Rsa { modulus_len }
        } else if info.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve.as_ref() != Some(&OID_NIST_EC_P384) {
                return Err(TrustError::UnsupportedKey {
                    reason: "EC key not on P-384",
                });
            }
            if bits.len() != P384_POINT_LEN || bits.first() != Some(&0x04) {
                return Err(TrustError::UnsupportedKey {
                    reason: "EC point is not an uncompressed P-384 point",
                });
            }
            KeyKind::EcP384
        } else {
            return Err(TrustError::UnsupportedKey {
                reason: "neither RSA nor EC",
            });
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, info.raw);
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.as_ref());
        Ok(RrnKey(Arc::new(KeyInner {
            kind,
            spki: info.raw.to_vec(),
            ring_key: bits.to_vec(),
            fingerprint,
        })))
    }

    /// RSA (with its modulus length) or EC P-384.
    pub fn kind(&self) -> KeyKind {
        self.0.kind
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.0.fingerprint
    }

    /// [`fingerprint`](Self::fingerprint) as lower-case hex, for logs and the diagnostic.
    pub fn fingerprint_hex(&self) -> String {
        to_hex(&self.0.fingerprint)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.0.spki
    }

    /// `true` when ring verifies `signature` over `message` with this key under `algorithm`.
    /// The caller picks an algorithm of the key's kind; a mismatch simply fails.
    pub(crate) fn verifies(
        &self,
        algorithm: &'static dyn VerificationAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(algorithm, &self.0.ring_key)
            .verify(message, signature)
            .is_ok()
    }
}

impl PartialEq for RrnKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.fingerprint == other.0.fingerprint
    }
}

impl Eq for RrnKey {}

impl std::hash::Hash for RrnKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.fingerprint.hash(state);
    }
}

impl fmt::Debug for RrnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RrnKey")
            .field("kind", &self.0.kind)
            .field("fingerprint", &self.fingerprint_hex())
            .finish()
    }
}

impl Serialize for RrnKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&to_hex(&self.0.spki))
    }
}

impl<'de> Deserialize<'de> for RrnKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(deserializer)?;
        let der = from_hex(&text).ok_or_else(|| D::Error::custom("RRN key is not hex"))?;
        RrnKey::from_spki_der(&der).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::test_support::{card_file, fixture};
    use x509_parser::prelude::X509Certificate;

    fn key_of(cert: &[u8]) -> RrnKey {
        let cut = crate::trust::der::cut_der_sequence(cert).unwrap();
        let (_, c) = X509Certificate::from_der(cut).unwrap();
        RrnKey::from_spki(c.public_key()).unwrap()
    }

    #[test]
    fn reads_rsa_1024_and_ec_p384_rrn_keys() {
        let alice = key_of(&card_file("alice-2009", "503C"));
        assert_eq!(alice.kind(), KeyKind::Rsa { modulus_len: 128 });
        let nora = key_of(&card_file("nora-ec-2022", "503C"));
        assert_eq!(nora.kind(), KeyKind::EcP384);
        assert_ne!(alice, nora);
    }

    #[test]
    fn fingerprint_is_sha256_of_spki_and_survives_serde() {
        let key = key_of(&std::fs::read(fixture("test-pki/test-rrn.crt")).unwrap());
        let digest = ring::digest::digest(&ring::digest::SHA256, key.spki_der());
        assert_eq!(key.fingerprint().as_slice(), digest.as_ref());
        let json = serde_json::to_string(&key).unwrap();
        let back: RrnKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.kind(), key.kind());
        assert_eq!(RrnKey::from_spki_der(key.spki_der()).unwrap(), key);
    }

    #[test]
    fn debug_shows_fingerprint_not_key_bytes() {
        let key = key_of(&card_file("alice-2010", "503C"));
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.fingerprint_hex()));
        assert!(!shown.contains(&to_hex(key.spki_der())));
    }

    #[test]
    fn refuses_garbage_and_trailing_bytes() {
        assert!(RrnKey::from_spki_der(&[]).is_err());
        assert!(RrnKey::from_spki_der(&[0x30, 0x00]).is_err());
        let key = key_of(&card_file("nora-ec-2022", "503C"));
        let mut spki = key.spki_der().to_vec();
        spki.push(0);
        assert!(RrnKey::from_spki_der(&spki).is_err());
        assert!(serde_json::from_str::<RrnKey>("\"3000\"").is_err());
        assert!(serde_json::from_str::<RrnKey>("\"xyz\"").is_err());
    }
}
