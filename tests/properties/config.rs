//! The configuration file: any text is either a configuration that every later step accepts,
//! or a list of problems, each naming the file, the line and the key it is about. Never a
//! panic.
//!
//! Relative paths resolve against `base_dir` (the fixtures folder, so that a path can name
//! a real file).
//!
//! Shared by `fuzz/fuzz_targets/config.rs` and `tests/fuzz_regressions.rs`.

use std::path::Path;

use beid_agent::config::{Config, ConfigError, ProblemKind};

pub fn check(data: &[u8], base_dir: &Path) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    match Config::parse(text, base_dir) {
        Ok(config) => {
            // Checked means usable: what `serve` does next must not fail on it.
            config
                .catalogue()
                .unwrap_or_else(|e| panic!("checked configuration, but the catalogue fails: {e}"));
            config
                .upstream
                .settings()
                .unwrap_or_else(|e| panic!("checked configuration, but the upstream fails: {e}"));
            config
                .trust_store()
                .unwrap_or_else(|e| panic!("checked configuration, but the roots fail: {e}"));
            config
                .api
                .clients()
                .unwrap_or_else(|e| panic!("checked configuration, but the clients fail: {e}"));
            assert!(config.api.listen.ip().is_loopback());
            let id = &config.device.id;
            assert!(
                !id.is_empty()
                    && id.len() <= 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
                "device id {id:?} accepted"
            );
            assert!((0.0..=1.0).contains(&config.upstream.simulated.failure_rate));
            assert!(!config.deviation_reasons().is_empty());
        }
        Err(ConfigError::Invalid { problems }) => {
            assert!(!problems.is_empty(), "invalid without a problem");
            for problem in &problems {
                assert_eq!(problem.file, base_dir.join("config.toml"), "{problem}");
                if let Some(line) = problem.line {
                    // A problem at the very end of the text may point one line past it.
                    assert!(
                        (1..=lines + 1).contains(&line),
                        "problem {problem} on line {line} of {lines}"
                    );
                }
                // Only the file as a whole has no key.
                assert!(
                    !problem.key.is_empty() || matches!(problem.kind, ProblemKind::Syntax(_)),
                    "{problem}"
                );
                assert!(!problem.problem().is_empty());
            }
            let lines_in_order = problems
                .windows(2)
                .all(|w| w[0].line.unwrap_or(0) <= w[1].line.unwrap_or(0));
            assert!(lines_in_order, "problems not in file order");
            // The same text, the same problems: nothing depends on the order of a map.
            match Config::parse(text, base_dir) {
                Err(ConfigError::Invalid { problems: again }) => assert_eq!(problems, again),
                other => panic!("parsed twice, judged otherwise: {other:?}"),
            }
        }
        Err(other) => panic!("parse gave {other}"),
    }
}
