//! cli: the `beid-agent` command line. The only layer that uses `anyhow`-style reporting;
//! it turns each layer's typed errors into one clear line and a documented exit code.

/// `println!` without its panic when stdout is closed (`beid-agent read | head -1`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod advice;
mod audit_seal_init;
mod audit_verify;
mod config_check;
mod diagnose;
mod exit;
mod logging;
mod read;
mod readers;
mod reload;
mod serve;
mod settings;
mod simulate;
mod systemd;
mod trust_args;
mod verify_dump;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "beid-agent",
    version,
    about = "Belgian eID reader agent for service counters and kiosks"
)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace). Logs never hold personal data.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Where and how to log: auto is the journal (priorities, structured fields) when
    /// stderr is connected to it, text otherwise; colour only on a terminal, never with
    /// NO_COLOR set.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the card in a reader and report what it is (national number masked).
    Read(read::ReadArgs),
    /// List the readers and their cards; optionally wait for a card to arrive or leave.
    Readers(readers::ReadersArgs),
    /// Check pcscd, the readers and the card in them; exit 0 only when all is well.
    Diagnose(diagnose::DiagnoseArgs),
    /// Run the agent: card sessions, the local API for POS clients, the kiosk page.
    Serve(serve::ServeArgs),
    /// Read the card, verify it and ask the rule service for an advice on a use case.
    Advice(advice::AdviceArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(audit_verify::AuditCommand),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// Verify a card dump folder offline: National Register signature, root, address, photo.
    VerifyDump(verify_dump::VerifyDumpArgs),
    /// Serve a simulated Belgian eID from a dump folder to pcscd through vpcd.
    SimulateCard(simulate::SimulateArgs),
}

/// Parses the arguments, runs the command, and maps failures to exit codes.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.log_format);
    let outcome = match cli.command {
        Command::Read(args) => read::run(&args),
        Command::Readers(args) => readers::run(&args),
        Command::Diagnose(args) => diagnose::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Advice(args) => advice::run(&args),
        Command::Config(command) => config_check::run(&command),
        Command::Audit(command) => audit_verify::run(&command),
        Command::VerifyDump(args) => verify_dump::run(&args),
        Command::SimulateCard(args) => simulate::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.already_reported() {
                eprintln!("error: {failure}");
            }
            failure.exit_code()
        }
    }
}
