//! Secret files (API tokens, the client key): who may read them, and whether a token is worth
//! its name.
//!
//! Permissions are judged the way OpenSSH judges a private key: nobody but the owner and its
//! group may read it, nobody but the owner may change it, and the owner is root or the user
//! running the agent. `root:beid-agent 0640` is the layout the package documents.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::entropy::{estimate_bits, MIN_TOKEN_BITS};
use super::problem::ProblemKind;

/// What is wrong with who may use the secret file at `path`, if anything. A file that cannot
/// be inspected is left to the check that reads it.
pub fn exposure(path: &Path) -> Option<ProblemKind> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o7777;
    let who = if mode & 0o007 != 0 {
        Some("every user")
    } else if mode & 0o020 != 0 {
        Some("its group (writing)")
    } else {
        None
    };
    if let Some(who) = who {
        return Some(ProblemKind::SecretExposed {
            path: path.to_owned(),
            mode,
            who,
        });
    }
    let user = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    (owner != 0 && owner != user).then(|| ProblemKind::SecretOwner {
        path: path.to_owned(),
        owner,
        user,
    })
}

/// The token in a token file: its one line, without the surrounding white space.
pub fn read_token(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

/// What is wrong with a token, if anything: it must be one line of visible ASCII (it travels
/// in an `Authorization` header) and hard to guess.
pub fn token_problem(token: &str) -> Option<ProblemKind> {
    if token.is_empty() {
        return Some(ProblemKind::invalid_with(
            "the token file is empty",
            "write a token into it: openssl rand -hex 32 > FILE",
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(ProblemKind::invalid_with(
            "the token must be one line of visible ASCII characters, without spaces",
            "make one with `openssl rand -hex 32`",
        ));
    }
    let bits = estimate_bits(token);
    // Truncation, not rounding: 127.6 bits are reported as 127, never as enough.
    (bits < MIN_TOKEN_BITS).then_some(ProblemKind::WeakToken { bits: bits as u32 })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn secret(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("token-{mode:o}"));
        std::fs::write(
            &path,
            "e028403aec62f4d02b998181aab3af30013283a575c40ddece06d1f5e1ffc96d\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn only_the_owner_and_its_group_may_read_and_only_the_owner_write() {
        let dir = tempfile::tempdir().unwrap();
        for fine in [0o600, 0o640, 0o400, 0o440] {
            assert_eq!(exposure(&secret(dir.path(), fine)), None, "{fine:o}");
        }
        for (open, who) in [
            (0o644, "every user"),
            (0o666, "every user"),
            (0o604, "every user"),
            (0o601, "every user"),
            (0o660, "its group (writing)"),
        ] {
            match exposure(&secret(dir.path(), open)) {
                Some(ProblemKind::SecretExposed {
                    mode, who: found, ..
                }) => {
                    assert_eq!((mode, found), (open, who));
                }
                other => panic!("{open:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn tokens_are_one_line_of_visible_ascii_and_strong() {
        assert_eq!(
            token_problem("e028403aec62f4d02b998181aab3af30013283a575c40ddece06d1f5e1ffc96d"),
            None
        );
        assert!(matches!(
            token_problem(&"a".repeat(32)),
            Some(ProblemKind::WeakToken { bits }) if bits < 20
        ));
        assert!(matches!(
            token_problem(""),
            Some(ProblemKind::Invalid { .. })
        ));
        assert!(matches!(
            token_problem("e028403aec62f4d02b998181aab3af30 013283a575c40ddece06d1f5e1ffc96d"),
            Some(ProblemKind::Invalid { .. })
        ));
    }
}
