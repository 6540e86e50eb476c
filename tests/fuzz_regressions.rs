//! The fuzz targets' properties in the normal suite (fuzz/README.md): every input under
//! `fuzz/regressions/<target>/` (what the fuzzer once broke, minimised) and `fuzz/seeds/<target>/`
//! replayed through the very function the target calls, and proptest versions of the same
//! properties. The properties themselves live in `tests/properties/`, shared with the targets.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod properties;
use properties::{apdu, api, config, dump, tlv};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;

const CARDS: [&str; 5] = [
    "alice-2009",
    "alice-2010",
    "gen-1.7-rsa2048",
    "gen-1.8-ec",
    "nora-ec-2022",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("fixtures")
}

/// The files of a folder, by name; empty when it does not exist.
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .filter(|(name, _)| !name.starts_with('.') && name != "README.md")
        .collect()
}

/// Replays the regressions and the seeds of `target`; returns how many inputs ran.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let fuzz = root().join("fuzz");
    let seeds = files_in(&fuzz.join("seeds").join(target));
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let regressions = files_in(&fuzz.join("regressions").join(target));
    for (name, bytes) in regressions.iter().chain(&seeds) {
        eprintln!("{target}: {name}");
        check(bytes);
    }
    regressions.len() + seeds.len()
}

// ---------------------------------------------------------------- seeds

fn card_file(card: &str, prefix: &str) -> Vec<u8> {
    let dir = fixtures().join("cards").join(card);
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("{card} has no {prefix}"));
    std::fs::read(path).unwrap()
}

const CONFIG_SEEDS: [(&str, &str); 4] = [
    (
        "simulated.toml",
        "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"kiosk-1\"\nchannel = \"kiosk\"\n",
    ),
    (
        "http.toml",
        "[upstream]\nkind = \"http\"\nurl = \"https://rules.city.example/api\"\n\
         client_cert = \"test-pki/eid-test-root-ca.crt\"\nclient_key = \"missing.key\"\n\
         ca_bundle = \"test-pki/eid-test-root-ca.crt\"\ntimeout_ms = 2000\n\
         connect_timeout_ms = 500\nretries = 2\nretry_backoff_ms = 100\nmax_body_bytes = 4096\n\n\
         [upstream.circuit]\nfailure_threshold = 5\ncooldown_ms = 30000\n\n\
         [device]\nid = \"balie-3\"\nchannel = \"counter\"\n",
    ),
    (
        "full.toml",
        "[upstream]\nkind = \"simulated\"\n\n[upstream.simulated]\nlatency_ms = 300\nfailure_rate = 0.1\n\n\
         [[use_cases]]\nid = \"uitpas-kansentarief\"\nrule = \"uitpas\"\n\
         labels = { nl = \"UiTPAS\", fr = \"UiTPAS\", de = \"UiTPAS\", en = \"UiTPAS\" }\n\
         channels = [\"counter\", \"kiosk\"]\n\n\
         [device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n\
         [trust]\nextra_roots = [\"test-pki/eid-test-root-ca.crt\", \"test-pki/gen-root-ca4.der\"]\n\n\
         [policy]\nallow_expired_cards = false\ncard_authentication = \"kiosk\"\n\n\
         [api]\nlisten = \"127.0.0.1:8099\"\nauto_advice = [\"uitpas-kansentarief\"]\n\n\
         [[api.clients]]\nname = \"pos\"\ntoken_file = \"README.md\"\nscopes = [\"advice\", \"identity\"]\n\
         origins = [\"https://pos.example\"]\n",
    ),
    (
        "problems.toml",
        "[upstream]\nkind = \"http\"\nurl = \"http://user:pw@rules.example\"\ntimeout_ms = 0\nretries = 9\n\
         bogus = 1\n\n[device]\nid = \"bad id\"\nchannel = \"counter\"\n",
    ),
];

/// An api_bodies seed: name, the choice bytes (method, target, host, authorization, origin,
/// content type, body flags; tests/properties/api.rs `decode`), body.
type ApiSeed = (&'static str, [u8; 7], &'static str);

