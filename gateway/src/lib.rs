#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod api;
pub mod audit;
pub mod check;
pub mod config;
pub mod metrics;
pub mod rate;
pub mod server;
pub mod sources;
pub mod tls;

pub use api::{router, AppState};
pub use config::Config;
pub use server::{serve, serve_metrics, Gateway, GatewayError, Peer};
