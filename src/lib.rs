#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod advice;
pub mod api;
pub mod atomic_file;
pub use beid_core::audit;
pub mod beid;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod pem;
pub mod reader;
pub mod session;
pub mod sim;
pub mod trust;

// The engine's lifecycle tests drive it through the simulated readers; they live outside
// `session`, which never names the simulator (docs/design.md).
#[cfg(test)]
mod engine_lifecycle_tests;
