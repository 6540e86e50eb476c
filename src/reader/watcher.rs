//! Follows readers and cards: a thread that owns its own PC/SC context and waits in
//! `get_status_change`, reporting insertions, removals, readers coming and going, and
//! pcscd stopping and returning (it establishes a new context with back-off).
//!
//! Other threads may only stop it (which cancels the wait): any other call on the
//! watcher's context would block behind the wait (`docs/design.md`, "Threads").

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::pcsc::{map_error, slot_state, SlotState};
use super::{ReaderError, ReaderFault};

/// The longest single wait, so a stop request is seen even if a cancel is lost.
const POLL_CEILING: Duration = Duration::from_secs(2);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// pcscd answers (at start, and after it came back).
    ServiceUp,
    /// pcscd stopped or cannot be reached; the watcher keeps trying.
    ServiceDown,
    ReaderAdded {
        reader: String,
    },
    ReaderRemoved {
        reader: String,
    },
    CardInserted {
        reader: String,
        atr: Vec<u8>,
    },
    CardRemoved {
        reader: String,
    },
    /// A card is present but unusable: [`ReaderFault::CardMute`], or
    /// [`ReaderFault::ReaderBusy`] when another application holds it exclusively.
    CardUnusable {
        reader: String,
        fault: ReaderFault,
    },
}

