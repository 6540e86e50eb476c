//! The card protocol over the in-process simulated card: the same `beid` code that runs
//! over pcscd, with faults a real reader and card produce.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use beid_agent::beid::{der_length, BeidCard, CardError, CardFile, StatusWord};
use beid_agent::reader::{CardTransport, ReaderError};
use beid_agent::sim::{Faults, SimCard, SimTransport};
use common::{card_dir, expected, fixture_cards};
use proptest::prelude::*;

fn open(card: &str, faults: Faults) -> BeidCard<SimTransport> {
    let sim = SimCard::load(&card_dir(card)).unwrap().with_faults(faults);
    BeidCard::open(SimTransport::new(sim)).unwrap()
}

fn fixture_file(card: &str, fid: u16) -> Option<Vec<u8>> {
    std::fs::read_dir(card_dir(card))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .to_uppercase()
                .starts_with(&format!("{fid:04X}"))
        })
        .map(|p| std::fs::read(p).unwrap())
}

#[test]
fn every_file_of_every_fixture_reads_exactly() {
    for card in fixture_cards() {
        let mut beid = open(&card, Faults::default());
        for file in CardFile::ALL {
            let Some(want) = fixture_file(&card, file.fid()) else {
                assert!(matches!(
                    beid.read_file(file),
                    Err(CardError::FileNotFound(_))
                ));
                continue;
            };
            let got = beid
                .read_file(file)
                .unwrap_or_else(|e| panic!("{card} {file}: {e}"));
            let want = match file.df() {
                // Certificates are read up to their DER length, without the padding.
                beid_agent::beid::Df::Belpic => want[..der_length(&want).unwrap()].to_vec(),
                beid_agent::beid::Df::Id => want,
            };
            assert_eq!(*got, want, "{card} {file}");
        }
    }
}

#[test]
fn identity_and_signature_of_every_fixture() {
    for card in fixture_cards() {
        let want = expected(&card);
        let mut beid = open(&card, Faults::default());
        let files = beid.read_identity().unwrap();
        let number = files.identity.national_number().unwrap();
        assert_eq!(number.expose(), want["national_number"].as_str().unwrap());
        assert_eq!(
            files.signature_file.len() as u64,
            want["file_sizes"]["4032"].as_u64().unwrap()
        );
        let apdus = beid.stats().apdus;
        assert!(apdus <= 9, "{card}: {apdus}");
    }
}

#[test]
fn a_mid_file_end_of_file_glitch_is_retried() {
    let clean = {
        let mut beid = open("alice-2009", Faults::default());
        let cert = beid.read_file(CardFile::RrnCertificate).unwrap();
        (cert.to_vec(), beid.stats().apdus)
    };
    let mut beid = open(
        "alice-2009",
        Faults {
            eof_glitch: Some((0x503C, 256)),
            ..Faults::default()
        },
    );
    let cert = beid.read_file(CardFile::RrnCertificate).unwrap();
    assert_eq!(*cert, clean.0);
    assert_eq!(cert.len(), 840);
    assert_eq!(beid.stats().apdus, clean.1 + 1);
}

#[test]
fn a_removal_at_any_apdu_gives_a_removed_card_error() {
    let total = {
        let mut beid = open("gen-1.8-ec", Faults::default());
        beid.read_identity().unwrap();
        beid.stats().apdus
    };
    for index in 0..total {
        let sim = SimCard::load(&card_dir("gen-1.8-ec"))
            .unwrap()
            .with_faults(Faults {
                remove_after_apdus: Some(index),
                ..Faults::default()
            });
        let error = BeidCard::open(SimTransport::new(sim))
            .and_then(|mut beid| beid.read_identity().map(|_| ()))
            .unwrap_err();
        assert!(
            matches!(error, CardError::Reader(ReaderError::CardRemoved(_))),
            "index {index}: {error:?}"
        );
    }
}

#[test]
fn card_status_words_become_named_errors() {
    let cases = [
        ("B0=6581", "6581"),
        ("B0=6400", "6400"),
        ("B0=6D00", "not activated"),
        ("B0=6985", "not activated"),
        ("A4@2=6581", "6581"),
    ];
    for (fault, text) in cases {
        let mut beid = open(
            "alice-2009",
            Faults {
                status_faults: vec![fault.parse().unwrap()],
                ..Faults::default()
            },
        );
        let error = beid.read_identity().unwrap_err();
        assert!(error.to_string().contains(text), "{fault}: {error}");
    }
    let memory: StatusWord = (0x65, 0x81).into();
    assert_eq!(memory, StatusWord::MemoryFailure);
}

