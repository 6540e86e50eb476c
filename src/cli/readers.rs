//! `beid-agent readers`: list the readers and what is in them; optionally wait for a card
//! to arrive or leave (for technicians and for scripts that drive a test bench).

use std::time::Duration;

use serde::Serialize;

use super::exit::Failure;
use super::json::{self, JsonFlag};
use super::read::hex;
use crate::beid::AtrHint;
use crate::reader::pcsc::{PcscContext, ReaderStatus, SlotState};

#[derive(Debug, clap::Args)]
pub struct ReadersArgs {
    #[command(flatten)]
    pub(super) output: JsonFlag,
    /// Wait until the reader named by --reader holds a card, or is empty.
    #[arg(long, value_enum, requires = "reader")]
    wait_for: Option<WaitFor>,
    /// The reader to wait on.
    #[arg(long)]
    reader: Option<String>,
    /// How long to wait, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WaitFor {
    Card,
    Empty,
}

#[derive(Debug, Serialize)]
struct ReaderLine {
    name: String,
    state: SlotState,
    #[serde(skip_serializing_if = "Option::is_none")]
    atr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<String>,
}

impl From<&ReaderStatus> for ReaderLine {
    fn from(status: &ReaderStatus) -> Self {
        let present = !matches!(status.state, SlotState::Empty | SlotState::Unavailable);
        Self {
            name: status.name.clone(),
            state: status.state,
            atr: (present && !status.atr.is_empty()).then(|| hex(&status.atr)),
            card: present.then(|| AtrHint::from_atr(&status.atr).to_string()),
        }
    }
}

pub fn run(args: &ReadersArgs) -> Result<(), Failure> {
    let session = PcscContext::establish()?;
    let statuses = match (args.wait_for, args.reader.as_deref()) {
        (Some(wait_for), Some(reader)) => {
            let timeout = Duration::try_from_secs_f64(args.timeout.max(0.0))
                .unwrap_or(Duration::from_secs(3600));
            let status = session.wait_for(reader, wait_for == WaitFor::Card, timeout)?;
            let reached = (status.state == SlotState::Empty) == (wait_for == WaitFor::Empty);
            if !reached {
                return Err(Failure::Other(format!(
                    "reader {reader:?} is still {:?} after {} s",
                    status.state, args.timeout
                )));
            }
            vec![status]
        }
        _ => session.statuses()?,
    };
    let lines: Vec<ReaderLine> = statuses.iter().map(ReaderLine::from).collect();
    if args.output.json {
        json::print(&lines)?;
    } else if lines.is_empty() {
        out!("no reader connected");
    } else {
        for line in &lines {
            out!(
                "{}: {}{}",
                line.name,
                serde_json::to_value(line.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                line.card
                    .as_ref()
                    .map(|card| format!(" ({card}, ATR {})", line.atr.as_deref().unwrap_or("?")))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
