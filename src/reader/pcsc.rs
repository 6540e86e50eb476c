//! The PC/SC backend: readers and cards through pcscd (the only module naming `pcsc::`).
//!
//! libpcsclite trap (`docs/design.md`, "Threads"): while one thread waits in
//! `get_status_change` on a context, any other call on that context blocks. So a
//! [`PcscContext`] owns its own context; the watcher ([`super::watcher`]) owns another.

use std::ffi::CString;
use std::time::Duration;

use std::sync::mpsc::Sender;

use super::watcher::{ReaderEvent, Watcher};
use super::{CardBackend, CardConnection, CardTransport, ReaderError};

/// How long to wait, after a failed exchange, for pcscd to notice a removal (it polls
/// vpcd every 400 ms; CCID readers interrupt at once).
const REMOVAL_NOTICE: Duration = Duration::from_millis(1200);

/// The state of one reader, as pcscd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderStatus {
    pub name: String,
    pub state: SlotState,
    pub atr: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    Empty,
    CardPresent,
    /// A card is present but another application holds it exclusively.
    CardInUseExclusively,
    /// A card is present but does not answer to reset.
    CardMute,
    Unavailable,
}

/// Maps a PC/SC error to what it means for the agent.
pub(crate) fn map_error(error: pcsc::Error) -> ReaderError {
    use pcsc::Error as E;
    match error {
        E::NoService | E::ServiceStopped | E::CommError | E::InvalidHandle | E::Shutdown => {
            ReaderError::NoService(Some(error))
        }
        E::NoAccess | E::SecurityViolation => ReaderError::AccessDenied(error),
        E::NoReadersAvailable => ReaderError::NoReaders,
        E::UnknownReader | E::ReaderUnavailable => ReaderError::ReaderGone(Some(error)),
        E::NoSmartcard => ReaderError::NoCard,
        E::RemovedCard => ReaderError::CardRemoved(Some(error)),
        E::ResetCard => ReaderError::CardReset(Some(error)),
        E::UnpoweredCard | E::UnresponsiveCard | E::UnsupportedCard | E::InvalidAtr => {
            ReaderError::CardMute(Some(error))
        }
        E::SharingViolation => ReaderError::ReaderBusy(error),
        E::InsufficientBuffer => ReaderError::ResponseTooLong,
        other => ReaderError::Pcsc(other),
    }
}

/// A PC/SC context for one thread's card work (not a card session: those are the
/// engine's).
pub struct PcscContext {
    context: pcsc::Context,
}

impl PcscContext {
    pub fn establish() -> Result<Self, ReaderError> {
        let context = pcsc::Context::establish(pcsc::Scope::User).map_err(map_error)?;
        Ok(Self { context })
    }

    /// Reader names; an empty list when none is connected.
    pub fn readers(&self) -> Result<Vec<String>, ReaderError> {
        match self.context.list_readers_owned() {
            Ok(names) => Ok(names
                .into_iter()
                .map(|name| name.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(error) => Err(map_error(error)),
        }
    }

    /// The current state of every reader, without waiting.
    pub fn statuses(&self) -> Result<Vec<ReaderStatus>, ReaderError> {
        let names = self.readers()?;
        self.statuses_of(&names, Duration::ZERO)
    }

    /// Waits up to `timeout` for a change on any of `names`, then reports their states.
    fn statuses_of(
        &self,
        names: &[String],
        timeout: Duration,
    ) -> Result<Vec<ReaderStatus>, ReaderError> {
        let mut states = reader_states(names, pcsc::State::UNAWARE)?;
        if states.is_empty() {
            return Ok(Vec::new());
        }
        match self.context.get_status_change(timeout, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(error) => return Err(map_error(error)),
        }
        Ok(states.iter().map(status_of).collect())
    }

    /// Waits until one of the readers (or the named one) holds a card, at most `timeout`.
    pub fn wait_for_card(
        &self,
        reader: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<ReaderStatus>, ReaderError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let names: Vec<String> = match reader {
                Some(name) => vec![name.to_owned()],
                None => self.readers()?,
            };
            let mut states = reader_states(&names, pcsc::State::UNAWARE)?;
            states.push(pcsc::ReaderState::new(
                pcsc::PNP_NOTIFICATION(),
                pcsc::State::UNAWARE,
            ));
            // First call learns the current states at once.
            self.context
                .get_status_change(Duration::ZERO, &mut states)
                .or_else(ignore_timeout)
                .map_err(map_error)?;
            loop {
                let statuses: Vec<ReaderStatus> =
                    states[..names.len()].iter().map(status_of).collect();
                if statuses
                    .iter()
                    .any(|s| s.state != SlotState::Empty && s.state != SlotState::Unavailable)
                {
                    return Ok(statuses);
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(statuses);
                }
                for state in &mut states {
                    state.sync_current_state();
                }
                match self.context.get_status_change(left, &mut states) {
                    Ok(()) => {}
                    Err(pcsc::Error::Timeout) => continue,
                    Err(error) => return Err(map_error(error)),
                }
                let pnp_changed = states
                    .last()
                    .is_some_and(|s| s.event_state().contains(pcsc::State::CHANGED));
                if pnp_changed && reader.is_none() {
                    break; // the reader list changed: list again
                }
            }
        }
    }

    /// Waits until `reader` holds a card (`want_card`) or is empty, at most `timeout`;
    /// returns its last status either way. Event-driven: no polling.
    pub fn wait_for(
        &self,
        reader: &str,
        want_card: bool,
        timeout: Duration,
    ) -> Result<ReaderStatus, ReaderError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut states = reader_states(&[reader.to_owned()], pcsc::State::UNAWARE)?;
        let mut wait = Duration::ZERO;
        loop {
            match self.context.get_status_change(wait, &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(pcsc::Error::UnknownReader) => {
                    return Err(ReaderError::UnknownReader(reader.to_owned()))
                }
                Err(error) => return Err(map_error(error)),
            }
            let status = states
                .first()
                .map(status_of)
                .ok_or(ReaderError::NoReaders)?;
            let has_card = !matches!(status.state, SlotState::Empty | SlotState::Unavailable);
            wait = deadline.saturating_duration_since(std::time::Instant::now());
            if has_card == want_card || wait.is_zero() {
                return Ok(status);
            }
            for state in &mut states {
                state.sync_current_state();
            }
        }
    }

