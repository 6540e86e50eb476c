//! The National Register (RRN) certificate, file 503C: who signed the identity data.

use std::fmt;
use std::sync::Arc;

use time::Date;

use super::certificate;
use super::der::cut_der_sequence;
use super::error::TrustError;
use super::public_key::RrnKey;
use super::roots::TrustStore;

/// An RRN certificate that passed [`verify_rrn_certificate`].
///
/// Only that function makes one, so `trusted` cannot be forged by the caller. `trusted == false`
/// means "well formed, valid at the date, but issued by no configured root" (e.g. a specimen card
/// whose test root is not configured): its key may still check signatures, but the data must not
/// be reported as authentic.
#[derive(Clone)]
pub struct RrnCertificate {
    subject: String,
    root: Option<String>,
    trusted: bool,
    key: RrnKey,
    not_before: Date,
    not_after: Date,
    /// Days on which both the certificate and its root (when trusted) were valid.
    chain_valid: (Date, Date),
    checked_at: Date,
    der: Arc<[u8]>,
}

impl RrnCertificate {
    /// Subject name, e.g. "C=BE, O=RRN, CN=RRN".
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Common name of the anchor that issued it, when one did.
    pub fn root(&self) -> Option<&str> {
        self.root.as_deref()
    }

    /// Issued (signature verified) by a configured root.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The RRN public key that signs 4032 and 4034.
    pub fn key(&self) -> &RrnKey {
        &self.key
    }

    /// First day of validity.
    pub fn not_before(&self) -> Date {
        self.not_before
    }

    /// Last day of validity.
    pub fn not_after(&self) -> Date {
        self.not_after
    }

    /// The date it was judged valid at (the card's validity begin).
    pub fn checked_at(&self) -> Date {
        self.checked_at
    }

    /// `true` when the certificate, and the root that issued it, were both valid on `at`
    /// (whole days): the test for reusing a cached key on a card issued on `at`.
    pub fn valid_at(&self, at: Date) -> bool {
        let (from, until) = self.chain_valid;
        from <= at && at <= until
    }

    /// The certificate DER, cut from the card file (no padding).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `Ok(self)` when trusted, [`TrustError::NotTrusted`] otherwise.
    pub fn require_trusted(self) -> Result<Self, TrustError> {
        if self.trusted {
            Ok(self)
        } else {
            Err(TrustError::NotTrusted)
        }
    }
}

impl fmt::Debug for RrnCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RrnCertificate")
            .field("subject", &self.subject)
            .field("root", &self.root)
            .field("trusted", &self.trusted)
            .field("key", &self.key)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("checked_at", &self.checked_at)
            .finish_non_exhaustive()
    }
}