#[test]
fn a_card_refusing_path_selection_is_read_step_by_step() {
    // A4 #1 is the path selection of 4031 (the applet is selected after a reset).
    let mut beid = open(
        "alice-2009",
        Faults {
            status_faults: vec!["A4@1=6A86".parse().unwrap()],
            ..Faults::default()
        },
    );
    let files = beid.read_identity().unwrap();
    assert!(files.identity.national_number().is_ok());
    // 3 more SELECTs (3F00, DF01, 4031) than the 6 of the direct path.
    assert_eq!(beid.stats().apdus, 9);
}

#[test]
fn a_card_that_is_not_belpic_is_refused() {
    let sim = SimCard::load(&card_dir("alice-2009"))
        .unwrap()
        .with_faults(Faults {
            // Another card: GET CARD DATA is unknown to it, and so is the Belpic applet.
            status_faults: vec!["E4=6D00".parse().unwrap(), "A4@1=6A82".parse().unwrap()],
            ..Faults::default()
        });
    let error = BeidCard::open(SimTransport::new(sim)).err().unwrap();
    assert!(
        matches!(error, CardError::NotBelpic(StatusWord::FileNotFound)),
        "{error:?}"
    );
}

/// Another application resets the card once in the middle of our read.
struct ResetOnce {
    inner: SimTransport,
    at: u32,
    sent: u32,
    reconnects: u32,
}

impl CardTransport for ResetOnce {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        self.sent += 1;
        if self.sent == self.at {
            return Err(ReaderError::CardReset(None));
        }
        self.inner.transmit(apdu)
    }
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
    fn reconnect(&mut self) -> Result<(), ReaderError> {
        self.reconnects += 1;
        Ok(())
    }
}

#[test]
fn a_reset_by_another_application_is_recovered_once() {
    // Six APDUs: GET CARD DATA, SELECT 4031, READ (6Cxx), READ, SELECT 4032, READ.
    for at in [1, 2, 4, 6] {
        let sim = SimCard::load(&card_dir("alice-2009")).unwrap();
        let transport = ResetOnce {
            inner: SimTransport::new(sim),
            at,
            sent: 0,
            reconnects: 0,
        };
        let mut beid = BeidCard::open(transport).unwrap();
        let files = beid.read_identity().unwrap();
        assert!(files.identity.national_number().is_ok(), "reset at {at}");
        assert_eq!(beid.into_transport().reconnects, 1, "reset at {at}");
    }
}

/// A card (or a lying reader) that answers anything at all.
struct Chaos {
    answers: Vec<Vec<u8>>,
    next: usize,
}

impl CardTransport for Chaos {
    fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let answer = self.answers.get(self.next).cloned();
        self.next += 1;
        answer.ok_or(ReaderError::CardRemoved(None))
    }
    fn atr(&self) -> &[u8] {
        &[0x3B]
    }
}

fn plausible_answer() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (proptest::collection::vec(any::<u8>(), 0..260), any::<u8>()).prop_map(|(mut data, n)| {
            data.extend_from_slice(&[0x90, 0x00]);
            if n % 3 == 0 {
                data.truncate(28);
                data.extend_from_slice(&[0x90, 0x00]);
            }
            data
        }),
        any::<u8>().prop_map(|n| vec![0x6C, n]),
        any::<u8>().prop_map(|n| vec![0x61, n]),
        Just(vec![0x6B, 0x00]),
        Just(vec![0x90, 0x00]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No panic on any sequence of responses: every outcome is a value or a clear error.
    #[test]
    fn random_responses_never_panic(answers in proptest::collection::vec(plausible_answer(), 0..80)) {
        let chaos = Chaos { answers, next: 0 };
        if let Ok(mut beid) = BeidCard::open(chaos) {
            let _ = beid.read_identity();
            let _ = beid.read_file(CardFile::RrnCertificate);
            let _ = beid.internal_authenticate(&[0; 48]);
        }
    }
}
