//! Trust anchors: the Belgian root CAs, plus explicitly configured test roots.

use std::fmt;
use std::path::Path;

use time::Date;

use super::certificate;
use super::error::TrustError;
use super::public_key::RrnKey;

/// The production Belgian roots, byte for byte as published (`roots/`; `docs/card-protocol.md` §13).
/// Re-issued roots (CA2 2011, CA4 2032) share the key of the original: they merge into one anchor.
const PRODUCTION_ROOTS: [(&str, &[u8]); 7] = [
    (
        "belgium-root-ca.der",
        include_bytes!("roots/belgium-root-ca.der"),
    ),
    (
        "belgium-root-ca2.der",
        include_bytes!("roots/belgium-root-ca2.der"),
    ),
    (
        "belgium-root-ca2-reissued-2011.der",
        include_bytes!("roots/belgium-root-ca2-reissued-2011.der"),
    ),
    (
        "belgium-root-ca3.der",
        include_bytes!("roots/belgium-root-ca3.der"),
    ),
    (
        "belgium-root-ca4.der",
        include_bytes!("roots/belgium-root-ca4.der"),
    ),
    (
        "belgium-root-ca4-reissued.der",
        include_bytes!("roots/belgium-root-ca4-reissued.der"),
    ),
    (
        "belgium-root-ca6.der",
        include_bytes!("roots/belgium-root-ca6.der"),
    ),
];

/// One trust anchor: a root subject name and its key. Several root certificates for the same
/// subject and key (re-issues) are one anchor, valid over the union of their validity periods.
#[derive(Clone)]
pub struct Anchor {
    subject_der: Vec<u8>,
    name: String,
    key: RrnKey,
    not_before: Date,
    not_after: Date,
    certificates: usize,
}

impl Anchor {
    /// The root's common name, e.g. "Belgium Root CA4".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root's public key.
    pub fn key(&self) -> &RrnKey {
        &self.key
    }

    /// First day any certificate of this anchor is valid.
    pub fn not_before(&self) -> Date {
        self.not_before
    }

    /// Last day any certificate of this anchor is valid.
    pub fn not_after(&self) -> Date {
        self.not_after
    }

    /// How many root certificates were merged into this anchor.
    pub fn certificates(&self) -> usize {
        self.certificates
    }

    pub(crate) fn valid_at(&self, at: Date) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anchor")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("certificates", &self.certificates)
            .finish()
    }
}

/// The roots an RRN certificate may chain to. Immutable once built; share it behind an `Arc`.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Anchor>,
}

impl TrustStore {
    /// No anchors: every RRN certificate comes out untrusted.
    pub fn empty() -> Self {
        TrustStore::default()
    }

    /// The seven production Belgian root certificates (five anchor keys), compiled in.
    ///
    /// Test roots are never part of this; add them with [`with_extra_root`](Self::with_extra_root)
    /// from explicit configuration. A compiled-in root that fails to load is left out and logged
    /// (tests assert that all load): a missing anchor makes cards untrusted, never trusted.
    pub fn production() -> Self {
        let mut store = TrustStore::empty();
        for (file, der) in PRODUCTION_ROOTS {
            if let Err(error) = store.add_root(der) {
                tracing::error!(file, %error, "compiled-in Belgian root does not load");
            }
        }
        store
    }

    /// Adds a root from explicit configuration (test PKI). The certificate must be self-signed
    /// with a supported algorithm; its key merges with an anchor of the same subject and key.
    pub fn with_extra_root(mut self, der: &[u8]) -> Result<Self, TrustError> {
        let index = self.add_root(der)?;
        if let Some(anchor) = self.anchors.get(index) {
            tracing::info!(root = %anchor.name, key = %anchor.key.fingerprint_hex(), "extra trust anchor configured");
        }
        Ok(self)
    }

    /// Adds the roots of a file: PEM with one or more certificates, or one DER certificate.
    pub fn with_extra_root_file(mut self, path: &Path) -> Result<Self, TrustError> {
        for der in crate::pem::read_certificates_pem_or_der("root certificate", path)? {
            self = self
                .with_extra_root(&der)
                .map_err(|source| TrustError::ExtraRoot {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
        }
        Ok(self)
    }

    /// All anchors (re-issued roots merged).
    pub fn anchors(&self) -> impl Iterator<Item = &Anchor> {
        self.anchors.iter()
    }

    /// Anchors whose subject is exactly `issuer_der` (raw DER name).
    pub(crate) fn anchors_named<'s>(
        &'s self,
        issuer_der: &'s [u8],
    ) -> impl Iterator<Item = &'s Anchor> {
        self.anchors
            .iter()
            .filter(move |a| a.subject_der == issuer_der)
    }

