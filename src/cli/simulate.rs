//! `beid-agent simulate-card`: serve a simulated Belgian eID to pcscd through vpcd.

use std::path::PathBuf;
use std::time::Duration;

use super::exit::{sentence, Failure};
use crate::sim::{self, vpcd, Faults, SimCard, StatusFault};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The card's dump folder (files named by file id, as in fixtures/cards/*).
    #[arg(long)]
    card: PathBuf,
    /// vpcd's address (Debian's /etc/reader.conf.d/vpcd listens on 35963).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:35963")]
    vpcd: String,
    /// Remove the card instead of answering APDU number N + 1.
    #[arg(long, value_name = "N")]
    remove_after_apdus: Option<u32>,
    /// Stop answering after N APDUs (a dead chip).
    #[arg(long, value_name = "N")]
    mute_after_apdus: Option<u32>,
    /// Answer 6B00 once at this file and offset, like readers with the mid-file EOF glitch.
    #[arg(long, value_name = "FID:OFFSET", value_parser = sim::parse_eof_glitch)]
    eof_glitch: Option<(u16, u16)>,
    /// Force a status word on a command: INS[@N]=SW, e.g. B0=6581 or A4@2=6D00.
    #[arg(long = "status-fault", value_name = "INS[@N]=SW")]
    status_faults: Vec<StatusFault>,
    /// Answer as slowly as the card's T=0 wire at its ATR speed.
    #[arg(long)]
    wire_time: bool,
    /// How long to keep trying to reach vpcd.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    connect_timeout: u64,
}

pub fn run(args: &SimulateArgs) -> Result<(), Failure> {
    let faults = Faults {
        remove_after_apdus: args.remove_after_apdus,
        mute_after_apdus: args.mute_after_apdus,
        eof_glitch: args.eof_glitch,
        status_faults: args.status_faults.clone(),
    };
    let mut card = SimCard::load(&args.card)
        .map_err(|e| Failure::Other(sentence(&e)))?
        .with_faults(faults)
        .with_wire_time(args.wire_time);
    let stream = vpcd::connect(&args.vpcd, Duration::from_secs(args.connect_timeout))
        .map_err(|e| Failure::NoReader(sentence(&e)))?;
    eprintln!(
        "card {} inserted into vpcd at {}",
        args.card.display(),
        args.vpcd
    );
    let departure = vpcd::serve(&mut card, stream).map_err(|e| Failure::Other(sentence(&e)))?;
    eprintln!(
        "card left the reader ({departure:?}) after {} APDUs",
        card.apdus_answered()
    );
    Ok(())
}
