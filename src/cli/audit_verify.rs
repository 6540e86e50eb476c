//! `beid-agent audit verify FILE`: checks the audit log's hash chain and its head file;
//! exit 0 only when it is intact (up to a partial line a crash left, if any).

use std::path::PathBuf;

use super::exit::{sentence, Failure};
use crate::audit::{verify, Verdict};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify an audit log: any edit, deletion, reordering or truncation is reported.
    Verify {
        /// The log (e.g. /var/lib/beid-agent/audit.jsonl).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: &AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Verify { file, json } = command;
    let report = verify(file).map_err(|e| Failure::Other(sentence(&e)))?;
    if *json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Other(format!("cannot write JSON: {e}")))?;
        out!("{text}");
    } else {
        out!("{report}");
    }
    match report.verdict() {
        Verdict::Intact | Verdict::IntactUpToPartialTail => Ok(()),
        Verdict::Broken => Err(Failure::ChecksFailed),
    }
}
