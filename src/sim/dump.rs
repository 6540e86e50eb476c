//! Loads a card from a dump folder: files named by their file id (`4031-identity.bin`,
//! `503C-rrn-cert.bin`, any suffix), optional `atr.bin`, optional `card-data.bin`, and for
//! simulated applet 1.8 cards `basic-private-key.pk8` (a TEST key for INTERNAL AUTHENTICATE).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::beid::{tlv, CardData};

/// ATR of applet 1.1/1.7 cards.
pub const ATR_11_17: [u8; 13] = [
    0x3B, 0x98, 0x13, 0x40, 0x0A, 0xA5, 0x03, 0x01, 0x01, 0x01, 0xAD, 0x13, 0x11,
];
/// ATR of applet 1.8 cards.
pub const ATR_18: [u8; 20] = [
    0x3B, 0x7F, 0x96, 0x00, 0x00, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x01, 0x20, 0x12, 0x0F,
    0xFF, 0x82, 0x90, 0x00,
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    #[error("cannot read card dump {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("card dump {0} has no identity file (4031)")]
    NoIdentity(PathBuf),
    #[error("card dump {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The files of one card, keyed by file id.
#[derive(Clone)]
pub struct CardDump {
    /// Where it was loaded from, for error messages.
    pub dir: PathBuf,
    pub files: BTreeMap<u16, Zeroizing<Vec<u8>>>,
    pub atr: Vec<u8>,
    pub card_data: Vec<u8>,
    pub basic_private_key_pkcs8: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for CardDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardDump")
            .field(
                "files",
                &self
                    .files
                    .keys()
                    .map(|k| format!("{k:04X}"))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CardDump {
    pub fn load(dir: &Path) -> Result<Self, DumpError> {
        let io = |source| DumpError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut named = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if name == "atr.bin"
                || name == "card-data.bin"
                || name == "basic-private-key.pk8"
                || file_id_of(&name).is_some()
            {
                let bytes = std::fs::read(&path).map_err(|source| DumpError::Io {
                    path: path.clone(),
                    source,
                })?;
                named.push((name, bytes));
            }
        }
        Self::from_named_files(dir, named)
    }

    /// The embedded fixture card of that name (see [`super::embedded`]).
    pub fn embedded(name: &str) -> Option<Result<Self, DumpError>> {
        let (_, files) = super::embedded::EMBEDDED_CARDS
            .iter()
            .find(|(card, _)| *card == name)?;
        let named = files
            .iter()
            .map(|(file, bytes)| ((*file).to_owned(), bytes.to_vec()));
        Some(Self::from_named_files(Path::new(name), named))
    }

    /// Builds a dump from (file name, bytes) pairs named as in a dump folder.
    pub fn from_named_files(
        dir: &Path,
        named: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, DumpError> {
        let mut files = BTreeMap::new();
        let mut atr = None;
        let mut card_data = None;
        let mut basic_private_key_pkcs8 = None;
        for (name, bytes) in named {
            match name.as_str() {
                "atr.bin" => atr = Some(bytes),
                "card-data.bin" => card_data = Some(bytes),
                "basic-private-key.pk8" => basic_private_key_pkcs8 = Some(Zeroizing::new(bytes)),
                _ => {
                    if let Some(fid) = file_id_of(&name) {
                        files.insert(fid, Zeroizing::new(bytes));
                    }
                }
            }
        }
        let identity = files
            .get(&0x4031)
            .ok_or_else(|| DumpError::NoIdentity(dir.to_path_buf()))?;
        let card_data = match card_data {
            Some(bytes) if bytes.len() == CardData::LEN => bytes,
            Some(bytes) => {
                return Err(DumpError::Invalid {
                    path: dir.to_path_buf(),
                    reason: format!("card-data.bin has {} bytes, not 28", bytes.len()),
                })
            }
            None => derive_card_data(identity, guess_applet(atr.as_deref(), &files)),
        };
        let atr = atr.unwrap_or_else(|| match card_data.get(21) {
            Some(0x18) => ATR_18.to_vec(),
            _ => ATR_11_17.to_vec(),
        });
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            atr,
            card_data,
            basic_private_key_pkcs8,
        })
    }
}

/// `4031-identity.bin` → 0x4031: four hex digits, then the end or a non-hex character.
fn file_id_of(name: &str) -> Option<u16> {
    let head = name.get(..4)?;
    let rest = &name[4..];
    if rest.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(head, 16).ok()
}

/// The applet byte for dumps without `card-data.bin`: 1.8 by its ATR or basic key, 1.1
/// for RSA-1024 signatures (the 2003-2014 generation), 1.7 otherwise.
fn guess_applet(atr: Option<&[u8]>, files: &BTreeMap<u16, Zeroizing<Vec<u8>>>) -> u8 {
    if atr == Some(&ATR_18[..]) || files.contains_key(&0x4040) {
        0x18
    } else if files.get(&0x4032).is_some_and(|sig| sig.len() == 128) {
        0x11
    } else {
        0x17
    }
}

/// GET CARD DATA as a card of that applet would answer: serial = identity tag 0x02.
fn derive_card_data(identity: &[u8], applet: u8) -> Vec<u8> {
    let serial = tlv::parse(identity)
        .ok()
        .and_then(|fields| fields.into_iter().find(|f| f.tag == 0x02))
        .map(|f| f.value.to_vec())
        .unwrap_or_default();
    let mut data = vec![0u8; CardData::LEN];
    for (slot, byte) in data.iter_mut().zip(serial.iter().take(16)) {
        *slot = *byte;
    }
    let (os_version, pkcs1, key_exchange) = if applet == 0x18 {
        ([0x00, 0x01], 0x00, 0x02)
    } else {
        ([0x00, 0x03], 0x21, 0x01)
    };
    data[16..21].copy_from_slice(&[0xA5, 0x03, 0x01, 0x01, 0x01]);
    data[21] = applet;
    data[22..24].copy_from_slice(&os_version);
    data[24] = 0x00;
    data[25] = pkcs1;
    data[26] = key_exchange;
    data[27] = 0x0F;
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(card: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cards")
            .join(card)
    }

    #[test]
    fn names_files_by_their_id() {
        assert_eq!(file_id_of("4031-identity.bin"), Some(0x4031));
        assert_eq!(file_id_of("503C"), Some(0x503C));
        assert_eq!(file_id_of("503C.der"), Some(0x503C));
        assert_eq!(file_id_of("atr.bin"), None);
        assert_eq!(file_id_of("40311.bin"), None);
        assert_eq!(file_id_of("ab"), None);
    }

    #[test]
    fn loads_a_specimen_and_derives_its_card_data() {
        let dump = CardDump::load(&fixture("alice-2010")).unwrap();
        assert_eq!(dump.card_data[21], 0x11);
        assert_eq!(dump.card_data[27], 0x0F);
        assert_eq!(dump.atr, ATR_11_17);
        assert!(dump.files.contains_key(&0x503C));
    }

    #[test]
    fn a_generated_1_8_card_has_its_key_and_atr() {
        let dump = CardDump::load(&fixture("gen-1.8-ec")).unwrap();
        assert_eq!(dump.card_data[21], 0x18);
        assert_eq!(dump.atr, ATR_18);
        assert!(dump.basic_private_key_pkcs8.is_some());
    }

    #[test]
    fn a_folder_without_identity_is_refused() {
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            CardDump::load(empty.path()),
            Err(DumpError::NoIdentity(_))
        ));
        assert!(matches!(
            CardDump::load(&empty.path().join("missing")),
            Err(DumpError::Io { .. })
        ));
    }
}
