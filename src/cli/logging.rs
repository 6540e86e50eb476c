//! Where the agent's log goes and in what shape, decided once at start from the process's
//! surroundings:
//!
//! - under systemd, when stderr *is* the journal (`$JOURNAL_STREAM` names stderr's device
//!   and inode, as `sd_journal_stream_fd(3)` documents), the journal's native protocol: one
//!   entry per event with its `PRIORITY` and every tracing field as a journal field of the
//!   same name in capitals (`session` → `SESSION`, `use_case` → `USE_CASE`,
//!   `audit_seq` → `AUDIT_SEQ`), so `journalctl SESSION=…` or `-p err` select entries;
//! - otherwise text on stderr, coloured only when stderr is a terminal and `NO_COLOR` is
//!   unset (<https://no-color.org>) and `TERM` is not `dumb`: a file, a pipe or the journal
//!   never gets an escape code;
//! - or JSON lines on stderr, when asked for.
//!
//! What this module may not do: decide what is logged. Events never carry a national
//! number (the layers that log make sure of it); a field name must not be one of the
//! journal's own (`MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, `CODE_FILE`, ...).

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The `SYSLOG_IDENTIFIER` of every journal entry (`journalctl -t beid-agent`), whatever
/// the binary is called.
const IDENTIFIER: &str = "beid-agent";

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal when stderr is connected to it, text otherwise.
    #[default]
    Auto,
    /// Text lines on stderr.
    Text,
    /// JSON lines on stderr.
    Json,
    /// The journal's native protocol, whatever stderr is.
    Journal,
}

/// Where the log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// systemd's journal, natively: priorities and structured fields.
    Journal,
    /// Text lines on stderr; escape codes only when `colour`.
    Text { colour: bool },
    /// JSON lines on stderr.
    Json,
}

/// The parts of the process's environment the decision depends on; read from the process
/// by [`Surroundings::of_process`], built by hand in tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Surroundings<'a> {
    /// `$JOURNAL_STREAM`: `DEVICE:INODE` of the stream systemd connected to stdout/stderr.
    pub journal_stream: Option<&'a OsStr>,
    /// stderr's (device, inode), when it can be read.
    pub stderr_identity: Option<(u64, u64)>,
    pub stderr_is_terminal: bool,
    /// `$NO_COLOR`: present and not empty means no colour.
    pub no_color: Option<&'a OsStr>,
    /// `$TERM`: `dumb` means no colour.
    pub term: Option<&'a OsStr>,
}

/// The environment variables a [`Surroundings`] borrows from.
#[derive(Debug, Default)]
pub struct ProcessEnvironment {
    journal_stream: Option<std::ffi::OsString>,
    no_color: Option<std::ffi::OsString>,
    term: Option<std::ffi::OsString>,
}

impl ProcessEnvironment {
    pub fn read() -> Self {
        Self {
            journal_stream: std::env::var_os("JOURNAL_STREAM"),
            no_color: std::env::var_os("NO_COLOR"),
            term: std::env::var_os("TERM"),
        }
    }
}

impl<'a> Surroundings<'a> {
    /// This process's surroundings.
    pub fn of_process(environment: &'a ProcessEnvironment) -> Self {
        let stderr = std::io::stderr();
        Self {
            journal_stream: environment.journal_stream.as_deref(),
            stderr_identity: stderr_identity(),
            stderr_is_terminal: stderr.is_terminal(),
            no_color: environment.no_color.as_deref(),
            term: environment.term.as_deref(),
        }
    }
}

/// fstat(2) of fd 2 without unsafe code: a duplicate of it, read as a file.
fn stderr_identity() -> Option<(u64, u64)> {
    let duplicate = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(duplicate).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

/// Whether stderr is the journal stream systemd set up: `$JOURNAL_STREAM` is inherited by
/// children whose stderr may have been redirected since (`beid-agent read 2>file` from a
/// unit's shell), so only a matching device and inode count.
pub fn stderr_is_the_journal(journal_stream: Option<&OsStr>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(stream), Some(stderr)) = (journal_stream.and_then(OsStr::to_str), stderr) else {
        return false;
    };
    let Some((device, inode)) = stream.split_once(':') else {
        return false;
    };
    matches!(
        (device.parse::<u64>(), inode.parse::<u64>()),
        (Ok(device), Ok(inode)) if (device, inode) == stderr
    )
}

/// Whether text on stderr may carry colour escape codes.
pub fn colour(surroundings: &Surroundings<'_>) -> bool {
    let no_color = surroundings.no_color.is_some_and(|value| !value.is_empty());
    let dumb = surroundings.term.is_some_and(|term| term == "dumb");
    surroundings.stderr_is_terminal && !no_color && !dumb
}

/// Where the log goes for this `--log-format` in these surroundings.
pub fn output(format: LogFormat, surroundings: &Surroundings<'_>) -> Output {
    let text = Output::Text {
        colour: colour(surroundings),
    };
    match format {
        LogFormat::Text => text,
        LogFormat::Json => Output::Json,
        LogFormat::Journal => Output::Journal,
        LogFormat::Auto => {
            if stderr_is_the_journal(surroundings.journal_stream, surroundings.stderr_identity) {
                Output::Journal
            } else {
                text
            }
        }
    }
}

/// The filter when `RUST_LOG` is unset. The journal gets the `info` lines (one per card
/// session, one per advice: what a technician reads with `journalctl -u beid-agent`); a
/// command on a terminal only warnings, so its own output stays readable.
pub fn default_filter(verbose: u8, output: Output) -> &'static str {
    match (verbose, output) {
        (0, Output::Journal) => "info",
        (0, _) => "warn",
        (1, _) => "beid_agent=debug,info",
        _ => "beid_agent=trace,debug",
    }
}

