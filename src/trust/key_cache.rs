//! Cache of verified RRN keys, so most cards need only 4031 + 4032 (no 503C read).
//!
//! The state file holds certificates, not bare keys: every entry is re-verified against the
//! trust store when loaded, so removing a root (or a certificate that no longer verifies)
//! removes its keys. Only trusted certificates are cached.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::Date;

use super::der::{from_hex, to_hex};
use super::error::TrustError;
use super::public_key::RrnKey;
use super::roots::TrustStore;
use super::rrn_certificate::{verify_rrn_certificate, RrnCertificate};
use super::signature::{verify_identity_signature, SignatureAlgorithm};

/// There are a handful of RRN keys in the field; a bound keeps a bad actor from growing the file.
pub const MAX_ENTRIES: usize = 32;
const FILE_VERSION: u32 = 1;

/// In-memory cache of trusted RRN certificates, persisted as JSON.
#[derive(Clone, Debug, Default)]
pub struct RrnKeyCache {
    /// Oldest first.
    entries: Vec<RrnCertificate>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheFile {
    version: u32,
    entries: Vec<CacheEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheEntry {
    /// Informational (SHA-256 of the SPKI); recomputed at load.
    fingerprint: String,
    /// Informational; the root is found again at load.
    root: Option<String>,
    /// The date the certificate was judged valid at, `YYYY-MM-DD`.
    checked_at: String,
    /// Certificate DER, hex.
    certificate: String,
}

impl RrnKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        RrnKeyCache::default()
    }

    /// Loads the state file and re-verifies each entry against `store` at the date it was first
    /// checked at. Entries that no longer verify, or are no longer trusted, are dropped (and
    /// logged by fingerprint). A missing file is an empty cache.
    pub fn load(path: &Path, store: &TrustStore) -> Result<Self, TrustError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RrnKeyCache::new()),
            Err(source) => {
                return Err(TrustError::CacheIo {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let file: CacheFile =
            serde_json::from_str(&text).map_err(|source| TrustError::CacheFormat {
                path: path.to_owned(),
                source,
            })?;
        let mut cache = RrnKeyCache::new();
        if file.version != FILE_VERSION {
            tracing::warn!(
                version = file.version,
                "RRN key cache has an unknown version, starting empty"
            );
            return Ok(cache);
        }
        for (index, entry) in file.entries.iter().enumerate() {
            match revalidate(entry, store) {
                Ok(cert) => cache.push(cert),
                Err(reason) => tracing::info!(entry = index, reason, "dropping cached RRN key"),
            }
        }
        Ok(cache)
    }

    /// Writes the state file atomically: a temporary file in the same directory, flushed to disk,
    /// then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let file = CacheFile {
            version: FILE_VERSION,
            entries: self
                .entries
                .iter()
                .map(|cert| CacheEntry {
                    fingerprint: cert.key().fingerprint_hex(),
                    root: cert.root().map(str::to_owned),
                    checked_at: format_date(cert.checked_at()),
                    certificate: to_hex(cert.der()),
                })
                .collect(),
        };
        let io_error = |source| TrustError::CacheIo {
            path: path.to_owned(),
            source,
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|source| TrustError::CacheFormat {
            path: path.to_owned(),
            source,
        })?;
        let temp = temp_path(path);
        let written = (|| {
            let mut out = fs::File::create(&temp)?;
            out.write_all(&json)?;
            out.write_all(b"\n")?;
            out.sync_all()?;
            fs::rename(&temp, path)
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error(source));
        }
        // Make the rename itself durable; not all platforms can open a directory.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    /// Adds a trusted certificate (and its key). Returns `false` when its key is already cached.
    /// Untrusted certificates are refused with [`TrustError::NotTrusted`]. Beyond
    /// [`MAX_ENTRIES`] the oldest entry is dropped.
    pub fn insert(&mut self, cert: RrnCertificate) -> Result<bool, TrustError> {
        if !cert.trusted() {
            return Err(TrustError::NotTrusted);
        }
        if self.entries.iter().any(|c| c.key() == cert.key()) {
            return Ok(false);
        }
        tracing::info!(key = %cert.key().fingerprint_hex(), root = cert.root().unwrap_or("-"), "RRN key cached");
        self.push(cert);
        Ok(true)
    }

    fn push(&mut self, cert: RrnCertificate) {
        if self.entries.iter().any(|c| c.key() == cert.key()) {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push(cert);
    }

    /// Cached keys to try on a new card's 4032 before reading its 503C.
    pub fn candidates(&self) -> impl Iterator<Item = &RrnKey> {
        self.entries.iter().map(RrnCertificate::key)
    }

    /// Cached certificates, oldest first.
    pub fn certificates(&self) -> impl Iterator<Item = &RrnCertificate> {
        self.entries.iter()
    }

    /// The cached certificate whose key verifies `signature_file` over `identity_file`, among
    /// those valid at `at` (the card's validity begin). `None` ⇒ read 503C and verify it.
    pub fn find_identity_signer(
        &self,
        identity_file: &[u8],
        signature_file: &[u8],
        at: Date,
    ) -> Option<(&RrnCertificate, SignatureAlgorithm)> {
        self.entries
            .iter()
            .filter(|cert| cert.valid_at(at))
            .find_map(|cert| {
                verify_identity_signature(cert.key(), identity_file, signature_file)
                    .ok()
                    .map(|algorithm| (cert, algorithm))
            })
    }

    /// Removes the entry with this key fingerprint; `true` when there was one.
    pub fn remove(&mut self, fingerprint: &[u8; 32]) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|c| c.key().fingerprint() != fingerprint);
        self.entries.len() != before
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No cached key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn revalidate(entry: &CacheEntry, store: &TrustStore) -> Result<RrnCertificate, &'static str> {
    let der = from_hex(&entry.certificate).ok_or("certificate is not hex")?;
    let at = parse_date(&entry.checked_at).ok_or("checkedAt is not a date")?;
    let cert =
        verify_rrn_certificate(store, &der, at).map_err(|_| "certificate no longer verifies")?;
    if !cert.trusted() {
        return Err("root no longer trusted");
    }
    if cert.der().len() != der.len() {
        return Err("bytes after the certificate");
    }
    Ok(cert)
}

fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "rrn-keys".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::test_support::{card_file, card_issue_date, test_store};

    fn alice_cert() -> RrnCertificate {
        verify_rrn_certificate(
            &test_store(),
            &card_file("alice-2009", "503C"),
            card_issue_date("alice-2009"),
        )
        .unwrap()
    }

    #[test]
    fn round_trip_keeps_trusted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rrn-keys.json");
        let mut cache = RrnKeyCache::new();
        assert!(cache.insert(alice_cert()).unwrap());
        assert!(!cache.insert(alice_cert()).unwrap(), "same key twice");
        cache.save(&path).unwrap();

        let loaded = RrnKeyCache::load(&path, &test_store()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded.candidates().next(), cache.candidates().next());
        let cert = loaded.certificates().next().unwrap();
        assert_eq!(cert.root(), Some("eID test Root CA"));
        assert_eq!(cert.checked_at(), card_issue_date("alice-2009"));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["rrn-keys.json"], "no temporary file left behind");
    }

    #[test]
    fn entries_whose_root_is_removed_are_dropped_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rrn-keys.json");
        let mut cache = RrnKeyCache::new();
        cache.insert(alice_cert()).unwrap();
        cache.save(&path).unwrap();
        let loaded = RrnKeyCache::load(&path, &TrustStore::production()).unwrap();
        assert!(loaded.is_empty());
    }

    #[test]
    fn tampered_entries_are_dropped_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rrn-keys.json");
        let mut cache = RrnKeyCache::new();
        cache.insert(alice_cert()).unwrap();
        cache.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let file: CacheFile = serde_json::from_str(&text).unwrap();
        let good = &file.entries[0];
        // Flip one byte of the RRN modulus; garbage hex; a bad date; a date outside validity.
        let mut der = from_hex(&good.certificate).unwrap();
        der[300] ^= 1;
        let bad = |certificate: String, checked_at: &str| CacheEntry {
            fingerprint: good.fingerprint.clone(),
            root: good.root.clone(),
            checked_at: checked_at.to_owned(),
            certificate,
        };
        let tampered = CacheFile {
            version: FILE_VERSION,
            entries: vec![
                bad(to_hex(&der), &good.checked_at),
                bad("zz".into(), &good.checked_at),
                bad(good.certificate.clone(), "23.07.2009"),
                bad(good.certificate.clone(), "2070-01-01"),
                bad(good.certificate.clone(), &good.checked_at),
            ],
        };
        fs::write(&path, serde_json::to_vec(&tampered).unwrap()).unwrap();
        let loaded = RrnKeyCache::load(&path, &test_store()).unwrap();
        assert_eq!(loaded.len(), 1, "only the genuine entry survives");
    }

    #[test]
    fn missing_file_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        assert!(RrnKeyCache::load(&path, &test_store()).unwrap().is_empty());
        fs::write(&path, "not json").unwrap();
        assert!(matches!(
            RrnKeyCache::load(&path, &test_store()),
            Err(TrustError::CacheFormat { .. })
        ));
        fs::write(&path, r#"{"version": 99, "entries": []}"#).unwrap();
        assert!(RrnKeyCache::load(&path, &test_store()).unwrap().is_empty());
    }

    #[test]
    fn untrusted_certificates_are_not_cached() {
        let card = "nora-ec-2022";
        let cert = verify_rrn_certificate(
            &test_store(),
            &card_file(card, "503C"),
            card_issue_date(card),
        )
        .unwrap();
        let mut cache = RrnKeyCache::new();
        assert!(matches!(cache.insert(cert), Err(TrustError::NotTrusted)));
        assert!(cache.is_empty());
    }

    #[test]
    fn cached_key_verifies_a_new_card_without_its_certificate() {
        let mut cache = RrnKeyCache::new();
        cache.insert(alice_cert()).unwrap();
        let card = "alice-2010";
        let (cert, algorithm) = cache
            .find_identity_signer(
                &card_file(card, "4031"),
                &card_file(card, "4032"),
                card_issue_date(card),
            )
            .unwrap();
        assert!(cert.trusted());
        assert_eq!(algorithm, SignatureAlgorithm::RsaPkcs1Sha1);
        // Not at a date the certificate was not valid at, nor for another card's signature.
        assert!(cache
            .find_identity_signer(
                &card_file(card, "4031"),
                &card_file(card, "4032"),
                time::macros::date!(2008 - 01 - 01)
            )
            .is_none());
        assert!(cache
            .find_identity_signer(
                &card_file(card, "4031"),
                &card_file("alice-2009", "4032"),
                card_issue_date(card)
            )
            .is_none());
        let fingerprint = *cert.key().fingerprint();
        assert!(cache.remove(&fingerprint));
        assert!(!cache.remove(&fingerprint));
        assert!(cache.is_empty());
    }

    #[test]
    fn save_into_a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/rrn-keys.json");
        assert!(matches!(
            RrnKeyCache::new().save(&path),
            Err(TrustError::CacheIo { .. })
        ));
    }
}
