//! The simulated card's APDU semantics (`docs/card-protocol.md` §2–§9, §14): SELECT by file id, by path (with
//! or without 3F00, ending at a DF or an EF) and by AID; READ BINARY with `6Cxx` on a wrong
//! Le and `6B00` past the end; GET CARD DATA; GET RESPONSE after `61xx`; INTERNAL
//! AUTHENTICATE with the basic key on applet 1.8, limited to 5000 uses as on real cards.

use std::collections::BTreeMap;
use std::time::Duration;

use p384::ecdsa::signature::hazmat::PrehashSigner;
use p384::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

use super::dump::{CardDump, DumpError};
use super::faults::Faults;
use super::pkcs15;
use super::wire_time::WireTime;
use crate::beid::BELPIC_APPLET_AID;

/// INTERNAL AUTHENTICATE without PIN is allowed this many times (SPEC18 §5.2).
pub const INTERNAL_AUTHENTICATE_LIMIT: u32 = 5000;

const MF: u16 = 0x3F00;
const DF_BELPIC: u16 = 0xDF00;
const DF_ID: u16 = 0xDF01;
const PKCS15_AID: [u8; 12] = [
    0xA0, 0x00, 0x00, 0x01, 0x77, 0x50, 0x4B, 0x43, 0x53, 0x2D, 0x31, 0x35,
];
const ID_FILES_AID: [u8; 12] = [
    0xA0, 0x00, 0x00, 0x01, 0x77, 0x49, 0x64, 0x46, 0x69, 0x6C, 0x65, 0x73,
];

const OK: [u8; 2] = [0x90, 0x00];
const WRONG_LENGTH: [u8; 2] = [0x67, 0x00];
const FILE_NOT_FOUND: [u8; 2] = [0x6A, 0x82];
const WRONG_P1P2: [u8; 2] = [0x6A, 0x86];
const LC_INCONSISTENT: [u8; 2] = [0x6A, 0x87];
const WRONG_DATA: [u8; 2] = [0x6A, 0x80];
const KEY_NOT_FOUND: [u8; 2] = [0x6A, 0x88];
const OUTSIDE_FILE: [u8; 2] = [0x6B, 0x00];
const NO_CURRENT_EF: [u8; 2] = [0x69, 0x86];
const CONDITIONS: [u8; 2] = [0x69, 0x85];
const NOT_AVAILABLE: [u8; 2] = [0x6D, 0x00];
const CLA_NOT_SUPPORTED: [u8; 2] = [0x6E, 0x00];

/// What the card does with one APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOutcome {
    /// The response APDU (data ‖ SW1 SW2).
    Respond(Vec<u8>),
    /// The card left the reader (fault injection).
    Removed,
    /// The card does not answer (fault injection).
    Mute,
}

/// A command APDU split by ISO 7816-4 case.
struct Command<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
    /// `None`: no Le byte; `Some(0)` means 256.
    le: Option<u8>,
}

