//! The local pseudonymisation secret: 32 random bytes in a file of mode 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::error::{io_error, AuditError};
use super::record::{hex, Pseudonym};

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
    if !meta.is_file() {
        return Err(AuditError::SecretNotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuditError::SecretPermissions {
            path: path.to_path_buf(),
            mode,
        });
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
    let rng = SystemRandom::new();
    let mut secret = [0u8; SECRET_LEN];
    let mut tag = [0u8; 8];
    rng.fill(&mut secret).map_err(|_| AuditError::Random)?;
    rng.fill(&mut tag).map_err(|_| AuditError::Random)?;
    let tmp = sibling(path, &format!(".tmp-{}", hex(&tag)));
    let written = write_new(&tmp, &secret);
    secret.fill(0);
    std::hint::black_box(&secret);
    written?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io_error("publish the secret", path)(error)),
    }
}

fn write_new(tmp: &Path, secret: &[u8]) -> Result<(), AuditError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io_error("create", tmp))?;
    file.write_all(secret).map_err(io_error("write", tmp))?;
    file.sync_all().map_err(io_error("sync", tmp))
}

/// `path` with `suffix` added to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_parent(path: &Path) -> Result<(), AuditError> {
    let dir = parent(path);
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("sync the directory", dir))
}
