//! The agent's card read against the reference middleware's, on the same simulated cards
//! (issue 8, "Benchmarks"): APDUs, bytes and time per verified national number, cold (no RRN
//! key cached) and warm (cached), per card generation, in-process and through real pcscd,
//! as ratios reference ÷ agent, with each side's T=0 wire floor.
//!
//! The reference is Fedict eid-mw's card layer (`CCard` + `CPCSC`) replayed after
//! `docs/card-protocol.md` §15, fixed delays included ([`mw`]). It is a measuring instrument, not
//! product code: it lives here, not in `src/`.
//!
//! What each side includes (the same for both unless said):
//! - in-process: the simulated card behind `SimTransport`, T=0 wire-time model on. Agent:
//!   `BeidCard::open` + `read_and_verify` (what the engine runs on a card). Reference: MW's
//!   200 ms connect delay + its sequence + the same trust check on the files it read
//!   (`trust::verify_card`: RRN certificate to a TEST root, signature, national number check).
//! - through pcscd (`simulate-card --wire-time` served to vpcd): from SCardEstablishContext +
//!   SCardConnect on a card pcscd already reports present to the verified national number.
//!   Agent: `session::on_card` over the pcscd backend (its own thread and context, one
//!   transaction; exactly what the engine does). Reference: `PcscContext::connect`, 200 ms,
//!   its sequence in one transaction, disconnect, the same trust check; then the same
//!   `session::decide` call to the same simulated rule service (→ advice).
//! - insertion → advice, agent: the engine on real pcscd, `card-inserted` event → `advice`
//!   event (as `benches/pcscd_latency.rs`), the card re-inserted every round.
//!
//! cargo bench --bench reference              (≈ 90 s; needs pcscd + vpcd)
//! cargo bench --bench reference -- --quick   (one round of each: a smoke run)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beid_agent::advice::Decision;
use beid_agent::beid::{BeidCard, Identity};
use beid_agent::metrics::Metrics;
use beid_agent::reader::pcsc::PcscContext;
use beid_agent::reader::{CardTransport, IoStats, PcscBackend, ReaderError};
use beid_agent::session::{
    decide, on_card, read_and_verify, CardPolicy, CardRead, Engine, EngineSettings, Published,
    Question, Verifier,
};
use beid_agent::sim::{CardDump, SimCard, SimTransport, WireTime};
use beid_agent::trust::{verify_card, CardFiles, TrustStore};

/// One card per generation: applet 1.1 RSA-1024, 1.7 RSA-2048, 1.8 EC P-384.
const CARDS: [&str; 3] = ["alice-2009", "gen-1.7-rsa2048", "gen-1.8-ec"];
/// vpcd's reader slot 0 in the harness's pcscd.
const READER: &str = "Virtual PCD 00 00";
const USE_CASE: &str = "uitpas-kansentarief";

/// eid-mw's card layer as it reads what a verified national number needs (`docs/card-protocol.md` §15;
/// MW `pcsc.cpp` `CPCSC::Connect`/`Transmit`, `card.cpp` `CCard` constructor, `SelectFile`,
/// `ReadFile`, `SendAPDU`). No file cache: 503C is read every time.
///
/// One deviation, kept because issue 8 defines the reference sequence so ("select step-wise
/// by FID"): when the first SELECT by file id fails, MW's `SelectByPath` selects DF00 by
/// its PKCS#15 AID rather than by file id (`3F00`, `DF00`, `503C` here): one APDU more here
/// for 503C, no byte more received.
mod mw {
    use super::*;

    /// `CPCSC::Connect`: "If you do an SCardTransmit() too fast after an SCardConnect(),
    /// some cards/readers will return an error".
    pub const CONNECT_DELAY: Duration = Duration::from_millis(200);
    /// `card_transmit_delay` (default 3 ms), slept before every `SCardTransmit`.
    pub const TRANSMIT_DELAY: Duration = Duration::from_millis(3);
    /// Slept after a status MW's test calls an error: `SW1 != 90 && SW2 != 00 && SW1 != 61`
    /// (so `6A82` and `6Cxx` yes, `6B00` and `9000` no).
    pub const ERROR_DELAY: Duration = Duration::from_millis(25);
    /// Before re-issuing a command after `6Cxx` when GET CARD DATA bytes 22-23 are `00 01`
    /// (`m_ul6CDelay`, "for cards that may need a delay (e.g. Belpic V1)"; 1.8 cards match).
    pub const WRONG_LE_DELAY: Duration = Duration::from_millis(50);
    /// `MAX_APDU_READ_LEN` (Linux and Windows).
    pub const READ_CHUNK: usize = 252;

