//! Offline verification of a card dump, as `verify-dump` does it: the identity file parsed,
//! then `assess` with the TEST roots. Never a panic, and only what the National Register
//! signed passes: authentic ⇒ the identity file is exactly a real card's (its every byte is
//! signed), and a valid address signature ⇒ (4033 without its zero padding) ‖ 4032 is exactly
//! what a real card's 4034 signs. Bytes outside the signatures (503C's padding, what follows
//! the DER of an ECDSA signature) may change without changing the verdict.
//!
//! Input: 4031, 4032, 503C, 4033, 4034 in turn, each as a big-endian 2-byte length and
//! the bytes (`FFFF`: file absent; a missing tail: the remaining files absent).
//!
//! Shared by `fuzz/fuzz_targets/dump_verification.rs` and `tests/fuzz_regressions.rs`.

use std::sync::OnceLock;

use beid_agent::beid::Identity;
use beid_agent::session::{assess, AddressVerdict, Evidence, SignatureVerdict};
use beid_agent::trust::{verify_identity_signature, verify_rrn_certificate, TrustStore};

macro_rules! card_files {
    ($card:literal) => {
        [
            include_bytes!(concat!(
                "../../fixtures/cards/",
                $card,
                "/4031-identity.bin"
            )),
            include_bytes!(concat!(
                "../../fixtures/cards/",
                $card,
                "/4032-identity-signature.bin"
            )),
            include_bytes!(concat!(
                "../../fixtures/cards/",
                $card,
                "/503C-rrn-cert.bin"
            )),
            include_bytes!(concat!("../../fixtures/cards/", $card, "/4033-address.bin")),
            include_bytes!(concat!(
                "../../fixtures/cards/",
                $card,
                "/4034-address-signature.bin"
            )),
        ]
    };
}

/// The fixture cards: (4031, 4032, 503C, 4033, 4034).
pub const CARDS: [[&[u8]; 5]; 5] = [
    card_files!("alice-2009"),
    card_files!("alice-2010"),
    card_files!("gen-1.7-rsa2048"),
    card_files!("gen-1.8-ec"),
    card_files!("nora-ec-2022"),
];

pub fn decode(data: &[u8]) -> [Option<&[u8]>; 5] {
    let mut files = [None; 5];
    let mut rest = data;
    for file in &mut files {
        let [hi, lo, tail @ ..] = rest else { break };
        let length = u16::from_be_bytes([*hi, *lo]);
        if length == 0xFFFF {
            rest = tail;
            continue;
        }
        let (bytes, tail) = tail.split_at(usize::from(length).min(tail.len()));
        *file = Some(bytes);
        rest = tail;
    }
    files
}

pub fn encode(files: &[Option<&[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    for file in files {
        match file {
            Some(bytes) => {
                let length = u16::try_from(bytes.len())
                    .ok()
                    .filter(|&l| l != 0xFFFF)
                    .unwrap_or_else(|| panic!("file too long to encode"));
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&[0xFF, 0xFF]),
        }
    }
    out
}

fn store() -> &'static TrustStore {
    static STORE: OnceLock<TrustStore> = OnceLock::new();
    STORE.get_or_init(|| {
        TrustStore::production()
            .with_test_roots()
            .unwrap_or_else(|e| panic!("test roots: {e}"))
    })
}

/// Fingerprints of the fixture cards' RRN keys.
fn rrn_keys() -> &'static Vec<[u8; 32]> {
    static KEYS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    KEYS.get_or_init(|| {
        CARDS
            .iter()
            .filter_map(|card| {
                let identity = Identity::parse(card[0]).ok()?;
                let at = identity.validity_begin?;
                verify_rrn_certificate(store(), card[2], at)
                    .ok()
                    .map(|cert| *cert.key().fingerprint())
            })
            .collect()
    })
}

fn without_trailing_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

pub fn check(data: &[u8]) {
    let files = decode(data);
    let [identity_file, signature, certificate, address, address_signature] = files;
    let identity_file = identity_file.unwrap_or_default();
    // verify-dump stops at an identity file that does not parse.
    let Ok(identity) = Identity::parse(identity_file) else {
        return;
    };
    let evidence = Evidence {
        identity_file,
        signature_file: signature,
        rrn_certificate_file: certificate,
        address_file: address,
        address_signature_file: address_signature,
        photo: None,
    };
    let (report, verified) = assess(store(), &identity, &evidence, None);
    assert_eq!(report.authentic, verified.is_some());
    if report.authentic {
        assert!(
            CARDS.iter().any(|card| card[0] == identity_file),
            "an identity file that no test root signed is authentic"
        );
        let Some(certificate) = verified else {
            unreachable!("checked above")
        };
        assert!(certificate.trusted());
        assert!(
            rrn_keys().contains(certificate.key().fingerprint()),
            "authentic under a key that is not a fixture card's RRN key"
        );
        let signature = signature.unwrap_or_else(|| panic!("authentic without 4032"));
        assert!(verify_identity_signature(certificate.key(), identity_file, signature).is_ok());
        assert_eq!(report.identity.signature, SignatureVerdict::Valid);
        assert!(report.problem.is_none());
    } else {
        assert!(report.problem.is_some() || report.identity.signature == SignatureVerdict::Missing);
    }
    if report.address.signature == AddressVerdict::Valid {
        let (Some(address), Some(signature)) = (address, signature) else {
            panic!("address valid without 4033 or 4032")
        };
        let signed = [without_trailing_zeros(address), signature].concat();
        assert!(
            CARDS
                .iter()
                .any(|card| [without_trailing_zeros(card[3]), card[1]].concat() == signed),
            "an address that no test root signed is valid"
        );
    }
    // The report is shown and sent as JSON: it must serialise, without the national number.
    let json = serde_json::to_string(&report).unwrap_or_else(|e| panic!("report JSON: {e}"));
    if let Some(number) = &identity.national_number {
        let digits = number.expose();
        let elsewhere = certificate.is_some_and(|c| c.windows(11).any(|w| w == digits.as_bytes()));
        assert!(
            elsewhere || !json.contains(digits),
            "the report shows the national number"
        );
    }
}
