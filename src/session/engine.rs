//! The session engine: reader events → a card session per inserted card → read and verify
//! → advice → events.
//!
//! Every inserted card gets a session with a random id; everything said about the card
//! carries it. Removal ends the session at once and cancels its work, and a question about
//! an ended session is answered "ended", so the next citizen never receives the previous
//! one's advice. Each read runs on its own blocking thread: a slow or mute reader never
//! delays another.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch, OnceCell};
use uuid::Uuid;

use super::authenticity::{AuthenticityReport, Verifier};
use super::decide::{decide, CardPolicy, Question};
use super::read::{on_card, read_and_verify};
use crate::advice::{Advice, AdviceService, Catalogue, Channel};
use crate::beid::{AppletVersion, CardFault, Identity};
use crate::reader::{CardBackend, ReaderEvent, ReaderFault};

/// How long a read may take before the reader is reported in error (`card_mute`). The
/// slowest real read, an applet 1.1 card on its T=0 wire with the certificate, takes about
/// 0.5 s; a citizen at the counter should not wait longer than this for "try again".
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How many ended session ids are remembered to answer "ended" rather than "unknown".
const ENDED_MEMORY: usize = 4096;

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
        })
    }
}

/// An event for subscribers (the SSE stream): ids and states only.
#[derive(Debug, Clone, Serialize)]
pub struct AgentEvent {
    #[serde(skip)]
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentic: Option<bool>,
    #[serde(rename = "useCase", skip_serializing_if = "Option::is_none")]
    pub use_case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::advice::Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// The JSON form, made on first use.
    #[serde(skip)]
    json: std::sync::OnceLock<String>,
}