    pub const IDENTITY: [u16; 3] = [0x3F00, 0xDF01, 0x4031];
    pub const IDENTITY_SIGNATURE: [u16; 3] = [0x3F00, 0xDF01, 0x4032];
    pub const RRN_CERTIFICATE: [u16; 3] = [0x3F00, 0xDF00, 0x503C];

    /// Sleeps MW's connect delay, as `CPCSC::Connect` does right after `SCardConnect`.
    pub fn connect_delay() -> Duration {
        std::thread::sleep(CONNECT_DELAY);
        CONNECT_DELAY
    }

    #[derive(Debug)]
    pub enum Error {
        Reader(ReaderError),
        Status { command: &'static str, sw: u16 },
        Malformed(&'static str),
    }

    /// The files MW read, exactly as read.
    pub struct Files {
        pub card_data: Vec<u8>,
        pub identity: Vec<u8>,
        pub signature: Vec<u8>,
        pub certificate: Vec<u8>,
    }

    /// `CCard` over any transport, counting APDUs and bytes as the agent's
    /// `CountingTransport` does (every command sent, GET RESPONSE and 6Cxx re-issues
    /// included; bytes received = response data + status words).
    pub struct Reader<T> {
        tx: T,
        stats: IoStats,
        wrong_le_delay: Duration,
        /// The fixed delays slept so far (the connect delay is the caller's).
        pub slept: Duration,
    }

    fn sw(response: &[u8]) -> u16 {
        match response {
            [.., sw1, sw2] => u16::from_be_bytes([*sw1, *sw2]),
            _ => 0,
        }
    }

    fn select_file_id(fid: u16) -> Vec<u8> {
        let [hi, lo] = fid.to_be_bytes();
        vec![0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo]
    }

    impl<T: CardTransport> Reader<T> {
        pub fn new(tx: T) -> Self {
            Self {
                tx,
                stats: IoStats::default(),
                wrong_le_delay: Duration::ZERO,
                slept: Duration::ZERO,
            }
        }

        pub fn stats(&self) -> IoStats {
            self.stats
        }

        fn sleep(&mut self, delay: Duration) {
            std::thread::sleep(delay);
            self.slept += delay;
        }

        /// `CPCSC::Transmit`: 3 ms before, 25 ms after an error status.
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
            self.sleep(TRANSMIT_DELAY);
            self.stats.apdus += 1;
            self.stats.bytes_sent += apdu.len() as u64;
            let response = self.tx.transmit(apdu).map_err(Error::Reader)?;
            self.stats.bytes_received += response.len() as u64;
            let [.., sw1, sw2] = response[..] else {
                return Err(Error::Malformed("response shorter than a status word"));
            };
            if sw1 != 0x90 && sw2 != 0x00 && sw1 != 0x61 {
                self.sleep(ERROR_DELAY);
            }
            Ok(response)
        }

        /// `CCard::SendAPDU`: a bare `61xx` → GET RESPONSE with Le = xx; a bare `6Cxx` →
        /// the same command with P3 = xx, after the 6C delay. (MW recurses without a
        /// bound; eight rounds never happen on a sane card.)
        fn send(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
            let mut command = apdu.to_vec();
            for _ in 0..8 {
                let response = self.transmit(&command)?;
                match response[..] {
                    [0x61, more] => command = vec![0x00, 0xC0, 0x00, 0x00, more],
                    [0x6C, exact] => {
                        let mut again = command[..4].to_vec();
                        again.push(exact);
                        again.extend_from_slice(command.get(5..).unwrap_or_default());
                        if !self.wrong_le_delay.is_zero() {
                            self.sleep(self.wrong_le_delay);
                        }
                        command = again;
                    }
                    _ => return Ok(response),
                }
            }
            Err(Error::Malformed("61xx/6Cxx never ends"))
        }

        /// `BeidCardSelectApplet`: sent with `Transmit` directly; `90xx` or `61xx` = BEID.
        pub fn select_applet(&mut self) -> Result<(), Error> {
            let aid = beid_agent::beid::BELPIC_APPLET_AID;
            let mut apdu = vec![0x00, 0xA4, 0x04, 0x00, aid.len() as u8];
            apdu.extend_from_slice(&aid);
            let response = self.transmit(&apdu)?;
            match response[..] {
                [0x90 | 0x61, _] => Ok(()),
                _ => Err(Error::Status {
                    command: "SELECT applet",
                    sw: sw(&response),
                }),
            }
        }

        /// The `CCard` constructor: GET CARD DATA `80 E4 00 00 1C`; the 6C delay when bytes
        /// 22-23 are `00 01`; on applet ≥ 1.8 again with P2 = 01, Le = 1F (`docs/card-protocol.md` §2).
        pub fn get_card_data(&mut self) -> Result<Vec<u8>, Error> {
            let response = self.send(&[0x80, 0xE4, 0x00, 0x00, 0x1C])?;
            if sw(&response) != 0x9000 || response.len() < 2 + 28 {
                return Err(Error::Status {
                    command: "GET CARD DATA",
                    sw: sw(&response),
                });
            }
            let mut data = response[..response.len() - 2].to_vec();
            if data[22..24] == [0x00, 0x01] {
                self.wrong_le_delay = WRONG_LE_DELAY;
            }
            if data[21] >= 0x18 {
                let response = self.send(&[0x80, 0xE4, 0x00, 0x01, 0x1F])?;
                if sw(&response) != 0x9000 {
                    return Err(Error::Status {
                        command: "GET CARD DATA P2=01",
                        sw: sw(&response),
                    });
                }
                data = response[..response.len() - 2].to_vec();
            }
            Ok(data)
        }

        /// `CCard::SelectFile`: the last file id first (`00 A4 02 0C 02 <fid>`), on
        /// `6A82`/`6A86` the whole path one file id at a time.
        pub fn select_file(&mut self, path: &[u16]) -> Result<(), Error> {
            let last = *path.last().ok_or(Error::Malformed("empty path"))?;
            let response = self.send(&select_file_id(last))?;
            match sw(&response) {
                0x9000 => Ok(()),
                0x6A82 | 0x6A86 if path.len() > 1 => {
                    for fid in path {
                        let response = self.send(&select_file_id(*fid))?;
                        if sw(&response) != 0x9000 {
                            return Err(Error::Status {
                                command: "SELECT",
                                sw: sw(&response),
                            });
                        }
                    }
                    Ok(())
                }
                other => Err(Error::Status {
                    command: "SELECT",
                    sw: other,
                }),
            }
        }

        /// `CCard::ReadFile`: READ BINARY with Le = 252 until a short answer; `6B00` at an
        /// offset > 0 is the end. MW's end test is `oResp.Size() < MAX_APDU_READ_LEN` on
        /// the response with its status word, kept as is (on these cards it is the same as
        /// "fewer data bytes than asked").
        pub fn read_file(&mut self, path: &[u16]) -> Result<Vec<u8>, Error> {
            self.select_file(path)?;
            let mut data = Vec::new();
            let mut offset = 0usize;
            while offset < 0x8000 {
                let [p1, p2] = (offset as u16).to_be_bytes();
                let response = self.send(&[0x00, 0xB0, p1, p2, READ_CHUNK as u8])?;
                match sw(&response) {
                    0x9000 => {}
                    0x6B00 if offset != 0 => {}
                    other => {
                        return Err(Error::Status {
                            command: "READ BINARY",
                            sw: other,
                        })
                    }
                }
                data.extend_from_slice(&response[..response.len() - 2]);
                if response.len() < READ_CHUNK {
                    return Ok(data);
                }
                offset += READ_CHUNK;
            }
            Err(Error::Malformed("file larger than 32 KiB"))
        }

        /// Everything a verified national number needs, as MW gets it: applet, card data,
        /// 4031, 4032, 503C.
        pub fn read_card(&mut self) -> Result<Files, Error> {
            self.select_applet()?;
            let card_data = self.get_card_data()?;
            Ok(Files {
                card_data,
                identity: self.read_file(&IDENTITY)?,
                signature: self.read_file(&IDENTITY_SIGNATURE)?,
                certificate: self.read_file(&RRN_CERTIFICATE)?,
            })
        }
    }
}

/// The trust check the reference's files get: the same as the agent's cold path (RRN
/// certificate to a root, at the card's issue date; identity signature; national number).
fn verify_reference(store: &TrustStore, files: &mw::Files) -> Identity {
    let identity = Identity::parse(&files.identity).unwrap();
    let at = identity
        .validity_begin
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let card_files = CardFiles {
        identity: &files.identity,
        identity_signature: &files.signature,
        rrn_certificate: &files.certificate,
    };
    let verified = verify_card(store, &card_files, at).unwrap();
    assert!(
        verified.certificate.trusted(),
        "reference: RRN certificate not trusted"
    );
    assert!(
        identity
            .national_number
            .as_ref()
            .is_some_and(|n| n.checksum().is_valid()),
        "reference: national number check failed"
    );
    identity
}

fn check_agent(read: &CardRead, rrn_key: &str) {
    assert!(read.authenticity.authentic, "agent: card not authentic");
    assert_eq!(read.authenticity.national_number.checksum.code(), "valid");
    assert_eq!(read.authenticity.rrn_key.map(|k| k.code()), Some(rrn_key));
}

/// Logs every exchange (names, status words and lengths; no data), for the APDU lists.
struct Recorder<T> {
    inner: T,
    log: Vec<String>,
}

impl<T: CardTransport> CardTransport for Recorder<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let response = self.inner.transmit(apdu)?;
        self.log.push(describe(apdu, &response));
        Ok(response)
    }

    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
}

