//! What the agent's log looks like where it goes: no terminal escape code in a file, a
//! pipe or the journal; colour on a terminal unless `NO_COLOR` says otherwise; the journal
//! chosen only when `$JOURNAL_STREAM` names stderr itself. The booted-system test
//! (`debian13.rs`) checks the installed agent's journal.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{fixtures, AGENT};

const ESC: u8 = 0x1B;

/// A command that logs a few debug lines and ends by itself (`-vv`).
fn verbose_agent() -> Command {
    let mut command = Command::new(AGENT);
    command
        .args(["-vv", "verify-dump"])
        .arg(fixtures().join("cards/gen-1.8-ec"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .env("TERM", "xterm-256color");
    command
}

/// Runs `command` with its stderr going to a new file; returns what it wrote there.
fn stderr_to_file(mut command: Command, dir: &Path) -> Vec<u8> {
    let path = dir.join("stderr");
    command.stderr(std::fs::File::create(&path).unwrap());
    command.status().unwrap();
    std::fs::read(&path).unwrap()
}

fn assert_plain_log(log: &[u8], context: &str) {
    let text = String::from_utf8_lossy(log);
    assert!(text.contains("DEBUG"), "{context}: no log lines: {text}");
    assert!(!log.contains(&ESC), "{context}: an escape code in {text:?}");
}

#[test]
fn a_file_or_a_pipe_gets_no_escape_code() {
    let dir = tempfile::tempdir().unwrap();
    assert_plain_log(&stderr_to_file(verbose_agent(), dir.path()), "2>file");

    let piped = verbose_agent().stderr(Stdio::piped()).output().unwrap();
    assert_plain_log(&piped.stderr, "2>|pipe");

    // A child of a unit inherits $JOURNAL_STREAM while its stderr goes elsewhere: text.
    let mut inherited = verbose_agent();
    inherited.env("JOURNAL_STREAM", "8:12345");
    assert_plain_log(
        &stderr_to_file(inherited, dir.path()),
        "$JOURNAL_STREAM of another stream",
    );
}

/// `sh -c command` on a pseudo-terminal (util-linux `script`); what the terminal showed.
fn on_a_terminal(env: &[(&str, &str)]) -> Vec<u8> {
    let command = format!(
        "{AGENT} -vv verify-dump {} >/dev/null",
        fixtures().join("cards/gen-1.8-ec").display()
    );
    let mut script = Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .env("TERM", "xterm-256color");
    for (key, value) in env {
        script.env(key, value);
    }
    script.output().unwrap().stdout
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let coloured = on_a_terminal(&[]);
    assert!(
        String::from_utf8_lossy(&coloured).contains("DEBUG") && coloured.contains(&ESC),
        "a terminal gets colour: {:?}",
        String::from_utf8_lossy(&coloured)
    );
    assert_plain_log(&on_a_terminal(&[("NO_COLOR", "1")]), "NO_COLOR=1");
    assert_plain_log(&on_a_terminal(&[("TERM", "dumb")]), "TERM=dumb");
}

#[test]
fn journal_stream_naming_stderr_sends_the_log_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr");
    let file = std::fs::File::create(&path).unwrap();
    let identity = file.metadata().unwrap();
    let mut command = verbose_agent();
    command
        .env(
            "JOURNAL_STREAM",
            format!("{}:{}", identity.dev(), identity.ino()),
        )
        .stderr(file);
    assert!(command.status().is_ok());
    let log = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(!log.contains(&ESC), "{text:?}");
    if Path::new("/run/systemd/journal/socket").exists() {
        assert!(
            !text.contains("DEBUG"),
            "sent to the journal, not stderr: {text}"
        );
    } else {
        // No journald on this machine: text on stderr, and one line says why.
        assert!(
            text.contains("the journal's socket is unreachable") && text.contains("DEBUG"),
            "{text}"
        );
    }
}