    /// Connects to the card in `reader`: shared, T=0 (the Belpic card speaks T=0 only).
    pub fn connect(&self, reader: &str) -> Result<PcscCard, ReaderError> {
        let name = CString::new(reader).map_err(|_| ReaderError::UnknownReader(reader.into()))?;
        let card = match self
            .context
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T0)
        {
            Err(pcsc::Error::ProtoMismatch) => {
                self.context
                    .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            }
            other => other,
        }
        .map_err(|error| match error {
            pcsc::Error::UnknownReader => ReaderError::UnknownReader(reader.into()),
            other => map_error(other),
        })?;
        let atr = card.status2_owned().map_err(map_error)?.atr().to_vec();
        let insertion = event_count(&self.context, &name).unwrap_or(0);
        Ok(PcscCard {
            card,
            atr,
            reader: name,
            context: self.context.clone(),
            insertion,
        })
    }
}

fn ignore_timeout(error: pcsc::Error) -> Result<(), pcsc::Error> {
    match error {
        pcsc::Error::Timeout => Ok(()),
        other => Err(other),
    }
}

fn reader_states(
    names: &[String],
    state: pcsc::State,
) -> Result<Vec<pcsc::ReaderState>, ReaderError> {
    names
        .iter()
        .map(|name| {
            CString::new(name.as_str())
                .map(|c| pcsc::ReaderState::new(c, state))
                .map_err(|_| ReaderError::UnknownReader(name.clone()))
        })
        .collect()
}

pub(crate) fn slot_state(state: pcsc::State) -> SlotState {
    use pcsc::State as S;
    if state.intersects(S::UNAVAILABLE | S::UNKNOWN | S::IGNORE) {
        SlotState::Unavailable
    } else if state.contains(S::PRESENT) && state.contains(S::MUTE) {
        SlotState::CardMute
    } else if state.contains(S::PRESENT) && state.contains(S::EXCLUSIVE) {
        SlotState::CardInUseExclusively
    } else if state.contains(S::PRESENT) {
        SlotState::CardPresent
    } else {
        SlotState::Empty
    }
}

fn status_of(state: &pcsc::ReaderState) -> ReaderStatus {
    ReaderStatus {
        name: state.name().to_string_lossy().into_owned(),
        state: slot_state(state.event_state()),
        atr: state.atr().to_vec(),
    }
}

/// A connected card. Dropping a `pcsc::Card` resets it; [`PcscCard::disconnect`] leaves
/// it as it is, so call it when done.
pub struct PcscCard {
    card: pcsc::Card,
    atr: Vec<u8>,
    reader: CString,
    context: pcsc::Context,
    /// pcscd's event counter for the reader when we connected: it changes with every
    /// insertion and removal, so a card swapped faster than pcscd polls is still noticed.
    insertion: u32,
}

/// The reader's event counter now, if pcscd answers.
fn event_count(context: &pcsc::Context, reader: &CString) -> Option<u32> {
    let mut states = vec![pcsc::ReaderState::new(reader.clone(), pcsc::State::UNAWARE)];
    context
        .get_status_change(Duration::ZERO, &mut states)
        .or_else(ignore_timeout)
        .ok()?;
    states.first().map(pcsc::ReaderState::event_count)
}