impl AgentEvent {
    fn new(name: &'static str, reader: Option<&str>, session: Option<Uuid>) -> Self {
        Self {
            name,
            reader: reader.map(reader_id),
            session,
            authentic: None,
            use_case: None,
            decision: None,
            code: None,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The event's data as JSON (ids and states only), serialised once however many
    /// streams send it.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(self).unwrap_or_else(|_| "{}".into()))
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
    advice: Mutex<HashMap<String, Arc<OnceCell<Decided>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Session {
    pub fn read_state(&self) -> ReadState {
        self.read.borrow().clone()
    }

    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }
}

/// A reader as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderView {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    #[error("no such session")]
    UnknownSession,
    #[error("the card of this session was removed")]
    SessionEnded,
    #[error("no such use case")]
    UnknownUseCase,
    #[error("the card could not be read ({0})")]
    ReadFailed(CardFault),
}

#[derive(Default)]
struct State {
    pcscd_up: bool,
    /// Reader name → its current session, if a card is in it.
    readers: BTreeMap<String, Option<Uuid>>,
    /// Readers whose card is present but unusable.
    reader_errors: HashMap<String, ReaderFault>,
    sessions: HashMap<Uuid, Arc<Session>>,
    ended: VecDeque<Uuid>,
    ended_set: HashSet<Uuid>,
}

/// The engine, shared by the API.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    settings: EngineSettings,
    backend: Arc<dyn CardBackend>,
    state: Mutex<State>,
    events: broadcast::Sender<Arc<AgentEvent>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Engine {
    /// Starts following `source`; must be called inside a tokio runtime.
    pub fn start(
        backend: Arc<dyn CardBackend>,
        settings: EngineSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Self> {
        let (events, _) = broadcast::channel(1024);
        let engine = Self {
            inner: Arc::new(Inner {
                settings,
                backend: backend.clone(),
                state: Mutex::new(State::default()),
                events,
                metrics,
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
    /// event streams each event is built (and serialised, see [`AgentEvent::json`]) once.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AgentEvent>> {
        self.inner.events.subscribe()
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    pub fn pcscd_up(&self) -> bool {
        self.lock().pcscd_up
    }

    pub fn readers(&self) -> Vec<ReaderView> {
        let state = self.lock();
        state
            .readers
            .iter()
            .map(|(name, session)| {
                let session_state = session
                    .and_then(|id| state.sessions.get(&id))
                    .map(|s| s.read_state());
                let label = match (&session_state, state.reader_errors.get(name)) {
                    (_, Some(_)) => "error",
                    (Some(ReadState::Reading), _) => "reading",
                    (Some(ReadState::Ready(_)), _) => "ready",
                    (Some(ReadState::Failed(_)), _) => "error",
                    (None, None) => "empty",
                };
                ReaderView {
                    id: reader_id(name),
                    name: name.clone(),
                    state: label,
                    session: *session,
                }
            })
            .collect()
    }

    /// The session, if it is active; `SessionEnded` if its card left.
    pub fn session(&self, id: Uuid) -> Result<Arc<Session>, EngineError> {
        let state = self.lock();
        match state.sessions.get(&id) {
            Some(session) => Ok(session.clone()),
            None if state.ended_set.contains(&id) => Err(EngineError::SessionEnded),
            None => Err(EngineError::UnknownSession),
        }
    }

    /// The advice for a session and use case: waits for the read, asks once per session and
    /// use case, and gives up as soon as the card leaves.
    pub async fn advise(&self, id: Uuid, use_case: &str) -> Result<Decided, EngineError> {
        let session = self.session(id)?;
        let use_case = self
            .inner
            .settings
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
            Ok(ReadState::Failed(code)) => return Err(EngineError::ReadFailed(code)),
            _ => return Err(EngineError::SessionEnded),
        };
        let cell = {
            let mut cells = session
                .advice
                .lock()
                .map_err(|_| EngineError::SessionEnded)?;
            cells.entry(use_case.id().to_owned()).or_default().clone()
        };
        let settings = &self.inner.settings;
        let ask = cell.get_or_init(|| async {
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
            if let Some(number) = &read.identity.national_number {
                let record = crate::audit::AdviceAsked {
                    session: session.id,
                    use_case: use_case.id().to_owned(),
                    decision: audit_decision(advice.decision()),
                    reason: advice.reason().map(|r| r.code().to_owned()),
                    // The upstream's reason code is opaque and may say something about
                    // the citizen's situation: not kept.
                    upstream_reason: None,
                    latency: advice.latency(),
                };
                let digits = zeroize::Zeroizing::new(number.expose().to_owned());
                self.record(move |log| log.advice(&record, &digits)).await;
            }
            let mut event = AgentEvent::new("advice", Some(&session.reader), Some(session.id));
            event.use_case = Some(use_case.id().to_owned());
            event.decision = Some(advice.decision());
            self.emit(event);
            Decided {
                advice,
                decided_at: OffsetDateTime::now_utc(),
            }
        });
        let decided = tokio::select! {
            decided = ask => decided.clone(),
            _ = alive.wait_for(|alive| !alive) => return Err(EngineError::SessionEnded),
        };
        if !session.is_alive() {
            return Err(EngineError::SessionEnded);
        }
        Ok(decided)
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
        let Some(log) = self.inner.settings.audit.clone() else {
            return;
        };
        match tokio::task::spawn_blocking(move || write(&log)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "audit record not written"),
            Err(_) => tracing::error!("audit writer failed"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the state itself stays consistent
        // (every change is a single assignment), so keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, event: AgentEvent) {
        let _ = self.inner.events.send(Arc::new(event));
    }

    fn on_reader_event(&self, event: ReaderEvent) {
        match event {
            ReaderEvent::ServiceUp => self.lock().pcscd_up = true,
            ReaderEvent::ServiceDown => {
                self.lock().pcscd_up = false;
                let mut event = AgentEvent::new("error", None, None);
                event.code = Some("pcscd_down");
                self.emit(event);
            }
            ReaderEvent::ReaderAdded { reader } => {
                self.lock().readers.insert(reader.clone(), None);
                self.emit(AgentEvent::new("reader-added", Some(&reader), None));
            }
            ReaderEvent::ReaderRemoved { reader } => {
                self.end_session_in(&reader);
                let mut state = self.lock();
                state.readers.remove(&reader);
                state.reader_errors.remove(&reader);
                drop(state);
                self.emit(AgentEvent::new("reader-removed", Some(&reader), None));
            }
            ReaderEvent::CardInserted { reader, .. } => self.open_session(reader),
            ReaderEvent::CardRemoved { reader } => {
                self.lock().reader_errors.remove(&reader);
                self.end_session_in(&reader);
            }
            ReaderEvent::CardUnusable { reader, fault } => {
                self.end_session_in(&reader);
                self.lock().reader_errors.insert(reader.clone(), fault);
                let mut event = AgentEvent::new("error", Some(&reader), None);
                event.code = Some(fault.code());
                self.emit(event);
            }
        }
    }

    fn open_session(&self, reader: String) {
        self.end_session_in(&reader);
        let (read, _) = watch::channel(ReadState::Reading);
        let (alive, _) = watch::channel(true);
        let session = Arc::new(Session {
            id: Uuid::new_v4(),
            reader: reader.clone(),
            read,
            alive,
            advice: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        {
            let mut state = self.lock();
            state.readers.insert(reader.clone(), Some(session.id));
            state.sessions.insert(session.id, session.clone());
        }
        tracing::info!(session = %session.id, reader = %reader_id(&reader), "card inserted");
        self.emit(AgentEvent::new(
            "card-inserted",
            Some(&reader),
            Some(session.id),
        ));
        // The read itself is not aborted on removal: it fails on its own as the card is
        // gone, and its result is dropped because the session has ended.
        let engine = self.clone();
        tokio::spawn(async move { engine.read(session).await });
    }

    async fn read(&self, session: Arc<Session>) {
        let engine = self.clone();
        let reader = session.reader.clone();
        let authenticate = self.inner.settings.authenticate_chip;
        let outcome = tokio::task::spawn_blocking(move || {
            let worker = engine.clone();
            on_card(&engine.inner.backend, &reader, READ_DEADLINE, move |card| {
                read_and_verify(card, &worker.inner.settings.verifier, authenticate)
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
                tracing::info!(
                    session = %session.id,
                    apdus = read.stats.apdus,
                    authentic = read.authenticity.authentic,
                    ms = job.elapsed.as_millis() as u64,
                    "card read"
                );
                ReadState::Ready(Arc::new(ReadResult {
                    applet: read.card_data.applet_version(),
                    identity: read.files.identity.clone(),
                    authenticity: read.authenticity,
                }))
            }
            Ok(Err(error)) => {
                self.inner.metrics.read(false, false);
                let fault = error.fault();
                tracing::warn!(session = %session.id, code = fault.code(), "card read failed");
                ReadState::Failed(fault)
            }
            // The read's thread panicked: a bug, reported as the reader failing.
            Err(_) => ReadState::Failed(CardFault::Reader(ReaderFault::ReaderError)),
        };
        let record = crate::audit::CardSession {
            session: session.id,
            reader: reader_id(&session.reader),
            applet: match &state {
                ReadState::Ready(read) => Some(read.applet.to_string()),
                _ => None,
            },
            authentic: match &state {
                ReadState::Ready(read) => Some(read.authenticity.authentic),
                _ => None,
            },
            chip: match &state {
                ReadState::Ready(read) => read.authenticity.chip.as_ref().map(|chip| {
                    if chip.result == super::ChipVerdict::Genuine {
                        crate::audit::ChipResult::Genuine
                    } else {
                        crate::audit::ChipResult::NotGenuine
                    }
                }),
                _ => None,
            },
            outcome: match &state {
                ReadState::Failed(fault) => {
                    crate::audit::ReadOutcome::Error(fault.code().to_owned())
                }
                _ => crate::audit::ReadOutcome::Ok,
            },
        };
        self.record(move |log| log.card_session(&record)).await;
        let _ = session.read.send_replace(state.clone());
        let event = match &state {
            ReadState::Ready(read) => {
                let mut event =
                    AgentEvent::new("card-read", Some(&session.reader), Some(session.id));
                event.authentic = Some(read.authenticity.authentic);
                event
            }
            ReadState::Failed(fault) => {
                let mut event = AgentEvent::new("error", Some(&session.reader), Some(session.id));
                event.code = Some(fault.code());
                event
            }
            ReadState::Reading => return,
        };
        self.emit(event);
        if matches!(state, ReadState::Ready(_)) {
            for use_case in self.inner.settings.auto_advice.clone() {
                let engine = self.clone();
                let id = session.id;
                let task = tokio::spawn(async move {
                    let _ = engine.advise(id, &use_case).await;
                });
                if let Ok(mut tasks) = session.tasks.lock() {
                    tasks.push(task);
                }
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
            let session = state.sessions.remove(&id);
            state.ended.push_back(id);
            state.ended_set.insert(id);
            while state.ended.len() > ENDED_MEMORY {
                if let Some(old) = state.ended.pop_front() {
                    state.ended_set.remove(&old);
                }
            }
            session
        };
        if let Some(session) = ended {
            let _ = session.alive.send_replace(false);
            if let Ok(mut tasks) = session.tasks.lock() {
                for task in tasks.drain(..) {
                    task.abort();
                }
            }
            tracing::info!(session = %session.id, "card removed; session ended");
            self.emit(AgentEvent::new(
                "card-removed",
                Some(reader),
                Some(session.id),
            ));
        }
    }
}

fn audit_decision(decision: crate::advice::Decision) -> crate::audit::Decision {
    match decision {
        crate::advice::Decision::Eligible => crate::audit::Decision::Eligible,
        crate::advice::Decision::NotEligible => crate::audit::Decision::NotEligible,
        crate::advice::Decision::Unknown => crate::audit::Decision::Unknown,
    }
}
