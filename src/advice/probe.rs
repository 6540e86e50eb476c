//! What `beid-agent diagnose` asks of the upstream settings, without asking for any advice:
//! how long the client certificate stays valid, whether the upstream accepts this device's
//! TLS handshake, how long a round trip takes, how long the upstream's own certificate stays
//! valid, and whether its clock agrees with ours.
//!
//! The probe is `GET {base}/v1/health` (see `docs/upstream-openapi.yaml`). It carries no
//! personal data. Any HTTP answer proves the network path and the mutual TLS handshake; a
//! `200` also says the service is up.

use std::path::Path;
use std::time::Duration;

use reqwest::header::DATE;
use time::OffsetDateTime;
use tokio::time::Instant;
use url::Url;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::AdviceError;
use super::http::{client, endpoint, transport_failure, ClientUse};
use super::{HttpSettings, Reason};
use crate::pem::{self, PemError};

/// The path of the health probe, relative to the base URL.
pub const HEALTH_PATH: &str = "v1/health";

/// The dates of a certificate, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDates {
    /// The subject, as text (`CN=balie-3, O=…`): names a device or a server, not a person.
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertificateDates {
    /// Whole days from `now` until the certificate expires (negative once it has).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }

    fn from_der(der: &[u8]) -> Option<Self> {
        let (_, certificate) = X509Certificate::from_der(der).ok()?;
        let validity = certificate.validity();
        Some(Self {
            subject: certificate.subject().to_string(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }
}

/// The dates of the client certificate (the chain's first certificate).
pub fn client_certificate_dates(path: &Path) -> Result<CertificateDates, AdviceError> {
    const WHAT: &str = "client certificate";
    let chain = pem::read_certificates(WHAT, path)?;
    chain
        .first()
        .and_then(|leaf| CertificateDates::from_der(leaf))
        .ok_or_else(|| {
            AdviceError::from(PemError::NoItem {
                what: WHAT,
                path: path.to_owned(),
            })
        })
}

/// What a successful probe learnt.
#[derive(Debug, Clone)]
pub struct UpstreamHealth {
    /// The probe's HTTP status.
    pub status: u16,
    /// Connect, TLS handshake and the round trip.
    pub latency: Duration,
    /// The upstream's `Date` header, when it sent a valid one.
    pub server_date: Option<OffsetDateTime>,
    /// The upstream's own certificate.
    pub server_certificate: Option<CertificateDates>,
}

/// Why the probe got no HTTP answer: the same reasons the advice path would give.
#[derive(Debug, Clone)]
pub struct ProbeFailure {
    pub reason: Reason,
    /// The error chain (host, port and TLS detail; never personal data).
    pub detail: String,
    pub latency: Duration,
}

/// Probe the upstream once, within the settings' total timeout. `Err` only when the settings
/// themselves are unusable (unreadable files, a bad URL).
pub async fn probe(
    settings: &HttpSettings,
) -> Result<Result<UpstreamHealth, ProbeFailure>, AdviceError> {
    let url = health_url(&settings.url)?;
    let client = client(settings, ClientUse::Probe, &std::sync::Arc::default())?.http;
    let started = Instant::now();
    let send = client.get(url).send();
    let response = match tokio::time::timeout(settings.timeout, send).await {
        Err(_elapsed) => {
            return Ok(Err(ProbeFailure {
                reason: Reason::UpstreamTimeout,
                detail: format!("no answer within {} ms", settings.timeout.as_millis()),
                latency: started.elapsed(),
            }))
        }
        Ok(Err(error)) => {
            let (reason, detail) = transport_failure(&error);
            return Ok(Err(ProbeFailure {
                reason,
                detail,
                latency: started.elapsed(),
            }));
        }
        Ok(Ok(response)) => response,
    };
    let latency = started.elapsed();
    let server_date = response
        .headers()
        .get(DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_http_date);
    let server_certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .and_then(CertificateDates::from_der);
    Ok(Ok(UpstreamHealth {
        status: response.status().as_u16(),
        latency,
        server_date,
        server_certificate,
    }))
}

/// `{base}/v1/health`, refusing what the advice endpoint refuses.
fn health_url(base: &Url) -> Result<Url, AdviceError> {
    let checks = endpoint(base)?;
    checks
        .join(&format!("../{HEALTH_PATH}"))
        .map_err(|_| AdviceError::Url {
            url: base.to_string(),
            why: "cannot be joined with the health path",
        })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_url_keeps_the_base_path() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            health_url(&url("https://rules.example")).unwrap().as_str(),
            "https://rules.example/v1/health"
        );
        assert_eq!(
            health_url(&url("https://rules.example/city/api/"))
                .unwrap()
                .as_str(),
            "https://rules.example/city/api/v1/health"
        );
        assert!(health_url(&url("http://rules.example/")).is_err());
    }

    #[test]
    fn http_dates_parse_and_garbage_does_not() {
        let date = parse_http_date("Mon, 23 Nov 2026 10:15:00 GMT").unwrap();
        assert_eq!(date, time::macros::datetime!(2026-11-23 10:15:00 UTC));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Mon, 23 Nov 2026 10:15:00 CET"), None);
    }
}
