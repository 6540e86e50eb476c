//! What can be wrong with a configuration, said so that a technician can fix it: the file and
//! line the value came from, its key, what is wrong, and a hint.

use std::fmt;
use std::path::PathBuf;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The main file cannot be read at all.
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration has problems; all of them are listed, in file and line order.
    #[error("the configuration has {} problem(s):{}", problems.len(), ProblemList(problems))]
    Invalid {
        /// The problems.
        problems: Vec<ConfigProblem>,
    },
    /// The checked settings could not be turned into a service.
    #[error(transparent)]
    Advice(#[from] crate::advice::AdviceError),
}

impl ConfigError {
    /// A stable machine name, for `config check --json`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Read { .. } => "config_unreadable",
            Self::Invalid { .. } => "config_invalid",
            Self::Advice(_) => "config_unusable",
        }
    }
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// The file the offending value came from (the main file or a drop-in).
    pub file: PathBuf,
    /// Its 1-based line; `None` for what has no line (a file that cannot be read, a section
    /// no file has).
    pub line: Option<usize>,
    /// The key's path, e.g. `api.clients[1].token_file`; empty for the file itself.
    pub key: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl ConfigProblem {
    /// What is wrong, as a sentence without its hint.
    pub fn problem(&self) -> String {
        self.kind.to_string()
    }

    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        self.kind.hint()
    }
}

/// `FILE:LINE: KEY: what is wrong (hint)`.
impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(hint) = self.kind.hint() {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// What is wrong with a key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A drop-in file or the drop-in folder cannot be read.
    Unreadable(String),
    /// The file is not valid TOML; nothing else of it was read.
    Syntax(String),
    /// The key is not known here.
    UnknownKey {
        /// A known key it may be a misspelling of.
        suggestion: Option<&'static str>,
    },
    /// A required key is absent.
    Missing {
        /// When it is required, e.g. `when kind = "http"`; always when `None`.
        when: Option<&'static str>,
    },
    /// The value has the wrong type.
    WrongType {
        /// What was written, e.g. `string "fast"`.
        found: String,
        /// What the key takes.
        expected: String,
    },
    /// The value is not one of the names the key takes.
    UnknownName {
        /// What was written.
        found: String,
        /// The names it takes.
        expected: &'static [&'static str],
    },
    /// The value cannot be used; the text says why, the hint what to do.
    Invalid {
        /// Why.
        why: String,
        /// What to do, when there is something to say.
        hint: Option<String>,
    },
    /// The referenced file does not exist.
    FileMissing(PathBuf),
    /// The referenced file cannot be read.
    FileUnreadable(PathBuf, String),
    /// A certificate or key file cannot be used.
    Credentials {
        /// The PEM reader's description.
        why: String,
        /// What to do.
        hint: &'static str,
    },
    /// A secret is written inline; it belongs in a file referenced by path.
    InlineSecret,
    /// The template's placeholder was left in place.
    Placeholder {
        /// What belongs there instead.
        what: &'static str,
    },
    /// The second client with this name.
    DuplicateName {
        /// The first client with it.
        first: String,
    },
    /// The second client reading this token file.
    SharedTokenFile {
        /// The first client reading it.
        first: String,
    },
    /// The second token file holding this token.
    SameToken {
        /// The client whose token file holds it first.
        first: String,
    },
    /// A client without any scope.
    NoScopes,
    /// A browser origin that is not https (Chromium blocks it from reaching loopback).
    InsecureOrigin {
        /// The agent's own loopback origin, the only http one allowed.
        own: String,
    },
    /// A use case the catalogue lacks.
    UnknownUseCase {
        /// The use case it is probably a misspelling of.
        suggestion: Option<String>,
        /// The use cases there are.
        known: Vec<String>,
    },
    /// A secret file others may read or change.
    SecretExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Who besides its owner has access.
        who: &'static str,
    },
    /// A secret file owned by neither root nor the user running the agent.
    SecretOwner {
        /// The file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The running user's uid.
        user: u32,
    },
    /// A token too easy to guess.
    WeakToken {
        /// Its estimated entropy.
        bits: u32,
    },
}

/// The command that makes a good token, in every hint about tokens.
const TOKEN_COMMAND: &str = "openssl rand -hex 32";

impl ProblemKind {
    /// A bad value, with no more to say than why.
    pub fn invalid(why: impl Into<String>) -> Self {
        Self::Invalid {
            why: why.into(),
            hint: None,
        }
    }

