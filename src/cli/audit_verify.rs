//! `beid-agent audit`: `verify FILE` checks the audit log's hash chain and head file, its
//! seals with the city's verification key, and its anchors in the journal; exit 0 only when
//! nothing is wrong (a partial line a crash left is not). `seal-init` is in
//! [`super::audit_seal_init`].

use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::audit_seal_init::SealInitArgs;
use super::exit::{sentence, Failure};
use super::json::{self, JsonFlag};
use crate::audit::{verify_with, Anchors, Verdict, VerificationKey, VerifyOptions, DEFAULT_UNIT};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify an audit log: edits, deletions, reordering, truncation, forged seals and
    /// records; says plainly what it could not check.
    Verify(VerifyArgs),
    /// Set up forward-secure sealing for the agent's audit log and print the verification
    /// key, once: the city keeps it off this computer.
    SealInit(SealInitArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The log (e.g. /var/lib/beid-agent/audit.jsonl); its head file is read beside it.
    file: PathBuf,
    /// The verification key `seal-init` printed (`beid-seal-v1:...`), or `@FILE` to read it
    /// from a file (better: a key on the command line ends up in the shell's history).
    #[arg(long, value_name = "KEY")]
    verification_key: Option<String>,
    /// The journal's anchors: the output of `journalctl -u beid-agent -o json`, exported
    /// right after copying the log.
    #[arg(long, value_name = "FILE")]
    anchors: Option<PathBuf>,
    /// Whose journal entries are anchors (`_SYSTEMD_UNIT`).
    #[arg(long, value_name = "UNIT", default_value = DEFAULT_UNIT, requires = "anchors")]
    unit: String,
    /// Judge whether a seal is overdue as of this time (RFC 3339; default now): the time
    /// the log was copied, when verifying an older copy.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    as_of: Option<OffsetDateTime>,
    #[command(flatten)]
    pub(super) output: JsonFlag,
}

impl AuditCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            Self::Verify(args) => args.output.json,
            Self::SealInit(args) => args.output.json,
        }
    }
}

pub fn run(command: &AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Verify(args) => verify(args),
        AuditCommand::SealInit(args) => super::audit_seal_init::run(args),
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let mut options = VerifyOptions::now();
    if let Some(key) = &args.verification_key {
        options.key = Some(verification_key(key)?);
    }
    if let Some(path) = &args.anchors {
        let anchors = Anchors::read_journal_export(path, &args.unit)
            .map_err(|e| Failure::Other(sentence(&e)))?;
        options.anchors = Some(anchors);
    }
    if let Some(as_of) = args.as_of {
        options.as_of = as_of;
    }
    let report = verify_with(&args.file, &options).map_err(|e| Failure::Other(sentence(&e)))?;
    if args.output.json {
        json::print(&report)?;
    } else {
        out!("{}", report.to_string().trim_end());
    }
    match report.verdict() {
        Verdict::Intact | Verdict::IntactUpToPartialTail => Ok(()),
        Verdict::Broken => Err(Failure::ChecksFailed),
    }
}

/// The key itself, or `@FILE` holding it.
fn verification_key(argument: &str) -> Result<VerificationKey, Failure> {
    let text = match argument.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .map(zeroize::Zeroizing::new)
            .map_err(|e| Failure::Other(format!("cannot read the verification key {path}: {e}")))?,
        None => zeroize::Zeroizing::new(argument.to_owned()),
    };
    text.parse()
        .map_err(|e| Failure::Other(format!("--verification-key: {e}")))
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| "expected an RFC 3339 time, e.g. 2025-03-03T18:00:00Z".to_owned())
}
