//! cli: the `beid-agent` command line. It turns each layer's typed errors into one clear
//! line, a documented exit status (one table: [`Exit`]) and, under `--json`, one JSON
//! object on stdout.

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
mod demo_folder;
mod diagnose;
mod exit;
mod generate;
mod json;
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

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use exit::{Exit, Failure};

const ABOUT: &str = "Belgian eID reader agent for service counters and kiosks";

/// The command line as its users see it: what `--help`, the man pages and the shell
/// completions describe ([`command`]).
#[derive(Debug, Parser)]
#[command(name = "beid-agent", version, about = ABOUT)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// What [`run`] parses: the commands of [`Cli`], and the hidden `generate` that the
/// packaging runs (kept out of the man pages and completions it writes).
#[derive(Debug, Parser)]
#[command(name = "beid-agent", version, about = ABOUT)]
struct Invocation {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    #[command(flatten)]
    Public(Command),
    /// Write what the package ships beside the binary: man pages, completions.
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
}

#[derive(Debug, clap::Args)]
struct GlobalArgs {
    /// More log output on stderr (-v debug, -vv trace). Logs never hold personal data.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Where and how to log: auto is the journal (priorities, structured fields) when
    /// stderr is connected to it, text otherwise; colour only on a terminal, never with
    /// NO_COLOR set.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    log_format: logging::LogFormat,
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

impl Command {
    /// Whether the command was asked for `--json` (then a failure is a JSON object too).
    fn json(&self) -> bool {
        match self {
            Self::Read(args) => args.output.json,
            Self::Readers(args) => args.output.json,
            Self::Diagnose(args) => args.output.json,
            Self::Advice(args) => args.output.json,
            Self::VerifyDump(args) => args.output.json,
            Self::Audit(command) => command.json(),
            Self::Config(command) => command.json(),
            Self::Serve(_) | Self::SimulateCard(_) => false,
        }
    }

    fn run(&self) -> Result<(), Failure> {
        match self {
            Self::Read(args) => read::run(args),
            Self::Readers(args) => readers::run(args),
            Self::Diagnose(args) => diagnose::run(args),
            Self::Serve(args) => serve::run(args),
            Self::Advice(args) => advice::run(args),
            Self::Config(command) => config_check::run(command),
            Self::Audit(command) => audit_verify::run(command),
            Self::VerifyDump(args) => verify_dump::run(args),
            Self::SimulateCard(args) => simulate::run(args),
        }
    }
}

/// The exit statuses each command can end with, by its path: its `--help` and its man
/// page list them, with their meanings from [`Exit`]. Every command can end with 0, 1 and
/// 2; the others are listed here. Commands that only group others (`audit`, `config`)
/// have none of their own.
pub fn exits_of(path: &[&str]) -> Option<Vec<Exit>> {
    use Exit::*;
    /// What reading a card through pcscd can end with.
    const CARD: &[Exit] = &[
        NoService,
        NoReader,
        NoCard,
        NotBeid,
        NotActivated,
        CardRemoved,
        ReaderBusy,
        CardMute,
        SeveralCards,
    ];
    let own: &[&[Exit]] = match path {
        [] => return Some(Exit::ALL.to_vec()),
        ["read"] => &[CARD, &[NotAuthentic]],
        ["advice"] => &[CARD, &[NoDecision]],
        ["readers"] => &[&[NoService, NoReader]],
        ["diagnose"] | ["config", "check"] | ["audit", "verify"] => &[&[ChecksFailed]],
        ["verify-dump"] => &[&[NotAuthentic]],
        ["simulate-card"] => &[&[NoReader]],
        ["serve"] | ["audit", "seal-init"] => &[],
        _ => return None,
    };
    let every = [Success, Other, Usage];
    Some(every.into_iter().chain(own.concat()).collect())
}

/// `command` with an "Exit status" section at the end of its help and of every
/// subcommand's, from [`exits_of`].
fn with_exit_sections(command: clap::Command) -> clap::Command {
    fn walk(mut command: clap::Command, path: &mut Vec<String>) -> clap::Command {
        let names: Vec<String> = command
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        for name in names {
            path.push(name.clone());
            command = command.mut_subcommand(&name, |sub| walk(sub, path));
            path.pop();
        }
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        match exits_of(&path) {
            Some(exits) => command.after_help(Exit::help_section(&exits)),
            None => command,
        }
    }
    walk(command, &mut Vec::new())
}

/// Parses the arguments, runs the command, and maps failures to exit codes. Under
/// `--json` a failure the report did not tell is printed as `{"error": {"code",
/// "message"}}` on stdout (and as a line on stderr), so stdout holds exactly one object.
pub fn run() -> ExitCode {
    let invocation = match with_exit_sections(Invocation::command())
        .try_get_matches()
        .and_then(|matches| Invocation::from_arg_matches(&matches))
    {
        Ok(invocation) => invocation,
        Err(error) => return wrong_usage(&error),
    };
    logging::init(invocation.global.verbose, invocation.global.log_format);
    let (outcome, json) = match &invocation.command {
        Tool::Public(command) => (command.run(), command.json()),
        Tool::Generate(command) => (generate::run(command), false),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.already_reported() {
                eprintln!("error: {failure}");
                if json {
                    out!("{}", failure.to_json());
                }
            }
            failure.exit_code()
        }
    }
}

