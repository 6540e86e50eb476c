//! The session engine: reader events → a card session per inserted card → read and verify
//! → advice → events.
//!
//! Every inserted card gets a session with a random id; everything said about the card
//! carries it. Removal ends the session at once and cancels its work, and a question about
//! an ended session is answered "ended", so the next citizen never receives the previous
//! one's advice. Each read runs on its own blocking thread: a slow or mute reader never
//! delays another.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch, OnceCell};
use uuid::Uuid;

use super::authenticity::{AuthenticityReport, ChipVerdict, Verifier};
use super::decide::{decide, CardPolicy, Question};
use super::events::{EngineEvent, Published};
use super::ids::SessionIds;
use super::outcome::{self, CounterCatalogue, OutcomeInput, Recorded};
use super::read::{on_card, read_and_verify};
use crate::advice::{Advice, AdviceService, Catalogue, Channel, Decision, OutcomeDelivery};
use crate::beid::{AppletVersion, CardFault, Identity};
use crate::reader::{CardBackend, ReaderEvent, ReaderFault};
use beid_core::contract::OutcomeFeedback;

/// How long a read may take before the reader is reported in error (`card_mute`). The
/// slowest real read, an applet 1.1 card on its T=0 wire with the certificate, takes about
/// 0.5 s; a citizen at the counter should not wait longer than this for "try again".
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How many events a slow subscriber may fall behind before it is told it missed some.
const EVENT_BUFFER: usize = 1024;

/// What the engine needs to decide.
pub struct EngineSettings {
    pub verifier: Verifier,
    pub advice: Arc<dyn AdviceService>,
    pub catalogue: Catalogue,
    pub device_id: String,
    pub channel: Channel,
    pub policy: CardPolicy,
    pub authenticate_chip: bool,
    /// Use cases asked as soon as a card is read.
    pub auto_advice: Vec<String>,
    /// Where card sessions and advice are recorded (national numbers pseudonymised).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// Deviation reasons and the clerk's labels for reason codes.
    pub counter: CounterCatalogue,
    /// What the kiosk page needs (`[kiosk]`).
    pub kiosk: super::KioskSettings,
}

/// Why the simulated settings could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulationError {
    #[error("TEST roots: {0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("simulated rule service: {0}")]
    Advice(#[from] crate::advice::AdviceError),
}

impl EngineSettings {
    /// The embedded default (`serve --simulate`, tests, benches): the simulated rule
    /// service with its embedded fixture, the default use cases, the TEST roots trusted,
    /// a counter device, no automatic advice, no audit. Change fields as needed.
    pub fn simulated(rrn_key_cache: Option<std::path::PathBuf>) -> Result<Self, SimulationError> {
        let store = crate::trust::TrustStore::production().with_test_roots()?;
        let advice = crate::advice::build(&crate::advice::UpstreamSettings::Simulated(
            crate::advice::SimulatedSettings::default(),
        ))?;
        Ok(Self {
            verifier: Verifier::new(store, rrn_key_cache),
            advice,
            catalogue: Catalogue::defaults(),
            device_id: "demo".into(),
            channel: Channel::Counter,
            policy: CardPolicy::default(),
            authenticate_chip: false,
            auto_advice: Vec::new(),
            audit: None,
            counter: CounterCatalogue::default(),
            kiosk: super::KioskSettings::default(),
        })
    }
}

