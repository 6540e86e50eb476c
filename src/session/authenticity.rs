//! Whether a card's identity data is what the National Register signed: its signature over
//! the identity file, the RRN certificate chained to a Belgian root (judged at the card's
//! issue date), and on applet 1.8 cards, when policy asks, the chip's own basic key.
//!
//! The same report serves a live card and an offline dump (`verify-dump`), so technicians
//! and integrators read one format.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use time::Date;

use crate::beid::{BeidCard, CardError, CardFile, Identity, IdentityFiles};
use crate::reader::CardTransport;
use crate::trust::{
    challenge_for, check_photo_hash, verify_address_signature, verify_identity_signature,
    verify_rrn_certificate, BasicKey, PhotoCheck, RrnCertificate, RrnKeyCache, SignatureAlgorithm,
    TrustError, TrustStore,
};

/// When to prove the chip genuine with INTERNAL AUTHENTICATE (applet 1.8). A card allows
/// 5000 of these without a PIN, so never on every read by default: at kiosks, where no
/// clerk looks at the card, it is worth it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum CardAuthentication {
    Never,
    #[default]
    Kiosk,
    Always,
}

impl CardAuthentication {
    pub fn applies(self, at_kiosk: bool) -> bool {
        match self {
            Self::Never => false,
            Self::Kiosk => at_kiosk,
            Self::Always => true,
        }
    }
}

