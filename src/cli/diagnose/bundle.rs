//! `diagnose --support-bundle FILE`: a `.tar.gz` a technician can mail to the city's support
//! without a second thought. What goes in:
//!
//! - `README.txt`: what is in it and what was left out;
//! - `diagnose.json` and `diagnose.txt`: the report (reader names, ATRs, applet versions,
//!   check results; never card contents);
//! - `versions.txt`: the agent, pcscd, the OS, the kernel, Chromium;
//! - `config.toml`: the configuration, with any inline secret and PEM block removed (secrets
//!   belong in files, which are never copied);
//! - `service.txt`: systemd's view of the unit, when systemd runs;
//! - `logs.txt`: the last lines of the agent's journal (or of `--log-file`), with anything
//!   shaped like a national number removed (any separators, full-width digits, hex) in case
//!   one ever got there;
//! - `pcscd.txt`: the last lines of pcscd's own journal, scrubbed the same way: where pcscd
//!   says it refused a client (a polkit refusal names the process and the user), which the
//!   agent only sees as "access refused".
//!
//! Never included: the audit log (its pseudonyms are personal data), the audit secret, the
//! RRN key cache, API tokens, the client key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::report::Report;

/// Lines of log taken.
const LOG_LINES: usize = 2000;

/// What the bundle is made from.
pub struct BundleInputs<'a> {
    pub report: &'a Report,
    pub config_path: &'a Path,
    /// A log file to take instead of the journal (an agent started by hand).
    pub log_file: Option<&'a Path>,
    pub pcscd_version: Option<&'a str>,
}

/// Writes the bundle to `path` (mode 0600, via a temporary file renamed into place); returns
/// the names of the files in it.
pub fn write(path: &Path, inputs: &BundleInputs<'_>) -> std::io::Result<Vec<String>> {
    let now = time::OffsetDateTime::now_utc();
    let folder = format!(
        "beid-agent-support-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let files = [
        ("README.txt", readme()),
        (
            "diagnose.json",
            serde_json::to_string_pretty(inputs.report).unwrap_or_default(),
        ),
        ("diagnose.txt", inputs.report.text()),
        ("versions.txt", versions(inputs.pcscd_version)),
        ("config.toml", config_without_secrets(inputs.config_path)),
        ("service.txt", service_state()),
        ("logs.txt", scrub(&logs(inputs.log_file))),
        ("pcscd.txt", scrub(&pcscd_journal())),
    ];
    let temporary = temporary_path(path);
    let result = write_archive(&temporary, &folder, &files, now.unix_timestamp())
        .and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result?;
    Ok(files.iter().map(|(name, _)| (*name).to_owned()).collect())
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn write_archive(
    path: &Path,
    folder: &str,
    files: &[(&str, String)],
    mtime: i64,
) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    let mut archive = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(u64::try_from(mtime).unwrap_or(0));
        header.set_cksum();
        archive.append_data(&mut header, format!("{folder}/{name}"), content.as_bytes())?;
    }
    let mut compressed = archive.into_inner()?;
    compressed.flush()?;
    let file = compressed.finish()?;
    file.sync_all()
}

fn readme() -> String {
    "beid-agent support bundle, written by `beid-agent diagnose --support-bundle`.\n\
     \n\
     diagnose.json / diagnose.txt  the checks and their results\n\
     versions.txt                  agent, pcscd, OS, kernel, Chromium\n\
     config.toml                   the configuration, inline secrets removed\n\
     service.txt                   systemd's view of beid-agent.service\n\
     logs.txt                      the agent's recent log, national numbers removed\n\
     pcscd.txt                     pcscd's recent journal (polkit refusals show here), scrubbed alike\n\
     \n\
     Left out on purpose: the audit log (pseudonyms of citizens), the audit secret, the RRN key\n\
     cache, API tokens and the client key. No card contents are ever read into this bundle.\n"
        .to_owned()
}

fn versions(pcscd: Option<&str>) -> String {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("PRETTY_NAME="))
                .map(|value| value.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |text| text.trim().to_owned());
    let chromium = first_line_of(Command::new("chromium").arg("--version"))
        .unwrap_or_else(|| "not installed".into());
    format!(
        "beid-agent {}\npcsc-lite {}\nos {os}\nkernel {kernel}\nchromium {chromium}\n",
        env!("CARGO_PKG_VERSION"),
        pcscd.unwrap_or("not found"),
    )
}

/// The configuration text, with inline secrets and PEM blocks replaced. The format keeps
/// secrets in files (never copied), so normally nothing is removed.
fn config_without_secrets(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => redact_config(&text),
        Err(error) => format!("# {} could not be read: {error}\n", path.display()),
    }
}