/// A reader's stable public id: a short hash of its name (names hold vendor strings and
/// serial numbers; ids stay the same across pcscd restarts).
pub fn reader_id(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a read of the card yielded, kept for the session's life (personal data: dropped
/// with the session).
pub struct ReadResult {
    pub applet: AppletVersion,
    pub identity: Identity,
    pub authenticity: AuthenticityReport,
}

/// Where a session's read stands.
#[derive(Clone)]
pub enum ReadState {
    Reading,
    Ready(Arc<ReadResult>),
    Failed(CardFault),
}

/// A decided advice with its time.
#[derive(Clone)]
pub struct Decided {
    pub advice: Advice,
    pub decided_at: OffsetDateTime,
}

/// One inserted card.
pub struct Session {
    pub id: Uuid,
    pub reader: String,
    read: watch::Sender<ReadState>,
    /// `false` once the card left: waiting work stops.
    alive: watch::Sender<bool>,
    /// Use case → its advice, asked at most once.
    advice: Mutex<HashMap<String, Arc<OnceCell<Decided>>>>,
    /// Use case → the clerk's outcome, recorded at most once.
    outcomes: Mutex<HashMap<String, Recorded>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Session {
    pub fn read_state(&self) -> ReadState {
        self.read.borrow().clone()
    }

    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// The advice decided so far, by use case id.
    pub fn decided(&self) -> BTreeMap<String, Decided> {
        lock(&self.advice)
            .iter()
            .filter_map(|(use_case, cell)| Some((use_case.clone(), cell.get()?.clone())))
            .collect()
    }

    /// The outcomes recorded so far, by use case id.
    pub fn outcomes(&self) -> BTreeMap<String, Recorded> {
        lock(&self.outcomes)
            .iter()
            .map(|(use_case, recorded)| (use_case.clone(), recorded.clone()))
            .collect()
    }
}

/// A reader's state, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReaderState {
    Empty,
    Reading,
    Ready,
    Error,
}

/// A reader as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ReaderView {
    pub id: String,
    pub name: String,
    pub state: ReaderState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
    /// Why the state is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CardFault>,
}

/// Everything the engine knows, at one event: a subscriber that starts (or restarts) from
/// a snapshot needs only the events with a later id.
pub struct Snapshot {
    /// The id of the last event the snapshot includes (0 before the first).
    pub last_event: u64,
    pub pcscd_up: bool,
    pub readers: Vec<ReaderView>,
    pub sessions: Vec<Arc<Session>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    #[error("no such session in this agent run")]
    UnknownSession,
    #[error("the card of this session was removed")]
    SessionEnded,
    #[error("no such use case")]
    UnknownUseCase,
    #[error("the card could not be read ({0})")]
    ReadFailed(CardFault),
    #[error("no advice was asked for this use case in this session")]
    AdviceNotAsked,
    #[error("an outcome is already recorded for this use case in this session")]
    OutcomeAlreadyRecorded,
    #[error("the decision differs from the advice (or the advice is unknown): a deviation reason is required")]
    DeviationRequired,
    #[error("the decision follows the advice: there is no deviation to record")]
    DeviationNotApplicable,
    #[error("the deviation reason is not one of the configured reasons")]
    UnknownDeviationReason,
    #[error("the note is longer than 200 characters")]
    NoteTooLong,
    #[error("the note looks like it holds a national number")]
    NoteHasNationalNumber,
}

impl EngineError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownSession => "session_not_found",
            Self::SessionEnded => "session_ended",
            Self::UnknownUseCase => "unknown_use_case",
            Self::ReadFailed(_) => "card_not_read",
            Self::AdviceNotAsked => "advice_not_asked",
            Self::OutcomeAlreadyRecorded => "outcome_already_recorded",
            Self::DeviationRequired => "deviation_required",
            Self::DeviationNotApplicable => "deviation_not_applicable",
            Self::UnknownDeviationReason => "deviation_reason_unknown",
            Self::NoteTooLong => "note_too_long",
            Self::NoteHasNationalNumber => "note_has_national_number",
        }
    }
}

#[derive(Default)]
struct State {
    pcscd_up: bool,
    /// Reader name → its current session, if a card is in it.
    readers: BTreeMap<String, Option<Uuid>>,
    /// Readers whose card is present but unusable.
    reader_errors: HashMap<String, ReaderFault>,
    sessions: HashMap<Uuid, Arc<Session>>,
    /// The id of the last published event.
    last_event: u64,
}

