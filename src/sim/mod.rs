//! sim: a simulated Belgian eID card for tests, demos and benchmarks.
//!
//! It loads a card from a dump folder (files named by file id, as in
//! `fixtures/cards/`) and answers APDUs as a real Belpic card does, strictly: what a
//! real card refuses, it refuses. It can inject faults (removal, silence, a reader's
//! mid-file end-of-file glitch, chosen status words) and model T=0 wire time. It is served
//! in-process ([`SimTransport`]) or to pcscd through vsmartcard's vpcd socket ([`vpcd`]).
//! It knows nothing of the rest of the agent.

mod card;
mod dump;
pub mod embedded;
mod faults;
pub mod pkcs15;
mod readers;
mod transport;
pub mod vpcd;
mod wire_time;

pub use card::{SimCard, SimOutcome, INTERNAL_AUTHENTICATE_LIMIT};
pub use dump::{CardDump, DumpError};
pub use faults::{parse_eof_glitch, FaultParseError, Faults, StatusFault};
pub use readers::{SimulatedReaders, SimulatorError};
pub use transport::SimTransport;
pub use wire_time::WireTime;
