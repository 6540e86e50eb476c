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
