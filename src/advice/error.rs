//! The advice layer's one error type. It is only ever returned while *building* a service
//! (reading certificates, keys, fixtures, use cases); asking for advice never fails, it answers
//! [`Decision::Unknown`](super::Decision::Unknown) with a reason instead.
//!
//! No variant carries a national number: fixture errors name the entry's position, not its key.

use std::path::PathBuf;

/// Why an advice service could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdviceError {
    /// A file could not be read.
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Read {
        /// What the file is for, e.g. "client certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The client certificate, its key or the CA bundle cannot be used.
    #[error(transparent)]
    Credentials(#[from] crate::pem::PemError),
    /// The TLS configuration could not be built.
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// The CA bundle cannot serve as the roots of the upstream's certificate.
    #[error("cannot verify the upstream with the CA bundle: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The upstream URL is not usable.
    #[error("the upstream URL {url:?} {why}")]
    Url {
        /// The URL as configured (never carries secrets: URLs with user info are refused).
        url: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A TOML fixture could not be parsed.
    #[error("the fixture is not valid TOML: {0}")]
    FixtureToml(#[source] toml::de::Error),
    /// A JSON fixture could not be parsed.
    #[error("the fixture is not valid JSON: {0}")]
    FixtureJson(#[source] serde_json::Error),
    /// A fixture entry is not usable.
    #[error("fixture entry {index} (counting from 0 in key order): {why}")]
    FixtureEntry {
        /// The entry's position, not its key (keys are national numbers).
        index: usize,
        /// Why.
        why: &'static str,
    },
    /// A fixture value is not a decision nor a reason code.
    #[error("fixture value {value:?} is neither eligible, not_eligible nor a reason code")]
    FixtureValue {
        /// The value.
        value: String,
    },
    /// The catalogue has no use case.
    #[error("use_cases must hold at least one use case")]
    EmptyCatalogue,
    /// A use case is not usable.
    #[error("use_cases[{index}].{field} {why}")]
    UseCase {
        /// The use case's position in the configuration.
        index: usize,
        /// The field.
        field: &'static str,
        /// Why.
        why: &'static str,
    },
}
