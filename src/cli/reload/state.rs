//! What the running agent says about its configuration, for `diagnose`: which configuration
//! it runs (when it was loaded, a fingerprint of every file it read), how its last reload
//! went (the problems of a refused one), and which changed keys wait for a restart.
//!
//! Kept as `<state-dir>/config-state.json`, replaced atomically at start and after every
//! reload; private to the agent's user (and root), like the rest of the state directory.
//! It holds file names, times, a hash and problem texts: no secret, no personal data.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::atomic_file;

/// The file's name in the state directory.
pub const FILE: &str = "config-state.json";

/// The configuration a running agent has in force, and its last reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    /// The agent's process.
    pub pid: u32,
    /// Its main configuration file.
    pub config: PathBuf,
    /// Where its API listens (until a restart, even when `api.listen` changed since).
    pub listen: SocketAddr,
    /// The configuration in force.
    pub running: Loaded,
    /// The last reload, when there was one since the start.
    pub last_reload: Option<Attempt>,
    /// Keys changed on disk that only a restart applies (`api.listen`, `device.id`,
    /// `device.channel`).
    pub restart_pending: Vec<String>,
}

/// A configuration put in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    #[serde(with = "time::serde::rfc3339")]
    pub loaded_at: OffsetDateTime,
    /// [`super::fingerprint`] of what it was built from.
    pub fingerprint: String,
}

/// A reload: applied, or refused with its problems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub applied: bool,
    /// Why it was refused, one problem each (`FILE:LINE: KEY: what is wrong`).
    pub problems: Vec<String>,
    /// The fingerprint of what was read, when the configuration itself could be read.
    pub fingerprint: Option<String>,
}

impl ConfigState {
    /// Writes the state into `state_dir` (mode 0600).
    pub fn write(&self, state_dir: &Path) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        json.push(b'\n');
        atomic_file::replace(&state_dir.join(FILE), &json, 0o600)
    }

    /// The state a running (or the last) agent wrote into `state_dir`; `None` when there is
    /// none.
    pub fn read(state_dir: &Path) -> io::Result<Option<Self>> {
        match std::fs::read(state_dir.join(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_round_trip_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ConfigState::read(dir.path()).unwrap(), None);
        let state = ConfigState {
            pid: 4242,
            config: "/etc/beid-agent/config.toml".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8099)),
            running: Loaded {
                loaded_at: time::macros::datetime!(2026-11-23 10:15:00 UTC),
                fingerprint: "ab".repeat(32),
            },
            last_reload: Some(Attempt {
                at: time::macros::datetime!(2026-11-23 11:00:00 UTC),
                applied: false,
                problems: vec![
                    "/etc/beid-agent/config.d/50-device.toml:3: device.id: is blank".into(),
                ],
                fingerprint: None,
            }),
            restart_pending: vec!["api.listen".into()],
        };
        state.write(dir.path()).unwrap();
        assert_eq!(ConfigState::read(dir.path()).unwrap(), Some(state));
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert!(ConfigState::read(dir.path()).is_err());
    }
}
