//! `beid-agent config check [FILE] [--json]`: every problem of a configuration and of its
//! drop-ins, one per line (`FILE:LINE: KEY: what is wrong (hint)`), in one run; exit 0 only
//! when there is none. `serve` refuses to start on the same problems, and `diagnose` shows
//! them.

use std::path::PathBuf;

use serde_json::json;

use super::exit::{sentence, Failure};
use super::json::{self, JsonFlag};
use crate::config::{Config, ConfigProblem};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and its drop-ins (config.d/*.toml beside it): every
    /// problem, with the file and line its value came from, the key, and a hint.
    ///
    /// With --json: {"ok", "problems": [{"file", "line", "key", "problem", "hint"}]}, or
    /// {"error": {"code", "message"}} when the file cannot be read at all (exit 1).
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The file (default /etc/beid-agent/config.toml).
    file: Option<PathBuf>,
    #[command(flatten)]
    pub(super) output: JsonFlag,
}

impl ConfigCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        let Self::Check(args) = self;
        args.output.json
    }
}

pub fn run(command: &ConfigCommand) -> Result<(), Failure> {
    let ConfigCommand::Check(args) = command;
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::settings::DEFAULT_CONFIG));
    let checked = Config::check(&path).map_err(|error| Failure::Coded {
        code: error.code(),
        message: sentence(&error),
    })?;
    if args.output.json {
        json::print(&report_json(&checked.problems))?;
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
