//! X.509 helpers shared by the trust store (roots) and the RRN certificate check.

use ring::signature::{
    VerificationAlgorithm, ECDSA_P384_SHA384_ASN1, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256,
};
use time::Date;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA, OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::der::{cut_der_sequence, split_tlv};
use super::error::TrustError;
use super::public_key::{KeyKind, RrnKey};

/// Cuts a card file at its DER length and parses the certificate in it.
pub(crate) fn parse(file: &[u8]) -> Result<X509Certificate<'_>, TrustError> {
    let der = cut_der_sequence(file)?;
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| TrustError::x509("not an X.509 certificate", e))?;
    if !rest.is_empty() {
        return Err(TrustError::malformed(
            "bytes inside the DER length after the certificate",
        ));
    }
    // RFC 5280 §4.1.1.2: the outer algorithm must equal the signed one; otherwise the unsigned
    // outer field could be altered without anyone noticing.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(TrustError::malformed(
            "signature algorithm differs from the signed one",
        ));
    }
    check_outer_encoding(der, cert.tbs_certificate.as_ref())?;
    Ok(cert)
}

/// The parts of a certificate outside the signed TBSCertificate are not covered by its
/// signature, and the parser is lenient with some of their tags (it takes a `[16]` tag for the
/// algorithm SEQUENCE). Insist on the exact DER encoding so that no byte of 503C can change
/// without the check failing: `30 { tbs, algorithm (byte-identical to the one inside tbs),
/// 03 { 00, signature } }`.
fn check_outer_encoding(der: &[u8], tbs: &[u8]) -> Result<(), TrustError> {
    let bad = || TrustError::malformed("certificate is not strict DER");
    let (outer, after) = split_tlv(der).ok_or_else(bad)?;
    let (signed, rest) = split_tlv(outer.content).ok_or_else(bad)?;
    let (algorithm, rest) = split_tlv(rest).ok_or_else(bad)?;
    let (signature, rest) = split_tlv(rest).ok_or_else(bad)?;
    let strict = outer.tag == 0x30
        && after.is_empty()
        && signed.tag == 0x30
        && signed.whole == tbs
        && algorithm.tag == 0x30
        && signature.tag == 0x03
        && signature.content.first() == Some(&0)
        && rest.is_empty();
    if !strict {
        return Err(bad());
    }
    // Inside TBSCertificate: [0] version (optional), serialNumber, signature AlgorithmIdentifier.
    let (first, rest) = split_tlv(signed.content).ok_or_else(bad)?;
    let (serial, rest) = if first.tag == 0xA0 {
        split_tlv(rest).ok_or_else(bad)?
    } else {
        (first, rest)
    };
    let (inner_algorithm, _) = split_tlv(rest).ok_or_else(bad)?;
    if serial.tag != 0x02 || inner_algorithm.whole != algorithm.whole {
        return Err(bad());
    }
    Ok(())
}

/// `true` when `cert` carries a valid signature by `issuer_key`.
///
/// Certificate signature algorithms (`docs/card-protocol.md` §13): Root CA/CA2/CA3 sha1WithRSA, CA4
/// sha256WithRSA (RSA ≥ 2048 bits), CA6 ecdsa-with-SHA384. An algorithm outside those is an error;
/// an algorithm that does not fit the key's kind simply does not verify.
pub(crate) fn is_signed_by(
    cert: &X509Certificate<'_>,
    issuer_key: &RrnKey,
) -> Result<bool, TrustError> {
    let oid = &cert.signature_algorithm.algorithm;
    let (algorithm, needs): (&'static dyn VerificationAlgorithm, fn(KeyKind) -> bool) =
        if *oid == OID_PKCS1_SHA1WITHRSA {
            (&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, is_rsa)
        } else if *oid == OID_PKCS1_SHA256WITHRSA {
            (&RSA_PKCS1_2048_8192_SHA256, is_rsa)
        } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
            (&ECDSA_P384_SHA384_ASN1, |kind| kind == KeyKind::EcP384)
        } else {
            return Err(TrustError::UnsupportedAlgorithm {
                oid: oid.to_id_string(),
            });
        };
    if !needs(issuer_key.kind()) {
        return Ok(false);
    }
    let signed = cert.tbs_certificate.as_ref();
    let signature = cert.signature_value.data.as_ref();
    Ok(issuer_key.verifies(algorithm, signed, signature))
}

fn is_rsa(kind: KeyKind) -> bool {
    matches!(kind, KeyKind::Rsa { .. })
}

/// The first common name, or the whole name when there is none.
pub(crate) fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| name.to_string(), str::to_owned)
}

/// Validity as calendar dates (UTC), since cards carry dates only.
pub(crate) fn validity_dates(cert: &X509Certificate<'_>) -> (Date, Date) {
    let validity = cert.validity();
    (
        validity.not_before.to_datetime().date(),
        validity.not_after.to_datetime().date(),
    )
}