/// Journal priorities as syslog means them: `info` (6) for the normal lines, `debug` (7)
/// for both debug and trace, so `journalctl -p info` never shows debugging output.
fn priorities() -> PriorityMappings {
    PriorityMappings {
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
        ..PriorityMappings::new()
    }
}

/// Installs the process's subscriber. Falls back to plain text (no colour) on stderr when
/// the journal's socket cannot be reached, and says so.
pub fn init(verbose: u8, format: LogFormat) {
    let environment = ProcessEnvironment::read();
    let surroundings = Surroundings::of_process(&environment);
    let output = output(format, &surroundings);
    let filter = || {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(default_filter(verbose, output)));
        // The audit chain's anchors reach the journal whatever the verbosity: they are the
        // witness `audit verify --anchors` reads.
        match crate::audit::ANCHOR_DIRECTIVE.parse() {
            Ok(anchors) => filter.add_directive(anchors),
            Err(_) => filter,
        }
    };
    let text = |colour: bool| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
    };
    let registry = tracing_subscriber::registry().with(filter());
    let _ = match output {
        Output::Text { colour } => registry.with(text(colour)).try_init(),
        Output::Json => registry.with(text(false).json()).try_init(),
        Output::Journal => match tracing_journald::layer() {
            Ok(journal) => registry
                .with(
                    journal
                        .with_field_prefix(None)
                        .with_syslog_identifier(IDENTIFIER.to_owned())
                        .with_priority_mappings(priorities()),
                )
                .try_init(),
            Err(error) => {
                let installed = registry.with(text(false)).try_init();
                tracing::warn!(%error, "the journal's socket is unreachable; logging text to stderr");
                installed
            }
        },
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDERR: (u64, u64) = (64_769, 1_234_567);

    fn os(text: &str) -> &OsStr {
        OsStr::new(text)
    }

    #[test]
    fn stderr_is_the_journal_only_when_journal_stream_names_its_device_and_inode() {
        assert!(stderr_is_the_journal(
            Some(os("64769:1234567")),
            Some(STDERR)
        ));
        // Inherited by a child whose stderr went elsewhere.
        assert!(!stderr_is_the_journal(
            Some(os("64769:7654321")),
            Some(STDERR)
        ));
        assert!(!stderr_is_the_journal(Some(os("12:1234567")), Some(STDERR)));
        assert!(!stderr_is_the_journal(None, Some(STDERR)));
        assert!(!stderr_is_the_journal(Some(os("64769:1234567")), None));
        for malformed in [
            "",
            "64769",
            "64769:",
            ":1234567",
            "a:b",
            "64769:1234567:1",
            " 64769:1234567",
        ] {
            assert!(
                !stderr_is_the_journal(Some(os(malformed)), Some(STDERR)),
                "{malformed:?}"
            );
        }
    }

    fn terminal() -> Surroundings<'static> {
        Surroundings {
            stderr_is_terminal: true,
            ..Surroundings::default()
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_a_dumb_term() {
        assert!(colour(&terminal()));
        assert!(colour(&Surroundings {
            term: Some(os("xterm-256color")),
            ..terminal()
        }));
        assert!(!colour(&Surroundings::default()), "a file or a pipe");
        assert!(!colour(&Surroundings {
            no_color: Some(os("1")),
            ..terminal()
        }));
        assert!(
            colour(&Surroundings {
                no_color: Some(os("")),
                ..terminal()
            }),
            "NO_COLOR counts only when not empty"
        );
        assert!(!colour(&Surroundings {
            term: Some(os("dumb")),
            ..terminal()
        }));
    }

    #[test]
    fn auto_logs_to_the_journal_under_systemd_and_plain_text_elsewhere() {
        let under_systemd = Surroundings {
            journal_stream: Some(os("64769:1234567")),
            stderr_identity: Some(STDERR),
            ..Surroundings::default()
        };
        assert_eq!(output(LogFormat::Auto, &under_systemd), Output::Journal);
        let redirected = Surroundings {
            stderr_identity: Some((64_769, 42)),
            ..under_systemd
        };
        assert_eq!(
            output(LogFormat::Auto, &redirected),
            Output::Text { colour: false }
        );
        assert_eq!(
            output(LogFormat::Auto, &terminal()),
            Output::Text { colour: true }
        );
        // Asked for explicitly, a format is used whatever stderr is.
        assert_eq!(
            output(LogFormat::Text, &under_systemd),
            Output::Text { colour: false }
        );
        assert_eq!(output(LogFormat::Json, &terminal()), Output::Json);
        assert_eq!(output(LogFormat::Journal, &terminal()), Output::Journal);
    }

    #[test]
    fn the_journal_gets_info_lines_and_a_terminal_only_warnings_by_default() {
        assert_eq!(default_filter(0, Output::Journal), "info");
        assert_eq!(default_filter(0, Output::Text { colour: true }), "warn");
        assert_eq!(default_filter(0, Output::Json), "warn");
        assert_eq!(default_filter(1, Output::Journal), "beid_agent=debug,info");
        assert_eq!(
            default_filter(2, Output::Text { colour: false }),
            "beid_agent=trace,debug"
        );
    }

    #[test]
    fn journal_priorities_follow_syslog() {
        let mappings = priorities();
        assert_eq!(mappings.error, Priority::Error);
        assert_eq!(mappings.warn, Priority::Warning);
        assert_eq!(mappings.info, Priority::Informational);
        assert_eq!(mappings.debug, Priority::Debug);
        assert_eq!(mappings.trace, Priority::Debug);
    }
}
