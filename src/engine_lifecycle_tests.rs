//! The card engine's lifecycle (`session::Engine`), driven through a scripted backend (the
//! simulated readers, with a gate in front of the card) and an advice service the test
//! controls: what happens to reads, advice and events when cards come and go.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::advice::{
    Advice, AdviceFuture, AdviceRequest, AdviceService, CircuitState, Decision, Reason,
    ServiceKind, ServiceStatus,
};
use crate::metrics::Metrics;
use crate::reader::{CardBackend, CardConnection, ReaderError, ReaderEvent};
use crate::session::OutcomeInput;
use crate::session::{Engine, EngineError, EngineSettings, ReadState};
use crate::session::{EngineEvent, Published};
use crate::sim::SimulatedReaders;
use beid_core::contract::StaffDecision;

const READER: &str = "Scripted reader";
/// A card the embedded fixture says is eligible for every use case.
const CARD: &str = "gen-1.8-ec";
/// A bound on waits for the engine's own tasks (never reached when the engine works).
const WAIT: Duration = Duration::from_secs(20);

/// The simulated readers, with a gate: while armed, a connection waits until the test
/// opens it, so a test can act while a read is under way.
struct GatedBackend {
    readers: SimulatedReaders,
    armed: AtomicBool,
    gate: Mutex<Option<Receiver<()>>>,
    connects: AtomicUsize,
    /// Connections ended (the card work done): shared with each connection.
    finished: Arc<AtomicUsize>,
}

impl GatedBackend {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            readers: SimulatedReaders::new(&[READER], false),
            armed: AtomicBool::new(false),
            gate: Mutex::new(None),
            connects: AtomicUsize::new(0),
            finished: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Waits until `count` connections have ended.
    async fn finished(&self, count: usize) {
        reached(&self.finished, count).await;
    }

    /// Waits until `count` connections were asked for (the gated one waits at its gate).
    async fn connected(&self, count: usize) {
        reached(&self.connects, count).await;
    }

    /// The next connection waits until the returned sender sends (or is dropped).
    fn arm(&self) -> Sender<()> {
        let (open, gate) = mpsc::channel();
        *self.gate.lock().unwrap() = Some(gate);
        self.armed.store(true, Ordering::SeqCst);
        open
    }
}

impl CardBackend for GatedBackend {
    fn watch(&self, events: std::sync::mpsc::Sender<ReaderEvent>) -> std::io::Result<()> {
        self.readers.watch(events)
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardConnection>, ReaderError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        if self.armed.swap(false, Ordering::SeqCst) {
            let gate = self.gate.lock().unwrap().take();
            if let Some(gate) = gate {
                let _ = gate.recv();
            }
        }
        Ok(Box::new(Counted {
            inner: self.readers.connect(reader)?,
            finished: self.finished.clone(),
        }))
    }
}

/// Waits (bounded) until `counter` reaches `count`: the engine's work runs on its own
/// threads and tasks.
async fn reached(counter: &AtomicUsize, count: usize) {
    let wait = async {
        while counter.load(Ordering::SeqCst) < count {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap();
}

/// A connection that counts its end.
struct Counted {
    inner: Box<dyn CardConnection>,
    finished: Arc<AtomicUsize>,
}

impl CardConnection for Counted {
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }

    fn transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn crate::reader::CardTransport),
    ) -> Result<(), ReaderError> {
        self.inner.transaction(work)
    }

    fn disconnect(self: Box<Self>) {
        self.inner.disconnect();
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// An advice service that counts questions, answers after `latency` (tokio time), and
/// notes when a question is dropped unanswered.
struct CountingService {
    asked: AtomicUsize,
    dropped: Arc<AtomicUsize>,
    latency: Duration,
}

impl CountingService {
    fn new(latency: Duration) -> Arc<Self> {
        Arc::new(Self {
            asked: AtomicUsize::new(0),
            dropped: Arc::new(AtomicUsize::new(0)),
            latency,
        })
    }
}

/// Counts a question's future dropped before it answered.
struct DropWatch(Arc<AtomicUsize>, bool);

impl DropWatch {
    fn answered(mut self) {
        self.1 = true;
    }
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl AdviceService for CountingService {
    fn advise<'a>(&'a self, _request: AdviceRequest<'a>) -> AdviceFuture<'a> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let watch = DropWatch(self.dropped.clone(), false);
        let latency = self.latency;
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            watch.answered();
            // Any decided advice will do; unknown is the one the agent may build itself.
            Advice::unknown(Reason::UpstreamTimeout, latency)
        })
    }

    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            kind: ServiceKind::Simulated,
            circuit: CircuitState::Closed,
            consecutive_failures: 0,
        }
    }
}