fn describe(apdu: &[u8], response: &[u8]) -> String {
    let (ins, p1, p2) = (apdu[1], apdu[2], apdu[3]);
    let data = apdu.get(5..).unwrap_or_default();
    let le = |at: usize| match apdu.get(at) {
        Some(0) => 256,
        Some(le) => usize::from(*le),
        None => 0,
    };
    let command = match ins {
        0xA4 if p1 == 0x04 => "SELECT AID".to_owned(),
        0xA4 if p1 == 0x08 => {
            let path: Vec<String> = data
                .chunks_exact(2)
                .map(|fid| format!("{:02X}{:02X}", fid[0], fid[1]))
                .collect();
            format!("SELECT path {}", path.join("/"))
        }
        0xA4 => format!("SELECT {:02X}{:02X}", data[0], data[1]),
        0xB0 => format!("READ @{} Le={}", u16::from_be_bytes([p1, p2]), le(4)),
        0xE4 => format!("GET CARD DATA P2={p2:02X}"),
        0xC0 => format!("GET RESPONSE Le={}", le(4)),
        other => format!("INS {other:02X}"),
    };
    let len = response.len().saturating_sub(2);
    let sw = response
        .get(len..)
        .map(|sw| format!("{:02X}{:02X}", sw[0], sw[1]))
        .unwrap_or_default();
    if len > 0 {
        format!("{command} → {sw} ({len} B)")
    } else {
        format!("{command} → {sw}")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e3)
}

