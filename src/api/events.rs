//! Live events over Server-Sent Events. `EventSource` cannot send an Authorization header,
//! so a bearer-authenticated call buys a single-use ticket valid 30 s, and the stream is
//! opened with it: the long-lived token never goes into a URL.
//!
//! An open stream holds a connection for as long as the client wants, so streams are capped
//! per client ([`STREAMS_PER_CLIENT`], `429`) and in all ([`STREAMS_IN_ALL`], `503`, well
//! below the connection budget): one client cannot take every stream, and streams cannot
//! take every connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::clients::{Client, Scope};
use super::error::ApiError;
use super::guard::Caller;
use super::views::{EventsMissedView, SessionSummary, SnapshotView, TicketView};
use super::AppState;

const TICKET_LIFETIME: Duration = Duration::from_secs(30);

/// Open event streams one client may have: a counter PC's POS and counter page, a few
/// tabs, and a stream or two its browser has left but the agent has not noticed yet.
pub const STREAMS_PER_CLIENT: usize = 16;
/// Open event streams in all: a quarter of the smallest connection budget.
pub const STREAMS_IN_ALL: usize = 256;

/// The open event streams, by client.
pub struct Streams {
    open: Mutex<StreamCounts>,
    per_client: usize,
    in_all: usize,
}

#[derive(Default)]
struct StreamCounts {
    by_client: HashMap<String, usize>,
    total: usize,
}

impl Default for Streams {
    fn default() -> Self {
        Self::with_caps(STREAMS_PER_CLIENT, STREAMS_IN_ALL)
    }
}

impl Streams {
    pub fn with_caps(per_client: usize, in_all: usize) -> Self {
        Self {
            open: Mutex::new(StreamCounts::default()),
            per_client,
            in_all,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, StreamCounts> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `client` may open one more stream now: the refusal otherwise.
    fn room_for(&self, counts: &StreamCounts, client: &str) -> Result<(), ApiError> {
        if counts.by_client.get(client).copied().unwrap_or(0) >= self.per_client {
            Err(ApiError::STREAMS_CLIENT)
        } else if counts.total >= self.in_all {
            Err(ApiError::STREAMS_AGENT)
        } else {
            Ok(())
        }
    }

    /// A place for one more stream of `client`, held until the permit is dropped (the
    /// stream ends: the client left or the agent stops).
    fn open(self: &Arc<Self>, client: &str) -> Result<StreamPermit, ApiError> {
        let mut counts = self.counts();
        self.room_for(&counts, client)?;
        *counts.by_client.entry(client.to_owned()).or_default() += 1;
        counts.total += 1;
        Ok(StreamPermit {
            streams: self.clone(),
            client: client.to_owned(),
        })
    }

    /// Refuses a ticket early when its stream would be refused.
    fn check(&self, client: &str) -> Result<(), ApiError> {
        self.room_for(&self.counts(), client)
    }
}

/// One open stream's place.
struct StreamPermit {
    streams: Arc<Streams>,
    client: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut counts = self.streams.counts();
        if let Some(open) = counts.by_client.get_mut(&self.client) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.by_client.remove(&self.client);
            }
        }
        counts.total = counts.total.saturating_sub(1);
    }
}

/// Counts a refused stream and answers its error.
fn refused(state: &AppState, error: ApiError) -> ApiError {
    state
        .metrics
        .api_event_stream_refused(error == ApiError::STREAMS_AGENT);
    error
}

pub struct Tickets {
    open: Mutex<HashMap<String, (Arc<Client>, Instant)>>,
    lifetime: Duration,
}

impl Default for Tickets {
    fn default() -> Self {
        Self::with_lifetime(TICKET_LIFETIME)
    }
}