struct Harness {
    engine: Engine,
    backend: Arc<GatedBackend>,
    events: broadcast::Receiver<Arc<Published>>,
    metrics: Arc<Metrics>,
}

impl Harness {
    async fn start(tune: impl FnOnce(&mut EngineSettings)) -> Self {
        let backend = GatedBackend::new();
        let mut settings = EngineSettings::simulated(None).unwrap();
        tune(&mut settings);
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::start(backend.clone(), settings, metrics.clone()).unwrap();
        let events = engine.subscribe();
        let mut harness = Self {
            engine,
            backend,
            events,
            metrics,
        };
        harness.until("reader-added").await;
        harness
    }

    /// The next event named `name`, skipping others; fails after [`WAIT`].
    async fn until(&mut self, name: &str) -> EngineEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(published) if published.event.name() == name => {
                        return published.event.clone()
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => panic!("the engine stopped"),
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {name} event"))
    }

    fn insert(&self) {
        self.backend.readers.insert(None, CARD).unwrap();
    }

    fn remove(&self) {
        self.backend.readers.remove(None).unwrap();
    }

    /// Inserts the card and returns its session once the engine announced it.
    async fn inserted(&mut self) -> uuid::Uuid {
        self.insert();
        match self.until("card-inserted").await {
            EngineEvent::CardInserted { session, .. } => session,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_read_that_ends_after_its_card_left_is_dropped() {
    let mut h = Harness::start(|_| {}).await;
    let open = h.backend.arm();
    let session = h.inserted().await;
    assert!(matches!(
        h.engine.session(session).unwrap().read_state(),
        ReadState::Reading
    ));
    // The card leaves while its read waits at the gate; the next card comes and is read.
    h.backend.connected(1).await;
    h.remove();
    h.until("card-removed").await;
    let next = h.inserted().await;
    assert_eq!(h.until("card-read").await.session(), Some(next));
    // Now the first read goes on, and succeeds: on the next citizen's card.
    open.send(()).unwrap();
    h.backend.finished(2).await;
    h.remove();
    let mut seen = Vec::new();
    loop {
        let published = h.events.recv().await.unwrap();
        let done = published.event.name() == "card-removed";
        seen.push(published.event.clone());
        if done {
            break;
        }
    }
    assert!(
        seen.iter().all(|e| e.session() != Some(session)),
        "the ended session's read announced something: {seen:?}"
    );
    assert_eq!(
        h.engine.session(session).err(),
        Some(EngineError::SessionEnded)
    );
    assert!(!h
        .metrics
        .render(&h.engine.gauges())
        .contains("beid_card_reads_total{outcome=\"ok\"} 3"));
}

#[tokio::test]
async fn every_ended_session_answers_ended_however_many_came_after() {
    let mut h = Harness::start(|_| {}).await;
    let first = h.inserted().await;
    h.remove();
    h.until("card-removed").await;
    // More sessions than the 4096 ended ids the engine once remembered.
    let mut last = None;
    for _ in 0..4200 {
        h.insert();
        h.remove();
        last = h.until("card-removed").await.session();
    }
    assert_eq!(
        h.engine.session(first).err(),
        Some(EngineError::SessionEnded)
    );
    assert_eq!(
        h.engine.session(last.unwrap()).err(),
        Some(EngineError::SessionEnded)
    );
    assert_eq!(
        h.engine.session(uuid::Uuid::new_v4()).err(),
        Some(EngineError::UnknownSession)
    );
}

#[tokio::test]
async fn each_use_case_is_asked_once_per_session() {
    let service = CountingService::new(Duration::ZERO);
    let mut h = Harness::start(|s| s.advice = service.clone()).await;
    let session = h.inserted().await;
    let asks: Vec<_> = (0..10)
        .map(|_| {
            let engine = h.engine.clone();
            tokio::spawn(async move { engine.advise(session, "uitpas-kansentarief").await })
        })
        .collect();
    for ask in asks {
        assert_eq!(
            ask.await.unwrap().unwrap().advice.decision(),
            Decision::Unknown
        );
    }
    assert_eq!(service.asked.load(Ordering::SeqCst), 1);
    h.engine.advise(session, "lez-social-tariff").await.unwrap();
    assert_eq!(service.asked.load(Ordering::SeqCst), 2);
    // One advice event per use case, not per caller.
    h.until("advice").await;
    h.until("advice").await;
    h.remove();
    assert_eq!(h.until("card-removed").await.session(), Some(session));
    // The next card is a new citizen: asked again.
    let next = h.inserted().await;
    h.engine.advise(next, "uitpas-kansentarief").await.unwrap();
    assert_eq!(service.asked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn removing_the_card_aborts_its_automatic_advice() {
    let service = CountingService::new(Duration::from_secs(60));
    let mut h = Harness::start(|s| {
        s.advice = service.clone();
        s.auto_advice = vec!["uitpas-kansentarief".into()];
    })
    .await;
    let session = h.inserted().await;
    h.until("card-read").await;
    // The question is under way (it would take a minute).
    reached(&service.asked, 1).await;
    h.remove();
    h.until("card-removed").await;
    // The question was dropped with the session.
    reached(&service.dropped, 1).await;
    assert_eq!(
        h.engine.session(session).err(),
        Some(EngineError::SessionEnded)
    );
    // No advice was ever announced for it.
    while let Ok(published) = h.events.try_recv() {
        assert_ne!(published.event.name(), "advice", "{:?}", published.event);
    }
}

#[tokio::test]
async fn a_failed_audit_write_is_counted_and_the_citizen_still_gets_an_advice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let log =
        crate::audit::AuditLog::open(state.join("audit.jsonl"), state.join("audit.key")).unwrap();
    let mut h = Harness::start(|s| s.audit = Some(Arc::new(log))).await;
    // The state directory goes away under the running log: every append now fails.
    std::fs::remove_dir_all(&state).unwrap();
    let session = h.inserted().await;
    let decided = h
        .engine
        .advise(session, "uitpas-kansentarief")
        .await
        .unwrap();
    assert_eq!(decided.advice.decision(), Decision::Eligible);
    let failures = h
        .metrics
        .render(&h.engine.gauges())
        .lines()
        .find_map(|l| l.strip_prefix("beid_audit_write_failures_total "))
        .map(|n| n.parse::<u64>().unwrap());
    // Records failed (the card session's at least) and were counted; nobody was refused.
    assert!(failures.unwrap() >= 1, "{failures:?}");
}

#[tokio::test]
async fn an_outcome_is_for_a_live_session_with_an_advice() {
    let mut h = Harness::start(|_| {}).await;
    let session = h.inserted().await;
    let granted = |use_case: &str| OutcomeInput {
        use_case: use_case.into(),
        decision: StaffDecision::Granted,
        deviation: None,
    };
    assert_eq!(
        h.engine
            .record_outcome(session, granted("uitpas-kansentarief"))
            .await
            .err(),
        Some(EngineError::AdviceNotAsked)
    );
    h.engine
        .advise(session, "uitpas-kansentarief")
        .await
        .unwrap();
    let recorded = h
        .engine
        .record_outcome(session, granted("uitpas-kansentarief"))
        .await
        .unwrap();
    assert_eq!(recorded.advice, Decision::Eligible);
    assert_eq!(h.until("outcome").await.session(), Some(session));
    h.remove();
    h.until("card-removed").await;
    assert_eq!(
        h.engine
            .record_outcome(session, granted("uitpas-kansentarief"))
            .await
            .err(),
        Some(EngineError::SessionEnded)
    );
}

#[tokio::test]
async fn a_snapshot_agrees_with_the_event_ids() {
    let mut h = Harness::start(|_| {}).await;
    let session = h.inserted().await;
    h.until("card-read").await;
    h.engine
        .advise(session, "uitpas-kansentarief")
        .await
        .unwrap();
    h.until("advice").await;
    let snapshot = h.engine.snapshot();
    // Every event so far is in the snapshot: the next one gets a later id.
    h.remove();
    let removed = loop {
        let published = h.events.recv().await.unwrap();
        if published.event.name() == "card-removed" {
            break published;
        }
    };
    assert!(removed.id > snapshot.last_event);
    assert_eq!(snapshot.sessions.len(), 1);
    assert_eq!(snapshot.sessions[0].id, session);
    assert_eq!(
        snapshot.sessions[0].decided()["uitpas-kansentarief"]
            .advice
            .decision(),
        Decision::Eligible
    );
}

#[test]
fn the_chip_check_applies_at_kiosks_by_default_and_as_configured() {
    use crate::session::CardAuthentication;
    assert_eq!(CardAuthentication::default(), CardAuthentication::Kiosk);
    assert!(CardAuthentication::Kiosk.applies(true));
    assert!(!CardAuthentication::Kiosk.applies(false));
    assert!(CardAuthentication::Always.applies(true));
    assert!(CardAuthentication::Always.applies(false));
    assert!(!CardAuthentication::Never.applies(true));
    assert!(!CardAuthentication::Never.applies(false));
}