/// The T=0 wire floor of an exchange: every byte on the wire (command, one procedure byte
/// per APDU, response) at the card's ATR speed, by the simulator's own model
/// (`sim::WireTime`, `for_apdu` = command + 1 + response bytes).
fn wire_floor(atr: &[u8], stats: IoStats) -> Duration {
    let bytes = stats.bytes_sent + u64::from(stats.apdus) + stats.bytes_received;
    WireTime::from_atr(atr).for_bytes(bytes as usize)
}

fn load(card: &str) -> CardDump {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cards")
        .join(card);
    CardDump::load(&dir).unwrap_or_else(|error| panic!("{card}: {error}"))
}

fn sim(dump: &CardDump, wire_time: bool) -> SimTransport {
    SimTransport::new(
        SimCard::new(dump.clone())
            .unwrap()
            .with_wire_time(wire_time),
    )
}

/// One measured read.
#[derive(Clone, Copy)]
struct Sample {
    stats: IoStats,
    time: Duration,
    /// The reference's fixed delays, connect delay included (zero for the agent).
    slept: Duration,
}

/// Samples of one side, with stats that must not vary between rounds.
#[derive(Default)]
struct Series {
    stats: Option<IoStats>,
    times: Vec<Duration>,
    slept: Duration,
}

impl Series {
    fn push(&mut self, sample: Sample) {
        match self.stats {
            Some(stats) => assert_eq!(stats, sample.stats, "APDU counts changed between rounds"),
            None => self.stats = Some(sample.stats),
        }
        self.times.push(sample.time);
        self.slept = sample.slept;
    }

