//! The local pseudonymisation secret: 32 random bytes in a file of mode 0600.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::error::{io_error, AuditError};
use super::files::{exposure, publish_new, Exposure};
use super::record::Pseudonym;

pub(crate) const SECRET_LEN: usize = 32;

pub(crate) struct Secret {
    key: hmac::Key,
}

impl Secret {
    /// Reads the secret, or creates it if the file does not exist. Creation writes a temporary
    /// file (0600), syncs it, then hard-links it to `path`, which fails rather than replace a
    /// secret another process published first; either way the secret in `path` is used.
    pub(crate) fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match read(path) {
            Err(AuditError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                create(path)?;
                read(path)
            }
            other => other,
        }
    }

    /// hex HMAC-SHA256(secret, `national_number` as bytes).
    pub(crate) fn pseudonym(&self, national_number: &str) -> Pseudonym {
        Pseudonym::from_mac(hmac::sign(&self.key, national_number.as_bytes()).as_ref())
    }
}

fn read(path: &Path) -> Result<Secret, AuditError> {
    let file = File::open(path).map_err(io_error("open the secret", path))?;
    let meta = file.metadata().map_err(io_error("stat the secret", path))?;
    match exposure(&meta) {
        None => {}
        Some(Exposure::NotAFile) => {
            return Err(AuditError::SecretNotAFile {
                path: path.to_path_buf(),
            })
        }
        Some(Exposure::Open { mode }) => {
            return Err(AuditError::SecretPermissions {
                path: path.to_path_buf(),
                mode,
            })
        }
    }
    let mut bytes = Vec::with_capacity(SECRET_LEN + 1);
    file.take(SECRET_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error("read the secret", path))?;
    let result = if bytes.len() == SECRET_LEN {
        Ok(Secret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    } else {
        Err(AuditError::SecretLength {
            path: path.to_path_buf(),
            len: meta.len(),
        })
    };
    bytes.fill(0);
    std::hint::black_box(&bytes);
    result
}

fn create(path: &Path) -> Result<(), AuditError> {
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    SystemRandom::new()
        .fill(&mut *secret)
        .map_err(|_| AuditError::Random)?;
    publish_new(path, &*secret, "publish the secret").map(|_| ())
}