/// A running watcher; stops (and joins) when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    context: Arc<Mutex<Option<pcsc::Context>>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn spawn(events: Sender<ReaderEvent>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let context = Arc::new(Mutex::new(None));
        let thread = {
            let stop = stop.clone();
            let context = context.clone();
            std::thread::Builder::new()
                .name("reader-watcher".into())
                .spawn(move || run(&events, &stop, &context))?
        };
        Ok(Self {
            stop,
            context,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(guard) = self.context.lock() {
            if let Some(context) = guard.as_ref() {
                let _ = context.cancel();
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the watcher knows of one reader.
#[derive(Debug, Clone)]
struct Known {
    state: SlotState,
    event_count: u32,
}

fn run(events: &Sender<ReaderEvent>, stop: &AtomicBool, shared: &Mutex<Option<pcsc::Context>>) {
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut backoff = BACKOFF_START;
    let mut service_up = None;
    while !stop.load(Ordering::SeqCst) {
        let context = match pcsc::Context::establish(pcsc::Scope::User) {
            Ok(context) => context,
            Err(error) => {
                if service_up != Some(false) {
                    tracing::warn!(error = %map_error(error), "PC/SC service unavailable; retrying");
                    forget_all(&mut known, events);
                    let _ = events.send(ReaderEvent::ServiceDown);
                    service_up = Some(false);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if let Ok(mut guard) = shared.lock() {
            *guard = Some(context.clone());
        }
        backoff = BACKOFF_START;
        if service_up != Some(true) {
            let _ = events.send(ReaderEvent::ServiceUp);
            service_up = Some(true);
        }
        let outcome = watch(&context, &mut known, events, stop);
        if let Ok(mut guard) = shared.lock() {
            *guard = None;
        }
        if let Err(error) = outcome {
            tracing::warn!(%error, "PC/SC service lost; re-establishing");
            forget_all(&mut known, events);
            let _ = events.send(ReaderEvent::ServiceDown);
            service_up = Some(false);
        }
    }
}

/// Waits for changes on one context until it fails or the watcher stops.
fn watch(
    context: &pcsc::Context,
    known: &mut BTreeMap<String, Known>,
    events: &Sender<ReaderEvent>,
    stop: &AtomicBool,
) -> Result<(), ReaderError> {
    'relist: while !stop.load(Ordering::SeqCst) {
        let names = match context.list_readers_owned() {
            Ok(names) => names,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(error) => return Err(map_error(error)),
        };
        let names: Vec<String> = names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        reconcile_reader_list(known, &names, events);
        let mut states: Vec<pcsc::ReaderState> = names
            .iter()
            .filter_map(|name| CString::new(name.as_str()).ok())
            .map(|name| pcsc::ReaderState::new(name, pcsc::State::UNAWARE))
            .collect();
        states.push(pcsc::ReaderState::new(
            pcsc::PNP_NOTIFICATION(),
            pcsc::State::UNAWARE,
        ));
        let mut first = true;
        while !stop.load(Ordering::SeqCst) {
            let wait = if first { Duration::ZERO } else { POLL_CEILING };
            first = false;
            match context.get_status_change(wait, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => continue,
                Err(pcsc::Error::Cancelled) => return Ok(()),
                Err(pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable) => {
                    continue 'relist
                }
                Err(error) => return Err(map_error(error)),
            }
            let mut relist = false;
            for state in &mut states {
                let changed = state.event_state().contains(pcsc::State::CHANGED);
                if state.name() == pcsc::PNP_NOTIFICATION() {
                    relist |= changed;
                } else if changed {
                    relist |= report_change(known, state, events);
                }
                state.sync_current_state();
            }
            if relist {
                continue 'relist;
            }
        }
    }
    Ok(())
}

/// Reports what changed in one reader; true when the reader went away.
fn report_change(
    known: &mut BTreeMap<String, Known>,
    state: &pcsc::ReaderState,
    events: &Sender<ReaderEvent>,
) -> bool {
    let reader = state.name().to_string_lossy().into_owned();
    let now = slot_state(state.event_state());
    let count = state.event_count();
    let Some(before) = known.get(&reader).cloned() else {
        return true;
    };
    if now == SlotState::Unavailable {
        return true;
    }
    let was_card = before.state != SlotState::Empty;
    let is_card = now != SlotState::Empty;
    // pcscd counts insertions and removals in the event counter: a card swapped between
    // two waits shows the same state with a different count.
    let swapped = was_card && is_card && count != before.event_count && count != 0;
    if was_card && (!is_card || swapped) {
        let _ = events.send(ReaderEvent::CardRemoved {
            reader: reader.clone(),
        });
    }
    if is_card && (!was_card || swapped || now != before.state) {
        let _ = events.send(card_event(&reader, now, state.atr()));
    }
    known.insert(
        reader,
        Known {
            state: now,
            event_count: count,
        },
    );
    false
}

fn card_event(reader: &str, state: SlotState, atr: &[u8]) -> ReaderEvent {
    match state {
        SlotState::CardPresent => ReaderEvent::CardInserted {
            reader: reader.to_owned(),
            atr: atr.to_vec(),
        },
        SlotState::CardInUseExclusively => ReaderEvent::CardUnusable {
            reader: reader.to_owned(),
            fault: ReaderFault::ReaderBusy,
        },
        _ => ReaderEvent::CardUnusable {
            reader: reader.to_owned(),
            fault: ReaderFault::CardMute,
        },
    }
}

/// Adds readers that appeared (as empty, their cards follow as events) and reports those
/// that left, with their cards.
fn reconcile_reader_list(
    known: &mut BTreeMap<String, Known>,
    names: &[String],
    events: &Sender<ReaderEvent>,
) {
    let gone: Vec<String> = known
        .keys()
        .filter(|name| !names.contains(name))
        .cloned()
        .collect();
    for reader in gone {
        forget(known, &reader, events);
    }
    for name in names {
        if !known.contains_key(name) {
            let _ = events.send(ReaderEvent::ReaderAdded {
                reader: name.clone(),
            });
            known.insert(
                name.clone(),
                Known {
                    state: SlotState::Empty,
                    event_count: 0,
                },
            );
        }
    }
}

fn forget(known: &mut BTreeMap<String, Known>, reader: &str, events: &Sender<ReaderEvent>) {
    if let Some(before) = known.remove(reader) {
        if before.state != SlotState::Empty {
            let _ = events.send(ReaderEvent::CardRemoved {
                reader: reader.to_owned(),
            });
        }
        let _ = events.send(ReaderEvent::ReaderRemoved {
            reader: reader.to_owned(),
        });
    }
}

fn forget_all(known: &mut BTreeMap<String, Known>, events: &Sender<ReaderEvent>) {
    let readers: Vec<String> = known.keys().cloned().collect();
    for reader in readers {
        forget(known, &reader, events);
    }
}