    /// A bad value, and what to do about it.
    pub fn invalid_with(why: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Invalid {
            why: why.into(),
            hint: Some(hint.into()),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::Unreadable(_) => "make it readable by the agent's user, or remove it".into(),
            Self::Syntax(_) => {
                "fix the TOML syntax first: nothing else of this file was read".into()
            }
            Self::UnknownKey {
                suggestion: Some(key),
            } => format!("did you mean `{key}`?"),
            Self::UnknownKey { suggestion: None } => {
                "remove it; docs/configuration.md lists every key".into()
            }
            Self::UnknownName { expected, .. } => format!("one of: {}", expected.join(", ")),
            Self::Invalid { hint, .. } => return hint.clone(),
            Self::FileMissing(_) => "install the file, or correct the path".into(),
            Self::FileUnreadable(..) => {
                "check the path and that the agent's user may read it".into()
            }
            Self::Credentials { hint, .. } => (*hint).into(),
            Self::InlineSecret => {
                "put the secret in a file readable by the agent only, and give its path".into()
            }
            Self::Placeholder { what } => format!("the shipped template's example: set {what}"),
            Self::DuplicateName { .. } => "give each client its own name".into(),
            Self::SharedTokenFile { .. } | Self::SameToken { .. } => {
                format!("give each client its own token: {TOKEN_COMMAND} > FILE")
            }
            Self::NoScopes => "give it the least it needs, e.g. scopes = [\"advice\"]".into(),
            Self::InsecureOrigin { .. } => {
                "serve the POS over https: Chromium keeps http pages from reaching the agent".into()
            }
            Self::UnknownUseCase {
                suggestion: Some(id),
                ..
            } => format!("did you mean `{id}`?"),
            Self::UnknownUseCase { known, .. } => format!("one of: {}", known.join(", ")),
            Self::SecretExposed { path, .. } | Self::SecretOwner { path, .. } => format!(
                "chown root:beid-agent {0} && chmod 0640 {0}",
                path.display()
            ),
            Self::WeakToken { .. } => format!("make one with `{TOKEN_COMMAND}`"),
            Self::Missing { .. } | Self::WrongType { .. } => return None,
        };
        Some(hint)
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(why) => write!(f, "cannot be read: {why}"),
            Self::Syntax(why) => write!(f, "not valid TOML: {why}"),
            Self::UnknownKey { .. } => f.write_str("unknown key"),
            Self::Missing { when: None } => f.write_str("is required"),
            Self::Missing { when: Some(when) } => write!(f, "is required {when}"),
            Self::WrongType { found, expected } => write!(f, "must be {expected}, not {found}"),
            Self::UnknownName { found, .. } => write!(f, "{found:?} is not a known value"),
            Self::Invalid { why, .. } => f.write_str(why),
            Self::FileMissing(path) => write!(f, "file {} does not exist", path.display()),
            Self::FileUnreadable(path, why) => {
                write!(f, "file {} cannot be read: {why}", path.display())
            }
            Self::Credentials { why, .. } => f.write_str(why),
            Self::InlineSecret => f.write_str("secrets must not be written inline"),
            Self::Placeholder { .. } => f.write_str("is still the template's placeholder"),
            Self::DuplicateName { first } => write!(f, "is also the name of {first}"),
            Self::SharedTokenFile { first } => {
                write!(f, "is also the token file of {first}: both would hold one token")
            }
            Self::SameToken { first } => {
                write!(f, "holds the same token as the token file of {first}")
            }
            Self::NoScopes => f.write_str("names no scope: the client could call nothing"),
            Self::InsecureOrigin { own } => write!(
                f,
                "is not https; only the agent's own pages ({own}) may be http"
            ),
            Self::UnknownUseCase { .. } => f.write_str("is not a use case of the catalogue"),
            Self::SecretExposed { path, mode, who } => write!(
                f,
                "secret file {} has mode {mode:04o}: {who} may use it",
                path.display()
            ),
            Self::SecretOwner { path, owner, user } => write!(
                f,
                "secret file {} is owned by uid {owner}, neither root nor the running user (uid {user})",
                path.display()
            ),
            Self::WeakToken { bits } => write!(
                f,
                "the token has about {bits} bits of entropy; at least 128 are needed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_reads_file_line_key_why_and_hint() {
        let problem = ConfigProblem {
            file: PathBuf::from("/etc/beid-agent/config.d/50-device.toml"),
            line: Some(7),
            key: "api.clients[1].token_file".into(),
            kind: ProblemKind::WeakToken { bits: 12 },
        };
        assert_eq!(
            problem.to_string(),
            "/etc/beid-agent/config.d/50-device.toml:7: api.clients[1].token_file: \
             the token has about 12 bits of entropy; at least 128 are needed \
             (make one with `openssl rand -hex 32`)"
        );
        let whole_file = ConfigProblem {
            file: PathBuf::from("a.toml"),
            line: None,
            key: String::new(),
            kind: ProblemKind::Missing { when: None },
        };
        assert_eq!(whole_file.to_string(), "a.toml: is required");
    }
}