/// The stable JSON of `verify-dump` and of `read`'s `authenticity` (README).
#[derive(Debug, Clone, Serialize)]
pub struct AuthenticityReport {
    /// Identity signature valid and the RRN certificate trusted (and, when it was checked,
    /// the chip genuine).
    pub authentic: bool,
    pub identity: IdentityCheck,
    pub rrn_certificate: CertificateCheck,
    pub address: AddressCheck,
    pub photo: PhotoReport,
    pub national_number: NationalNumberCheck,
    pub card: CardDates,
    /// Applet 1.8 anti-clone check, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip: Option<ChipCheck>,
    /// Where the RRN key came from on a live card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrn_key: Option<RrnKeySource>,
    /// Why it is not authentic, in words (no personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A verdict enum whose JSON and text form is its stable code.
macro_rules! verdict {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $code)] $variant),+
        }

        impl $name {
            /// The stable code.
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

verdict! {
    /// The National Register's signature over the identity file.
    SignatureVerdict {
        Valid => "valid",
        /// Wrong, or not judged for want of a trusted key.
        Invalid => "invalid",
        Missing => "missing",
    }
}

verdict! {
    /// The address signature; a live card never reads the address, so it is absent there.
    AddressVerdict {
        Valid => "valid",
        Invalid => "invalid",
        Absent => "absent",
    }
}

verdict! {
    /// The photo against its hash in the identity file.
    PhotoVerdict {
        Match => "match",
        Mismatch => "mismatch",
        Absent => "absent",
    }
}

verdict! {
    /// The national number's check digits.
    ChecksumVerdict {
        Valid => "valid",
        Invalid => "invalid",
    }
}

verdict! {
    /// The applet 1.8 chip's proof of its basic key.
    ChipVerdict {
        Genuine => "genuine",
        NotGenuine => "not_genuine",
    }
}

verdict! {
    /// Where a live card's RRN key came from.
    RrnKeySource {
        /// The key cache: 503C was not read.
        Cached => "cached",
        /// The card's 503C.
        Card => "card",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentityCheck {
    pub signature: SignatureVerdict,
    pub algorithm: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateCheck {
    pub subject: Option<String>,
    pub root: Option<String>,
    pub trusted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddressCheck {
    pub signature: AddressVerdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhotoReport {
    pub hash: PhotoVerdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct NationalNumberCheck {
    pub checksum: ChecksumVerdict,
    pub masked: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CardDates {
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChipCheck {
    pub result: ChipVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The card files an assessment looks at; absent ones are `None`.
#[derive(Default)]
pub struct Evidence<'a> {
    pub identity_file: &'a [u8],
    pub signature_file: Option<&'a [u8]>,
    pub rrn_certificate_file: Option<&'a [u8]>,
    pub address_file: Option<&'a [u8]>,
    pub address_signature_file: Option<&'a [u8]>,
    pub photo: Option<&'a [u8]>,
}

enum SignatureOutcome {
    Valid(SignatureAlgorithm),
    Invalid(TrustError),
    Missing,
    Unjudged,
}

/// Judges evidence against a trust store. With `cached`, the RRN certificate comes from
/// the key cache instead of the card. Returns the certificate when it verified, so the
/// caller can cache it.
pub fn assess(
    store: &TrustStore,
    identity: &Identity,
    evidence: &Evidence,
    cached: Option<(&RrnCertificate, SignatureAlgorithm)>,
) -> (AuthenticityReport, Option<RrnCertificate>) {
    let at = judgement_date(identity);
    let mut problem = None;
    let certificate: Option<RrnCertificate> = match (cached, evidence.rrn_certificate_file) {
        (Some((cert, _)), _) => Some(cert.clone()),
        (None, Some(file)) => match verify_rrn_certificate(store, file, at) {
            Ok(cert) => Some(cert),
            Err(error) => {
                problem = Some(format!("RRN certificate: {error}"));
                None
            }
        },
        (None, None) => {
            problem = Some("no RRN certificate".into());
            None
        }
    };
    let signature = match (cached, evidence.signature_file, &certificate) {
        (Some((_, algorithm)), _, _) => SignatureOutcome::Valid(algorithm),
        (None, None, _) => SignatureOutcome::Missing,
        (None, Some(sig), Some(cert)) => {
            match verify_identity_signature(cert.key(), evidence.identity_file, sig) {
                Ok(algorithm) => SignatureOutcome::Valid(algorithm),
                Err(error) => SignatureOutcome::Invalid(error),
            }
        }
        // No usable certificate, so no key to judge the signature with.
        (None, Some(_), None) => SignatureOutcome::Unjudged,
    };
    let identity_check = match &signature {
        SignatureOutcome::Valid(algorithm) => IdentityCheck {
            signature: SignatureVerdict::Valid,
            algorithm: Some(algorithm.name()),
        },
        SignatureOutcome::Missing => IdentityCheck {
            signature: SignatureVerdict::Missing,
            algorithm: None,
        },
        SignatureOutcome::Invalid(error) => {
            problem.get_or_insert_with(|| format!("identity signature: {error}"));
            IdentityCheck {
                signature: SignatureVerdict::Invalid,
                algorithm: None,
            }
        }
        SignatureOutcome::Unjudged => IdentityCheck {
            signature: SignatureVerdict::Invalid,
            algorithm: None,
        },
    };
    let trusted = certificate.as_ref().is_some_and(RrnCertificate::trusted);
    if certificate.is_some() && !trusted {
        problem.get_or_insert_with(|| {
            "the RRN certificate does not chain to a trusted Belgian root".into()
        });
    }
    let address = match (
        evidence.address_file,
        evidence.address_signature_file,
        evidence.signature_file,
        &certificate,
    ) {
        (Some(address), Some(address_sig), Some(id_sig), Some(cert)) => {
            if verify_address_signature(cert.key(), address, id_sig, address_sig).is_ok() {
                AddressVerdict::Valid
            } else {
                AddressVerdict::Invalid
            }
        }
        (Some(_), _, _, _) => AddressVerdict::Invalid,
        _ => AddressVerdict::Absent,
    };
    let photo = match evidence.photo {
        Some(photo) => match check_photo_hash(photo, &identity.photo_hash) {
            PhotoCheck::Match(_) => PhotoVerdict::Match,
            _ => PhotoVerdict::Mismatch,
        },
        None => PhotoVerdict::Absent,
    };
    let checksum_valid = identity
        .national_number
        .as_ref()
        .is_some_and(|n| n.checksum().is_valid());
    let report = AuthenticityReport {
        authentic: identity_check.signature == SignatureVerdict::Valid && trusted,
        identity: identity_check,
        rrn_certificate: CertificateCheck {
            subject: certificate.as_ref().map(|c| c.subject().to_owned()),
            root: certificate
                .as_ref()
                .and_then(|c| c.root().map(str::to_owned)),
            trusted,
        },
        address: AddressCheck { signature: address },
        photo: PhotoReport { hash: photo },
        national_number: NationalNumberCheck {
            checksum: if checksum_valid {
                ChecksumVerdict::Valid
            } else {
                ChecksumVerdict::Invalid
            },
            masked: identity
                .national_number
                .as_ref()
                .map(|n| n.masked())
                .unwrap_or_default(),
        },
        card: CardDates {
            valid_from: identity.validity_begin.map(|d| d.to_string()),
            valid_until: identity.validity_end.map(|d| d.to_string()),
        },
        chip: None,
        rrn_key: None,
        problem: None,
    };
    let verified = certificate.filter(|_| report.authentic);
    let report = AuthenticityReport {
        problem: if report.authentic { None } else { problem },
        ..report
    };
    (report, verified)
}

/// Certificates are judged at the card's issue date (old RRN certificates expired while
/// their cards stayed valid); a card without one is judged today.
fn judgement_date(identity: &Identity) -> Date {
    identity
        .validity_begin
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date())
}

/// Verifies live cards: trust store, RRN key cache (memory and, when configured, a state
/// file re-validated at load), anti-clone policy.
pub struct Verifier {
    store: TrustStore,
    cache: Mutex<RrnKeyCache>,
    cache_file: Option<PathBuf>,
}

impl Verifier {
    pub fn new(store: TrustStore, cache_file: Option<PathBuf>) -> Self {
        let cache = match &cache_file {
            Some(path) => RrnKeyCache::load(path, &store).unwrap_or_else(|error| {
                tracing::warn!(%error, "RRN key cache unusable; starting empty");
                RrnKeyCache::new()
            }),
            None => RrnKeyCache::new(),
        };
        Self {
            store,
            cache: Mutex::new(cache),
            cache_file,
        }
    }

    /// Judges the identity files just read from `card`: cached RRN keys first; only when
    /// none verifies is 503C read (and its key cached once it proved trusted). With
    /// `authenticate_chip`, an applet 1.8 card must also prove its basic key.
    pub fn verify<T: CardTransport>(
        &self,
        card: &mut BeidCard<T>,
        files: &IdentityFiles,
        authenticate_chip: bool,
    ) -> Result<AuthenticityReport, CardError> {
        let at = judgement_date(&files.identity);
        let evidence = Evidence {
            identity_file: &files.identity_file,
            signature_file: Some(&files.signature_file),
            ..Evidence::default()
        };
        let cached_hit = self.cache.lock().ok().and_then(|cache| {
            cache
                .find_identity_signer(&files.identity_file, &files.signature_file, at)
                .map(|(cert, algorithm)| (cert.clone(), algorithm))
        });
        let mut report = match &cached_hit {
            Some((cert, algorithm)) => {
                let (mut report, _) = assess(
                    &self.store,
                    &files.identity,
                    &evidence,
                    Some((cert, *algorithm)),
                );
                report.rrn_key = Some(RrnKeySource::Cached);
                report
            }
            None => {
                let certificate_file = match card.read_file(CardFile::RrnCertificate) {
                    Ok(file) => Some(file),
                    Err(CardError::FileNotFound(_)) => None,
                    Err(error) => return Err(error),
                };
                let evidence = Evidence {
                    rrn_certificate_file: certificate_file.as_deref().map(|f| &f[..]),
                    ..evidence
                };
                let (mut report, verified) = assess(&self.store, &files.identity, &evidence, None);
                if let Some(cert) = verified {
                    self.remember(cert);
                }
                report.rrn_key = Some(RrnKeySource::Card);
                report
            }
        };
        if authenticate_chip && card.card_data().applet_version().has_basic_key() {
            let chip = authenticate_basic_key(card, &files.identity)?;
            if chip.result != ChipVerdict::Genuine {
                report.authentic = false;
                report.problem = chip.problem.clone();
            }
            report.chip = Some(chip);
        }
        Ok(report)
    }

    fn remember(&self, certificate: RrnCertificate) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        match cache.insert(certificate) {
            Ok(true) => {
                if let Some(path) = &self.cache_file {
                    if let Err(error) = cache.save(path) {
                        tracing::warn!(%error, "cannot save the RRN key cache");
                    }
                }
            }
            Ok(false) => {}
            Err(error) => tracing::debug!(%error, "RRN certificate not cached"),
        }
    }
}

/// Applet 1.8: SHA-384(4040) must equal identity tag 0x1A (signed by the National Register),
/// and the chip must sign a fresh challenge with the private half of that key.
fn authenticate_basic_key<T: CardTransport>(
    card: &mut BeidCard<T>,
    identity: &Identity,
) -> Result<ChipCheck, CardError> {
    let not_genuine = |problem: String| ChipCheck {
        result: ChipVerdict::NotGenuine,
        problem: Some(problem),
    };
    let key_file = card.read_file(CardFile::BasicPublicKey)?;
    let key = match BasicKey::from_file(&key_file, &identity.basic_key_hash) {
        Ok(key) => key,
        Err(error) => return Ok(not_genuine(format!("basic key: {error}"))),
    };
    let nonce = match BasicKey::new_nonce() {
        Ok(nonce) => nonce,
        Err(error) => return Ok(not_genuine(format!("no random nonce: {error}"))),
    };
    let response = match card.internal_authenticate(&challenge_for(&nonce)) {
        Ok(response) => response,
        Err(CardError::Status { status, .. }) => {
            return Ok(not_genuine(format!(
                "INTERNAL AUTHENTICATE refused ({status})"
            )))
        }
        Err(error) => return Err(error),
    };
    Ok(match key.verify_challenge_response(&nonce, &response) {
        Ok(()) => ChipCheck {
            result: ChipVerdict::Genuine,
            problem: None,
        },
        Err(error) => not_genuine(format!("chip signature: {error}")),
    })
}