impl<'a> Command<'a> {
    fn parse(apdu: &'a [u8]) -> Option<Self> {
        let (&[cla, ins, p1, p2], body) = apdu.split_first_chunk::<4>()?;
        let (data, le) = match body {
            [] => (&[][..], None),
            [le] => (&[][..], Some(*le)),
            [lc, rest @ ..] if rest.len() == usize::from(*lc) => (rest, None),
            [lc, rest @ ..] if rest.len() == usize::from(*lc) + 1 => {
                let (data, le) = rest.split_at(usize::from(*lc));
                (data, le.first().copied())
            }
            _ => return None,
        };
        Some(Self {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }
}

/// Which file is selected: a DF, and maybe an EF in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Selection {
    df: u16,
    ef: Option<u16>,
}

/// A simulated Belgian eID.
pub struct SimCard {
    atr: Vec<u8>,
    card_data: Vec<u8>,
    /// Files by (parent DF, file id).
    files: BTreeMap<(u16, u16), Zeroizing<Vec<u8>>>,
    basic_key: Option<p384::ecdsa::SigningKey>,
    selection: Selection,
    pending_response: Option<Zeroizing<Vec<u8>>>,
    internal_authentications: u32,
    faults: Faults,
    apdus_answered: u32,
    ins_counts: BTreeMap<u8, u32>,
    eof_glitch_spent: bool,
    wire_time: Option<WireTime>,
}

impl SimCard {
    /// Builds the card; refuses a basic key file it cannot read (a simulated 1.8 card
    /// without its key would fail INTERNAL AUTHENTICATE for the wrong reason).
    pub fn new(dump: CardDump) -> Result<Self, DumpError> {
        let applet = dump.card_data.get(21).copied().unwrap_or(0x17);
        let mut files = BTreeMap::new();
        for (fid, content) in dump.files {
            let parent = match fid >> 12 {
                0x4 => DF_ID,
                0x5 => DF_BELPIC,
                _ => MF,
            };
            files.insert((parent, fid), content);
        }
        add_missing_pkcs15_files(&mut files, &dump.card_data);
        let basic_key = match dump.basic_private_key_pkcs8.as_deref() {
            Some(der) if applet == 0x18 => {
                Some(parse_basic_key(der).ok_or(DumpError::Invalid {
                    path: dump.dir.clone(),
                    reason: "basic-private-key.pk8 is neither a PKCS#8 nor a SEC1 P-384 key".into(),
                })?)
            }
            _ => None,
        };
        Ok(Self {
            atr: dump.atr,
            card_data: dump.card_data,
            files,
            basic_key,
            selection: Selection { df: MF, ef: None },
            pending_response: None,
            internal_authentications: 0,
            faults: Faults::default(),
            apdus_answered: 0,
            ins_counts: BTreeMap::new(),
            eof_glitch_spent: false,
            wire_time: None,
        })
    }