impl PcscCard {
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Runs `work` inside one PC/SC transaction, so no other application interleaves its
    /// APDUs with ours. A transaction refused because the card was reset is retried once
    /// after reconnecting.
    pub fn with_transaction<R>(
        &mut self,
        work: impl FnOnce(&mut dyn CardTransport) -> R,
    ) -> Result<R, ReaderError> {
        let Self {
            card,
            atr,
            reader,
            context,
            insertion,
        } = self;
        let transaction = match card.transaction2() {
            Ok(transaction) => transaction,
            Err((card, pcsc::Error::ResetCard)) => {
                reconnect(card)?;
                card.transaction().map_err(map_error)?
            }
            Err((_, error)) => return Err(map_error(error)),
        };
        let mut transport = TransactionTransport {
            transaction,
            atr,
            reader,
            context,
            insertion: *insertion,
            buffer: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        };
        let result = work(&mut transport);
        if let Err((_, error)) = transport.transaction.end(pcsc::Disposition::LeaveCard) {
            tracing::debug!(?error, "ending the PC/SC transaction failed");
        }
        Ok(result)
    }

    /// Disconnects and leaves the card powered and as it is.
    pub fn disconnect(self) {
        if let Err((_, error)) = self.card.disconnect(pcsc::Disposition::LeaveCard) {
            tracing::debug!(?error, "disconnecting from the card failed");
        }
    }
}

impl CardConnection for PcscCard {
    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn CardTransport),
    ) -> Result<(), ReaderError> {
        self.with_transaction(work)
    }

    fn disconnect(self: Box<Self>) {
        PcscCard::disconnect(*self);
    }
}

/// Real readers through pcscd: the watcher thread owns one context, and each connection
/// its own (`docs/design.md`, "Threads").
#[derive(Default)]
pub struct PcscBackend {
    watcher: std::sync::Mutex<Option<Watcher>>,
}

impl CardBackend for PcscBackend {
    fn watch(&self, events: Sender<ReaderEvent>) -> std::io::Result<()> {
        let watcher = Watcher::spawn(events)?;
        let mut slot = self
            .watcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(watcher);
        Ok(())
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardConnection>, ReaderError> {
        Ok(Box::new(PcscContext::establish()?.connect(reader)?))
    }
}

fn reconnect(card: &mut pcsc::Card) -> Result<(), ReaderError> {
    card.reconnect(
        pcsc::ShareMode::Shared,
        pcsc::Protocols::T0,
        pcsc::Disposition::LeaveCard,
    )
    .map_err(map_error)
}

struct TransactionTransport<'a> {
    transaction: pcsc::Transaction<'a>,
    atr: &'a [u8],
    reader: &'a CString,
    context: &'a pcsc::Context,
    insertion: u32,
    buffer: Vec<u8>,
}

impl TransactionTransport<'_> {
    /// Whether the card we connected to has left: a failed or empty exchange may mean it
    /// was pulled out, and pcscd may need a poll cycle (vpcd: 400 ms) to notice. Waits,
    /// bounded, for the reader's event counter to move away from the one at connect time.
    fn card_left(&self) -> bool {
        let mut states = vec![pcsc::ReaderState::new(
            self.reader.clone(),
            pcsc::State::UNAWARE,
        )];
        let moved = |states: &[pcsc::ReaderState]| {
            states.first().is_some_and(|s| {
                s.event_count() != self.insertion || s.event_state().contains(pcsc::State::EMPTY)
            })
        };
        if self
            .context
            .get_status_change(Duration::ZERO, &mut states)
            .or_else(ignore_timeout)
            .is_err()
        {
            return false;
        }
        if moved(&states) {
            return true;
        }
        for state in &mut states {
            state.sync_current_state();
        }
        let outcome = self.context.get_status_change(REMOVAL_NOTICE, &mut states);
        tracing::debug!(
            ?outcome,
            at_connect = self.insertion,
            now = states.first().map(|s| s.event_count()),
            state = ?states.first().map(|s| s.event_state()),
            "did the card leave?"
        );
        outcome.is_ok() && moved(&states)
    }
}

impl CardTransport for TransactionTransport<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let outcome = self
            .transaction
            .transmit(apdu, &mut self.buffer)
            .map(<[u8]>::to_vec);
        match outcome {
            // vpcd answers an exchange cut by a removal with success and no bytes.
            Ok(response) if response.len() < 2 && self.card_left() => {
                Err(ReaderError::CardRemoved(None))
            }
            Ok(response) => Ok(response),
            Err(error @ (pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard)) => {
                Err(ReaderError::CardRemoved(Some(error)))
            }
            Err(error) if self.card_left() => Err(ReaderError::CardRemoved(Some(error))),
            Err(error) => Err(map_error(error)),
        }
    }

    fn atr(&self) -> &[u8] {
        self.atr
    }

    fn reconnect(&mut self) -> Result<(), ReaderError> {
        self.transaction
            .reconnect(
                pcsc::ShareMode::Shared,
                pcsc::Protocols::T0,
                pcsc::Disposition::LeaveCard,
            )
            .map_err(map_error)
    }
}