/// Checks the RRN certificate file (503C) against `store`, judged at `at`.
///
/// `at` is the card's validity begin (identity tag 0x03), not today: RRN certificates expire
/// while the cards they signed stay valid (`docs/card-protocol.md` §13).
///
/// Steps: cut the file at its DER length; parse; require an end-entity certificate allowed to
/// sign (no CA, key usage digitalSignature or nonRepudiation when present); find the anchors
/// whose subject is the issuer name and verify the signature with their key (the RRN certificate
/// is issued directly by a root); the anchor must be valid at `at`; the certificate too.
///
/// Issuer not among the anchors ⇒ `Ok` with `trusted == false` and `root == None`.
/// Issuer is an anchor but no anchor key verifies ⇒ [`TrustError::CertificateSignatureInvalid`].
pub fn verify_rrn_certificate(
    store: &TrustStore,
    cert_file: &[u8],
    at: Date,
) -> Result<RrnCertificate, TrustError> {
    let der = cut_der_sequence(cert_file)?;
    let cert = certificate::parse(der)?;

    let basic = cert
        .basic_constraints()
        .map_err(|e| TrustError::MalformedCertificate {
            reason: "basic constraints",
            source: Some(e),
        })?;
    if basic.is_some_and(|b| b.value.ca) {
        return Err(TrustError::UnsuitableCertificate {
            reason: "RRN certificate is a CA certificate",
        });
    }
    let usage = cert
        .key_usage()
        .map_err(|e| TrustError::MalformedCertificate {
            reason: "key usage",
            source: Some(e),
        })?;
    if usage.is_some_and(|u| !(u.value.digital_signature() || u.value.non_repudiation())) {
        return Err(TrustError::UnsuitableCertificate {
            reason: "RRN certificate key usage does not allow signatures",
        });
    }

    let key = RrnKey::from_spki(cert.public_key())?;

    let issuer = cert.issuer().as_raw();
    let mut issuer_is_anchor = None;
    let mut issued_by = None;
    for anchor in store.anchors_named(issuer) {
        issuer_is_anchor = Some(anchor.name());
        if certificate::is_signed_by(&cert, anchor.key())? {
            issued_by = Some(anchor);
            break;
        }
    }
    match (issued_by, issuer_is_anchor) {
        (Some(anchor), _) if !anchor.valid_at(at) => {
            return Err(TrustError::RootNotValidAt {
                root: anchor.name().to_owned(),
                at,
            })
        }
        (None, Some(root)) => {
            tracing::warn!(
                root,
                "RRN certificate signature does not verify against its root"
            );
            return Err(TrustError::CertificateSignatureInvalid {
                root: root.to_owned(),
            });
        }
        _ => {}
    }

    let (not_before, not_after) = certificate::validity_dates(&cert);
    if !(not_before <= at && at <= not_after) {
        return Err(TrustError::CertificateNotValidAt {
            at,
            not_before,
            not_after,
        });
    }

    let chain_valid = match issued_by {
        Some(anchor) => (
            not_before.max(anchor.not_before()),
            not_after.min(anchor.not_after()),
        ),
        None => (not_before, not_after),
    };
    let verified = RrnCertificate {
        subject: cert.subject().to_string(),
        root: issued_by.map(|a| a.name().to_owned()),
        trusted: issued_by.is_some(),
        key,
        not_before,
        not_after,
        chain_valid,
        checked_at: at,
        der: Arc::from(der),
    };
    tracing::debug!(
        trusted = verified.trusted,
        root = verified.root.as_deref().unwrap_or("-"),
        key = %verified.key.fingerprint_hex(),
        "RRN certificate checked"
    );
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::public_key::KeyKind;
    use crate::trust::test_support::{card_file, card_issue_date, fixture, test_store};
    use time::macros::date;

    /// A root made here (P-384) vouches for an RRN certificate it issued, and the verdict's
    /// Debug names the subject, the root and the verdict (never the DER).
    /// A P-384 root made here, the store trusting it, and an RRN certificate it issued with
    /// `usages` (no key-usage extension when empty).
    fn made_here(usages: &[rcgen::KeyUsagePurpose]) -> (TrustStore, Vec<u8>) {
        let key = || rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let (root_key, rrn_key) = (key(), key());
        let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        root.distinguished_name
            .push(rcgen::DnType::CommonName, "Made Here Root");
        root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root_cert = root.self_signed(&root_key).unwrap();
        let mut rrn = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        rrn.distinguished_name
            .push(rcgen::DnType::CommonName, "RRN");
        if !usages.is_empty() {
            rrn.key_usages = usages.to_vec();
            // rcgen 0.13 writes extensions (key usage among them) only when one of a few
            // others is asked for; an explicit "not a CA" is one, and true of an RRN cert.
            rrn.is_ca = rcgen::IsCa::ExplicitNoCa;
        }
        let rrn_cert = rrn.signed_by(&rrn_key, &root_cert, &root_key).unwrap();
        let store = TrustStore::empty()
            .with_extra_root(root_cert.der())
            .unwrap();
        (store, rrn_cert.der().to_vec())
    }

    #[test]
    fn a_root_made_here_vouches_for_its_rrn_certificate() {
        let (store, rrn_cert) = made_here(&[]);
        let today = time::OffsetDateTime::now_utc().date();
        // Test code: the certificate was issued just now by the store's root; an error
        // fails the test, which is what it asserts.
        let verified = verify_rrn_certificate(&store, &rrn_cert, today).unwrap();
        assert!(verified.trusted());
        assert_eq!(verified.root(), Some("Made Here Root"));
        let debugged = format!("{verified:?}");
        assert!(debugged.contains("subject: \"CN=RRN\""), "{debugged}");
        assert!(
            debugged.contains("root: Some(\"Made Here Root\")"),
            "{debugged}"
        );
        assert!(debugged.contains("trusted: true"), "{debugged}");
        assert!(!debugged.contains("der:"), "{debugged}");
    }

    /// The National Register signs with its RRN key: a key usage, when the certificate
    /// states one, must allow signing (digital signature or non-repudiation, either does).
    #[test]
    fn an_rrn_certificate_must_be_allowed_to_sign() {
        use rcgen::KeyUsagePurpose::{ContentCommitment, DigitalSignature, KeyEncipherment};
        let today = time::OffsetDateTime::now_utc().date();
        for usages in [
            &[DigitalSignature][..],
            &[ContentCommitment],
            &[DigitalSignature, ContentCommitment],
        ] {
            let (store, cert) = made_here(usages);
            let verified = verify_rrn_certificate(&store, &cert, today);
            assert!(verified.is_ok_and(|v| v.trusted()), "{usages:?}");
        }
        let (store, cert) = made_here(&[KeyEncipherment]);
        assert!(matches!(
            verify_rrn_certificate(&store, &cert, today),
            Err(TrustError::UnsuitableCertificate {
                reason: "RRN certificate key usage does not allow signatures"
            })
        ));
    }

    #[test]
    fn alice_cards_are_trusted_with_the_test_root() {
        for card in ["alice-2009", "alice-2010"] {
            let cert = verify_rrn_certificate(
                &test_store(),
                &card_file(card, "503C"),
                card_issue_date(card),
            )
            .unwrap();
            assert!(cert.trusted(), "{card}");
            assert_eq!(cert.root(), Some("eID test Root CA"));
            assert_eq!(cert.subject(), "C=BE, O=test RRN, CN=test RRN");
            assert_eq!(cert.key().kind(), KeyKind::Rsa { modulus_len: 128 });
            assert_eq!(cert.der().len(), 840);
        }
    }

    #[test]
    fn alice_cards_are_not_trusted_by_production_roots() {
        for card in ["alice-2009", "alice-2010"] {
            let cert = verify_rrn_certificate(
                &TrustStore::production(),
                &card_file(card, "503C"),
                card_issue_date(card),
            )
            .unwrap();
            assert!(!cert.trusted(), "{card}");
            assert_eq!(cert.root(), None);
            assert!(matches!(
                cert.require_trusted(),
                Err(TrustError::NotTrusted)
            ));
        }
    }

    #[test]
    fn nora_ec_certificate_has_no_public_root() {
        let card = "nora-ec-2022";
        let cert = verify_rrn_certificate(
            &test_store(),
            &card_file(card, "503C"),
            card_issue_date(card),
        )
        .unwrap();
        assert!(!cert.trusted());
        assert_eq!(cert.root(), None);
        assert_eq!(cert.key().kind(), KeyKind::EcP384);
        assert_eq!(cert.subject(), "C=BE, O=TEST, CN=eID TEST EC RRN");
    }

    #[test]
    fn validity_is_judged_at_the_given_date() {
        let file = card_file("alice-2009", "503C");
        // test RRN and its root: 2009-02-25 .. 2059-02-25
        assert!(verify_rrn_certificate(&test_store(), &file, date!(2009 - 02 - 25)).is_ok());
        assert!(verify_rrn_certificate(&test_store(), &file, date!(2059 - 02 - 25)).is_ok());
        // nora's RRN (no root configured): 2007-04-30 .. 2057-04-17
        let nora = card_file("nora-ec-2022", "503C");
        assert!(matches!(
            verify_rrn_certificate(&test_store(), &nora, date!(2007 - 04 - 29)),
            Err(TrustError::CertificateNotValidAt { not_before, not_after, .. })
                if not_before == date!(2007 - 04 - 30) && not_after == date!(2057 - 04 - 17)
        ));
        assert!(matches!(
            verify_rrn_certificate(&test_store(), &nora, date!(2057 - 04 - 18)),
            Err(TrustError::CertificateNotValidAt { .. })
        ));
        // Today is not the date: an RRN certificate is judged at the card's issue date.
        assert!(verify_rrn_certificate(&test_store(), &nora, date!(2022 - 07 - 05)).is_ok());
    }

    #[test]
    fn a_root_that_did_not_exist_yet_does_not_vouch() {
        // The test root starts 2009-02-25, like the RRN certificate: the root is checked first.
        let file = card_file("alice-2009", "503C");
        assert!(matches!(
            verify_rrn_certificate(&test_store(), &file, date!(2008 - 01 - 01)),
            Err(TrustError::RootNotValidAt { .. })
        ));
    }

    #[test]
    fn a_tampered_certificate_under_a_known_root_is_an_error() {
        let mut file = card_file("alice-2009", "503C");
        // Inside the signed part (the RRN public key modulus), far from any length byte.
        file[300] ^= 0x40;
        assert!(matches!(
            verify_rrn_certificate(&test_store(), &file, card_issue_date("alice-2009")),
            Err(TrustError::CertificateSignatureInvalid { root }) if root == "eID test Root CA"
        ));
    }

    #[test]
    fn padded_card_files_are_cut_at_the_der_length() {
        let mut file = card_file("alice-2010", "503C");
        file.extend([0u8; 1100]);
        let cert =
            verify_rrn_certificate(&test_store(), &file, card_issue_date("alice-2010")).unwrap();
        assert!(cert.trusted());
        assert_eq!(cert.der().len(), 840);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        for file in [
            &b""[..],
            b"\x30",
            b"\x30\x82\x03\x44",
            b"\x30\x03\x02\x01\x00",
            b"garbage",
        ] {
            assert!(matches!(
                verify_rrn_certificate(&test_store(), file, date!(2010 - 01 - 01)),
                Err(TrustError::MalformedCertificate { .. })
            ));
        }
    }

    #[test]
    fn a_root_certificate_is_not_an_rrn_certificate() {
        let root = std::fs::read(fixture("test-pki/eid-test-root-ca.crt")).unwrap();
        assert!(matches!(
            verify_rrn_certificate(&test_store(), &root, date!(2010 - 01 - 01)),
            Err(TrustError::UnsuitableCertificate { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_or_mangled_certificate_files_never_panic(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200),
            cuts in 0usize..840,
            edits in proptest::collection::vec((0usize..840, proptest::prelude::any::<u8>()), 0..8),
        ) {
            let store = test_store();
            let at = date!(2010 - 01 - 01);
            let _ = verify_rrn_certificate(&store, &noise, at);
            let mut cert = card_file("alice-2009", "503C");
            for (index, value) in edits {
                cert[index] = value;
            }
            let _ = verify_rrn_certificate(&store, &cert, at);
            let _ = verify_rrn_certificate(&store, &cert[..cuts], at);
            let _ = RrnKey::from_spki_der(&noise);
            let _ = crate::trust::BasicKey::from_file(&noise, &[0u8; 48]);
        }
    }
}
