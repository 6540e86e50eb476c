//! API clients: who holds which token, with which scopes, from which browser origins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use serde::Deserialize;

/// What a client may see (docs/local-api.md "Scopes").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    Advice,
    Identity,
    NationalNumber,
    /// Prometheus' scrape of `/metrics` (counts only, no personal data).
    Metrics,
}

/// A configured client. The token itself is not kept: only its SHA-256, compared in
/// constant time.
#[derive(Debug, Clone)]
pub struct Client {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub origins: Vec<String>,
    token_digest: [u8; 32],
}

impl Client {
    pub fn new(name: &str, token: &str, scopes: Vec<Scope>, origins: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            scopes,
            origins,
            token_digest: digest(token),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Equal-length comparison without early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured clients and their rate limits.
pub struct Clients {
    /// Replaced whole by [`Clients::replace`] (a reload); the rate limits stay.
    clients: RwLock<Arc<[Arc<Client>]>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rate_per_second: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Clients {
    pub fn new(clients: Vec<Client>) -> Self {
        Self {
            clients: RwLock::new(clients.into_iter().map(Arc::new).collect()),
            buckets: Mutex::new(HashMap::new()),
            rate_per_second: 50.0,
            burst: 100.0,
        }
    }

    /// Another rate limit per client than 50 requests a second with bursts of 100 (load
    /// tests and fuzzing send faster than a POS ever does).
    pub fn with_rate_limit(mut self, rate_per_second: f64, burst: f64) -> Self {
        self.rate_per_second = rate_per_second;
        self.burst = burst;
        self
    }

    /// The clients in force now.
    fn current(&self) -> Arc<[Arc<Client>]> {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a new list of clients in force (a reload: a rotated token, a client added or
    /// removed). Requests from then on are judged against it; a request already admitted,
    /// an event stream already open and a ticket already issued keep the client they had.
    /// The rate limits of clients that remain (by name) carry on.
    pub fn replace(&self, clients: Vec<Client>) {
        let clients: Arc<[Arc<Client>]> = clients.into_iter().map(Arc::new).collect();
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.retain(|name, _| clients.iter().any(|c| &c.name == name));
        }
        *self.clients.write().unwrap_or_else(PoisonError::into_inner) = clients;
    }

    /// The client whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<std::sync::Arc<Client>> {
        let presented = digest(token);
        // Look at every client, so the time taken does not tell which one matched.
        self.current().iter().fold(None, |found, client| {
            match same(&client.token_digest, &presented) {
                true => Some(client.clone()),
                false => found,
            }
        })
    }

    /// Whether any client accepts this origin (CORS preflights carry no token).
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.current().iter().any(|c| c.allows_origin(origin))
    }

    /// Token bucket per client: `true` when this request may go on.
    pub fn admit(&self, client: &Client) -> bool {
        self.admit_at(client, Instant::now())
    }

    /// [`Clients::admit`] at the instant `now` (tests pass their own clock).
    fn admit_at(&self, client: &Client, now: Instant) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(client.name.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate_per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by mutation testing: an accumulator that XORs instead of ORs the differences
    /// lets two equal differences cancel out, and a wrong digest would pass.
    #[test]
    fn digests_differing_anywhere_are_not_the_same() {
        let a = [0u8; 32];
        assert!(same(&a, &a));
        let mut b = a;
        b[0] = 1;
        b[31] = 1;
        assert!(!same(&a, &b), "two equal differences must not cancel");
        for i in 0..32 {
            let mut c = a;
            c[i] = 0x80;
            assert!(!same(&a, &c), "byte {i}");
        }
    }

    #[test]
    fn tokens_identify_clients_and_rates_are_limited() {
        let clients = Clients::new(vec![
            Client::new(
                "pos",
                "a-long-token-for-the-pos-client-0001",
                vec![Scope::Advice],
                vec!["https://pos.example".into()],
            ),
            Client::new(
                "kiosk",
                "a-long-token-for-the-kiosk-client-002",
                vec![Scope::Advice],
                vec![],
            ),
        ]);
        let pos = clients
            .authenticate("a-long-token-for-the-pos-client-0001")
            .unwrap();
        assert_eq!(pos.name, "pos");
        assert!(clients
            .authenticate("a-long-token-for-the-pos-client-0002")
            .is_none());
        assert!(pos.allows_origin("https://pos.example"));
        assert!(!pos.allows_origin("https://pos.example.attacker"));
        // At one instant: exactly the burst, then nothing; a second later, the rate.
        let now = Instant::now();
        let admitted = (0..150).filter(|_| clients.admit_at(&pos, now)).count();
        assert_eq!(admitted, 100);
        let later = now + std::time::Duration::from_secs(1);
        let admitted = (0..150).filter(|_| clients.admit_at(&pos, later)).count();
        assert_eq!(admitted, 50);
    }

    /// `admit`, which the server calls with the real clock, spends the client's bucket:
    /// with no refill, a burst of two admits two requests and refuses the third, whatever
    /// the time (found by mutation testing: an `admit` that always said yes survived).
    #[test]
    fn admit_spends_the_clients_bucket() {
        let token = "a-long-token-for-the-pos-client-0001";
        let clients = Clients::new(vec![Client::new("pos", token, vec![Scope::Advice], vec![])])
            .with_rate_limit(0.0, 2.0);
        // Test code: the token was configured two lines up; a `None` fails the test.
        let pos = clients.authenticate(token).unwrap();
        let admitted: Vec<bool> = (0..3).map(|_| clients.admit(&pos)).collect();
        assert_eq!(admitted, [true, true, false]);
    }

    #[test]
    fn a_replaced_list_is_judged_at_once_and_the_rate_limits_carry_on() {
        let old = "a-long-token-for-the-pos-client-0001";
        let new = "a-long-token-for-the-pos-client-0003";
        let clients = Clients::new(vec![Client::new("pos", old, vec![Scope::Advice], vec![])]);
        let pos = clients.authenticate(old).unwrap();
        // The bucket emptied at one instant (bounded: a limiter that admits everything must
        // fail here, not hang).
        let now = Instant::now();
        let admitted = (0..150).filter(|_| clients.admit_at(&pos, now)).count();
        assert_eq!(admitted, 100);
        clients.replace(vec![Client::new(
            "pos",
            new,
            vec![Scope::Advice],
            vec!["https://pos.example".into()],
        )]);
        assert!(
            clients.authenticate(old).is_none(),
            "the old token is refused"
        );
        let rotated = clients.authenticate(new).unwrap();
        assert!(rotated.allows_origin("https://pos.example"));
        assert!(clients.any_allows_origin("https://pos.example"));
        assert!(
            !clients.admit_at(&rotated, now),
            "a reload does not refill the client's bucket"
        );
        clients.replace(Vec::new());
        assert!(clients.authenticate(new).is_none());
    }
}
