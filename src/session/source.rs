//! Where cards come from: real readers through pcscd, or simulated readers in-process
//! (`serve --simulate`). The engine sees both the same way: reader events, and "run this
//! work on the card in that reader".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::card_io::{run_on_card, CardJob};
use super::read::CardRead;
use crate::beid::{BeidCard, CardError};
use crate::reader::watcher::{ReaderEvent, Watcher};
use crate::reader::{CardTransport, ReaderError};
use crate::sim::{CardDump, SimCard, SimTransport};

/// Work on one card, run on a blocking thread.
pub type CardWork =
    Box<dyn FnOnce(&mut BeidCard<&mut dyn CardTransport>) -> Result<CardRead, CardError> + Send>;

/// A supply of readers and cards.
pub trait CardSource: Send + Sync {
    /// Starts reporting reader events (readers, cards, pcscd) to `events`.
    fn start(&self, events: Sender<ReaderEvent>) -> std::io::Result<()>;

    /// Runs `work` on the card in `reader` as a Belgian eID, waiting at most `deadline`.
    /// Blocking: call it from a blocking thread.
    fn read(
        &self,
        reader: &str,
        deadline: Duration,
        work: CardWork,
    ) -> Result<CardJob<CardRead>, CardError>;

    /// The simulator's controls, when this source is simulated.
    fn simulator(&self) -> Option<&SimulatedReaders> {
        None
    }
}

/// Real readers through pcscd: the watcher thread owns one context, each read runs on its
/// own thread with its own context (DESIGN.md "Threads").
#[derive(Default)]
pub struct PcscReaders {
    watcher: Mutex<Option<Watcher>>,
}

impl CardSource for PcscReaders {
    fn start(&self, events: Sender<ReaderEvent>) -> std::io::Result<()> {
        let watcher = Watcher::spawn(events)?;
        if let Ok(mut slot) = self.watcher.lock() {
            *slot = Some(watcher);
        }
        Ok(())
    }

    fn read(
        &self,
        reader: &str,
        deadline: Duration,
        work: CardWork,
    ) -> Result<CardJob<CardRead>, CardError> {
        run_on_card(reader, deadline, work)
    }
}

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
    Card(#[from] crate::sim::DumpError),
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
        crate::sim::embedded::EMBEDDED_CARDS
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

    fn with_slot<R>(
        &self,
        reader: Option<&str>,
        change: impl FnOnce(&mut Slot) -> R,
    ) -> Result<R, SimulatorError> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| SimulatorError::UnknownReader(reader.unwrap_or_default().into()))?;
        let slot = match reader {
            Some(name) => slots.iter_mut().find(|s| s.name == name),
            None => slots.first_mut(),
        }
        .ok_or_else(|| SimulatorError::UnknownReader(reader.unwrap_or_default().into()))?;
        Ok(change(slot))
    }

    fn emit(&self, event: ReaderEvent) {
        if let Ok(events) = self.events.lock() {
            if let Some(sender) = events.as_ref() {
                let _ = sender.send(event);
            }
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

impl CardSource for SimulatedReaders {
    fn start(&self, events: Sender<ReaderEvent>) -> std::io::Result<()> {
        let _ = events.send(ReaderEvent::ServiceUp);
        if let Ok(slots) = self.slots.lock() {
            for slot in slots.iter() {
                let _ = events.send(ReaderEvent::ReaderAdded {
                    reader: slot.name.clone(),
                });
            }
        }
        if let Ok(mut slot) = self.events.lock() {
            *slot = Some(events);
        }
        Ok(())
    }

    fn read(
        &self,
        reader: &str,
        _deadline: Duration,
        work: CardWork,
    ) -> Result<CardJob<CardRead>, CardError> {
        let started = Instant::now();
        let (dump, generation, expected) = self
            .slots
            .lock()
            .ok()
            .and_then(|slots| {
                let slot = slots.iter().find(|s| s.name == reader)?;
                Some((
                    slot.card.clone()?,
                    slot.generation.clone(),
                    slot.generation.load(Ordering::SeqCst),
                ))
            })
            .ok_or(CardError::Reader(ReaderError::NoCard))?;
        let card = SimCard::new(dump)
            .map_err(|_| CardError::Reader(ReaderError::CardMute(None)))?
            .with_wire_time(self.wire_time);
        let atr = card.atr().to_vec();
        let mut transport = GuardedTransport {
            inner: SimTransport::new(card),
            generation,
            expected,
        };
        let transport: &mut dyn CardTransport = &mut transport;
        let mut beid = BeidCard::open(transport)?;
        let result = work(&mut beid)?;
        Ok(CardJob {
            result,
            atr,
            elapsed: started.elapsed(),
        })
    }

    fn simulator(&self) -> Option<&SimulatedReaders> {
        Some(self)
    }
}
