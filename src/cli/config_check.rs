//! `beid-agent config check FILE`: every problem of a configuration file, each with its key,
//! line and reason; exit 0 only when there is none.

use std::path::PathBuf;

use super::exit::Failure;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and print each problem (key, line, why).
    Check {
        /// The file (default /etc/beid-agent/config.toml).
        file: Option<PathBuf>,
    },
}

pub fn run(command: &ConfigCommand) -> Result<(), Failure> {
    let ConfigCommand::Check { file } = command;
    let path = file
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::settings::DEFAULT_CONFIG));
    let problems = Config::check(&path);
    if problems.is_empty() {
        out!("{}: ok", path.display());
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{}: {problem}", path.display());
    }
    Err(Failure::ChecksFailed)
}
