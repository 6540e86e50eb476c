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
use futures_util::stream::{self, Stream};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::clients::{Client, Scope};
use super::error::ApiError;
use super::guard::Caller;
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
) -> Result<Json<serde_json::Value>, ApiError> {
    if !client.has(Scope::Advice) {
        return Err(ApiError::SCOPE);
    }
    let ticket = state.tickets.issue(client);
    let expires = OffsetDateTime::now_utc() + TICKET_LIFETIME;
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(Json(
        serde_json::json!({"ticket": ticket, "expiresAt": expires}),
    ))
}

pub async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = state.engine.subscribe();
    let stream = stream::unfold(events, |mut events| async move {
        let event = match events.recv().await {
            Ok(event) => Event::default().event(event.name).data(event.json()),
            // A slow subscriber missed events: say so rather than silently skip.
            Err(RecvError::Lagged(missed)) => Event::default().event("error").data(format!(
                "{{\"code\":\"events_missed\",\"missed\":{missed}}}"
            )),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), events))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
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