    pub fn load(dir: &std::path::Path) -> Result<Self, DumpError> {
        CardDump::load(dir).and_then(Self::new)
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Answer as slowly as a real card on a T=0 wire at the ATR's speed.
    pub fn with_wire_time(mut self, on: bool) -> Self {
        self.wire_time = on.then(|| WireTime::from_atr(&self.atr));
        self
    }

    /// Sets how many INTERNAL AUTHENTICATE the card has already done (to test the limit).
    pub fn with_internal_authentications(mut self, done: u32) -> Self {
        self.internal_authentications = done;
        self
    }

    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    pub fn apdus_answered(&self) -> u32 {
        self.apdus_answered
    }

    /// Power-on or reset: the Belpic applet is selected and the MF is current.
    pub fn reset(&mut self) {
        self.selection = Selection { df: MF, ef: None };
        self.pending_response = None;
    }

    /// Wire time of an exchange, when the model is on.
    pub fn wire_time_for(&self, command_len: usize, response_len: usize) -> Duration {
        self.wire_time
            .map(|model| model.for_apdu(command_len, response_len))
            .unwrap_or_default()
    }

    /// Handles one APDU, faults included.
    pub fn process(&mut self, apdu: &[u8]) -> SimOutcome {
        if self.faults.remove_after_apdus == Some(self.apdus_answered) {
            return SimOutcome::Removed;
        }
        if self.faults.mute_after_apdus == Some(self.apdus_answered) {
            return SimOutcome::Mute;
        }
        self.apdus_answered += 1;
        let response = self.respond(apdu);
        tracing::debug!(
            ins = format_args!("{:02X}", apdu.get(1).copied().unwrap_or(0)),
            p1 = format_args!("{:02X}", apdu.get(2).copied().unwrap_or(0)),
            p2 = format_args!("{:02X}", apdu.get(3).copied().unwrap_or(0)),
            sw = format_args!(
                "{:02X}{:02X}",
                response[response.len() - 2],
                response[response.len() - 1]
            ),
            len = response.len() - 2,
            "simulated card answered"
        );
        SimOutcome::Respond(response)
    }

    /// The card's answer to one APDU, without faults of removal or silence.
    pub fn respond(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some(command) = Command::parse(apdu) else {
            return WRONG_LENGTH.to_vec();
        };
        let occurrence = {
            let count = self.ins_counts.entry(command.ins).or_insert(0);
            *count += 1;
            *count
        };
        if let Some(fault) = self
            .faults
            .status_faults
            .iter()
            .find(|f| f.ins == command.ins && f.occurrence.is_none_or(|n| n == occurrence))
        {
            return fault.status.to_vec();
        }
        if command.ins != 0xC0 {
            self.pending_response = None;
        }
        match (command.cla, command.ins) {
            (0x00, 0xA4) => self.select(&command).to_vec(),
            (0x00, 0xB0) => self.read_binary(&command),
            (0x80, 0xE4) => self.get_card_data(&command),
            (0x00, 0xC0) => self.get_response(&command),
            (0x00, 0x88) => self.internal_authenticate(&command),
            (0x00, 0x22) => self.manage_security_environment(&command).to_vec(),
            (0x00 | 0x80, _) => NOT_AVAILABLE.to_vec(),
            _ => CLA_NOT_SUPPORTED.to_vec(),
        }
    }

    fn select(&mut self, command: &Command) -> [u8; 2] {
        if command.le.is_some() && command.p2 == 0x0C {
            return WRONG_LENGTH;
        }
        match (command.p1, command.p2) {
            (0x04, 0x00 | 0x0C) => self.select_by_aid(command.data),
            (0x02, 0x0C) => {
                let [hi, lo] = match command.data {
                    [hi, lo] => [*hi, *lo],
                    _ => return LC_INCONSISTENT,
                };
                self.select_by_file_id(u16::from_be_bytes([hi, lo]))
            }
            (0x08, 0x0C) => self.select_by_path(command.data),
            _ => WRONG_P1P2,
        }
    }

    fn select_by_aid(&mut self, aid: &[u8]) -> [u8; 2] {
        let df = if aid == BELPIC_APPLET_AID {
            MF
        } else if aid == PKCS15_AID {
            DF_BELPIC
        } else if aid == ID_FILES_AID && self.applet() != 0x10 {
            DF_ID
        } else {
            return FILE_NOT_FOUND;
        };
        self.selection = Selection { df, ef: None };
        OK
    }

    /// A child of the current DF, or the MF itself (MW's step-wise selection relies on it).
    fn select_by_file_id(&mut self, fid: u16) -> [u8; 2] {
        if fid == MF {
            self.selection = Selection { df: MF, ef: None };
            return OK;
        }
        match self.child(self.selection.df, fid) {
            Some(selection) => {
                self.selection = selection;
                OK
            }
            None => FILE_NOT_FOUND,
        }
    }

    /// A path from the MF, written without 3F00 as the spec says or with it as field
    /// tools send it; it may end at a DF (OpenSC selects 3F00/DF00 that way).
    fn select_by_path(&mut self, data: &[u8]) -> [u8; 2] {
        if data.is_empty() || data.len() % 2 != 0 {
            return LC_INCONSISTENT;
        }
        let mut fids: Vec<u16> = data
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        if fids.first() == Some(&MF) {
            fids.remove(0);
        }
        let mut selection = Selection { df: MF, ef: None };
        for fid in fids {
            if selection.ef.is_some() {
                return FILE_NOT_FOUND;
            }
            match self.child(selection.df, fid) {
                Some(next) => selection = next,
                None => return FILE_NOT_FOUND,
            }
        }
        self.selection = selection;
        OK
    }

    fn child(&self, df: u16, fid: u16) -> Option<Selection> {
        match (df, fid) {
            (MF, DF_BELPIC | DF_ID) => Some(Selection { df: fid, ef: None }),
            _ => self
                .files
                .contains_key(&(df, fid))
                .then_some(Selection { df, ef: Some(fid) }),
        }
    }

    fn read_binary(&mut self, command: &Command) -> Vec<u8> {
        let Some(le) = command.le.filter(|_| command.data.is_empty()) else {
            return WRONG_LENGTH.to_vec();
        };
        if command.p1 & 0x80 != 0 {
            return OUTSIDE_FILE.to_vec();
        }
        let Some(fid) = self.selection.ef else {
            return NO_CURRENT_EF.to_vec();
        };
        if self.card_data.get(27) == Some(&0x07) && self.selection.df == DF_ID {
            return NOT_AVAILABLE.to_vec();
        }
        let offset = usize::from(u16::from_be_bytes([command.p1, command.p2]));
        if self.faults.eof_glitch == Some((fid, offset as u16)) && !self.eof_glitch_spent {
            self.eof_glitch_spent = true;
            return OUTSIDE_FILE.to_vec();
        }
        let Some(content) = self.files.get(&(self.selection.df, fid)) else {
            return NO_CURRENT_EF.to_vec();
        };
        if offset >= content.len() {
            return OUTSIDE_FILE.to_vec();
        }
        let wanted = if le == 0 { 256 } else { usize::from(le) };
        let available = content.len() - offset;
        if wanted > available {
            // available < wanted ≤ 256, so it fits the byte.
            return vec![0x6C, available as u8];
        }
        let mut response = content[offset..offset + wanted].to_vec();
        response.extend_from_slice(&OK);
        response
    }

    fn get_card_data(&mut self, command: &Command) -> Vec<u8> {
        let Some(le) = command
            .le
            .filter(|_| command.data.is_empty() && command.p1 == 0)
        else {
            return if command.p1 != 0 {
                WRONG_P1P2.to_vec()
            } else {
                WRONG_LENGTH.to_vec()
            };
        };
        let data = match command.p2 {
            0x00 => self.card_data.clone(),
            0x01 if self.applet() >= 0x18 => {
                let mut extended = self.card_data.clone();
                // PIN tries left (FF: no PIN verified yet on a simulated card), RFU.
                extended.extend_from_slice(&[0x03, 0xFF, 0xFF]);
                extended
            }
            _ => return WRONG_P1P2.to_vec(),
        };
        if usize::from(le) != data.len() {
            // The data is 28 or 31 bytes.
            return vec![0x6C, data.len() as u8];
        }
        let mut response = data;
        response.extend_from_slice(&OK);
        response
    }

    fn get_response(&mut self, command: &Command) -> Vec<u8> {
        if command.p1 != 0 || command.p2 != 0 {
            return WRONG_P1P2.to_vec();
        }
        let Some(le) = command.le.filter(|_| command.data.is_empty()) else {
            return WRONG_LENGTH.to_vec();
        };
        let Some(mut pending) = self.pending_response.take() else {
            return CONDITIONS.to_vec();
        };
        let wanted = if le == 0 { 256 } else { usize::from(le) };
        if wanted > pending.len() {
            let available = pending.len().min(255) as u8;
            self.pending_response = Some(pending);
            return vec![0x6C, available];
        }
        let rest = Zeroizing::new(pending.split_off(wanted));
        let mut response = pending.to_vec();
        if rest.is_empty() {
            response.extend_from_slice(&OK);
        } else {
            response.extend_from_slice(&[0x61, rest.len().min(256) as u8]);
            self.pending_response = Some(rest);
        }
        response
    }

    /// INTERNAL AUTHENTICATE `00 88 02 81 32 94 30 <48-byte hash>` (SPEC18 §6.11): signs
    /// the given SHA-384 digest with the basic key, answers `61 60` (T=0), then raw r‖s.
    fn internal_authenticate(&mut self, command: &Command) -> Vec<u8> {
        let Some(key) = self.basic_key.as_ref() else {
            return NOT_AVAILABLE.to_vec();
        };
        if command.p1 != 0x02 {
            return WRONG_P1P2.to_vec();
        }
        if command.p2 != 0x81 {
            return KEY_NOT_FOUND.to_vec();
        }
        let Some(challenge) = command.data.strip_prefix(&[0x94, 0x30]) else {
            return WRONG_DATA.to_vec();
        };
        if challenge.len() != 48 {
            return WRONG_DATA.to_vec();
        }
        if self.internal_authentications >= INTERNAL_AUTHENTICATE_LIMIT {
            return CONDITIONS.to_vec();
        }
        let signature: p384::ecdsa::Signature = match key.sign_prehash(challenge) {
            Ok(signature) => signature,
            Err(_) => return WRONG_DATA.to_vec(),
        };
        self.internal_authentications += 1;
        let raw = Zeroizing::new(signature.to_bytes().to_vec());
        let announced = raw.len() as u8;
        self.pending_response = Some(raw);
        vec![0x61, announced]
    }

    /// MSE SET before INTERNAL AUTHENTICATE (commons-eid sends it; SPEC18: not needed).
    fn manage_security_environment(&self, command: &Command) -> [u8; 2] {
        if command.p1 == 0x41 && command.p2 == 0xB6 {
            OK
        } else {
            WRONG_P1P2
        }
    }

    fn applet(&self) -> u8 {
        self.card_data.get(21).copied().unwrap_or(0)
    }
}

/// A P-384 private key as PKCS#8 or as SEC1 (`openssl genpkey -outform DER` writes SEC1).
fn parse_basic_key(der: &[u8]) -> Option<p384::ecdsa::SigningKey> {
    p384::ecdsa::SigningKey::from_pkcs8_der(der)
        .ok()
        .or_else(|| p384::SecretKey::from_sec1_der(der).ok().map(Into::into))
}

/// Real cards carry EF(DIR), ODF, TokenInfo and CDF; dumps rarely do. Without them OpenSC
/// cannot see the card as a Belgian eID.
fn add_missing_pkcs15_files(
    files: &mut BTreeMap<(u16, u16), Zeroizing<Vec<u8>>>,
    card_data: &[u8],
) {
    let serial: [u8; 16] = card_data
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 16]);
    let certificates: Vec<pkcs15::CertificateEntry> = pkcs15::BELPIC_CERTIFICATES
        .into_iter()
        .filter(|entry| files.contains_key(&(DF_BELPIC, entry.fid)))
        .collect();
    let generated = [
        ((MF, pkcs15::FID_EF_DIR), pkcs15::ef_dir()),
        ((DF_BELPIC, pkcs15::FID_ODF), pkcs15::odf()),
        (
            (DF_BELPIC, pkcs15::FID_TOKEN_INFO),
            pkcs15::token_info(&serial),
        ),
        ((DF_BELPIC, pkcs15::FID_CDF), pkcs15::cdf(&certificates)),
    ];
    for (key, content) in generated {
        files.entry(key).or_insert_with(|| Zeroizing::new(content));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn card(name: &str) -> SimCard {
        SimCard::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/cards")
                .join(name),
        )
        .unwrap()
    }

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    fn sw(response: &[u8]) -> [u8; 2] {
        [response[response.len() - 2], response[response.len() - 1]]
    }

