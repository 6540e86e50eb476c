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
                        break vec![Event::default()
                            .id(published.id.to_string())
                            .event(published.event.name())
                            .data(published.json())];
                    }
                    // A slow subscriber missed events: say so, then start again from a
                    // fresh snapshot rather than leave it with a wrong picture.
                    Err(RecvError::Lagged(missed)) => {
                        let notice = json_event(
                            "events-missed",
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
            Some((
                stream::iter(batch.into_iter().map(Ok)),
                (events, last_seen, state),
            ))
        },
    )
    .flatten();
    let stream = stream::once(std::future::ready(Ok(first))).chain(rest);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The `snapshot` event, and the id of the last engine event it holds.
fn snapshot(state: &AppState) -> (Event, u64) {
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
    let event = json_event("snapshot", &view).id(snapshot.last_event.to_string());
    (event, snapshot.last_event)
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_else(|_| "{}".into()))
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