fn redact_config(text: &str) -> String {
    let mut out = String::new();
    let mut in_pem = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.contains("-----BEGIN") {
            in_pem = true;
        }
        if in_pem {
            if trimmed.contains("-----END") {
                in_pem = false;
                out.push_str("# <PEM block removed>\n");
            }
            continue;
        }
        match trimmed.split_once('=') {
            Some((key, _)) if is_secret_key(key.trim()) => {
                out.push_str(&format!("{} = \"<removed>\"\n", key.trim()));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `password`, `api_token`, `secret`… but not `token_file`: paths are not secrets.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_file")
        && ["secret", "password", "passwd", "token", "private"]
            .iter()
            .any(|word| key.contains(word))
}

fn service_state() -> String {
    first_lines_of(
        Command::new("systemctl").args([
            "show",
            "beid-agent.service",
            "--property=LoadState,ActiveState,SubState,Result,NRestarts,ExecMainStatus,ActiveEnterTimestamp,WatchdogTimestamp",
        ]),
        50,
    )
    .unwrap_or_else(|| "systemctl not available\n".into())
}

fn logs(log_file: Option<&Path>) -> String {
    match log_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(LOG_LINES);
                let mut tail = format!("# last lines of {}\n", path.display());
                for line in &lines[start..] {
                    tail.push_str(line);
                    tail.push('\n');
                }
                tail
            }
            Err(error) => format!("# {} could not be read: {error}\n", path.display()),
        },
        None => journal(&["beid-agent.service"], LOG_LINES)
            .unwrap_or_else(|| "journal not available (pass --log-file FILE)\n".into()),
    }
}

/// Lines of pcscd's journal taken.
const PCSCD_LINES: usize = 500;

/// pcscd's recent journal: on pcsc-lite 2.x it logs each client polkit refused.
fn pcscd_journal() -> String {
    journal(&["pcscd.service", "pcscd.socket"], PCSCD_LINES)
        .unwrap_or_else(|| "journal not available (pcscd not run by systemd here)\n".into())
}

/// The last `lines` lines of these units' journal, when there is one.
fn journal(units: &[&str], lines: usize) -> Option<String> {
    let mut command = Command::new("journalctl");
    command.args(units.iter().map(|unit| format!("--unit={unit}")));
    command.args([
        "--no-pager",
        "--output=short-iso",
        &format!("--lines={lines}"),
    ]);
    first_lines_of(&mut command, lines + 10)
}

fn first_line_of(command: &mut Command) -> Option<String> {
    first_lines_of(command, 1).map(|text| text.trim().to_owned())
}

fn first_lines_of(command: &mut Command, lines: usize) -> Option<String> {
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut kept = String::new();
    for line in text.lines().take(lines) {
        kept.push_str(line);
        kept.push('\n');
    }
    Some(kept)
}

/// The log with everything shaped like a national number replaced, in every spelling
/// [`beid_core::text::redact_national_numbers`] knows: bare or with any separators
/// (`85.61.30-033.18`, `85 61 30 033 18`), in full-width or other digits, in hexadecimal
/// ASCII. Timestamps keep milliseconds at most first: `10:15:00.123456789` is a run of 15
/// digits, which would otherwise go whole; cut to `10:15:00.123` it cannot hold 11 digits.
pub fn scrub(text: &str) -> String {
    beid_core::text::redact_national_numbers(&to_milliseconds(text))
}

/// `HH:MM:SS.fffffffff` cut to `HH:MM:SS.fff` wherever it appears.
fn to_milliseconds(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        out.push(chars[index]);
        if chars[index] == '.' && is_clock(&chars[..index]) {
            let digits = chars[index + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            out.extend(&chars[index + 1..index + 1 + digits.min(3)]);
            index += 1 + digits;
            continue;
        }
        index += 1;
    }
    out
}

/// Whether `before` ends with a clock time `HH:MM:SS`.
fn is_clock(before: &[char]) -> bool {
    let Some(clock) = before.len().checked_sub(8).map(|start| &before[start..]) else {
        return false;
    };
    clock.iter().enumerate().all(|(i, c)| match i {
        2 | 5 => *c == ':',
        _ => c.is_ascii_digit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_numbers_are_scrubbed_in_every_spelling_and_the_rest_is_kept() {
        let spellings = [
            "85671599731",
            "85.67.15-997.31",
            "85 67 15 997 31",
            "８５６７１５９９７３１",
            "3835363731353939373331",
            "38:35:36:37:31:35:39:39:37:33:31",
        ];
        for spelling in spellings {
            let text = format!(
                "card {spelling} read at 2026-11-23T10:15:00.123456789Z from 127.0.0.1:8099 v1.9.9"
            );
            let scrubbed = scrub(&text);
            assert_eq!(
                scrubbed,
                "card [redacted] read at 2026-11-23T10:15:00.123Z from 127.0.0.1:8099 v1.9.9",
                "{spelling}"
            );
        }
    }

    #[test]
    fn a_clock_cannot_hide_a_national_number() {
        // Eleven digits written as a time with a long fraction lose their end.
        assert_eq!(scrub("at 85:67:15.99731 ok"), "at 85:67:15.997 ok");
        assert_eq!(scrub("at 10:15:00.5Z"), "at 10:15:00.5Z");
        assert_eq!(scrub("v1.2.3 and 12.5"), "v1.2.3 and 12.5");
    }

    #[test]
    fn inline_secrets_and_pem_blocks_leave_the_configuration() {
        let text = "[upstream]\nurl = \"https://rules.example/\"\nclient_key = \"/etc/beid-agent/client.key\"\napi_token = \"s3cr3t-value\"\nnote = \"\"\"\n-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----\n\"\"\"\n[[api.clients]]\ntoken_file = \"/etc/beid-agent/pos.token\"\n";
        let redacted = redact_config(text);
        assert!(!redacted.contains("s3cr3t-value"), "{redacted}");
        assert!(!redacted.contains("MIIabc"), "{redacted}");
        assert!(redacted.contains("api_token = \"<removed>\""), "{redacted}");
        assert!(redacted.contains("token_file = \"/etc/beid-agent/pos.token\""));
        assert!(redacted.contains("url = \"https://rules.example/\""));
    }
}