    #[test]
    fn selects_in_every_form_the_field_uses() {
        let mut card = card("alice-2009");
        // Step-wise by file id: a file of DF01 is not a child of the MF.
        assert_eq!(card.respond(&hex("00A4020C024031")), FILE_NOT_FOUND);
        assert_eq!(card.respond(&hex("00A4020C023F00")), OK);
        assert_eq!(card.respond(&hex("00A4020C02DF01")), OK);
        assert_eq!(card.respond(&hex("00A4020C024031")), OK);
        // By path without and with the MF, to an EF and to a DF.
        assert_eq!(card.respond(&hex("00A4080C04DF014031")), OK);
        assert_eq!(card.respond(&hex("00A4080C063F00DF00503C")), OK);
        assert_eq!(card.respond(&hex("00A4080C043F00DF00")), OK);
        // By AID.
        assert_eq!(
            card.respond(&hex("00A404000FA000000030290570 00AD13100101FF")),
            OK
        );
        assert_eq!(
            card.respond(&hex("00A4040C0CA0000001774964 46696C6573")),
            OK
        );
        // Refusals.
        assert_eq!(card.respond(&hex("00A4080C03DF0140")), LC_INCONSISTENT);
        assert_eq!(card.respond(&hex("00A4090C04DF014031")), WRONG_P1P2);
        assert_eq!(card.respond(&hex("00A4080C04DF019999")), FILE_NOT_FOUND);
        assert_eq!(card.respond(&hex("00A4080C064031DF014031")), FILE_NOT_FOUND);
        assert_eq!(card.respond(&hex("00A4020C02")), WRONG_LENGTH);
        assert_eq!(card.respond(&hex("10A4020C023F00")), CLA_NOT_SUPPORTED);
    }