const API_SEEDS: [ApiSeed; 16] = [
    ("status", [0, 0, 0, 0, 0, 0, 0], ""),
    ("readers", [0, 1, 1, 1, 0, 0, 0], ""),
    ("session", [0, 2, 0, 0, 0, 0, 0], ""),
    (
        "advice",
        [1, 3, 0, 0, 0, 0, 0],
        r#"{"useCase":"uitpas-kansentarief"}"#,
    ),
    (
        "advice-unknown-session",
        [1, 4, 0, 1, 0, 1, 0],
        r#"{"useCase":"lez-social-tariff"}"#,
    ),
    (
        "advice-extra-field",
        [1, 3, 0, 0, 0, 0, 0],
        r#"{"useCase":"x","extra":1}"#,
    ),
    ("ticket", [1, 6, 0, 0, 0, 0, 0], ""),
    ("events", [0, 7, 0, 0, 0, 0, 0], ""),
    ("insert", [1, 9, 0, 0, 0, 0, 0], r#"{"card":"gen-1.8-ec"}"#),
    (
        "insert-reader",
        [1, 9, 2, 0, 1, 0, 0],
        r#"{"card":"alice-2009","reader":"Fuzz reader 2"}"#,
    ),
    ("remove", [1, 10, 0, 0, 0, 0, 0], r#"{}"#),
    ("preflight", [2, 3, 0, 0xFE, 1, 0xFE, 0], ""),
    ("hosts-repeated", [0, 0, 0x8D, 0, 0, 0, 0], ""),
    ("origins-repeated", [0, 0, 0, 0, 0x85, 0, 0], ""),
    ("absolute-form-foreign", [0, 19, 0, 0, 0, 0, 0], ""),
    ("absolute-form-own", [0, 17, 0, 0, 0, 0, 0], ""),
];

/// The seed corpus of every target, made from the fixtures.
fn seeds() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
    let mut all: BTreeMap<&str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();

    let tlv = all.entry("tlv").or_default();
    for card in CARDS {
        tlv.insert(format!("{card}-4031"), card_file(card, "4031"));
        tlv.insert(format!("{card}-4033"), card_file(card, "4033"));
    }
    for name in [
        "extended-minority",
        "white-cane",
        "yellow-cane",
        "id-alice-2",
    ] {
        let bytes = std::fs::read(fixtures().join("parsing").join(format!("{name}.bin"))).unwrap();
        tlv.insert(name.into(), bytes);
    }
    tlv.insert("card-data-1.8".into(), card_file("gen-1.8-ec", "card-data"));

    let apdus = all.entry("apdu_response").or_default();
    for card in CARDS {
        let dir = fixtures().join("cards").join(card);
        apdus.insert(card.into(), apdu::record(&dir, apdu::RECONNECT_WORKS));
    }
    // GET CARD DATA answered, then the first READ BINARY chained or re-issued forever.
    let mut card_data = card_file("gen-1.7-rsa2048", "card-data");
    card_data.extend_from_slice(&[0x90, 0x00]);
    let answers = |list: &[&[u8]]| -> Vec<apdu::Answer> {
        list.iter()
            .map(|a| apdu::Answer::Bytes(a.to_vec()))
            .collect()
    };
    apdus.insert(
        "endless-61xx".into(),
        apdu::encode(
            apdu::REPEAT_LAST,
            &answers(&[&card_data, &[0x90, 0x00], &[0x61, 0x00]]),
        ),
    );
    apdus.insert(
        "endless-6Cxx".into(),
        apdu::encode(
            apdu::REPEAT_LAST,
            &answers(&[&card_data, &[0x90, 0x00], &[0x6C, 0x10]]),
        ),
    );
    apdus.insert(
        "reset".into(),
        apdu::encode(
            apdu::RECONNECT_WORKS,
            &[apdu::Answer::Reset, apdu::Answer::Bytes(vec![0x90, 0x00])],
        ),
    );

    let dumps = all.entry("dump_verification").or_default();
    for card in CARDS {
        let files = ["4031", "4032", "503C", "4033", "4034"].map(|id| card_file(card, id));
        let files: Vec<Option<&[u8]>> = files.iter().map(|f| Some(f.as_slice())).collect();
        dumps.insert(card.into(), dump::encode(&files));
    }

    let configs = all.entry("config").or_default();
    for (name, text) in CONFIG_SEEDS {
        configs.insert(name.into(), text.as_bytes().to_vec());
    }

    let api = all.entry("api_bodies").or_default();
    for (name, choices, body) in API_SEEDS {
        let mut bytes = choices.to_vec();
        bytes.extend_from_slice(body.as_bytes());
        api.insert(name.into(), bytes);
    }
    all
}

/// The committed seeds are the ones the fixtures give. `BEID_WRITE_FUZZ_SEEDS=1` writes them.
#[test]
fn fuzz_seeds_are_made_from_the_fixtures() {
    let write = std::env::var_os("BEID_WRITE_FUZZ_SEEDS").is_some();
    let mut total = 0;
    for (target, wanted) in seeds() {
        let dir = root().join("fuzz").join("seeds").join(target);
        if write {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in &wanted {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
        let committed = files_in(&dir);
        assert_eq!(
            committed.keys().collect::<Vec<_>>(),
            wanted.keys().collect::<Vec<_>>(),
            "{target}: run with BEID_WRITE_FUZZ_SEEDS=1 to update fuzz/seeds"
        );
        for (name, bytes) in &wanted {
            assert!(committed[name] == *bytes, "{target}/{name} is stale");
            total += bytes.len();
        }
    }
    assert!(total < 100 * 1024, "seeds take {total} bytes");
}

// ---------------------------------------------------------------- replays

#[test]
fn tlv_regressions_and_seeds() {
    assert!(replay("tlv", tlv::check) >= 10);
}

#[test]
fn apdu_response_regressions_and_seeds() {
    assert!(replay("apdu_response", apdu::check) >= 5);
}

#[test]
fn dump_verification_regressions_and_seeds() {
    assert!(replay("dump_verification", dump::check) >= 5);
}

#[test]
fn config_regressions_and_seeds() {
    assert!(replay("config", |data| config::check(data, &fixtures())) >= 3);
}

#[test]
fn api_bodies_regressions_and_seeds() {
    let harness = api::Harness::new();
    assert!(replay("api_bodies", |data| harness.run(data)) >= 10);
}

/// The seeds reach what they are meant to: a real card reads as authentic, a real dump
/// verifies, a real configuration loads (a property that never sees a success proves
/// little).
#[test]
fn the_seeds_reach_the_success_paths() {
    let seeds = seeds();
    for card in ["alice-2009", "gen-1.7-rsa2048", "gen-1.8-ec"] {
        let files = dump::decode(&seeds["dump_verification"][card]);
        let identity = beid_agent::beid::Identity::parse(files[0].unwrap()).unwrap();
        let evidence = beid_agent::session::Evidence {
            identity_file: files[0].unwrap(),
            signature_file: files[1],
            rrn_certificate_file: files[2],
            address_file: files[3],
            address_signature_file: files[4],
            photo: None,
        };
        let store = beid_agent::trust::TrustStore::production()
            .with_test_roots()
            .unwrap();
        let (report, _) = beid_agent::session::assess(&store, &identity, &evidence, None);
        assert!(report.authentic, "{card}");
        assert_eq!(
            report.address.signature,
            beid_agent::session::AddressVerdict::Valid,
            "{card}"
        );
    }
    let (_, answers) = apdu::decode(&seeds["apdu_response"]["gen-1.8-ec"]);
    assert!(answers.len() >= 8, "{answers:?}");
    let text = std::str::from_utf8(&seeds["config"]["simulated.toml"]).unwrap();
    assert!(beid_agent::config::Config::parse(text, &fixtures()).is_ok());
}

// ---------------------------------------------------------------- proptests

fn fixture_file_strategy() -> impl Strategy<Value = Vec<u8>> {
    (0..CARDS.len(), prop_oneof![Just("4031"), Just("4033")])
        .prop_map(|(card, file)| card_file(CARDS[card], file))
}

/// Edits: (position, new byte, kind) with kind 0 replace, 1 insert, 2 delete.
fn edit(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, kind) in edits {
        let index = at.index(bytes.len() + 1);
        match kind % 3 {
            0 if index < bytes.len() => bytes[index] = *byte,
            1 => bytes.insert(index, *byte),
            _ if index < bytes.len() => {
                bytes.remove(index);
            }
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
    prop::collection::vec(
        (any::<prop::sample::Index>(), any::<u8>(), any::<u8>()),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tlv_properties_hold_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        tlv::check(&bytes);
    }

    #[test]
    fn tlv_properties_hold_on_edited_card_files(file in fixture_file_strategy(), edits in edits()) {
        tlv::check(&edit(file, &edits));
    }
}

/// The recorded answers of a fixture card's full read.
fn recorded(card: usize) -> &'static (u8, Vec<apdu::Answer>) {
    static RECORDED: OnceLock<Vec<(u8, Vec<apdu::Answer>)>> = OnceLock::new();
    &RECORDED.get_or_init(|| {
        CARDS
            .iter()
            .map(|card| {
                let dir = fixtures().join("cards").join(card);
                apdu::decode(&apdu::record(&dir, apdu::RECONNECT_WORKS))
            })
            .collect()
    })[card]
}

fn answer() -> impl Strategy<Value = apdu::Answer> {
    use apdu::Answer;
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Answer::Bytes),
        4 => (prop::collection::vec(any::<u8>(), 0..260), prop_oneof![
            Just([0x90, 0x00]), Just([0x6B, 0x00]), Just([0x6A, 0x82]), Just([0x6A, 0x86]),
            Just([0x69, 0x86]), Just([0x6D, 0x00]), Just([0x69, 0x85]), Just([0x65, 0x81]),
        ]).prop_map(|(mut data, sw)| { data.extend_from_slice(&sw); Answer::Bytes(data) }),
        2 => any::<u8>().prop_map(|n| Answer::Bytes(vec![0x61, n])),
        2 => any::<u8>().prop_map(|n| Answer::Bytes(vec![0x6C, n])),
        1 => Just(Answer::Removed),
        1 => Just(Answer::Reset),
        1 => Just(Answer::Mute),
        1 => Just(Answer::Timeout),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any answers at all, with the last one repeated forever or the card removed.
    #[test]
    fn apdu_properties_hold_on_any_answers(
        flags in 0u8..8,
        answers in prop::collection::vec(answer(), 0..60),
    ) {
        apdu::check(&apdu::encode(flags, &answers));
    }

    /// A real card's read with some answers replaced, cut or altered: never authentic
    /// unless the identity bytes are the card's own.
    #[test]
    fn apdu_properties_hold_on_a_real_read_gone_wrong(
        card in 0..CARDS.len(),
        replaced in prop::collection::vec((any::<prop::sample::Index>(), answer()), 0..3),
        flipped in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..=255), 0..3),
        cut in any::<prop::sample::Index>(),
        flags in 0u8..8,
    ) {
        let (_, real) = recorded(card);
        let mut answers = real.clone();
        for (at, answer) in replaced {
            let index = at.index(answers.len());
            answers[index] = answer;
        }
        for (at, byte, flip) in flipped {
            let index = at.index(answers.len());
            if let apdu::Answer::Bytes(bytes) = &mut answers[index] {
                if !bytes.is_empty() {
                    let position = byte.index(bytes.len());
                    bytes[position] ^= flip;
                }
            }
        }
        answers.truncate(cut.index(answers.len() + 1).max(answers.len() / 2));
        apdu::check(&apdu::encode(flags, &answers));
    }
}