    /// Adds (or merges) a root; returns its anchor's index.
    fn add_root(&mut self, der: &[u8]) -> Result<usize, TrustError> {
        let cert = certificate::parse(der)?;
        let key = RrnKey::from_spki(cert.public_key())?;
        let subject_der = cert.subject().as_raw();
        if cert.issuer().as_raw() != subject_der {
            return Err(TrustError::UnsuitableCertificate {
                reason: "root certificate is not self-issued",
            });
        }
        if !certificate::is_signed_by(&cert, &key)? {
            return Err(TrustError::UnsuitableCertificate {
                reason: "root certificate is not self-signed",
            });
        }
        let (not_before, not_after) = certificate::validity_dates(&cert);
        let position = self
            .anchors
            .iter()
            .position(|a| a.subject_der == subject_der && a.key == key);
        match position {
            Some(index) => {
                if let Some(anchor) = self.anchors.get_mut(index) {
                    anchor.not_before = anchor.not_before.min(not_before);
                    anchor.not_after = anchor.not_after.max(not_after);
                    anchor.certificates += 1;
                }
                Ok(index)
            }
            None => {
                self.anchors.push(Anchor {
                    subject_der: subject_der.to_vec(),
                    name: certificate::common_name(cert.subject()),
                    key,
                    not_before,
                    not_after,
                    certificates: 1,
                });
                Ok(self.anchors.len() - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::test_support::fixture;
    use time::macros::date;

    /// Configured roots come from files, DER or PEM, beside the production ones.
    #[test]
    fn a_root_file_adds_its_anchor_to_the_store_it_extends() {
        let store = TrustStore::production()
            .with_extra_root_file(&fixture("test-pki/gen-root-ca4.der"))
            .unwrap();
        let names: Vec<&str> = store.anchors().map(Anchor::name).collect();
        assert_eq!(names.len(), 6, "{names:?}");
        assert!(names.contains(&"Belgium Root CA4"), "{names:?}");
        assert!(names.contains(&"beid-agent TEST Root CA4"), "{names:?}");
        let missing = TrustStore::empty().with_extra_root_file(&fixture("test-pki/nothing.der"));
        assert!(missing.is_err());
    }

    /// Re-issues merge only when both the subject and the key are the same: another key
    /// under a known root's name is another anchor, never a wider one.
    #[test]
    fn a_root_merges_only_with_the_same_subject_and_key() {
        let root = |key: &rcgen::KeyPair, name: &str| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(key).unwrap().der().to_vec()
        };
        let (one, other) = (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        );
        let store = [
            root(&one, "Twin Root"),
            root(&other, "Twin Root"),
            root(&one, "Other Name"),
            root(&one, "Twin Root"),
        ]
        .iter()
        .fold(TrustStore::empty(), |store, der| {
            store.with_extra_root(der).unwrap()
        });
        let anchors: Vec<(&str, usize)> = store
            .anchors()
            .map(|a| (a.name(), a.certificates()))
            .collect();
        assert_eq!(
            anchors,
            [("Twin Root", 2), ("Twin Root", 1), ("Other Name", 1)]
        );
    }

    /// An anchor in a log or a panic says which root it is, without its DER bytes.
    #[test]
    fn an_anchor_debugs_as_its_name_and_validity() {
        let store = TrustStore::production();
        let anchor = store.anchors().next().unwrap();
        let text = format!("{anchor:?}");
        assert!(text.starts_with("Anchor {"), "{text}");
        assert!(
            text.contains(&format!("name: {:?}", anchor.name())),
            "{text}"
        );
        assert!(text.contains("not_after"), "{text}");
        assert!(!text.contains("subject_der"), "{text}");
    }

    #[test]
    fn production_roots_all_parse_into_five_anchor_keys() {
        let mut store = TrustStore::empty();
        for (file, der) in PRODUCTION_ROOTS {
            store
                .add_root(der)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let production = TrustStore::production();
        let names: Vec<(&str, usize)> = production
            .anchors()
            .map(|a| (a.name(), a.certificates()))
            .collect();
        assert_eq!(
            names,
            [
                ("Belgium Root CA", 1),
                ("Belgium Root CA2", 2),
                ("Belgium Root CA3", 1),
                ("Belgium Root CA4", 2),
                ("Belgium Root CA6", 1),
            ]
        );
    }

    #[test]
    fn reissued_roots_widen_the_anchor_validity() {
        let store = TrustStore::production();
        let ca2 = store
            .anchors()
            .find(|a| a.name() == "Belgium Root CA2")
            .unwrap();
        assert_eq!(ca2.not_before(), date!(2007 - 10 - 04));
        assert_eq!(ca2.not_after(), date!(2028 - 01 - 28));
        let ca4 = store
            .anchors()
            .find(|a| a.name() == "Belgium Root CA4")
            .unwrap();
        assert_eq!(ca4.not_after(), date!(2032 - 10 - 22));
    }

    #[test]
    fn production_never_contains_test_roots() {
        assert!(TrustStore::production()
            .anchors()
            .all(|a| a.name().starts_with("Belgium Root CA")));
    }

    #[test]
    fn extra_root_is_added_once_per_key() {
        let root = std::fs::read(fixture("test-pki/eid-test-root-ca.crt")).unwrap();
        let store = TrustStore::production()
            .with_extra_root(&root)
            .unwrap()
            .with_extra_root(&root)
            .unwrap();
        assert_eq!(store.anchors().count(), 6);
        let test = store
            .anchors()
            .find(|a| a.name() == "eID test Root CA")
            .unwrap();
        assert_eq!(test.certificates(), 2);
    }

    #[test]
    fn extra_root_must_be_a_self_signed_root() {
        let rrn = std::fs::read(fixture("test-pki/test-rrn.crt")).unwrap();
        assert!(matches!(
            TrustStore::empty().with_extra_root(&rrn),
            Err(TrustError::UnsuitableCertificate { .. })
        ));
        assert!(matches!(
            TrustStore::empty().with_extra_root(b"not a certificate"),
            Err(TrustError::MalformedCertificate { .. })
        ));
    }

    #[test]
    fn extra_root_with_a_broken_self_signature_is_refused() {
        let mut root = std::fs::read(fixture("test-pki/eid-test-root-ca.crt")).unwrap();
        let last = root.len() - 1;
        root[last] ^= 0x01;
        assert!(matches!(
            TrustStore::empty().with_extra_root(&root),
            Err(TrustError::UnsuitableCertificate { .. })
        ));
    }
}