    #[test]
    fn reads_with_wrong_le_and_end_of_file_like_a_t0_card() {
        let mut card = card("alice-2009");
        assert_eq!(card.respond(&hex("00B0000000")), NO_CURRENT_EF);
        card.respond(&hex("00A4080C04DF014031"));
        // 179-byte file: Le = 256 is too much.
        assert_eq!(card.respond(&hex("00B0000000")), [0x6C, 179]);
        let chunk = card.respond(&hex("00B00000B3"));
        assert_eq!(chunk.len(), 179 + 2);
        assert_eq!(sw(&chunk), OK);
        assert_eq!(card.respond(&hex("00B000B300")), OUTSIDE_FILE);
        assert_eq!(card.respond(&hex("00B0000A05")).len(), 7);
        assert_eq!(card.respond(&hex("00B00000")), WRONG_LENGTH);
        assert_eq!(card.respond(&hex("00B0800000")), OUTSIDE_FILE);
    }

    #[test]
    fn get_card_data_insists_on_its_length() {
        let mut card = card("alice-2009");
        assert_eq!(card.respond(&hex("80E4000000")), [0x6C, 0x1C]);
        let data = card.respond(&hex("80E400001C"));
        assert_eq!(data.len(), 30);
        assert_eq!(data[21], 0x11);
        // P2 = 01 exists on applet 1.8 only.
        assert_eq!(card.respond(&hex("80E400011F")), WRONG_P1P2);
        let mut card18 = self::card("gen-1.8-ec");
        assert_eq!(card18.respond(&hex("80E400011F")).len(), 33);
    }