    fn stats(&self) -> IoStats {
        self.stats.unwrap_or_default()
    }

    fn p(&self, p: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        percentile(&sorted, p)
    }
}

fn reference_in_process(dump: &CardDump, store: &TrustStore, wire_time: bool) -> Sample {
    let mut transport = sim(dump, wire_time);
    let started = Instant::now();
    let connect = mw::connect_delay();
    let mut reader = mw::Reader::new(&mut transport);
    let files = reader.read_card().unwrap();
    verify_reference(store, &files);
    Sample {
        stats: reader.stats(),
        time: started.elapsed(),
        slept: connect + reader.slept,
    }
}

fn agent_in_process(
    dump: &CardDump,
    verifier: &Verifier,
    wire_time: bool,
    rrn_key: &str,
) -> Sample {
    let mut transport = sim(dump, wire_time);
    let started = Instant::now();
    let tx: &mut dyn CardTransport = &mut transport;
    let mut card = BeidCard::open(tx).unwrap();
    let read = read_and_verify(&mut card, verifier, false).unwrap();
    let time = started.elapsed();
    check_agent(&read, rrn_key);
    Sample {
        stats: read.stats,
        time,
        slept: Duration::ZERO,
    }
}

/// The three sides for one card.
#[derive(Default)]
struct Comparison {
    reference: Series,
    cold: Series,
    warm: Series,
}

