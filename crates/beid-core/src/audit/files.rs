//! Private files in the state directory: their names, how a new one is published whole, and
//! the check that nobody but the owner can read them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::error::{io_error, AuditError};
use super::record::hex;

/// Whether [`publish_new`] wrote the file or found one in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    Created,
    AlreadyThere,
}

/// Writes `bytes` to a new private file (0600) at `path`, whole or not at all: a temporary
/// file, synced, hard-linked to `path`, then the directory synced. Linking fails rather than
/// replace a file that another process published first: that file is left as it is.
pub(crate) fn publish_new(
    path: &Path,
    bytes: &[u8],
    op: &'static str,
) -> Result<Published, AuditError> {
    let mut tag = [0u8; 8];
    SystemRandom::new()
        .fill(&mut tag)
        .map_err(|_| AuditError::Random)?;
    let tmp = sibling(path, &format!(".tmp-{}", hex(&tag)));
    write_new(&tmp, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path).map(|()| Published::Created),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(Published::AlreadyThere),
        Err(error) => Err(io_error(op, path)(error)),
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

/// Why a file that must be private to the agent is not.
pub(crate) enum Exposure {
    NotAFile,
    /// Group or others have some access (`mode` is the permission bits).
    Open {
        mode: u32,
    },
}

/// `None` when the file is a regular file that only its owner can read or write.
pub(crate) fn exposure(meta: &fs::Metadata) -> Option<Exposure> {
    let mode = meta.mode() & 0o777;
    if !meta.is_file() {
        Some(Exposure::NotAFile)
    } else if mode & 0o077 != 0 {
        Some(Exposure::Open { mode })
    } else {
        None
    }
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

pub(crate) fn sync_parent(path: &Path) -> Result<(), AuditError> {
    let dir = parent(path);
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("sync the directory", dir))
}