    #[test]
    fn unknown_instructions_are_refused() {
        let mut card = card("alice-2009");
        assert_eq!(card.respond(&hex("00CA000000")), NOT_AVAILABLE);
        assert_eq!(card.respond(&hex("00")), WRONG_LENGTH);
        assert_eq!(card.respond(&hex("00C0000010")), CONDITIONS);
    }

    #[test]
    fn serves_pkcs15_files_for_opensc() {
        let mut card = card("alice-2009");
        assert_eq!(card.respond(&hex("00A4080C043F002F00")), OK);
        let dir = card.respond(&hex("00B0000025"));
        assert_eq!(&dir[..37], pkcs15::ef_dir().as_slice());
        assert_eq!(card.respond(&hex("00A4080C063F00DF005037")), OK);
        assert_eq!(sw(&card.respond(&hex("00B0000000")))[0], 0x6C);
    }

    #[test]
    fn internal_authenticate_signs_on_applet_1_8_only_and_stops_at_the_limit() {
        let mut old = card("alice-2009");
        let command = {
            let mut c = hex("0088028132 9430");
            c.extend_from_slice(&[0x5A; 48]);
            c
        };
        assert_eq!(old.respond(&command), NOT_AVAILABLE);

        let mut card = card("gen-1.8-ec");
        assert_eq!(card.respond(&command), [0x61, 0x60]);
        let signature = card.respond(&hex("00C0000060"));
        assert_eq!(signature.len(), 96 + 2);
        assert_eq!(sw(&signature), OK);

        let mut bad_tag = command.clone();
        bad_tag[5] = 0x95;
        assert_eq!(card.respond(&bad_tag), WRONG_DATA);
        let mut bad_key = command.clone();
        bad_key[3] = 0x82;
        assert_eq!(card.respond(&bad_key), KEY_NOT_FOUND);

        let mut worn =
            self::card("gen-1.8-ec").with_internal_authentications(INTERNAL_AUTHENTICATE_LIMIT - 1);
        assert_eq!(worn.respond(&command), [0x61, 0x60]);
        assert_eq!(worn.respond(&command), CONDITIONS);
    }

    #[test]
    fn faults_remove_mute_and_force_status_words() {
        let faults = Faults {
            remove_after_apdus: Some(2),
            status_faults: vec!["A4@1=6581".parse().unwrap()],
            ..Faults::default()
        };
        let mut card = card("alice-2009").with_faults(faults);
        assert_eq!(
            card.process(&hex("00A4080C04DF014031")),
            SimOutcome::Respond(vec![0x65, 0x81])
        );
        assert_eq!(
            card.process(&hex("00A4080C04DF014031")),
            SimOutcome::Respond(OK.to_vec())
        );
        assert_eq!(card.process(&hex("00B0000000")), SimOutcome::Removed);

        let mut mute = self::card("alice-2009").with_faults(Faults {
            mute_after_apdus: Some(0),
            ..Faults::default()
        });
        assert_eq!(mute.process(&hex("80E400001C")), SimOutcome::Mute);
    }

    #[test]
    fn the_eof_glitch_strikes_once() {
        let mut card = card("alice-2009").with_faults(Faults {
            eof_glitch: Some((0x503C, 256)),
            ..Faults::default()
        });
        card.respond(&hex("00A4080C04DF00503C"));
        assert_eq!(card.respond(&hex("00B0010000")), OUTSIDE_FILE);
        assert_eq!(card.respond(&hex("00B0010000")).len(), 258);
    }

    #[test]
    fn an_inactive_card_refuses_identity_reads() {
        let mut dump = CardDump::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards/alice-2009"),
        )
        .unwrap();
        dump.card_data[27] = 0x07;
        let mut card = SimCard::new(dump).unwrap();
        card.respond(&hex("00A4080C04DF014031"));
        assert_eq!(card.respond(&hex("00B0000000")), NOT_AVAILABLE);
    }
}
