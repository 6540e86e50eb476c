//! Command APDUs of the Belpic applet, and the one place where T=0 status words
//! (`61xx`, `6Cxx`) are resolved.

use std::time::Duration;

use zeroize::Zeroizing;

use super::error::CardError;
use super::status::StatusWord;
use crate::reader::CardTransport;

/// The Belpic applet's AID (CONT4 §4.4; MW `card.cpp` `APPLET_AID`).
pub const BELPIC_APPLET_AID: [u8; 15] = [
    0xA0, 0x00, 0x00, 0x00, 0x30, 0x29, 0x05, 0x70, 0x00, 0xAD, 0x13, 0x10, 0x01, 0x01, 0xFF,
];

/// The most GET RESPONSE rounds one command may need: 64 KiB at 256 bytes a round.
const MAX_RESPONSE_ROUNDS: usize = 256;

/// A short command APDU (the Belpic card speaks T=0 only, so no extended lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    header: [u8; 4],
    data: Vec<u8>,
    /// Expected length; `Some(0)` means 256.
    le: Option<u8>,
}

impl Apdu {
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            header: [cla, ins, p1, p2],
            data: Vec::new(),
            le: None,
        }
    }

    /// Command data; at most 255 bytes (the caller's commands never need more).
    pub fn with_data(mut self, data: &[u8]) -> Self {
        self.data = data.iter().copied().take(255).collect();
        self
    }

    pub fn with_le(mut self, le: u8) -> Self {
        self.le = Some(le);
        self
    }

    pub fn ins(&self) -> u8 {
        self.header[1]
    }

    /// A name for logs and errors; never the data.
    pub fn name(&self) -> &'static str {
        match self.header[1] {
            0xA4 => "SELECT",
            0xB0 => "READ BINARY",
            0xC0 => "GET RESPONSE",
            0xE4 => "GET CARD DATA",
            0x88 => "INTERNAL AUTHENTICATE",
            _ => "command",
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(5 + self.data.len() + 1);
        bytes.extend_from_slice(&self.header);
        if !self.data.is_empty() {
            // with_data caps the data at 255 bytes, so the length fits Lc.
            bytes.push(self.data.len() as u8);
            bytes.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            bytes.push(le);
        }
        bytes
    }

    /// SELECT the Belpic applet by AID (`00 A4 04 00 0F <AID>`). It is the default applet
    /// after reset, but another application sharing the reader may have selected another.
    pub fn select_belpic_applet() -> Self {
        Self::new(0x00, 0xA4, 0x04, 0x00).with_data(&BELPIC_APPLET_AID)
    }

    /// SELECT a child of the current DF by file id (`00 A4 02 0C 02 <fid>`); 3F00 is
    /// always selectable. P2 = 0C: the card returns no FCI (SPEC17/18 "SELECT FILE").
    pub fn select_file_id(fid: u16) -> Self {
        Self::new(0x00, 0xA4, 0x02, 0x0C).with_data(&fid.to_be_bytes())
    }

    /// SELECT by absolute path, given without the MF's id as the spec says
    /// (`00 A4 08 0C 04 DF01 4031`).
    pub fn select_path(path: &[u16]) -> Self {
        let data: Vec<u8> = path.iter().flat_map(|fid| fid.to_be_bytes()).collect();
        Self::new(0x00, 0xA4, 0x08, 0x0C).with_data(&data)
    }

    /// READ BINARY at `offset` (at most 0x7FFF: bit 8 of P1 must stay 0); `le` 0 = 256.
    pub fn read_binary(offset: u16, le: u8) -> Self {
        let [p1, p2] = (offset & 0x7FFF).to_be_bytes();
        Self::new(0x00, 0xB0, p1, p2).with_le(le)
    }

    /// GET CARD DATA (`80 E4 00 00 1C`): 28 bytes on every applet (SPEC17 Table 32).
    pub fn get_card_data() -> Self {
        Self::new(0x80, 0xE4, 0x00, 0x00).with_le(0x1C)
    }

    /// GET CARD DATA with P2 = 01 (`80 E4 00 01 1F`): 31 bytes, applet 1.8 and later only.
    pub fn get_card_data_extended() -> Self {
        Self::new(0x80, 0xE4, 0x00, 0x01).with_le(0x1F)
    }

    /// GET RESPONSE (`00 C0 00 00 xx`) after a `61xx`.
    pub fn get_response(le: u8) -> Self {
        Self::new(0x00, 0xC0, 0x00, 0x00).with_le(le)
    }

    /// INTERNAL AUTHENTICATE with the basic key (applet 1.8): `00 88 02 81 32 94 30 <48>`,
    /// P1 02 = ECDSA SHA-384 on an off-card hash, P2 81 = basic key (SPEC18 §6.11).
    /// T=0 case 3: no Le, the card answers `61 60`.
    pub fn internal_authenticate(challenge: &[u8; 48]) -> Self {
        let mut data = Vec::with_capacity(50);
        data.extend_from_slice(&[0x94, 0x30]);
        data.extend_from_slice(challenge);
        Self::new(0x00, 0x88, 0x02, 0x81).with_data(&data)
    }

    /// Sends the command and resolves T=0 chaining: `61xx` fetches the data with GET
    /// RESPONSE, `6Cxx` re-issues the command once with Le = xx after `wrong_le_delay`
    /// (old cards want ≥ 10 ms before it). The final status word is returned, not judged.
    pub fn transmit(
        &self,
        tx: &mut dyn CardTransport,
        wrong_le_delay: Duration,
    ) -> Result<Response, CardError> {
        let first = self.exchange_once(tx)?;
        let response = match first.status {
            StatusWord::WrongLe(available) if self.le.is_some() => {
                if !wrong_le_delay.is_zero() {
                    std::thread::sleep(wrong_le_delay);
                }
                self.clone().with_le(available).exchange_once(tx)?
            }
            _ => first,
        };
        collect_response_chain(self, tx, response)
    }

    fn exchange_once(&self, tx: &mut dyn CardTransport) -> Result<Response, CardError> {
        let raw = Zeroizing::new(tx.transmit(&self.to_bytes())?);
        let response = Response::parse(&raw).ok_or(CardError::Malformed {
            command: self.name(),
            reason: "response shorter than a status word",
        })?;
        tracing::trace!(
            ins = format_args!("{:02X}", self.header[1]),
            p1 = format_args!("{:02X}", self.header[2]),
            p2 = format_args!("{:02X}", self.header[3]),
            sw = %response.status,
            len = response.data.len(),
            "apdu"
        );
        Ok(response)
    }
}

