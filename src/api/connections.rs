//! The API's connection budget: how many connections the agent holds at once, and which one
//! gives way when the budget is full.
//!
//! Every local process can connect to the loopback API, so a hostile one can try to hold
//! connections until the agent has no file descriptor left for pcscd, the audit log or the
//! POS. The budget is well below the process's descriptor limit (the rest is reserved for
//! card I/O, the audit log and the upstream), and a full budget never turns a POS away while
//! someone else merely holds a connection: the newcomer takes the place of an idle
//! connection, those that never authenticated first (a silent or slow-header connection is
//! one of them), oldest activity first. Connections with a request in flight (an event
//! stream included) are never evicted; only when every connection is busy is a newcomer
//! refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// One accepted connection, as the budget and the request guard see it.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    /// Requests whose response is not finished (an event stream stays in flight).
    in_flight: AtomicU32,
    /// Whether any request on it presented a valid token or ticket.
    authenticated: AtomicBool,
    /// Milliseconds since the budget's epoch: when it opened or last finished a response.
    last_active_ms: AtomicU64,
    /// Failed authentications on this connection (per-connection back-off).
    failed_authentications: AtomicU32,
    epoch: Instant,
    evicted: AtomicBool,
    evict: Notify,
}

impl Connection {
    fn new(id: u64, epoch: Instant) -> Self {
        Self {
            id,
            in_flight: AtomicU32::new(0),
            authenticated: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(millis_since(epoch)),
            failed_authentications: AtomicU32::new(0),
            epoch,
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    /// A request arrived: the connection is busy until the guard (kept by the response
    /// body) is dropped.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    pub fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// A request on it presented a valid token or ticket.
    pub fn mark_authenticated(&self) {
        self.authenticated.store(true, Ordering::Release);
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// Counts a failed authentication; returns how many this connection has had.
    pub fn authentication_failed(&self) -> u32 {
        self.failed_authentications.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn failed_authentications(&self) -> u32 {
        self.failed_authentications.load(Ordering::Acquire)
    }

    /// Resolves once the budget chose this connection to make room for another.
    pub async fn evicted(&self) {
        let notified = self.evict.notified();
        if self.evicted.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        // A stored permit: the connection's task may not be waiting yet.
        self.evict.notify_one();
    }

    /// Eviction order: never-authenticated before authenticated, then least recently active.
    fn eviction_rank(&self) -> (bool, u64, u64) {
        (
            self.is_authenticated(),
            self.last_active_ms.load(Ordering::Acquire),
            self.id,
        )
    }
}

/// The connection a request came on, put into every request by the server (absent when the
/// router is called directly, as tests and the fuzzer do).
#[derive(Debug, Clone)]
pub struct ConnectionHandle(pub Arc<Connection>);

/// A request in flight on a connection; the connection is idle again once every one of
/// these is dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let connection = &self.0;
        connection
            .last_active_ms
            .store(millis_since(connection.epoch), Ordering::Release);
        connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Why a connection was closed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Idle, and no request on it ever authenticated (silent, slow headers, failed tokens).
    Unauthenticated,
    /// Idle between requests of a client that authenticated.
    Idle,
}

/// What the budget decided for a newly accepted connection.
#[derive(Debug)]
pub enum Admission {
    /// Served; `evicted` says whose place it took, if any.
    Admitted {
        slot: Slot,
        evicted: Option<Eviction>,
    },
    /// Every connection in the budget has a request in flight.
    Refused,
}

/// The open connections and their budget.
#[derive(Debug)]
pub struct Connections {
    budget: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Woken whenever a connection closes (shutdown waits for the last one).
    closed: Notify,
}

impl Connections {
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(Self {
            budget: budget.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            closed: Notify::new(),
        })
    }

    pub fn open(&self) -> usize {
        self.table().len()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a newly accepted connection into the budget, evicting an idle one when the
    /// budget is full.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new(id, self.epoch));
        let mut open = self.table();
        let mut evicted = None;
        if open.len() >= self.budget {
            let victim = open
                .values()
                .filter(|c| !c.is_busy())
                .min_by_key(|c| c.eviction_rank())
                .cloned();
            let Some(victim) = victim else {
                return Admission::Refused;
            };
            open.remove(&victim.id);
            evicted = Some(if victim.is_authenticated() {
                Eviction::Idle
            } else {
                Eviction::Unauthenticated
            });
            victim.evict();
        }
        open.insert(id, connection.clone());
        Admission::Admitted {
            slot: Slot {
                connection,
                connections: self.clone(),
            },
            evicted,
        }
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// A connection's place in the budget, given up when dropped (the connection's task ends).
#[derive(Debug)]
pub struct Slot {
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Slot {
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.table().remove(&self.connection.id);
        self.connections.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(connections: &Arc<Connections>) -> (Slot, Option<Eviction>) {
        match connections.admit() {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn a_full_budget_evicts_the_oldest_unauthenticated_idle_connection_first() {
        let connections = Connections::new(3);
        let (pos, _) = admitted(&connections);
        pos.connection().mark_authenticated();
        let (silent, _) = admitted(&connections);
        let (slow, _) = admitted(&connections);
        assert_eq!(connections.open(), 3);

        let (newcomer, evicted) = admitted(&connections);
        assert_eq!(evicted, Some(Eviction::Unauthenticated));
        assert!(silent.connection().evicted.load(Ordering::Acquire));
        assert!(!pos.connection().evicted.load(Ordering::Acquire));
        assert!(!slow.connection().evicted.load(Ordering::Acquire));
        assert_eq!(connections.open(), 3);
        drop((newcomer, slow, silent));
    }

    #[test]
    fn busy_connections_stay_and_an_all_busy_budget_refuses() {
        let connections = Connections::new(2);
        let (stream, _) = admitted(&connections);
        let _streaming = stream.connection().begin_request();
        let (pos, _) = admitted(&connections);
        pos.connection().mark_authenticated();
        // The authenticated idle one goes: the busy one never does.
        let (newcomer, evicted) = admitted(&connections);
        assert_eq!(evicted, Some(Eviction::Idle));
        assert!(pos.connection().evicted.load(Ordering::Acquire));
        let _busy = newcomer.connection().begin_request();
        assert!(matches!(connections.admit(), Admission::Refused));
    }

    #[test]
    fn a_closed_connection_frees_its_place() {
        let connections = Connections::new(1);
        let (first, _) = admitted(&connections);
        let _busy = first.connection().begin_request();
        assert!(matches!(connections.admit(), Admission::Refused));
        drop(first);
        let (_second, evicted) = admitted(&connections);
        assert_eq!(evicted, None);
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told_even_before_it_waits() {
        let connections = Connections::new(1);
        let (first, _) = admitted(&connections);
        let (_second, _) = admitted(&connections);
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            first.connection().evicted(),
        )
        .await
        .expect("told");
    }
}
