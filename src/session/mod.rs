//! session: reader events → card read → verification → advice.
//!
//! No HTTP here. Card I/O runs on its own thread with its own PC/SC context (`docs/design.md`,
//! "Threads"), and every wait on a card is bounded: a card that stops answering must not
//! freeze the caller.

mod authenticity;
mod decide;
mod engine;
mod events;
mod ids;
mod kiosk;
mod outcome;
mod read;

pub use authenticity::{
    assess, AddressVerdict, AuthenticityReport, CardAuthentication, ChecksumVerdict, ChipVerdict,
    Evidence, PhotoVerdict, RrnKeySource, SignatureVerdict, Verifier,
};
pub use decide::{decide, refusal, CardPolicy, Question};
pub use engine::{
    reader_id, Decided, Engine, EngineError, EngineSettings, ReadResult, ReadState, ReaderState,
    ReaderView, Session, SimulationError, Snapshot,
};
pub use events::{EngineEvent, Published};
pub use kiosk::{KioskSettings, SpeechOutput};
pub use outcome::{CounterCatalogue, DeviationReason, OutcomeInput, Recorded, MAX_NOTE_CHARS};
pub use read::{on_card, read_and_verify, CardRead};