/// The engine, shared by the API.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced whole by [`Engine::reload`]. Each piece of work takes the settings current
    /// when it starts and keeps them to its end: a question asked before a reload is
    /// answered by the service it was sent to.
    settings: RwLock<Arc<EngineSettings>>,
    backend: Arc<dyn CardBackend>,
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Published>>,
    metrics: Arc<crate::metrics::Metrics>,
    ids: SessionIds,
}

/// A panic while a lock was held is a bug; the data behind it stays consistent (every
/// change is a single assignment or insertion), so keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Starts following the readers of `backend`; must be called inside a tokio runtime.
    pub fn start(
        backend: Arc<dyn CardBackend>,
        settings: EngineSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Self> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let engine = Self {
            inner: Arc::new(Inner {
                settings: RwLock::new(Arc::new(settings)),
                backend: backend.clone(),
                state: Mutex::new(State::default()),
                events,
                metrics,
                ids: SessionIds::new(),
            }),
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        let (forward, mut incoming) = tokio::sync::mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("reader-events".into())
            .spawn(move || {
                while let Ok(event) = receiver.recv() {
                    if forward.send(event).is_err() {
                        break;
                    }
                }
            })?;
        backend.watch(sender)?;
        let runner = engine.clone();
        tokio::spawn(async move {
            while let Some(event) = incoming.recv().await {
                runner.on_reader_event(event);
            }
        });
        Ok(engine)
    }

    /// Events as they happen. Shared, not copied, between subscribers: with hundreds of
    /// event streams each event is built (and serialised, see [`Published::json`]) once.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.inner.events.subscribe()
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<EngineSettings> {
        self.inner
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts new settings in force (a reload of the configuration) without touching what
    /// runs: card sessions, their reads and advice, and event subscribers carry on. Work
    /// started from now on uses `settings`. The audit log stays the one the engine started
    /// with: a reload never moves the audit trail.
    pub fn reload(&self, mut settings: EngineSettings) {
        let mut current = self
            .inner
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        settings.audit = current.audit.clone();
        *current = Arc::new(settings);
    }

    pub fn pcscd_up(&self) -> bool {
        self.lock().pcscd_up
    }

    pub fn readers(&self) -> Vec<ReaderView> {
        readers_of(&self.lock())
    }

    /// What the metrics report as true now: pcscd, readers, cards, the upstream's circuit
    /// and certificates, who this device is.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        let (pcscd_up, readers, cards) = {
            let state = self.lock();
            let cards = state
                .readers
                .iter()
                .filter(|(name, session)| {
                    session.is_some() || state.reader_errors.contains_key(*name)
                })
                .count();
            (state.pcscd_up, state.readers.len(), cards)
        };
        let settings = self.settings();
        crate::metrics::Gauges {
            device_id: settings.device_id.clone(),
            channel: settings.channel,
            pcscd_up,
            readers,
            cards,
            upstream: settings.advice.status(),
            certificates: settings.advice.certificate_expiry(),
        }
    }

    /// Everything at once, consistent with the event ids: subscribe first, then take the
    /// snapshot, then skip received events whose id is not above [`Snapshot::last_event`].
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            last_event: state.last_event,
            pcscd_up: state.pcscd_up,
            readers: readers_of(&state),
            sessions: state
                .readers
                .values()
                .flatten()
                .filter_map(|id| state.sessions.get(id).cloned())
                .collect(),
        }
    }

    /// The session, if it is active; `SessionEnded` if it was issued by this agent run and
    /// its card left (however long ago); `UnknownSession` otherwise.
    pub fn session(&self, id: Uuid) -> Result<Arc<Session>, EngineError> {
        let active = self.lock().sessions.get(&id).cloned();
        match active {
            Some(session) => Ok(session),
            None if self.inner.ids.issued(id) => Err(EngineError::SessionEnded),
            None => Err(EngineError::UnknownSession),
        }
    }

    /// The advice for a session and use case: waits for the read, asks once per session and
    /// use case, and gives up as soon as the card leaves.
    pub async fn advise(&self, id: Uuid, use_case: &str) -> Result<Decided, EngineError> {
        let session = self.session(id)?;
        let settings = self.settings();
        let use_case = settings
            .catalogue
            .get(use_case)
            .cloned()
            .ok_or(EngineError::UnknownUseCase)?;
        let mut alive = session.alive.subscribe();
        let mut read = session.read.subscribe();
        let result = tokio::select! {
            result = read.wait_for(|state| !matches!(state, ReadState::Reading)) => result.map(|s| s.clone()),
            _ = alive.wait_for(|alive| !alive) => return Err(EngineError::SessionEnded),
        };
        let read = match result {
            Ok(ReadState::Ready(read)) => read,
            Ok(ReadState::Failed(fault)) => return Err(EngineError::ReadFailed(fault)),
            _ => return Err(EngineError::SessionEnded),
        };
        let cell = lock(&session.advice)
            .entry(use_case.id().to_owned())
            .or_default()
            .clone();
        let asked_here = std::sync::atomic::AtomicBool::new(false);
        let ask = cell.get_or_init(|| {
            asked_here.store(true, std::sync::atomic::Ordering::Relaxed);
            async {
                let question = Question {
                    identity: &read.identity,
                    authentic: read.authenticity.authentic,
                    use_case: &use_case,
                    channel: settings.channel,
                    device_id: &settings.device_id,
                    today: OffsetDateTime::now_utc().date(),
                };
                let advice = decide(settings.advice.as_ref(), &question, settings.policy).await;
                self.inner
                    .metrics
                    .advice(advice.decision(), advice.latency());
                if let Some(reason) = advice.reason() {
                    self.inner.metrics.unknown(reason);
                }
                tracing::info!(
                    session = %session.id,
                    reader = %reader_id(&session.reader),
                    use_case = use_case.id(),
                    decision = %advice.decision(),
                    reason = advice.reason().map(|r| r.code()),
                    latency_ms = u64::try_from(advice.latency().as_millis()).unwrap_or(u64::MAX),
                    "advice"
                );
                if let Some(number) = &read.identity.national_number {
                    let record = crate::audit::AdviceAsked {
                        session: session.id,
                        use_case: use_case.id().to_owned(),
                        decision: audit_decision(advice.decision()),
                        reason: advice.reason().map(|r| r.to_string()),
                        // The upstream's reason code is opaque and may say something about
                        // the citizen's situation: not kept.
                        upstream_reason: None,
                        latency: advice.latency(),
                    };
                    let digits = zeroize::Zeroizing::new(number.expose().to_owned());
                    self.record(move |log| log.advice(&record, &digits)).await;
                }
                Decided {
                    advice,
                    decided_at: OffsetDateTime::now_utc(),
                }
            }
        });
        let decided = tokio::select! {
            decided = ask => decided.clone(),
            _ = alive.wait_for(|alive| !alive) => return Err(EngineError::SessionEnded),
        };
        // Announced once, by the asker, after the advice is in the session: a snapshot
        // taken before this event's id holds it or the event follows (never neither).
        if asked_here.load(std::sync::atomic::Ordering::Relaxed) {
            self.emit(EngineEvent::Advice {
                reader: reader_id(&session.reader),
                session: session.id,
                use_case: use_case.id().to_owned(),
                decision: decided.advice.decision(),
            });
        }
        if !session.is_alive() {
            return Err(EngineError::SessionEnded);
        }
        Ok(decided)
    }

    /// Records what the clerk finally decided on an advice of this session (once per use
    /// case): checked against the advice and the configured deviation reasons, audited,
    /// counted, announced, and sent to the rule service under the question's request id.
    pub async fn record_outcome(
        &self,
        id: Uuid,
        input: OutcomeInput,
    ) -> Result<Recorded, EngineError> {
        let session = self.session(id)?;
        let settings = self.settings();
        if settings.catalogue.get(&input.use_case).is_none() {
            return Err(EngineError::UnknownUseCase);
        }
        let decided = lock(&session.advice)
            .get(&input.use_case)
            .and_then(|cell| cell.get().cloned())
            .ok_or(EngineError::AdviceNotAsked)?;
        let advice = decided.advice.decision();
        outcome::check(&input, advice, &settings.counter)?;
        let recorded = Recorded {
            use_case: input.use_case,
            advice,
            decision: input.decision,
            deviation: input.deviation,
            recorded_at: OffsetDateTime::now_utc(),
        };
        {
            let mut outcomes = lock(&session.outcomes);
            if outcomes.contains_key(&recorded.use_case) {
                return Err(EngineError::OutcomeAlreadyRecorded);
            }
            outcomes.insert(recorded.use_case.clone(), recorded.clone());
        }
        let reason = recorded.deviation.as_ref().map(|d| d.reason.as_str());
        self.inner
            .metrics
            .outcome(&recorded.use_case, advice, recorded.decision, reason);
        tracing::info!(
            session = %session.id,
            reader = %reader_id(&session.reader),
            use_case = %recorded.use_case,
            advice = %advice,
            decision = recorded.decision.code(),
            deviation = reason,
            "staff decision"
        );
        let record = crate::audit::StaffDecisionRecord {
            session: session.id,
            use_case: recorded.use_case.clone(),
            advice: audit_decision(advice),
            decision: recorded.decision,
            deviation: reason.map(str::to_owned),
            note: recorded
                .deviation
                .as_ref()
                .is_some_and(|d| d.note.is_some()),
        };
        self.record(move |log| log.staff_decision(&record)).await;
        self.emit(EngineEvent::Outcome {
            reader: reader_id(&session.reader),
            session: session.id,
            use_case: recorded.use_case.clone(),
            decision: recorded.decision,
        });
        if let Some(request_id) = decided.advice.request_id() {
            let feedback = OutcomeFeedback {
                decision: recorded.decision,
                deviation: recorded.deviation.clone(),
            };
            let engine = self.clone();
            // Not tied to the session: the card may leave before the rule service answers.
            tokio::spawn(async move {
                // The service in force now: after a certificate renewal, the new one.
                let service = engine.settings().advice.clone();
                let delivery = service.send_outcome(request_id, &feedback).await;
                engine.inner.metrics.outcome_delivery(delivery);
            });
        } else {
            self.inner
                .metrics
                .outcome_delivery(OutcomeDelivery::NotSupported);
        }
        Ok(recorded)
    }

    /// Appends to the audit log, if there is one, off the async threads (each record is
    /// synced to disk). A failure is logged loudly: the audit trail must not go missing
    /// silently, but a citizen is not refused because a disk is full.
    pub async fn record(
        &self,
        write: impl FnOnce(
                &crate::audit::AuditLog,
            ) -> Result<crate::audit::ChainHead, crate::audit::AuditError>
            + Send
            + 'static,
    ) {
        let Some(log) = self.settings().audit.clone() else {
            return;
        };
        let outcome = tokio::task::spawn_blocking(move || write(&log)).await;
        let failed = match outcome {
            Ok(Ok(_)) => false,
            Ok(Err(error)) => {
                tracing::error!(%error, "audit record not written");
                true
            }
            Err(_) => {
                tracing::error!("audit writer failed");
                true
            }
        };
        if failed {
            self.inner.metrics.audit_write_failed();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// Publishes `event` with the next id. The id is taken under the state lock, the same
    /// lock [`Engine::snapshot`] reads under, so a snapshot and the ids agree.
    fn emit(&self, event: EngineEvent) {
        let mut state = self.lock();
        state.last_event += 1;
        let _ = self
            .inner
            .events
            .send(Arc::new(Published::new(state.last_event, event)));
    }

    fn on_reader_event(&self, event: ReaderEvent) {
        match event {
            ReaderEvent::ServiceUp => {
                let was_down = !std::mem::replace(&mut self.lock().pcscd_up, true);
                if was_down {
                    self.emit(EngineEvent::PcscdUp);
                }
            }
            ReaderEvent::ServiceDown => {
                self.lock().pcscd_up = false;
                self.emit(EngineEvent::ReaderError {
                    reader: None,
                    code: ReaderFault::PcscdDown,
                });
            }
            ReaderEvent::ReaderAdded { reader } => {
                self.lock().readers.insert(reader.clone(), None);
                self.emit(EngineEvent::ReaderAdded {
                    reader: reader_id(&reader),
                });
            }
            ReaderEvent::ReaderRemoved { reader } => {
                self.end_session_in(&reader);
                let mut state = self.lock();
                state.readers.remove(&reader);
                state.reader_errors.remove(&reader);
                drop(state);
                self.emit(EngineEvent::ReaderRemoved {
                    reader: reader_id(&reader),
                });
            }
            ReaderEvent::CardInserted { reader, .. } => self.open_session(reader),
            ReaderEvent::CardRemoved { reader } => {
                self.lock().reader_errors.remove(&reader);
                self.end_session_in(&reader);
            }
            ReaderEvent::CardUnusable { reader, fault } => {
                self.end_session_in(&reader);
                self.lock().reader_errors.insert(reader.clone(), fault);
                self.emit(EngineEvent::ReaderError {
                    reader: Some(reader_id(&reader)),
                    code: fault,
                });
            }
        }
    }

    fn open_session(&self, reader: String) {
        self.end_session_in(&reader);
        let (read, _) = watch::channel(ReadState::Reading);
        let (alive, _) = watch::channel(true);
        let session = Arc::new(Session {
            id: self.inner.ids.issue(),
            reader: reader.clone(),
            read,
            alive,
            advice: Mutex::new(HashMap::new()),
            outcomes: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        {
            let mut state = self.lock();
            state.readers.insert(reader.clone(), Some(session.id));
            state.sessions.insert(session.id, session.clone());
        }
        tracing::debug!(session = %session.id, reader = %reader_id(&reader), "card inserted");
        self.emit(EngineEvent::CardInserted {
            reader: reader_id(&reader),
            session: session.id,
        });
        // The read itself is not aborted on removal: it fails on its own as the card is
        // gone, and its result is dropped because the session has ended.
        let engine = self.clone();
        tokio::spawn(async move { engine.read(session).await });
    }

    async fn read(&self, session: Arc<Session>) {
        let engine = self.clone();
        let reader = session.reader.clone();
        let settings = self.settings();
        let outcome = tokio::task::spawn_blocking(move || {
            on_card(&engine.inner.backend, &reader, READ_DEADLINE, move |card| {
                read_and_verify(card, &settings.verifier, settings.authenticate_chip)
            })
        })
        .await;
        if !session.is_alive() {
            return;
        }
        let state = match outcome {
            Ok(Ok(job)) => {
                let read = job.result;
                self.inner.metrics.read(true, !read.authenticity.authentic);
                ReadState::Ready(Arc::new(ReadResult {
                    applet: read.card_data.applet_version(),
                    identity: read.files.identity.clone(),
                    authenticity: read.authenticity,
                }))
            }
            Ok(Err(error)) => {
                self.inner.metrics.read(false, false);
                ReadState::Failed(error.fault())
            }
            // The read's thread panicked: a bug, reported as the reader failing.
            Err(_) => ReadState::Failed(CardFault::Reader(ReaderFault::ReaderError)),
        };
        let ready = match &state {
            ReadState::Ready(read) => Some(read.clone()),
            _ => None,
        };
        let fault = match &state {
            ReadState::Failed(fault) => Some(*fault),
            _ => None,
        };
        tracing::info!(
            session = %session.id,
            reader = %reader_id(&session.reader),
            applet = ready.as_ref().map(|r| r.applet.to_string()),
            authentic = ready.as_ref().map(|r| r.authenticity.authentic),
            outcome = fault.map_or("read", CardFault::code),
            "card session"
        );
        let record = crate::audit::CardSession {
            session: session.id,
            reader: reader_id(&session.reader),
            applet: ready.as_ref().map(|r| r.applet.to_string()),
            authentic: ready.as_ref().map(|r| r.authenticity.authentic),
            chip: ready
                .as_ref()
                .and_then(|r| r.authenticity.chip.as_ref())
                .map(|chip| match chip.result {
                    ChipVerdict::Genuine => crate::audit::ChipResult::Genuine,
                    ChipVerdict::NotGenuine => crate::audit::ChipResult::NotGenuine,
                }),
            outcome: match fault {
                Some(fault) => crate::audit::ReadOutcome::Error(fault.code().to_owned()),
                None => crate::audit::ReadOutcome::Ok,
            },
        };
        self.record(move |log| log.card_session(&record)).await;
        let _ = session.read.send_replace(state);
        self.emit(match (&ready, fault) {
            (Some(read), _) => EngineEvent::CardRead {
                reader: reader_id(&session.reader),
                session: session.id,
                authentic: read.authenticity.authentic,
            },
            (None, Some(code)) => EngineEvent::CardError {
                reader: reader_id(&session.reader),
                session: session.id,
                code,
            },
            (None, None) => return,
        });
        if ready.is_some() {
            for use_case in self.settings().auto_advice.clone() {
                let engine = self.clone();
                let id = session.id;
                let task = tokio::spawn(async move {
                    let _ = engine.advise(id, &use_case).await;
                });
                lock(&session.tasks).push(task);
            }
        }
    }

    /// Ends the session of the card in `reader`, if any: its work is cancelled and its id
    /// answers "ended" from now on.
    fn end_session_in(&self, reader: &str) {
        let ended = {
            let mut state = self.lock();
            let Some(id) = state.readers.get_mut(reader).and_then(Option::take) else {
                return;
            };
            state.sessions.remove(&id)
        };
        if let Some(session) = ended {
            let _ = session.alive.send_replace(false);
            for task in lock(&session.tasks).drain(..) {
                task.abort();
            }
            tracing::debug!(session = %session.id, "card removed; session ended");
            self.emit(EngineEvent::CardRemoved {
                reader: reader_id(reader),
                session: session.id,
            });
        }
    }
}

fn readers_of(state: &State) -> Vec<ReaderView> {
    state
        .readers
        .iter()
        .map(|(name, session)| {
            let read = session
                .and_then(|id| state.sessions.get(&id))
                .map(|s| s.read_state());
            let (view_state, error) = match (&read, state.reader_errors.get(name)) {
                (_, Some(fault)) => (ReaderState::Error, Some(CardFault::Reader(*fault))),
                (Some(ReadState::Reading), _) => (ReaderState::Reading, None),
                (Some(ReadState::Ready(_)), _) => (ReaderState::Ready, None),
                (Some(ReadState::Failed(fault)), _) => (ReaderState::Error, Some(*fault)),
                (None, None) => (ReaderState::Empty, None),
            };
            ReaderView {
                id: reader_id(name),
                name: name.clone(),
                state: view_state,
                session: *session,
                error,
            }
        })
        .collect()
}

fn audit_decision(decision: Decision) -> crate::audit::Decision {
    match decision {
        Decision::Eligible => crate::audit::Decision::Eligible,
        Decision::NotEligible => crate::audit::Decision::NotEligible,
        Decision::Unknown => crate::audit::Decision::Unknown,
    }
}