/// clap's own answer (help, version, or what is wrong with the command line, exit 2); a
/// command line that asked for `--json` also gets its usage error as the JSON object.
fn wrong_usage(error: &clap::Error) -> ExitCode {
    let _ = error.print();
    let asked_for_json = std::env::args_os()
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    if error.use_stderr() && asked_for_json {
        let rendered = error.render().to_string();
        let first_line = rendered.lines().next().unwrap_or_default();
        let failure = Failure::Usage(first_line.trim_start_matches("error: ").to_owned());
        out!("{}", failure.to_json());
        return failure.exit_code();
    }
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(Exit::Usage.status()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command that runs (has no subcommands of its own) with its path.
    fn leaves(command: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if command.get_subcommands().next().is_none() {
            out.push(path.clone());
        }
        for sub in command.get_subcommands() {
            path.push(sub.get_name().to_owned());
            leaves(sub, path, out);
            path.pop();
        }
    }

    #[test]
    fn every_command_lists_its_exit_statuses_in_its_help() {
        let mut paths = Vec::new();
        leaves(
            &Cli::command().disable_help_subcommand(true),
            &mut Vec::new(),
            &mut paths,
        );
        assert!(paths.len() >= 10, "{paths:?}");
        let mut with_sections = with_exit_sections(Cli::command());
        for path in paths {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let exits = exits_of(&path).unwrap_or_else(|| panic!("no exit statuses for {path:?}"));
            assert_eq!(
                exits[..3],
                [Exit::Success, Exit::Other, Exit::Usage],
                "{path:?}"
            );
            let mut command = &mut with_sections;
            for name in &path {
                command = command.find_subcommand_mut(name).unwrap();
            }
            let help = command.render_help().to_string();
            let section = help
                .split("Exit status:")
                .nth(1)
                .unwrap_or_else(|| panic!("{path:?}: {help}"));
            for exit in &exits {
                let line = format!(
                    "{:<3} {:<14} {}",
                    exit.status(),
                    exit.code(),
                    exit.meaning()
                );
                assert!(section.contains(line.trim_end()), "{path:?} lacks {line:?}");
            }
            assert_eq!(
                section.lines().filter(|l| !l.trim().is_empty()).count(),
                exits.len(),
                "{path:?}"
            );
        }
    }

    #[test]
    fn the_exit_table_is_in_order_with_one_code_each() {
        let statuses: Vec<u8> = Exit::ALL.iter().map(|e| e.status()).collect();
        assert_eq!(statuses, (0..=14).collect::<Vec<u8>>());
        let mut codes: Vec<&str> = Exit::ALL.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Exit::ALL.len());
    }

    #[test]
    fn a_failure_becomes_one_error_object() {
        let failure = Failure::Coded {
            code: "dump_unreadable",
            message: "x: identity file: the national number has 13 characters instead of 11".into(),
        };
        assert_eq!(failure.exit(), Exit::Other);
        assert_eq!(
            failure.to_json(),
            serde_json::json!({"error": {"code": "dump_unreadable", "message": failure.to_string()}})
        );
        assert_eq!(
            Failure::NoCard("none".into()).to_json()["error"]["code"],
            "no_card"
        );
        assert_eq!(Failure::Usage("bad".into()).exit().status(), 2);
    }
}