/// Follows `61xx` with GET RESPONSE until the card says `9000` (or something else).
fn collect_response_chain(
    command: &Apdu,
    tx: &mut dyn CardTransport,
    mut response: Response,
) -> Result<Response, CardError> {
    for _ in 0..MAX_RESPONSE_ROUNDS {
        let StatusWord::ResponseAvailable(more) = response.status else {
            return Ok(response);
        };
        let next = Apdu::get_response(more).exchange_once(tx)?;
        response.data.extend_from_slice(&next.data);
        response.status = next.status;
    }
    Err(CardError::Malformed {
        command: command.name(),
        reason: "response chaining never ends",
    })
}

/// A response APDU: data (wiped when dropped: it may hold personal data) and status.
pub struct Response {
    pub data: Zeroizing<Vec<u8>>,
    pub status: StatusWord,
}

impl Response {
    /// Splits `data ‖ SW1 SW2`; `None` when fewer than two bytes came back.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let split = raw.len().checked_sub(2)?;
        let (data, sw) = raw.split_at(split);
        Some(Self {
            data: Zeroizing::new(data.to_vec()),
            status: StatusWord::from((sw[0], sw[1])),
        })
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("len", &self.data.len())
            .field("status", &self.status)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::ReaderError;
    use std::collections::VecDeque;

    /// Answers from a script and records what it was sent.
    struct Script {
        answers: VecDeque<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl Script {
        fn new(answers: &[&[u8]]) -> Self {
            Self {
                answers: answers.iter().map(|a| a.to_vec()).collect(),
                sent: Vec::new(),
            }
        }
    }

