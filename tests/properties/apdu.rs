//! APDU response handling: a full read for an advice (open, 4031, 4032, verification with
//! 503C, on request the applet-1.8 chip check) over a card that answers whatever the input
//! says, errors included. Never a panic, never an endless exchange (`61xx`/`6Cxx` chains
//! are bounded), only commands of the Belpic protocol, and data is called authentic only
//! when it is a real card's identity file.
//!
//! Input: one flag byte, then answers. An answer starts with a byte `h`: `00..=EF` gives
//! its length, `F0..=FB` a length of 240 + the next byte, `FC` card removed, `FD` card
//! reset, `FE` card mute, `FF` a reader timeout. Flags: bit 0 repeats the last answer
//! forever once the input is used up (the card is removed otherwise), bit 1 lets a
//! reconnect after a reset work, bit 2 asks for the chip check.
//!
//! Shared by `fuzz/fuzz_targets/apdu_response.rs` and `tests/fuzz_regressions.rs`.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use beid_agent::beid::{BeidCard, Identity, MAX_FILE_LEN};
use beid_agent::reader::{CardTransport, ReaderError};
use beid_agent::session::{read_and_verify, Verifier};
use beid_agent::sim::{SimCard, SimTransport};
use beid_agent::trust::TrustStore;

/// Exchanges one command may take: itself, one `6Cxx` re-issue, 256 GET RESPONSE.
const PER_COMMAND: u32 = 2 + 256;
/// SELECT of one file: by file id, by path, then 3F00, DF and file one at a time.
const SELECT: u32 = 5 * PER_COMMAND;
/// READ BINARY rounds of one file: 64 chunks of 256 bytes fill 16 KiB, one more finds
/// the end, one retries a mid-file end of file.
const READ_ROUNDS: u32 = (MAX_FILE_LEN / 256) as u32 + 2;
/// One file: select, read, select again after a "no current file" glitch.
const PER_FILE: u32 = SELECT + READ_ROUNDS * PER_COMMAND + SELECT;
/// GET CARD DATA, and when refused SELECT applet and GET CARD DATA again; all of it twice
/// when the card was reset meanwhile, with the reconnect's SELECT applet.
const OPEN: u32 = 2 * (2 * PER_COMMAND + 1) + 1;
/// The most APDUs a full read may take: open, 4031, 4032, 503C, 4040, INTERNAL
/// AUTHENTICATE, and one file read again after a reset.
pub const MAX_APDUS: u32 = OPEN + 5 * PER_FILE + PER_COMMAND + 1;

/// The identity files of the fixture cards: the only ones the test roots signed.
const SIGNED_IDENTITIES: [&[u8]; 5] = [
    include_bytes!("../../fixtures/cards/alice-2009/4031-identity.bin"),
    include_bytes!("../../fixtures/cards/alice-2010/4031-identity.bin"),
    include_bytes!("../../fixtures/cards/gen-1.7-rsa2048/4031-identity.bin"),
    include_bytes!("../../fixtures/cards/gen-1.8-ec/4031-identity.bin"),
    include_bytes!("../../fixtures/cards/nora-ec-2022/4031-identity.bin"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Bytes(Vec<u8>),
    Removed,
    Reset,
    Mute,
    Timeout,
}

pub const REPEAT_LAST: u8 = 0x01;
pub const RECONNECT_WORKS: u8 = 0x02;
pub const CHECK_CHIP: u8 = 0x04;

pub fn decode(data: &[u8]) -> (u8, Vec<Answer>) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut answers = Vec::new();
    while let Some((&head, tail)) = rest.split_first() {
        rest = tail;
        let length = match head {
            0x00..=0xEF => usize::from(head),
            0xF0..=0xFB => {
                let Some((&extra, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                240 + usize::from(extra)
            }
            0xFC => {
                answers.push(Answer::Removed);
                continue;
            }
            0xFD => {
                answers.push(Answer::Reset);
                continue;
            }
            0xFE => {
                answers.push(Answer::Mute);
                continue;
            }
            0xFF => {
                answers.push(Answer::Timeout);
                continue;
            }
        };
        let (bytes, tail) = rest.split_at(length.min(rest.len()));
        rest = tail;
        answers.push(Answer::Bytes(bytes.to_vec()));
    }
    (flags, answers)
}

pub fn encode(flags: u8, answers: &[Answer]) -> Vec<u8> {
    let mut out = vec![flags];
    for answer in answers {
        match answer {
            Answer::Bytes(bytes) => {
                assert!(bytes.len() <= 240 + 255, "answer too long to encode");
                if bytes.len() < 240 {
                    out.push(bytes.len() as u8);
                } else {
                    out.extend_from_slice(&[0xF0, (bytes.len() - 240) as u8]);
                }
                out.extend_from_slice(bytes);
            }
            Answer::Removed => out.push(0xFC),
            Answer::Reset => out.push(0xFD),
            Answer::Mute => out.push(0xFE),
            Answer::Timeout => out.push(0xFF),
        }
    }
    out
}

/// A card answering from a script; checks every command it is sent.
struct Script {
    answers: Vec<Answer>,
    next: usize,
    repeat_last: bool,
    reconnect_works: bool,
    sent: u32,
    reconnects: u32,
    get_responses_in_a_row: u32,
}

impl CardTransport for Script {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        self.sent += 1;
        assert!(
            self.sent <= MAX_APDUS,
            "more than {MAX_APDUS} APDUs: the read does not end"
        );
        check_command(apdu);
        if apdu[1] == 0xC0 {
            self.get_responses_in_a_row += 1;
            assert!(
                self.get_responses_in_a_row <= 256,
                "more than 256 GET RESPONSE in a row"
            );
        } else {
            self.get_responses_in_a_row = 0;
        }
        let answer = match self.answers.get(self.next) {
            Some(answer) => {
                self.next += 1;
                answer
            }
            None if self.repeat_last => match self.answers.last() {
                Some(answer) => answer,
                None => return Err(ReaderError::CardRemoved(None)),
            },
            None => return Err(ReaderError::CardRemoved(None)),
        };
        match answer {
            Answer::Bytes(bytes) => Ok(bytes.clone()),
            Answer::Removed => Err(ReaderError::CardRemoved(None)),
            Answer::Reset => Err(ReaderError::CardReset(None)),
            Answer::Mute => Err(ReaderError::CardMute(None)),
            Answer::Timeout => Err(ReaderError::Timeout(Duration::from_secs(5))),
        }
    }

    fn atr(&self) -> &[u8] {
        &[
            0x3B, 0x98, 0x13, 0x40, 0x0A, 0xA5, 0x03, 0x01, 0x01, 0x01, 0xAD, 0x13, 0x11,
        ]
    }

    fn reconnect(&mut self) -> Result<(), ReaderError> {
        self.reconnects += 1;
        if self.reconnect_works {
            Ok(())
        } else {
            Err(ReaderError::CardReset(None))
        }
    }
}

/// Only the commands of a read: SELECT, READ BINARY inside the file bound, GET RESPONSE,
/// GET CARD DATA, INTERNAL AUTHENTICATE.
fn check_command(apdu: &[u8]) {
    assert!(
        apdu.len() >= 4,
        "command shorter than a header: {apdu:02X?}"
    );
    match (apdu[0], apdu[1]) {
        (0x00, 0xA4) | (0x00, 0xC0) | (0x80, 0xE4) | (0x00, 0x88) => {}
        (0x00, 0xB0) => {
            let offset = usize::from(u16::from_be_bytes([apdu[2], apdu[3]]));
            assert!(offset < MAX_FILE_LEN, "READ BINARY at offset {offset}");
        }
        _ => panic!("unexpected command {apdu:02X?}"),
    }
}

fn store() -> &'static TrustStore {
    static STORE: OnceLock<TrustStore> = OnceLock::new();
    STORE.get_or_init(|| {
        TrustStore::production()
            .with_test_roots()
            .unwrap_or_else(|e| panic!("test roots: {e}"))
    })
}

