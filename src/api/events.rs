//! Live events over Server-Sent Events. `EventSource` cannot send an Authorization header,
//! so a bearer-authenticated call buys a single-use ticket valid 30 s, and the stream is
//! opened with it: the long-lived token never goes into a URL.

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
    let ticket = state.tickets.issue(client);
    Ok(Json(TicketView {
        ticket,
        expires_at: super::views::rfc3339(OffsetDateTime::now_utc() + TICKET_LIFETIME),
    }))
}

pub async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let frames = frames(state).map(|frame| Ok(frame.into_event()));
    Sse::new(frames).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
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
    fn an_expired_ticket_is_refused() {
        // A lifetime of zero: the ticket has expired by the time anyone redeems it.
        let tickets = Tickets::with_lifetime(Duration::ZERO);
        let ticket = tickets.issue(client());
        assert!(tickets.redeem(&ticket).is_none());
    }
}