    impl CardTransport for Script {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
            self.sent.push(apdu.to_vec());
            self.answers
                .pop_front()
                .ok_or(ReaderError::CardRemoved(None))
        }
        fn atr(&self) -> &[u8] {
            &[]
        }
    }

    #[test]
    fn builds_the_documented_command_bytes() {
        assert_eq!(
            Apdu::select_belpic_applet().to_bytes(),
            [
                0x00, 0xA4, 0x04, 0x00, 0x0F, 0xA0, 0x00, 0x00, 0x00, 0x30, 0x29, 0x05, 0x70, 0x00,
                0xAD, 0x13, 0x10, 0x01, 0x01, 0xFF
            ]
        );
        assert_eq!(
            Apdu::get_card_data().to_bytes(),
            [0x80, 0xE4, 0x00, 0x00, 0x1C]
        );
        assert_eq!(
            Apdu::select_path(&[0xDF01, 0x4031]).to_bytes(),
            [0x00, 0xA4, 0x08, 0x0C, 0x04, 0xDF, 0x01, 0x40, 0x31]
        );
        assert_eq!(
            Apdu::select_file_id(0x4032).to_bytes(),
            [0x00, 0xA4, 0x02, 0x0C, 0x02, 0x40, 0x32]
        );
        assert_eq!(
            Apdu::read_binary(0x0123, 0).to_bytes(),
            [0x00, 0xB0, 0x01, 0x23, 0x00]
        );
        let auth = Apdu::internal_authenticate(&[0xAB; 48]).to_bytes();
        assert_eq!(&auth[..7], &[0x00, 0x88, 0x02, 0x81, 0x32, 0x94, 0x30]);
        assert_eq!(auth.len(), 55);
    }

    #[test]
    fn wrong_le_reissues_the_command_with_the_announced_length() {
        let mut card = Script::new(&[&[0x6C, 0x03], &[1, 2, 3, 0x90, 0x00]]);
        let response = Apdu::read_binary(0, 0)
            .transmit(&mut card, Duration::ZERO)
            .unwrap();
        assert_eq!(&*response.data, &[1, 2, 3]);
        assert_eq!(response.status, StatusWord::Success);
        assert_eq!(card.sent[1], [0x00, 0xB0, 0x00, 0x00, 0x03]);
    }

    #[test]
    fn response_available_is_fetched_and_chained() {
        let mut card = Script::new(&[&[0x61, 0x02], &[7, 8, 0x61, 0x01], &[9, 0x90, 0x00]]);
        let response = Apdu::internal_authenticate(&[0; 48])
            .transmit(&mut card, Duration::ZERO)
            .unwrap();
        assert_eq!(&*response.data, &[7, 8, 9]);
        assert_eq!(card.sent[1], [0x00, 0xC0, 0x00, 0x00, 0x02]);
        assert_eq!(card.sent[2], [0x00, 0xC0, 0x00, 0x00, 0x01]);
    }

    #[test]
    fn a_second_wrong_le_is_returned_not_looped() {
        let mut card = Script::new(&[&[0x6C, 0x03], &[0x6C, 0x02]]);
        let response = Apdu::read_binary(0, 0)
            .transmit(&mut card, Duration::ZERO)
            .unwrap();
        assert_eq!(response.status, StatusWord::WrongLe(2));
        assert_eq!(card.sent.len(), 2);
    }

    #[test]
    fn a_one_byte_response_is_malformed() {
        let mut card = Script::new(&[&[0x90]]);
        let error = Apdu::get_card_data()
            .transmit(&mut card, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(error, CardError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn endless_response_chaining_is_cut() {
        let answers: Vec<&[u8]> = std::iter::repeat_n([0x61u8, 0x01].as_slice(), 400).collect();
        let mut card = Script::new(&answers);
        let error = Apdu::get_card_data()
            .transmit(&mut card, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(error, CardError::Malformed { .. }), "{error:?}");
    }
}