fn dump_files(card: usize) -> [Vec<u8>; 5] {
    ["4031", "4032", "503C", "4033", "4034"].map(|id| card_file(CARDS[card], id))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Real dumps with edits in any file, files swapped between cards, files left out.
    #[test]
    fn dump_properties_hold_on_edited_dumps(
        card in 0..CARDS.len(),
        other in 0..CARDS.len(),
        edited in prop::collection::vec((0usize..5, edits()), 0..3),
        swapped in prop::collection::vec(0usize..5, 0..2),
        absent in prop::collection::vec(0usize..5, 0..2),
    ) {
        let mut files = dump_files(card).map(Some);
        let others = dump_files(other);
        for index in swapped {
            files[index] = Some(others[index].clone());
        }
        for (index, edits) in edited {
            if let Some(file) = files[index].take() {
                files[index] = Some(edit(file, &edits));
            }
        }
        for index in absent {
            files[index] = None;
        }
        let borrowed: Vec<Option<&[u8]>> = files.iter().map(|f| f.as_deref()).collect();
        dump::check(&dump::encode(&borrowed));
    }
}

fn config_text() -> impl Strategy<Value = String> {
    let upstream = prop_oneof![
        Just("[upstream]\nkind = \"simulated\"\n"),
        Just("[upstream]\nkind = \"http\"\nurl = \"https://rules.example/\"\nclient_cert = \"test-pki/eid-test-root-ca.crt\"\nclient_key = \"missing.key\"\nca_bundle = \"test-pki/gen-root-ca4.der\"\n"),
        Just("[upstream]\nkind = \"ftp\"\n"),
        Just("[upstream]\n"),
        Just(""),
    ];
    let upstream_lines = prop::collection::vec(
        prop_oneof![
            Just("timeout_ms = 0\n"),
            Just("timeout_ms = 1000\n"),
            Just("timeout_ms = 99999999999\n"),
            Just("connect_timeout_ms = 5000\n"),
            Just("retries = 9\n"),
            Just("retry_backoff_ms = -1\n"),
            Just("max_body_bytes = 1\n"),
            Just("url = \"http://x\"\n"),
            Just("url = \"https://u:p@x\"\n"),
            Just("url = 'not a url'\n"),
            Just("client_key = \"-----BEGIN PRIVATE KEY-----\"\n"),
            Just("unknown = 1\n"),
            Just("[upstream.simulated]\nfailure_rate = 2.0\nlatency_ms = 99999999\n"),
            Just("[upstream.simulated]\nfixture = \"cards\"\n"),
            Just("[upstream.circuit]\nfailure_threshold = 1\ncooldown_ms = 0\n"),
        ],
        0..4,
    );
    let device = prop_oneof![
        Just("[device]\nid = \"balie-3\"\nchannel = \"counter\"\n"),
        Just("[device]\nid = \"bad id!\"\nchannel = \"kiosk\"\n"),
        Just("[device]\nid = \"\"\nchannel = \"bus\"\n"),
        Just("[device]\nchannel = \"counter\"\n"),
        Just(""),
    ];
    let rest = prop::collection::vec(
        prop_oneof![
            Just("[[use_cases]]\nid = \"a\"\nlabels = { nl = \"a\", fr = \"a\", de = \"a\", en = \"a\" }\n"),
            Just("[[use_cases]]\nid = \"\"\nlabels = { nl = \"\" }\nchannels = []\n"),
            Just("[trust]\nextra_roots = [\"test-pki/eid-test-root-ca.crt\", \"nope.pem\", \"README.md\"]\n"),
            Just("[trust]\nrrn_key_cache = \"cache.json\"\n"),
            Just("[policy]\nallow_expired_cards = true\ncard_authentication = \"always\"\n"),
            Just("[policy]\ncard_authentication = \"sometimes\"\n"),
            Just("[api]\nlisten = \"0.0.0.0:80\"\n"),
            Just("[api]\nlisten = \"[::1]:8099\"\nauto_advice = [\"a\", 3]\n"),
            Just("[[api.clients]]\nname = \"pos\"\ntoken_file = \"README.md\"\nscopes = [\"advice\"]\norigins = [\"https://pos.example/path\"]\n"),
            Just("[[api.clients]]\nname = \"x\"\ntoken_file = \"nope\"\nscopes = [\"root\"]\n"),
            Just("[extra]\nkey = 1\n"),
            Just("[kiosk]\nspeech_output = \"speaker\"\n"),
            Just("[kiosk]\nspeech_output = 1\n"),
            Just("[[counter.deviation_reasons]]\nid = \"moved\"\nlabels = { nl = \"a\", fr = \"b\", de = \"c\", en = \"d\" }\n"),
            Just("[counter]\ndeviation_reasons = []\n"),
            Just("[reason_codes.K1]\nnl = \"a\"\nfr = \"b\"\nde = \"c\"\nen = \"d\"\n"),
            Just("[reason_codes.\"bad code\"]\nnl = \"\"\n"),
            Just("[metrics]\ntextfile = \"beid.prom\"\ntextfile_interval_s = 0\n"),
            Just("[[api.clients]]\nname = \"pos\"\ntoken_file = \"nope\"\nscopes = []\norigins = [\"http://pos.city.example\"]\n"),
            Just("= broken\n"),
        ],
        0..4,
    );
    (
        upstream,
        upstream_lines,
        device,
        rest,
        any::<prop::sample::Index>(),
        any::<char>(),
        0u8..3,
    )
        .prop_map(|(upstream, lines, device, rest, at, c, damage)| {
            let mut text = format!("{upstream}{}{device}{}", lines.concat(), rest.concat());
            let index = at.index(text.len() + 1);
            let index = (0..=index)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            match damage {
                1 => text.insert(index, c),
                2 => text.truncate(index),
                _ => {}
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn config_properties_hold_on_generated_files(text in config_text()) {
        config::check(text.as_bytes(), &fixtures());
    }
}

fn api_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"{"useCase":"uitpas-kansentarief"}"#.to_vec()),
        Just(br#"{"useCase":"lez-free-registration"}"#.to_vec()),
        Just(br#"{"useCase":"nope"}"#.to_vec()),
        Just(br#"{"useCase":1}"#.to_vec()),
        Just(br#"{"useCase":"a","useCase":"b"}"#.to_vec()),
        Just(br#"{"card":"gen-1.7-rsa2048"}"#.to_vec()),
        Just(br#"{"card":"alice-2010","reader":"Fuzz reader 2"}"#.to_vec()),
        Just(br#"{"card":"nobody"}"#.to_vec()),
        Just(br#"{"reader":null}"#.to_vec()),
        Just(br#"{"reader":"Fuzz reader 9"}"#.to_vec()),
        Just(b"{}".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"".to_vec()),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        ("[a-zA-Z]{1,8}", "[ -~]{0,12}")
            .prop_map(|(k, v)| format!("{{\"{k}\":\"{v}\"}}").into_bytes()),
    ]
}

/// A request drawn independently of the agent's state, resolved against the state at the
/// moment it is sent (the session, ticket and port change as cards come and go): so a
/// whole sequence of requests is one test case that proptest can shrink and replay.
#[derive(Debug, Clone)]
struct RequestTemplate {
    method: usize,
    target: usize,
    /// An index into the hosts of the moment (wrapped), or no Host header.
    host: Option<usize>,
    authorization: Option<&'static str>,
    origin: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// Pad the body past the limit.
    oversized: bool,
    /// A second Host header (an index as `host`), or none.
    second_host: Option<usize>,
    /// A second Origin header, or none.
    second_origin: Option<&'static str>,
}

impl RequestTemplate {
    fn resolve(&self, context: &api::Context) -> api::Request {
        let hosts = api::hosts(context);
        let host = |choice: Option<usize>| choice.map(|i| hosts[i % hosts.len()].clone());
        let mut headers = Vec::new();
        for (name, value) in [
            ("host", host(self.host)),
            ("host", host(self.second_host)),
            ("authorization", self.authorization.map(str::to_owned)),
            ("origin", self.origin.map(str::to_owned)),
            ("origin", self.second_origin.map(str::to_owned)),
            ("content-type", self.content_type.map(str::to_owned)),
        ] {
            if let Some(value) = value {
                headers.push((name.to_owned(), value.into_bytes()));
            }
        }
        let mut body = self.body.clone();
        if self.oversized {
            body.resize(api::BODY_LIMIT + 1, b' ');
        }
        api::Request {
            method: api::METHODS[self.method].to_owned(),
            target: api::target(self.target, context),
            headers,
            body,
        }
    }
}

fn api_request() -> impl Strategy<Value = RequestTemplate> {
    (
        0..api::METHODS.len(),
        0..api::TARGETS.len(),
        prop::option::weighted(0.95, 0..8usize),
        prop::option::weighted(0.9, prop::sample::select(api::AUTHORIZATIONS.to_vec())),
        prop::option::weighted(0.3, prop::sample::select(api::ORIGINS.to_vec())),
        prop::option::weighted(0.9, prop::sample::select(api::CONTENT_TYPES.to_vec())),
        api_body(),
        prop::bool::weighted(0.125),
        // Now and then a second Host or Origin header.
        prop::option::weighted(0.05, 0..8usize),
        prop::option::weighted(0.05, prop::sample::select(api::ORIGINS.to_vec())),
    )
        .prop_map(
            |(
                method,
                target,
                host,
                authorization,
                origin,
                content_type,
                body,
                oversized,
                second_host,
                second_origin,
            )| {
                RequestTemplate {
                    method,
                    target,
                    host,
                    authorization,
                    origin,
                    content_type,
                    body,
                    oversized,
                    second_host,
                    second_origin,
                }
            },
        )
}

/// The API properties are not vacuous for ambiguous requests: the seeds that name the agent
/// twice, or name another host in the target, are refused as the properties say.
#[test]
fn api_properties_see_ambiguous_requests_refused() {
    let harness = api::Harness::new();
    let seed = |name: &str| {
        let (_, choices, body) = API_SEEDS.iter().find(|(n, _, _)| *n == name).unwrap();
        let mut bytes = choices.to_vec();
        bytes.extend_from_slice(body.as_bytes());
        api::decode(&bytes, &harness.context())
    };
    for (name, status) in [
        ("hosts-repeated", 400),
        ("origins-repeated", 403),
        ("absolute-form-foreign", 400),
        ("absolute-form-own", 200),
    ] {
        let request = seed(name);
        let response = harness.run_request(request).unwrap();
        assert_eq!(response.status, status, "{name}");
    }
}

/// The API properties are not vacuous: a card inserted through the simulator gets a
/// session whose view and advice pass them, with what each client's scopes allow.
#[test]
fn api_properties_see_a_card_session_and_its_advice() {
    let harness = api::Harness::new();
    let inserted = harness
        .run_request(harness.request(
            "POST",
            "/v1/simulator/insert",
            api::FULL,
            r#"{"card":"gen-1.8-ec"}"#,
        ))
        .unwrap();
    assert!((200..300).contains(&inserted.status), "{}", inserted.status);
    let session = harness.context().session.expect("a session");
    let advice = harness
        .run_request(harness.request(
            "POST",
            &format!("/v1/sessions/{session}/advice"),
            api::ADVICE_ONLY,
            r#"{"useCase":"uitpas-kansentarief"}"#,
        ))
        .unwrap();
    // The advice waits for the read: the session is ready after it.
    assert_eq!(
        advice.status,
        200,
        "{}",
        String::from_utf8_lossy(&advice.body)
    );
    let view = |token| {
        let response = harness
            .run_request(harness.request("GET", &format!("/v1/sessions/{session}"), token, ""))
            .unwrap();
        assert_eq!(response.status, 200);
        serde_json::from_slice::<serde_json::Value>(&response.body).unwrap()
    };
    let full = view(api::FULL);
    // The advice waited for the read: the card is read, and this client may see who it is.
    assert_eq!(full["state"], "ready", "{full}");
    assert!(full["identity"]["surname"].is_string(), "{full}");
    let advice_only = view(api::ADVICE_ONLY);
    assert!(advice_only.get("identity").is_none(), "{advice_only}");
    assert!(advice_only.get("nationalNumber").is_none(), "{advice_only}");
}

/// The seed of the API property run: fixed, so a run is the same on every machine and a
/// failure reproduces; change it deliberately to explore further.
const API_SEED: [u8; 32] = *b"beid-agent local API properties!";

#[test]
fn api_properties_hold_on_generated_requests() {
    use proptest::test_runner::{
        Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner,
    };
    let config = Config {
        cases: 40,
        // A failing sequence is shrunk, then kept here and replayed first on every run.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/properties/api.proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &API_SEED));
    // Each case: a fresh agent, then a sequence of requests against its changing state.
    let outcome = runner.run(&prop::collection::vec(api_request(), 1..=20), |requests| {
        let harness = api::Harness::new();
        for template in &requests {
            let request = template.resolve(&harness.context());
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                harness.run_request(request)
            }));
            if let Err(panic) = checked {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                return Err(proptest::test_runner::TestCaseError::fail(message));
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