impl Tickets {
    fn with_lifetime(lifetime: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    fn issue(&self, client: Arc<Client>) -> String {
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        if let Ok(mut open) = self.open.lock() {
            let now = Instant::now();
            open.retain(|_, (_, expires)| *expires > now);
            open.insert(ticket.clone(), (client, now + self.lifetime));
        }
        ticket
    }

    /// The ticket's client, once: a ticket is gone after its first use or its 30 s.
    pub fn redeem(&self, ticket: &str) -> Option<Arc<Client>> {
        let (client, expires) = self.open.lock().ok()?.remove(ticket)?;
        (expires > Instant::now()).then_some(client)
    }
}

pub async fn ticket(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Json<TicketView>, ApiError> {
    if !client.has(Scope::Advice) {
        return Err(ApiError::SCOPE);
    }
    state
        .streams
        .check(&client.name)
        .map_err(|error| refused(&state, error))?;
    let ticket = state.tickets.issue(client);
    Ok(Json(TicketView {
        ticket,
        expires_at: super::views::rfc3339(OffsetDateTime::now_utc() + TICKET_LIFETIME),
    }))
}

pub async fn stream(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = state
        .streams
        .open(&client.name)
        .map_err(|error| refused(&state, error))?;
    let open = OpenStream::new(permit, state.metrics.clone());
    // The stream holds its permit: dropped (the client gone), it gives its place back.
    let frames = frames(state).map(move |frame| {
        let _held = &open;
        Ok(frame.into_event())
    });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream's permit and its count in the metrics, both given back when the stream is
/// dropped.
struct OpenStream {
    _permit: StreamPermit,
    metrics: Arc<crate::metrics::Metrics>,
}

impl OpenStream {
    fn new(permit: StreamPermit, metrics: Arc<crate::metrics::Metrics>) -> Self {
        metrics.api_event_stream_opened();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.metrics.api_event_stream_closed();
    }
}

/// One event of the stream, before it becomes SSE text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    id: Option<u64>,
    name: &'static str,
    data: String,
}

impl Frame {
    fn json(name: &'static str, id: Option<u64>, data: &impl serde::Serialize) -> Self {
        Self {
            id,
            name,
            data: serde_json::to_string(data).unwrap_or_else(|_| "{}".into()),
        }
    }

    fn into_event(self) -> Event {
        let event = Event::default().event(self.name).data(self.data);
        match self.id {
            Some(id) => event.id(id.to_string()),
            None => event,
        }
    }
}

/// The stream's frames: a snapshot, then every engine event after it with its id; after
/// `events-missed`, a fresh snapshot.
fn frames(state: AppState) -> impl Stream<Item = Frame> {
    // Subscribe before the snapshot: every event after it is then received, and those the
    // snapshot already holds are skipped by their id.
    let events = state.engine.subscribe();
    let (first, last_seen) = snapshot(&state);
    let rest = stream::unfold(
        (events, last_seen, state),
        |(mut events, mut last_seen, state)| async move {
            let batch = loop {
                match events.recv().await {
                    Ok(published) if published.id <= last_seen => continue,
                    Ok(published) => {
                        last_seen = published.id;
                        break vec![Frame {
                            id: Some(published.id),
                            name: published.event.name(),
                            data: published.json().to_owned(),
                        }];
                    }
                    // A slow subscriber missed events: say so, then start again from a
                    // fresh snapshot rather than leave it with a wrong picture.
                    Err(RecvError::Lagged(missed)) => {
                        let notice = Frame::json(
                            "events-missed",
                            None,
                            &EventsMissedView {
                                kind: "events-missed",
                                missed,
                            },
                        );
                        let (fresh, seen) = snapshot(&state);
                        last_seen = seen;
                        break vec![notice, fresh];
                    }
                    Err(RecvError::Closed) => return None,
                }
            };
            Some((stream::iter(batch), (events, last_seen, state)))
        },
    )
    .flatten();
    stream::once(std::future::ready(first)).chain(rest)
}

/// The `snapshot` frame, and the id of the last engine event it holds.
fn snapshot(state: &AppState) -> (Frame, u64) {
    let snapshot = state.engine.snapshot();
    let view = SnapshotView {
        kind: "snapshot",
        pcscd: snapshot.pcscd_up.into(),
        readers: snapshot.readers,
        sessions: snapshot
            .sessions
            .iter()
            .map(|session| SessionSummary::new(session))
            .collect(),
    };
    let frame = Frame::json("snapshot", Some(snapshot.last_event), &view);
    (frame, snapshot.last_event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Arc<Client> {
        Arc::new(Client::new(
            "kiosk",
            "a-long-token-for-the-kiosk-client-002",
            vec![Scope::Advice],
            vec![],
        ))
    }

    /// The agent with its simulated readers, in this process.
    fn simulated_state() -> (AppState, Arc<crate::sim::SimulatedReaders>) {
        let readers = Arc::new(crate::sim::SimulatedReaders::new(&["Reader"], false));
        let settings = crate::session::EngineSettings::simulated(None).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let engine =
            crate::session::Engine::start(readers.clone(), settings, metrics.clone()).unwrap();
        let clients = super::super::Clients::new(vec![]);
        let state =
            AppState::new(engine, clients, metrics, 8099).with_simulator(Some(readers.clone()));
        (state, readers)
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_resynchronised() {
        let (state, readers) = simulated_state();
        let engine = state.engine.clone();
        let mut frames = Box::pin(frames(state));
        let first = frames.next().await.unwrap();
        assert_eq!(first.name, "snapshot");
        // Far more events than the stream may buffer, while nobody reads it.
        let mut watch = engine.subscribe();
        let mut removals = 0;
        while removals < 700 {
            readers.insert(None, "gen-1.8-ec").unwrap();
            readers.remove(None).unwrap();
            // Pace on the engine itself: it has seen this card come and go.
            loop {
                match watch.recv().await {
                    Ok(published) if published.event.name() == "card-removed" => break,
                    _ => {}
                }
            }
            removals += 1;
        }
        let mut names = Vec::new();
        loop {
            let frame = frames.next().await.unwrap();
            let name = frame.name;
            names.push((name, frame));
            if name == "events-missed" {
                break;
            }
        }
        let (_, missed) = names.last().unwrap();
        assert!(missed.id.is_none());
        let missed: serde_json::Value = serde_json::from_str(&missed.data).unwrap();
        assert!(missed["missed"].as_u64().unwrap() > 0, "{missed}");
        // Then a fresh snapshot, whose id is the engine's latest.
        let fresh = frames.next().await.unwrap();
        assert_eq!(fresh.name, "snapshot");
        assert_eq!(fresh.id, Some(engine.snapshot().last_event));
    }

    #[test]
    fn a_ticket_works_once() {
        let tickets = Tickets::default();
        let ticket = tickets.issue(client());
        assert_eq!(
            tickets.redeem(&ticket).map(|c| c.name.clone()),
            Some("kiosk".into())
        );
        assert!(tickets.redeem(&ticket).is_none());
        assert!(tickets.redeem("made-up").is_none());
    }

    #[test]
    fn streams_are_capped_per_client_and_in_all() {
        let streams = Arc::new(Streams::with_caps(2, 3));
        let first = streams.open("pos").unwrap();
        let _second = streams.open("pos").unwrap();
        assert_eq!(streams.open("pos").err(), Some(ApiError::STREAMS_CLIENT));
        assert_eq!(streams.check("pos"), Err(ApiError::STREAMS_CLIENT));
        let _kiosk = streams.open("kiosk").unwrap();
        assert_eq!(streams.open("counter").err(), Some(ApiError::STREAMS_AGENT));
        drop(first);
        assert!(streams.check("counter").is_ok());
        assert!(streams.open("pos").is_ok());
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        // A lifetime of zero: the ticket has expired by the time anyone redeems it.
        let tickets = Tickets::with_lifetime(Duration::ZERO);
        let ticket = tickets.issue(client());
        assert!(tickets.redeem(&ticket).is_none());
    }
}
