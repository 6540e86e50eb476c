//! Trust flags shared by the commands that judge card data.

use std::path::PathBuf;

use super::exit::{sentence, Failure};
use crate::trust::TrustStore;

#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// Also trust the TEST roots of the specimen and generated test cards (never in production).
    #[arg(long)]
    pub trust_test_roots: bool,
    /// Also trust this root certificate (DER or PEM); repeatable.
    #[arg(long = "root", value_name = "FILE")]
    pub roots: Vec<PathBuf>,
}

impl TrustArgs {
    /// The production Belgian roots plus what was asked for explicitly.
    pub fn store(&self) -> Result<TrustStore, Failure> {
        self.apply(TrustStore::production())
    }

    /// `store` plus what was asked for explicitly.
    pub fn apply(&self, mut store: TrustStore) -> Result<TrustStore, Failure> {
        if self.trust_test_roots {
            store = store
                .with_test_roots()
                .map_err(|e| Failure::Other(sentence(&e)))?;
        }
        for path in &self.roots {
            store = store
                .with_extra_root_file(path)
                .map_err(|e| Failure::Other(sentence(&e)))?;
        }
        Ok(store)
    }
}
