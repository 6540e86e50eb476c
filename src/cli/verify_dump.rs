//! `beid-agent verify-dump DIR`: offline authenticity of a card dump (files named by file
//! id, as in fixtures/cards). Prints no personal data; exit 0 only when authentic.

use std::path::PathBuf;

use super::exit::{sentence, Failure};
use super::json::{self, JsonFlag};
use super::trust_args::TrustArgs;
use crate::beid::Identity;
use crate::session::{assess, AuthenticityReport, Evidence};
use crate::sim::CardDump;

#[derive(Debug, clap::Args)]
pub struct VerifyDumpArgs {
    /// The dump folder.
    dir: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    pub(super) output: JsonFlag,
}

pub fn run(args: &VerifyDumpArgs) -> Result<(), Failure> {
    let store = args.trust.store()?;
    let dump = CardDump::load(&args.dir).map_err(|e| unreadable(sentence(&e)))?;
    let file = |fid: u16| dump.files.get(&fid).map(|f| f.as_slice());
    let identity_file = file(0x4031).unwrap_or_default();
    let identity = Identity::parse(identity_file)
        .map_err(|e| unreadable(format!("{}: {}", args.dir.display(), sentence(&e))))?;
    let evidence = Evidence {
        identity_file,
        signature_file: file(0x4032),
        rrn_certificate_file: file(0x503C),
        address_file: file(0x4033),
        address_signature_file: file(0x4034),
        photo: file(0x4035),
    };
    let (report, _) = assess(&store, &identity, &evidence, None);
    if args.output.json {
        json::print(&report)?;
    } else {
        print_text(&report);
    }
    if report.authentic {
        Ok(())
    } else {
        Err(Failure::NotAuthentic)
    }
}

/// A dump that cannot be judged at all (a folder that is not a dump, an identity file that
/// is no Belgian eID's, e.g. a foreign card's 13-character national number): no report,
/// exit 1 with the code `dump_unreadable`. The message never holds the file's values.
fn unreadable(message: String) -> Failure {
    Failure::Coded {
        code: "dump_unreadable",
        message,
    }
}

/// "yes", or "NO (why)": the verdict line of `read` and `verify-dump`.
pub(super) fn verdict(report: &AuthenticityReport) -> String {
    match (&report.problem, report.authentic) {
        (_, true) => "yes".into(),
        (Some(problem), false) => format!("NO ({problem})"),
        (None, false) => "NO".into(),
    }
}

fn print_text(report: &AuthenticityReport) {
    out!("Authentic:        {}", verdict(report));
    out!(
        "Identity:         signature {}{}",
        report.identity.signature,
        report
            .identity
            .algorithm
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    );
    out!(
        "RRN certificate:  {} — root {} ({})",
        report.rrn_certificate.subject.as_deref().unwrap_or("none"),
        report.rrn_certificate.root.as_deref().unwrap_or("unknown"),
        if report.rrn_certificate.trusted {
            "trusted"
        } else {
            "NOT trusted"
        }
    );
    out!("Address:          signature {}", report.address.signature);
    out!("Photo:            hash {}", report.photo.hash);
    if let Some(chip) = &report.chip {
        out!("Chip (anti-clone): {}", chip.result);
    }
}