fn print_table(title: &str, rows: &[(&str, &[u8], &Comparison)], percentiles: bool) {
    println!("\n## {title}\n");
    if percentiles {
        println!("| card | side | APDUs | bytes from card | bytes to card | wire floor ms | time p50 ms | p99 ms | p50 − floor ms | fixed delays ms |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!("| card | side | APDUs | bytes from card | bytes to card | wire floor ms | time p50 ms | p50 − floor ms | fixed delays ms |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    }
    for (card, atr, comparison) in rows {
        for (side, series) in [
            ("reference (MW)", &comparison.reference),
            ("agent cold", &comparison.cold),
            ("agent warm", &comparison.warm),
        ] {
            let stats = series.stats();
            let floor = wire_floor(atr, stats);
            let p50 = series.p(0.5);
            let p99 = if percentiles {
                format!(" {} |", ms(series.p(0.99)))
            } else {
                String::new()
            };
            println!(
                "| {card} | {side} | {} | {} | {} | {} | {} |{p99} {} | {} |",
                stats.apdus,
                stats.bytes_received,
                stats.bytes_sent,
                ms(floor),
                ms(p50),
                ms(p50.saturating_sub(floor)),
                ms(series.slept),
            );
        }
    }
    println!("\nratios, reference ÷ agent (cold / warm):\n");
    println!("| card | APDUs | bytes from card | wire floor | time p50 |");
    println!("|---|---:|---:|---:|---:|");
    for (card, atr, comparison) in rows {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let both = |f: &dyn Fn(&Series) -> f64| {
            format!(
                "{:.2}× / {:.2}×",
                ratio(f(&comparison.reference), f(&comparison.cold)),
                ratio(f(&comparison.reference), f(&comparison.warm))
            )
        };
        println!(
            "| {card} | {} | {} | {} | {} |",
            both(&|s| f64::from(s.stats().apdus)),
            both(&|s| s.stats().bytes_received as f64),
            both(&|s| wire_floor(atr, s.stats()).as_secs_f64()),
            both(&|s| s.p(0.5).as_secs_f64()),
        );
    }
}

/// The APDU lists of both sides on one card (wire time off; delays still slept).
fn print_sequences(card: &str, dump: &CardDump, store: &TrustStore) {
    let mut reference = Recorder {
        inner: sim(dump, false),
        log: Vec::new(),
    };
    mw::Reader::new(&mut reference).read_card().unwrap();

    let verifier = Verifier::new(store.clone(), None);
    let mut agent_log = Vec::new();
    for rrn_key in ["card", "cached"] {
        let mut recorder = Recorder {
            inner: sim(dump, false),
            log: Vec::new(),
        };
        {
            let tx: &mut dyn CardTransport = &mut recorder;
            let mut beid = BeidCard::open(tx).unwrap();
            let read = read_and_verify(&mut beid, &verifier, false).unwrap();
            check_agent(&read, rrn_key);
        }
        agent_log.push(recorder.log);
    }
    println!("\n### {card}: APDUs\n");
    println!(
        "- reference ({}): {}",
        reference.log.len(),
        reference.log.join(" · ")
    );
    println!(
        "- agent cold ({}): {}",
        agent_log[0].len(),
        agent_log[0].join(" · ")
    );
    println!(
        "- agent warm ({}): {}",
        agent_log[1].len(),
        agent_log[1].join(" · ")
    );
}

fn in_process(dumps: &[(&str, CardDump)], store: &TrustStore, rounds: usize) -> Vec<Comparison> {
    let mut results = Vec::new();
    for (card, dump) in dumps {
        let mut comparison = Comparison::default();
        let warm = Verifier::new(store.clone(), None);
        agent_in_process(dump, &warm, false, "card");
        for round in 0..rounds {
            // Alternate the order, so no side always runs first.
            for side in (0..3).map(|i| (i + round) % 3) {
                match side {
                    0 => comparison
                        .reference
                        .push(reference_in_process(dump, store, true)),
                    1 => {
                        let cold = Verifier::new(store.clone(), None);
                        comparison
                            .cold
                            .push(agent_in_process(dump, &cold, true, "card"));
                    }
                    _ => comparison
                        .warm
                        .push(agent_in_process(dump, &warm, true, "cached")),
                }
            }
        }
        eprintln!("in-process: {card} done");
        results.push(comparison);
    }
    results
}

/// The reference through pcscd: connect, 200 ms, its sequence in one transaction, the trust
/// check (→ `nn`), then the same advice call the engine makes (→ `advice`).
fn reference_pcscd(
    store: &TrustStore,
    settings: &EngineSettings,
    runtime: &tokio::runtime::Runtime,
) -> (Sample, Duration, Decision) {
    let started = Instant::now();
    let session = PcscContext::establish().unwrap();
    let mut card = session.connect(READER).unwrap();
    let connect = mw::connect_delay();
    let (files, stats, slept) = card
        .with_transaction(|tx| {
            let mut reader = mw::Reader::new(tx);
            let files = reader.read_card().unwrap();
            (files, reader.stats(), reader.slept)
        })
        .unwrap();
    card.disconnect();
    let identity = verify_reference(store, &files);
    let nn = started.elapsed();
    let use_case = settings.catalogue.get(USE_CASE).unwrap();
    let question = Question {
        identity: &identity,
        authentic: true,
        use_case,
        channel: settings.channel,
        device_id: &settings.device_id,
        today: time::OffsetDateTime::now_utc().date(),
    };
    let advice = runtime.block_on(decide(
        settings.advice.as_ref(),
        &question,
        CardPolicy::default(),
    ));
    let advised = started.elapsed();
    (
        Sample {
            stats,
            time: nn,
            slept: connect + slept,
        },
        advised,
        advice.decision(),
    )
}

/// The agent through pcscd, as the engine reads: `on_card` + `read_and_verify`.
fn agent_pcscd(verifier: &Arc<Verifier>, rrn_key: &str) -> Sample {
    let started = Instant::now();
    let worker = verifier.clone();
    let backend: Arc<dyn beid_agent::reader::CardBackend> = Arc::new(PcscBackend::default());
    let job = on_card(&backend, READER, Duration::from_secs(15), move |card| {
        read_and_verify(card, &worker, false)
    })
    .unwrap();
    let time = started.elapsed();
    check_agent(&job.result, rrn_key);
    Sample {
        stats: job.result.stats,
        time,
        slept: Duration::ZERO,
    }
}

struct PcscdResult {
    comparison: Comparison,
    reference_advice: Vec<Duration>,
    decision: Decision,
}

fn through_pcscd_reads(
    pcscd: &common::Pcscd,
    store: &TrustStore,
    rounds: usize,
    runtime: &tokio::runtime::Runtime,
) -> Vec<PcscdResult> {
    let settings = EngineSettings::simulated(None).unwrap();
    let mut results = Vec::new();
    for card in CARDS {
        let inserted = pcscd.insert_with(card, 0, &["--wire-time"]);
        let statuses = PcscContext::establish()
            .unwrap()
            .wait_for_card(Some(READER), Duration::from_secs(10))
            .unwrap();
        assert!(
            statuses.iter().any(|s| !s.atr.is_empty()),
            "{card}: pcscd sees no card"
        );
        let mut comparison = Comparison::default();
        let mut reference_advice = Vec::new();
        let mut decision = Decision::Unknown;
        let warm = Arc::new(Verifier::new(store.clone(), None));
        agent_pcscd(&warm, "card");
        for round in 0..rounds {
            for side in (0..3).map(|i| (i + round) % 3) {
                match side {
                    0 => {
                        let (sample, advised, outcome) = reference_pcscd(store, &settings, runtime);
                        comparison.reference.push(sample);
                        reference_advice.push(advised);
                        decision = outcome;
                    }
                    1 => {
                        let cold = Arc::new(Verifier::new(store.clone(), None));
                        comparison.cold.push(agent_pcscd(&cold, "card"));
                    }
                    _ => comparison.warm.push(agent_pcscd(&warm, "cached")),
                }
            }
        }
        inserted.remove();
        eprintln!("through pcscd: {card} done");
        results.push(PcscdResult {
            comparison,
            reference_advice,
            decision,
        });
    }
    results
}

async fn next(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<Published>>,
    name: &str,
) -> std::sync::Arc<Published> {
    let wait = async {
        loop {
            let event = events.recv().await.unwrap();
            if event.event.name() == name {
                return event;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {name} event"))
}

/// The engine on pcscd: `card-inserted` → `advice` per insertion. The first round of each
/// card is cold (its RRN key not yet cached), the others warm.
async fn engine_insertions(
    pcscd: &common::Pcscd,
    rounds: usize,
) -> Vec<(Duration, Vec<Duration>, Option<Decision>)> {
    let settings = EngineSettings {
        device_id: "bench".into(),
        auto_advice: vec![USE_CASE.into()],
        ..EngineSettings::simulated(None).unwrap()
    };
    let engine = Engine::start(
        Arc::new(PcscBackend::default()),
        settings,
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let mut events = engine.subscribe();
    let mut results = Vec::new();
    for card in CARDS {
        let mut cold = Duration::ZERO;
        let mut warm = Vec::new();
        let mut decision = None;
        for round in 0..=rounds {
            let inserted = pcscd.insert_with(card, 0, &["--wire-time"]);
            next(&mut events, "card-inserted").await;
            let seen = Instant::now();
            let advice = next(&mut events, "advice").await;
            let elapsed = seen.elapsed();
            if let beid_agent::session::EngineEvent::Advice { decision: d, .. } = &advice.event {
                decision = Some(*d);
            }
            if round == 0 {
                cold = elapsed;
            } else {
                warm.push(elapsed);
            }
            tokio::task::block_in_place(|| inserted.remove());
            next(&mut events, "card-removed").await;
        }
        warm.sort();
        eprintln!("engine through pcscd: {card} done");
        results.push((cold, warm, decision));
    }
    results
}

fn main() {
    // `cargo test --benches` runs benches without --bench: keep that quick, as --quick does.
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench")
        || args.iter().any(|a| a == "--quick")
        || std::env::var_os("BEID_BENCH_QUICK").is_some();
    let (in_process_rounds, pcscd_rounds) = if quick { (1, 1) } else { (5, 10) };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = TrustStore::production().with_test_roots().unwrap();
    let dumps: Vec<(&str, CardDump)> = CARDS.iter().map(|card| (*card, load(card))).collect();
    let started = Instant::now();

    println!("# Agent vs reference middleware (MW) sequence on the same simulated cards");
    println!(
        "\nMW delays: {} ms after connect, {} ms before every APDU, {} ms after an error status, \
         {} ms before a 6Cxx re-issue on cards with GET CARD DATA bytes 22-23 = 00 01; \
         READ BINARY in {}-byte chunks. Wire time: {} etu per byte at 4 MHz, Fi/Di from TA1.",
        mw::CONNECT_DELAY.as_millis(),
        mw::TRANSMIT_DELAY.as_millis(),
        mw::ERROR_DELAY.as_millis(),
        mw::WRONG_LE_DELAY.as_millis(),
        mw::READ_CHUNK,
        12
    );
    for (card, dump) in &dumps {
        print_sequences(card, dump, &store);
    }

    let local = in_process(&dumps, &store, in_process_rounds);
    let rows: Vec<(&str, &[u8], &Comparison)> = dumps
        .iter()
        .zip(&local)
        .map(|((card, dump), c)| (*card, dump.atr.as_slice(), c))
        .collect();
    print_table(
        &format!(
            "In-process, SimTransport, wire-time model on ({in_process_rounds} rounds per side)"
        ),
        &rows,
        false,
    );

    let pcscd = common::Pcscd::start();
    // libpcsclite reads this once per process: before any PC/SC call.
    std::env::set_var("PCSCLITE_CSOCK_NAME", pcscd.socket());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let remote = through_pcscd_reads(&pcscd, &store, pcscd_rounds, &runtime);
    for (index, result) in remote.iter().enumerate() {
        // Same card, same sequence: the counts must not depend on the transport.
        assert_eq!(
            result.comparison.reference.stats(),
            local[index].reference.stats()
        );
        assert_eq!(result.comparison.cold.stats(), local[index].cold.stats());
        assert_eq!(result.comparison.warm.stats(), local[index].warm.stats());
    }
    let rows: Vec<(&str, &[u8], &Comparison)> = dumps
        .iter()
        .zip(&remote)
        .map(|((card, dump), r)| (*card, dump.atr.as_slice(), &r.comparison))
        .collect();
    print_table(
        &format!(
            "Through pcscd + vpcd, simulate-card --wire-time: connect → verified national number \
             ({pcscd_rounds} rounds per side, alternating)"
        ),
        &rows,
        true,
    );

    let engine = runtime.block_on(engine_insertions(&pcscd, pcscd_rounds));
    println!(
        "\n## Insertion → advice through pcscd, wire-time model on\n\n\
         agent: the engine, card-inserted event → advice event ({pcscd_rounds} warm insertions \
         per card, after the card's first, cold one); reference: connect → MW sequence → trust \
         check → the same simulated rule service call. Floors: the wire time of the bytes each \
         side exchanged (agent warm, reference).\n"
    );
    println!("| card | µs per byte | agent cold ms | agent warm p50 ms | p99 ms | floor ms | p50 − floor ms | reference p50 ms | p99 ms | floor ms | p50 − floor ms | reference ÷ agent warm | reference ÷ agent cold | decision (agent / ref) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut advice_ratios = Vec::new();
    for (((card, dump), (cold, warm, decision)), result) in dumps.iter().zip(&engine).zip(&remote) {
        let mut reference = result.reference_advice.clone();
        reference.sort();
        let (warm50, ref50) = (percentile(warm, 0.5), percentile(&reference, 0.5));
        let warm_floor = wire_floor(&dump.atr, result.comparison.warm.stats());
        let ref_floor = wire_floor(&dump.atr, result.comparison.reference.stats());
        let ratio = ref50.as_secs_f64() / warm50.as_secs_f64();
        advice_ratios.push(ratio);
        println!(
            "| {card} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {ratio:.2}× | {:.2}× | {} / {:?} |",
            WireTime::from_atr(&dump.atr).for_bytes(1000).as_secs_f64() * 1e3,
            ms(*cold),
            ms(warm50),
            ms(percentile(warm, 0.99)),
            ms(warm_floor),
            ms(warm50.saturating_sub(warm_floor)),
            ms(ref50),
            ms(percentile(&reference, 0.99)),
            ms(ref_floor),
            ms(ref50.saturating_sub(ref_floor)),
            ref50.as_secs_f64() / cold.as_secs_f64(),
            decision.map(|d| format!("{d:?}")).unwrap_or_default(),
            result.decision,
        );
    }

    println!("\n## Targets (issue 8)\n");
    let apdu_ratios: Vec<String> = dumps
        .iter()
        .zip(&local)
        .map(|((card, _), c)| {
            format!(
                "{card} {:.2}×",
                f64::from(c.reference.stats().apdus) / f64::from(c.warm.stats().apdus)
            )
        })
        .collect();
    let apdus_met = local
        .iter()
        .all(|c| c.reference.stats().apdus >= 3 * c.warm.stats().apdus);
    println!(
        "- warm path ≥ 3× fewer APDUs than the reference: {} ({})",
        if apdus_met { "met" } else { "NOT met" },
        apdu_ratios.join(", ")
    );
    let advice_met = advice_ratios.iter().all(|r| *r >= 3.0);
    println!(
        "- insertion → advice ≥ 3× faster than the reference (warm, p50): {} ({})",
        if advice_met { "met" } else { "NOT met" },
        CARDS
            .iter()
            .zip(&advice_ratios)
            .map(|(card, r)| format!("{card} {r:.2}×"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
}
