//! The fuzz targets' properties, one module per target. The suite runs them through
//! `tests/fuzz_regressions.rs`; each cargo-fuzz target includes its own file (`fuzz/`).

pub mod apdu;
pub mod api;
pub mod config;
pub mod dump;
pub mod tlv;
