//! The head file `<log>.head`: `{"seq":N,"hash":"<hex>"}` and a newline, naming the last
//! record whose append completed. Replaced atomically (write a temporary file, sync it, rename
//! it over the head, sync the directory) after every append.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::{io_error, AuditError};
use super::files::sibling;
use super::record::ChainHead;

/// The head file of the log at `log`: the same path with `.head` added.
pub fn head_path(log: &Path) -> PathBuf {
    sibling(log, ".head")
}

pub(crate) fn head_tmp_path(log: &Path) -> PathBuf {
    sibling(log, ".head.tmp")
}

/// What the head file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadFile {
    Absent,
    Malformed,
    Present(ChainHead),
}

impl HeadFile {
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        match serde_json::from_slice(text) {
            Ok(head) => Self::Present(head),
            Err(_) => Self::Malformed,
        }
    }

    pub(crate) fn read(path: &Path) -> Result<Self, AuditError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Self::Absent),
            Err(error) => return Err(io_error("open the head file", path)(error)),
        };
        let mut bytes = Vec::new();
        file.take(1024)
            .read_to_end(&mut bytes)
            .map_err(io_error("read the head file", path))?;
        Ok(Self::parse(&bytes))
    }
}

pub(crate) fn encode(head: &ChainHead) -> String {
    format!("{{\"seq\":{},\"hash\":\"{}\"}}\n", head.seq, head.hash)
}

/// Replaces the head file with `head`: temporary file, `fdatasync`, rename, directory `fsync`.
pub(crate) fn write(
    dir: &File,
    head_path: &Path,
    tmp_path: &Path,
    head: &ChainHead,
) -> Result<(), AuditError> {
    let mut tmp = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp_path)
        .map_err(io_error("create", tmp_path))?;
    tmp.write_all(encode(head).as_bytes())
        .map_err(io_error("write", tmp_path))?;
    tmp.sync_data().map_err(io_error("sync", tmp_path))?;
    fs::rename(tmp_path, head_path).map_err(io_error("replace", head_path))?;
    dir.sync_all()
        .map_err(io_error("sync the directory of", head_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Sha256;

    #[test]
    fn head_round_trips_and_refuses_anything_else() {
        let head = ChainHead {
            seq: 41,
            hash: Sha256::of(b"x"),
        };
        assert_eq!(
            HeadFile::parse(encode(&head).as_bytes()),
            HeadFile::Present(head)
        );
        assert_eq!(HeadFile::parse(b""), HeadFile::Malformed);
        assert_eq!(HeadFile::parse(b"{\"seq\":1}"), HeadFile::Malformed);
        let extra = format!("{{\"seq\":1,\"hash\":\"{}\",\"x\":1}}", head.hash);
        assert_eq!(HeadFile::parse(extra.as_bytes()), HeadFile::Malformed);
    }
}
