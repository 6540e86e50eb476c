//! `beid-agent config check [FILE] [--json]`: every problem of a configuration and of its
//! drop-ins, one per line (`FILE:LINE: KEY: what is wrong (hint)`), in one run; exit 0 only
//! when there is none. `serve` refuses to start on the same problems, and `diagnose` shows
//! them.

use std::path::PathBuf;

use serde_json::json;

use super::exit::{sentence, Failure};
use crate::config::{Config, ConfigError, ConfigProblem};

const EXIT_CODES: &str = "\
Exit codes:
  0   no problem
  1   the configuration file cannot be read at all
  2   wrong usage
  12  problems found (each is listed)";

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and its drop-ins (config.d/*.toml beside it): every
    /// problem, with the file and line its value came from, the key, and a hint.
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The file (default /etc/beid-agent/config.toml).
    file: Option<PathBuf>,
    /// Print one JSON object: {"ok", "problems": [{"file", "line", "key", "problem",
    /// "hint"}]}, or {"error": {"code", "message"}} when the file cannot be read.
    #[arg(long)]
    json: bool,
}

pub fn run(command: &ConfigCommand) -> Result<(), Failure> {
    let ConfigCommand::Check(args) = command;
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::settings::DEFAULT_CONFIG));
    let checked = match Config::check(&path) {
        Ok(checked) => checked,
        Err(error) => {
            if args.json {
                out!("{}", error_json(&error));
            }
            return Err(Failure::Other(sentence(&error)));
        }
    };
    if args.json {
        out!("{}", report_json(&checked.problems));
    } else if checked.problems.is_empty() {
        let drop_ins: Vec<String> = checked.files[1..]
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        match drop_ins.is_empty() {
            true => out!("{}: ok", path.display()),
            false => out!("{}: ok (with {})", path.display(), drop_ins.join(", ")),
        }
    } else {
        for problem in &checked.problems {
            out!("{problem}");
        }
        eprintln!("{}: {} problem(s)", path.display(), checked.problems.len());
    }
    match checked.problems.is_empty() {
        true => Ok(()),
        false => Err(Failure::ChecksFailed),
    }
}

fn report_json(problems: &[ConfigProblem]) -> serde_json::Value {
    let problems: Vec<serde_json::Value> = problems
        .iter()
        .map(|problem| {
            json!({
                "file": problem.file.display().to_string(),
                "line": problem.line,
                "key": problem.key,
                "problem": problem.problem(),
                "hint": problem.hint(),
            })
        })
        .collect();
    json!({"ok": problems.is_empty(), "problems": problems})
}

fn error_json(error: &ConfigError) -> serde_json::Value {
    json!({"error": {"code": error.code(), "message": sentence(error)}})
}
