//! When the certificates on the way to the upstream end, for the fleet's monitoring: this
//! device's client certificate (read with the service's other files), and the upstream's own
//! certificate as last presented in a TLS handshake that verified.
//!
//! The upstream's certificate is seen by wrapping the standard webpki verifier: it decides
//! exactly as before, and a certificate it accepted is noted on the way out. So each new
//! connection, whether for an advice or an outcome, refreshes what is known; nothing is
//! known before the first connection.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The not-after times a service knows (`None`: not known, or not applicable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// This device's client certificate.
    pub client: Option<OffsetDateTime>,
    /// The upstream's certificate, from the last handshake that verified it.
    pub server: Option<OffsetDateTime>,
}

/// The not-after of a DER certificate.
pub(crate) fn not_after(der: &[u8]) -> Option<OffsetDateTime> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    Some(certificate.validity().not_after.to_datetime())
}

/// The not-after of the last server certificate that verified, shared between the verifier
/// (inside the HTTP client) and the service that reports it.
#[derive(Debug)]
pub(crate) struct SeenServerExpiry(AtomicI64);

/// Nothing seen yet.
const UNSEEN: i64 = i64::MIN;

impl Default for SeenServerExpiry {
    fn default() -> Self {
        Self(AtomicI64::new(UNSEEN))
    }
}

impl SeenServerExpiry {
    fn record(&self, end_entity: &[u8]) {
        if let Some(at) = not_after(end_entity) {
            self.0.store(at.unix_timestamp(), Ordering::Relaxed);
        }
    }

    /// The last not-after seen, if any.
    pub(crate) fn get(&self) -> Option<OffsetDateTime> {
        match self.0.load(Ordering::Relaxed) {
            UNSEEN => None,
            seconds => OffsetDateTime::from_unix_timestamp(seconds).ok(),
        }
    }
}

/// The standard verifier, noting the end-entity certificate of every server it accepts.
#[derive(Debug)]
pub(crate) struct ObservingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<SeenServerExpiry>,
}

impl ObservingVerifier {
    pub(crate) fn new(inner: Arc<WebPkiServerVerifier>, seen: Arc<SeenServerExpiry>) -> Self {
        Self { inner, seen }
    }
}

impl ServerCertVerifier for ObservingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.seen.record(end_entity);
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_seen_until_a_certificate_is_recorded() {
        let seen = SeenServerExpiry::default();
        assert_eq!(seen.get(), None);
        seen.record(b"not a certificate");
        assert_eq!(seen.get(), None, "garbage is not a date");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["rules.example".into()]).unwrap();
        params.not_after = time::macros::datetime!(2031-05-04 03:02:01 UTC);
        let certificate = params.self_signed(&key).unwrap();
        seen.record(certificate.der());
        assert_eq!(
            seen.get(),
            Some(time::macros::datetime!(2031-05-04 03:02:01 UTC))
        );
    }
}
