//! In-process simulated readers holding embedded fixture cards, inserted and removed on
//! request (`serve --simulate`, tests, benches). A [`CardBackend`] like pcscd's: the engine
//! drives them exactly as real readers (connection, transaction, deadline, removal).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{CardDump, SimCard, SimTransport};
use crate::reader::{CardBackend, CardConnection, CardTransport, ReaderError, ReaderEvent};

/// In-process readers holding embedded fixture cards, inserted and removed on request.
pub struct SimulatedReaders {
    slots: Mutex<Vec<Slot>>,
    events: Mutex<Option<Sender<ReaderEvent>>>,
    wire_time: bool,
}

struct Slot {
    name: String,
    card: Option<CardDump>,
    /// Bumped at every insertion and removal: a read of an older card fails as removed.
    generation: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatorError {
    #[error("no simulated reader named {0:?}")]
    UnknownReader(String),
    #[error("no fixture card named {0:?}")]
    UnknownCard(String),
    #[error("fixture card unusable: {0}")]
    Card(#[from] super::DumpError),
}

impl SimulatedReaders {
    pub fn new(readers: &[&str], wire_time: bool) -> Self {
        let slots = readers
            .iter()
            .map(|name| Slot {
                name: (*name).to_owned(),
                card: None,
                generation: Arc::new(AtomicU64::new(0)),
            })
            .collect();
        Self {
            slots: Mutex::new(slots),
            events: Mutex::new(None),
            wire_time,
        }
    }

    /// The fixture cards that can be inserted.
    pub fn cards(&self) -> Vec<&'static str> {
        super::embedded::EMBEDDED_CARDS
            .iter()
            .map(|(name, _)| *name)
            .collect()
    }

    /// Inserts a card (replacing one already there, which is removed first).
    pub fn insert(&self, reader: Option<&str>, card: &str) -> Result<(), SimulatorError> {
        let dump =
            CardDump::embedded(card).ok_or_else(|| SimulatorError::UnknownCard(card.into()))??;
        let atr = dump.atr.clone();
        let name = self.with_slot(reader, |slot| {
            let had_card = slot.card.is_some();
            slot.card = Some(dump);
            slot.generation.fetch_add(1, Ordering::SeqCst);
            (slot.name.clone(), had_card)
        })?;
        if name.1 {
            self.emit(ReaderEvent::CardRemoved {
                reader: name.0.clone(),
            });
        }
        self.emit(ReaderEvent::CardInserted {
            reader: name.0,
            atr,
        });
        Ok(())
    }

    pub fn remove(&self, reader: Option<&str>) -> Result<(), SimulatorError> {
        let (name, had_card) = self.with_slot(reader, |slot| {
            let had_card = slot.card.take().is_some();
            slot.generation.fetch_add(1, Ordering::SeqCst);
            (slot.name.clone(), had_card)
        })?;
        if had_card {
            self.emit(ReaderEvent::CardRemoved { reader: name });
        }
        Ok(())
    }

    /// The slots. A panic while one was held cannot leave them half-changed (every change
    /// is one assignment), so a poisoned lock is still good to use.
    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_slot<R>(
        &self,
        reader: Option<&str>,
        change: impl FnOnce(&mut Slot) -> R,
    ) -> Result<R, SimulatorError> {
        let mut slots = self.slots();
        let slot = match reader {
            Some(name) => slots.iter_mut().find(|s| s.name == name),
            None => slots.first_mut(),
        }
        .ok_or_else(|| SimulatorError::UnknownReader(reader.unwrap_or_default().into()))?;
        Ok(change(slot))
    }

    fn emit(&self, event: ReaderEvent) {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = events.as_ref() {
            let _ = sender.send(event);
        }
    }
}

/// A simulated card that fails as removed once its slot changed.
struct GuardedTransport {
    inner: SimTransport,
    generation: Arc<AtomicU64>,
    expected: u64,
}

impl CardTransport for GuardedTransport {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        if self.generation.load(Ordering::SeqCst) != self.expected {
            return Err(ReaderError::CardRemoved(None));
        }
        self.inner.transmit(apdu)
    }

    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
}

impl CardBackend for SimulatedReaders {
    fn watch(&self, events: Sender<ReaderEvent>) -> std::io::Result<()> {
        let _ = events.send(ReaderEvent::ServiceUp);
        for slot in self.slots().iter() {
            let _ = events.send(ReaderEvent::ReaderAdded {
                reader: slot.name.clone(),
            });
        }
        *self.events.lock().unwrap_or_else(PoisonError::into_inner) = Some(events);
        Ok(())
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardConnection>, ReaderError> {
        let (dump, generation) = {
            let slots = self.slots();
            let slot = slots
                .iter()
                .find(|s| s.name == reader)
                .ok_or_else(|| ReaderError::UnknownReader(reader.to_owned()))?;
            (
                slot.card.clone().ok_or(ReaderError::NoCard)?,
                slot.generation.clone(),
            )
        };
        let expected = generation.load(Ordering::SeqCst);
        // The embedded fixtures are checked when they are inserted: a card that cannot be
        // built here is a broken fixture, not a mute card.
        let card = SimCard::new(dump)
            .map_err(|_| ReaderError::Backend("the simulated card could not be built"))?
            .with_wire_time(self.wire_time);
        Ok(Box::new(GuardedTransport {
            inner: SimTransport::new(card),
            generation,
            expected,
        }))
    }
}

impl CardConnection for GuardedTransport {
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }

    fn transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn CardTransport),
    ) -> Result<(), ReaderError> {
        if self.generation.load(Ordering::SeqCst) != self.expected {
            return Err(ReaderError::CardRemoved(None));
        }
        work(self);
        Ok(())
    }

    fn disconnect(self: Box<Self>) {}
}
