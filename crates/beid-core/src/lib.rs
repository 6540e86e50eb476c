//! beid-core: what the agent (`beid-agent`, on counters and kiosks) and the city's gateway
//! (`beid-gateway`, on city servers) share. No PC/SC, no HTTP, no async: the gateway must
//! not link the smart-card stack, and both must speak the same contract and audit format.
#![forbid(unsafe_code)]

pub mod audit;
pub mod contract;
pub mod national_number;
pub mod text;
