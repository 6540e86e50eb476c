//! The one error type of the trust layer.
//!
//! Messages name algorithms, lengths, dates, root names and reasons, never file contents: they
//! may end up in logs and in the technician's diagnostic.

use std::path::PathBuf;

use time::Date;
use x509_parser::error::X509Error;

/// Why the trust layer refused something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The certificate file is not a DER certificate we can read (framing, ASN.1, or a field the
    /// X.509 profile forbids).
    #[error("certificate is malformed: {reason}")]
    MalformedCertificate {
        reason: &'static str,
        #[source]
        source: Option<X509Error>,
    },

    /// The certificate is signed with an algorithm outside `docs/card-protocol.md` §13.
    #[error("unsupported certificate signature algorithm {oid}")]
    UnsupportedAlgorithm { oid: String },

    /// A public key (certificate, root, 4040) is neither RSA 1024..8192 bits nor EC P-384.
    #[error("unsupported public key: {reason}")]
    UnsupportedKey { reason: &'static str },

    /// The issuer is a configured root, but the certificate signature does not verify with its
    /// key: a forged or damaged RRN certificate.
    #[error("certificate signature does not verify against root {root:?}")]
    CertificateSignatureInvalid { root: String },

    /// The certificate was not valid on the date it is judged at (the card's validity begin).
    #[error("certificate not valid on {at} (valid from {not_before} to {not_after})")]
    CertificateNotValidAt {
        at: Date,
        not_before: Date,
        not_after: Date,
    },

    /// The certificate verifies against a root that was not valid on the judged date.
    #[error("root {root:?} not valid on {at}")]
    RootNotValidAt { root: String, at: Date },

    /// The certificate is well formed but not fit for its role (an RRN certificate that is a CA
    /// or may not sign, a configured root that is not self-signed).
    #[error("certificate unsuitable: {reason}")]
    UnsuitableCertificate { reason: &'static str },

    /// An RSA signature file whose length is not the modulus length.
    #[error("signature file has {actual} bytes, the RSA key needs {expected}")]
    SignatureLength { expected: usize, actual: usize },

    /// An EC signature file that is not `DER signature ‖ zero padding`.
    #[error("signature file is malformed: {reason}")]
    MalformedSignature { reason: &'static str },

    /// The RRN signature does not verify with this key under any allowed algorithm.
    #[error("RRN signature does not verify ({key_algorithm})")]
    SignatureInvalid { key_algorithm: &'static str },

    /// 4040 is not a 120-byte P-384 SubjectPublicKeyInfo.
    #[error("basic public key file is malformed: {reason}")]
    MalformedBasicKey { reason: &'static str },

    /// SHA-384(4040) is not the signed identity's tag 0x1A: the key file was swapped.
    #[error("basic public key file does not match the identity's key hash")]
    BasicKeyHashMismatch,

    /// INTERNAL AUTHENTICATE answer that is not a valid signature by the basic key.
    #[error("challenge response does not verify with the basic key")]
    ChallengeResponseInvalid,

    /// Only trusted RRN certificates are cached.
    #[error("RRN certificate is not trusted, not cached")]
    NotTrusted,

    /// The system random generator failed (nonce for the anti-clone check). ring's error
    /// carries no detail (and is not `std::error::Error` without ring's `std` feature).
    #[error("random generator failed")]
    Random,

    /// Reading or writing the RRN key cache file failed.
    #[error("RRN key cache {path:?}")]
    CacheIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A configured root file cannot be read as certificates.
    #[error(transparent)]
    RootFile(#[from] crate::pem::PemError),

    /// A configured root file holds a certificate that is not a usable root.
    #[error("root {}: {source}", path.display())]
    ExtraRoot {
        path: PathBuf,
        #[source]
        source: Box<TrustError>,
    },

    /// The RRN key cache file is not the JSON we write.
    #[error("RRN key cache {path:?} is not valid")]
    CacheFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl TrustError {
    pub(crate) fn malformed(reason: &'static str) -> Self {
        TrustError::MalformedCertificate {
            reason,
            source: None,
        }
    }

    pub(crate) fn x509(reason: &'static str, err: x509_parser::nom::Err<X509Error>) -> Self {
        let source = match err {
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
            x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
        };
        TrustError::MalformedCertificate {
            reason,
            source: Some(source),
        }
    }
}