/// Runs one full read over the scripted card and checks its outcome.
pub fn check(data: &[u8]) {
    let (flags, answers) = decode(data);
    let mut script = Script {
        answers,
        next: 0,
        repeat_last: flags & REPEAT_LAST != 0,
        reconnect_works: flags & RECONNECT_WORKS != 0,
        sent: 0,
        reconnects: 0,
        get_responses_in_a_row: 0,
    };
    let verifier = Verifier::new(store().clone(), None);
    let counted = {
        let transport: &mut dyn CardTransport = &mut script;
        match BeidCard::open_with_wrong_le_delay(transport, Duration::ZERO) {
            Ok(mut card) => {
                let outcome = read_and_verify(&mut card, &verifier, flags & CHECK_CHIP != 0);
                if let Ok(read) = &outcome {
                    let identity_file: &[u8] = &read.files.identity_file;
                    for (name, file) in [
                        ("4031", identity_file),
                        ("4032", &read.files.signature_file[..]),
                    ] {
                        assert!(
                            file.len() <= MAX_FILE_LEN,
                            "{name} of {} bytes accepted",
                            file.len()
                        );
                    }
                    let again = Identity::parse(identity_file)
                        .unwrap_or_else(|e| panic!("the identity read does not parse: {e}"));
                    assert_eq!(again.national_number, read.files.identity.national_number);
                    if read.authenticity.authentic {
                        assert!(
                            SIGNED_IDENTITIES.contains(&identity_file),
                            "an identity file that no test root signed is authentic"
                        );
                        assert!(read.authenticity.problem.is_none());
                    }
                    assert_eq!(read.stats, card.stats());
                }
                if let Err(error) = &outcome {
                    assert!(!error.to_string().is_empty());
                }
                Some(card.stats().apdus)
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                None
            }
        }
    };
    if let Some(apdus) = counted {
        assert_eq!(apdus, script.sent, "the card's APDU count is off");
    }
    assert!(script.reconnects <= 1, "{} reconnects", script.reconnects);
}

/// Records what a fixture card answers to a full read: the seed of a successful run.
pub fn record(card_dir: &Path, flags: u8) -> Vec<u8> {
    struct Recorder {
        inner: SimTransport,
        answers: Vec<Answer>,
    }
    impl CardTransport for Recorder {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
            let answer = self.inner.transmit(apdu);
            self.answers.push(match &answer {
                Ok(bytes) => Answer::Bytes(bytes.clone()),
                Err(_) => Answer::Removed,
            });
            answer
        }
        fn atr(&self) -> &[u8] {
            self.inner.atr()
        }
    }
    let sim = SimCard::load(card_dir).unwrap_or_else(|e| panic!("{}: {e}", card_dir.display()));
    let mut recorder = Recorder {
        inner: SimTransport::new(sim),
        answers: Vec::new(),
    };
    let verifier = Verifier::new(store().clone(), None);
    {
        let transport: &mut dyn CardTransport = &mut recorder;
        let mut card = BeidCard::open_with_wrong_le_delay(transport, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{}: {e}", card_dir.display()));
        read_and_verify(&mut card, &verifier, flags & CHECK_CHIP != 0)
            .unwrap_or_else(|e| panic!("{}: {e}", card_dir.display()));
    }
    encode(flags, &recorder.answers)
}
