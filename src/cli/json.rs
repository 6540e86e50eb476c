//! `--json`: one flag for every command that reports, and one promise: exactly one JSON
//! object on stdout, the command's report or, when it fails before it has one, the error
//! (`{"error": {"code", "message"}}`, printed by [`super::run`] from the
//! [`Failure`](super::exit::Failure)). Logs and the human error line go to stderr.

use serde::Serialize;

use super::exit::Failure;

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct JsonFlag {
    /// Print exactly one JSON object on stdout instead of text: the report, or
    /// {"error": {"code", "message"}} when the command fails without one.
    #[arg(long)]
    pub json: bool,
}

/// Prints the command's report as its one JSON object.
pub fn print(report: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| Failure::Other(format!("cannot write JSON: {e}")))?;
    out!("{text}");
    Ok(())
}
