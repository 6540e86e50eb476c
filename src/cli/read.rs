//! `beid-agent read`: read the card in a reader, for technicians.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::exit::Failure;
use super::json::{self, JsonFlag};
use super::trust_args::TrustArgs;
use crate::beid::{AtrHint, Checksum};
use crate::reader::pcsc::{PcscContext, ReaderStatus, SlotState};
use crate::reader::{CardBackend, CardJob, PcscBackend};
use crate::session::{on_card, read_and_verify, AuthenticityReport, CardRead, Verifier};

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// The reader to use; without it, the one reader that holds a card.
    #[arg(long)]
    reader: Option<String>,
    #[command(flatten)]
    pub(super) output: JsonFlag,
    /// Show the full national number instead of the masked one.
    #[arg(long)]
    show_national_number: bool,
    /// Wait up to this many seconds for a card to be inserted.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    wait: f64,
    /// Give up when the card has not answered within this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    #[command(flatten)]
    trust: TrustArgs,
    /// Keep verified RRN keys in this file, so the next card needs no 503C read.
    #[arg(long, value_name = "FILE")]
    rrn_cache: Option<PathBuf>,
    /// Prove an applet 1.8 chip genuine (INTERNAL AUTHENTICATE; 5000 per card without PIN).
    #[arg(long)]
    authenticate_card: bool,
}

/// What `read --json` prints (documented in the README).
#[derive(Debug, Serialize)]
struct ReadReport {
    reader: String,
    atr: String,
    atr_known: bool,
    applet_version: String,
    life_cycle: String,
    card: CardValidity,
    national_number: NationalNumberReport,
    authenticity: AuthenticityReport,
    apdus: u32,
    bytes: u64,
    bytes_sent: u64,
    elapsed_ms: f64,
}

#[derive(Debug, Serialize)]
struct CardValidity {
    valid_from: Option<String>,
    valid_until: Option<String>,
    expired: bool,
    document_type: String,
}

#[derive(Debug, Serialize)]
struct NationalNumberReport {
    checksum: &'static str,
    born_2000_or_later: bool,
    masked: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

pub fn run(args: &ReadArgs) -> Result<(), Failure> {
    let verifier = Arc::new(Verifier::new(args.trust.store()?, args.rrn_cache.clone()));
    let reader = choose_reader(args.reader.as_deref(), seconds(args.wait))?;
    let authenticate = args.authenticate_card;
    let job = on_card(&pcscd(), &reader, seconds(args.timeout), move |card| {
        read_and_verify(card, &verifier, authenticate)
    })?;
    let report = report(&reader, job, args.show_national_number)?;
    if args.output.json {
        json::print(&report)?;
    } else {
        print_text(&report);
    }
    if report.authenticity.authentic {
        Ok(())
    } else {
        Err(Failure::NotAuthentic)
    }
}

/// The readers of the machine's pcscd, for the one-shot commands.
pub(super) fn pcscd() -> Arc<dyn CardBackend> {
    Arc::new(PcscBackend::default())
}

pub(super) fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::from_secs(3600))
}

/// The named reader, or the one reader holding a card; several cards is an error that
/// lists them (a technician must say which).
pub(super) fn choose_reader(named: Option<&str>, wait: Duration) -> Result<String, Failure> {
    let session = PcscContext::establish()?;
    let readers = session.readers()?;
    if readers.is_empty() {
        return Err(crate::reader::ReaderError::NoReaders.into());
    }
    if let Some(name) = named {
        if !readers.iter().any(|r| r == name) {
            return Err(Failure::NoReader(format!(
                "no reader named {name:?}; readers: {}",
                readers.join(", ")
            )));
        }
    }
    let statuses = session.wait_for_card(named, wait)?;
    let with_card: Vec<&ReaderStatus> = statuses
        .iter()
        .filter(|s| !matches!(s.state, SlotState::Empty | SlotState::Unavailable))
        .collect();
    match with_card.as_slice() {
        [] => Err(Failure::NoCard(match named {
            Some(name) => format!("no card in reader {name:?}: insert the card, chip first and up"),
            None => format!(
                "no card in any reader ({}): insert the card, chip first and up",
                readers.join(", ")
            ),
        })),
        [one] if one.state == SlotState::CardInUseExclusively => Err(Failure::ReaderBusy(format!(
            "another application holds reader {:?} exclusively: close the other eID software",
            one.name
        ))),
        [one] => Ok(one.name.clone()),
        several => Err(Failure::SeveralCards(format!(
            "cards are present in several readers; choose one with --reader: {}",
            several
                .iter()
                .map(|s| format!("{:?}", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn report(
    reader: &str,
    job: CardJob<CardRead>,
    show_national_number: bool,
) -> Result<ReadReport, Failure> {
    let CardJob {
        result:
            CardRead {
                card_data,
                files,
                authenticity,
                stats,
            },
        atr,
        elapsed,
    } = job;
    let identity = &files.identity;
    let number = identity.national_number()?;
    let checksum = number.checksum();
    let today = time::OffsetDateTime::now_utc().date();
    Ok(ReadReport {
        reader: reader.to_owned(),
        atr: hex(&atr),
        atr_known: AtrHint::from_atr(&atr).is_known(),
        applet_version: card_data.applet_version().to_string(),
        life_cycle: card_data.life_cycle().to_string(),
        card: CardValidity {
            valid_from: identity.validity_begin.map(|d| d.to_string()),
            valid_until: identity.validity_end.map(|d| d.to_string()),
            expired: identity.is_expired_on(today),
            document_type: identity.document_type.clone(),
        },
        national_number: NationalNumberReport {
            checksum: if checksum.is_valid() {
                "valid"
            } else {
                "invalid"
            },
            born_2000_or_later: checksum == Checksum::Valid2000OrLater,
            masked: number.masked(),
            value: show_national_number.then(|| number.expose().to_owned()),
        },
        authenticity,
        apdus: stats.apdus,
        bytes: stats.bytes_received,
        bytes_sent: stats.bytes_sent,
        elapsed_ms: (elapsed.as_secs_f64() * 1e5).round() / 100.0,
    })
}

fn print_text(report: &ReadReport) {
    let number = report
        .national_number
        .value
        .as_deref()
        .unwrap_or(&report.national_number.masked);
    out!("Reader:          {}", report.reader);
    out!(
        "Card:            Belgian eID, applet {} ({}), ATR {}",
        report.applet_version,
        report.life_cycle,
        if report.atr_known { "known" } else { "unknown" }
    );
    out!(
        "Valid:           {} to {}{}",
        report.card.valid_from.as_deref().unwrap_or("?"),
        report.card.valid_until.as_deref().unwrap_or("?"),
        if report.card.expired {
            " (EXPIRED)"
        } else {
            ""
        }
    );
    out!(
        "National number: {number} (checksum {})",
        report.national_number.checksum
    );
    out!(
        "Authentic:       {}",
        super::verify_dump::verdict(&report.authenticity)
    );
    out!(
        "Read:            {} APDUs, {} bytes from the card, {:.1} ms",
        report.apdus,
        report.bytes,
        report.elapsed_ms
    );
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
