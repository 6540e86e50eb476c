//! The API's connections: how many the agent holds at once, how long each may stay without
//! doing anything, and which one gives way when the budget is full.
//!
//! Every local process can connect to the loopback API, so a hostile one can try to hold
//! connections until the agent has no file descriptor left for pcscd, the audit log or the
//! POS. Three rules:
//!
//! - **Deadlines** ([`Deadlines`], enforced by [`Connections::reap`]): a request head must
//!   be complete within 5 s of its first byte; a connection that never authenticated is
//!   closed after 5 s without a request (silent or slow-header connections); an
//!   authenticated one may stay idle between requests for a minute, so that a POS between
//!   two citizens keeps its connection rather than queue for a new one behind an attacker's.
//! - **A budget** well below the process's descriptor limit (the rest is reserved for card
//!   I/O, the audit log and the upstream). Closing connections counted until their socket is
//!   really closed, so the descriptors in use never exceed the budget by more than a few.
//! - **Eviction**: a full budget never turns a POS away while someone else merely holds a
//!   connection: the newcomer takes the place of an idle connection, those that never
//!   authenticated first, least recently active first. Connections with a request in flight
//!   (an event stream included) are never evicted; only when every connection is busy is a
//!   newcomer refused. Evictions are not paced: a process reconnecting as fast as it is
//!   evicted fills the kernel's accept queue, and a POS's new connection waits its turn in
//!   that queue, so the agent drains it as fast as it can (`benches/exhaustion.rs`: with
//!   evictions paced at 500 a second, 352 of a POS's 900 requests went unanswered; unpaced,
//!   none).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// "No request head has started."
const NO_HEAD: u64 = u64::MAX;

/// Connections closing at once (their socket not yet released) before the accept loop waits
/// for them: bounds the descriptors above the budget.
pub(super) const MAX_CLOSING: usize = 32;

/// How long a connection may do nothing, by what it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From the first byte of a request head to its end.
    pub head: Duration,
    /// Without a request, for a connection that never authenticated.
    pub unauthenticated_idle: Duration,
    /// Between requests, for a connection that authenticated (keep-alive).
    pub authenticated_idle: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(5),
            unauthenticated_idle: Duration::from_secs(5),
            authenticated_idle: Duration::from_secs(60),
        }
    }
}

/// Why the agent closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Evicted for a newcomer: idle, and no request on it ever authenticated.
    EvictedUnauthenticated,
    /// Evicted for a newcomer: idle between requests of a client that authenticated.
    EvictedIdle,
    /// A deadline passed (a head too slow, a connection idle too long).
    TimedOut,
}

impl From<Closing> for crate::metrics::ConnectionClosed {
    fn from(closing: Closing) -> Self {
        match closing {
            Closing::EvictedUnauthenticated => Self::EvictedUnauthenticated,
            Closing::EvictedIdle => Self::EvictedIdle,
            Closing::TimedOut => Self::TimedOut,
        }
    }
}

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
    /// When the first byte of the next request head came ([`NO_HEAD`]: none yet).
    head_started_ms: AtomicU64,
    /// Failed authentications on this connection (per-connection back-off).
    failed_authentications: AtomicU32,
    epoch: Instant,
    closing: AtomicBool,
    close: Notify,
}

impl Connection {
    fn new(id: u64, epoch: Instant) -> Self {
        Self {
            id,
            in_flight: AtomicU32::new(0),
            authenticated: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(millis_since(epoch)),
            head_started_ms: AtomicU64::new(NO_HEAD),
            failed_authentications: AtomicU32::new(0),
            epoch,
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// Bytes came from the client: between requests, they start a request head.
    pub fn bytes_arrived(&self) {
        if !self.is_busy() {
            let _ = self.head_started_ms.compare_exchange(
                NO_HEAD,
                millis_since(self.epoch),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// A request arrived (its head is complete): the connection is busy until the guard
    /// (kept by the response body) is dropped.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(NO_HEAD, Ordering::Release);
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

    /// Resolves once the agent decided to close this connection (evicted or timed out).
    pub async fn closing(&self) {
        let notified = self.close.notified();
        if self.closing.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Marks it for closing; `false` if it already was. Callers count it in
    /// [`Connections::closing`].
    fn close(&self) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        // A stored permit: the connection's task may not be waiting yet.
        self.close.notify_one();
        true
    }

    /// Whether a deadline has passed at `now_ms`.
    fn overdue(&self, now_ms: u64, deadlines: &Deadlines) -> bool {
        if self.is_busy() {
            return false;
        }
        let since = |at: u64| Duration::from_millis(now_ms.saturating_sub(at));
        let head = self.head_started_ms.load(Ordering::Acquire);
        if head != NO_HEAD && since(head) >= deadlines.head {
            return true;
        }
        let idle = since(self.last_active_ms.load(Ordering::Acquire));
        if self.is_authenticated() {
            idle >= deadlines.authenticated_idle
        } else {
            idle >= deadlines.unauthenticated_idle
        }
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

/// What the budget decided for a newly accepted connection.
#[derive(Debug)]
pub enum Admission {
    /// Served; `evicted` says whose place it took, if any.
    Admitted {
        slot: Slot,
        evicted: Option<Closing>,
    },
    /// Every connection in the budget has a request in flight.
    Refused,
}

/// The open connections and their budget.
#[derive(Debug)]
pub struct Connections {
    budget: usize,
    deadlines: Deadlines,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Connections in `open` marked for closing (their socket not released yet). Changed
    /// only with `open` locked: marked by [`Connections::close`], released by [`Slot`]'s
    /// drop, which counts down only a connection that was marked.
    closing: AtomicUsize,
    /// Woken whenever a connection's socket is released.
    released: Notify,
}

impl Connections {
    pub fn new(budget: usize, deadlines: Deadlines) -> Arc<Self> {
        Arc::new(Self {
            budget: budget.max(1),
            deadlines,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            closing: AtomicUsize::new(0),
            released: Notify::new(),
        })
    }

    /// Connections whose socket is open, closing ones included.
    pub fn open(&self) -> usize {
        self.table().len()
    }

    fn closing(&self) -> usize {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether a newcomer would have to evict a connection.
    #[cfg(test)]
    fn full(&self) -> bool {
        self.open().saturating_sub(self.closing()) >= self.budget
    }

    /// Marks `connection` for closing and counts it; called with the table locked, so the
    /// count never runs behind a connection released meanwhile.
    fn close(&self, connection: &Connection) -> bool {
        let marked = connection.close();
        if marked {
            self.closing.fetch_add(1, Ordering::AcqRel);
        }
        marked
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
        let live = open.len().saturating_sub(self.closing());
        if live >= self.budget {
            let victim = open
                .values()
                .filter(|c| !c.is_busy() && !c.is_closing())
                .min_by_key(|c| c.eviction_rank());
            let Some(victim) = victim else {
                return Admission::Refused;
            };
            evicted = Some(if victim.is_authenticated() {
                Closing::EvictedIdle
            } else {
                Closing::EvictedUnauthenticated
            });
            self.close(victim);
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

    /// Closes every connection past a deadline; how many.
    pub fn reap(&self) -> usize {
        let now = millis_since(self.epoch);
        // Under the table's lock, as every change of the closing count.
        let open = self.table();
        open.values()
            .filter(|c| !c.is_closing() && c.overdue(now, &self.deadlines))
            .filter(|c| self.close(c))
            .count()
    }

    /// Resolves once few enough connections are still closing for another to be accepted.
    pub async fn room_to_accept(&self) {
        loop {
            let released = self.released.notified();
            if self.closing() < MAX_CLOSING {
                return;
            }
            released.await;
        }
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let released = self.released.notified();
            if self.open() == 0 {
                return;
            }
            released.await;
        }
    }
}

/// A connection's place in the budget, given up when dropped (after its socket is closed).
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
        let mut open = self.connections.table();
        open.remove(&self.connection.id);
        if self.connection.is_closing() {
            self.connections.closing.fetch_sub(1, Ordering::AcqRel);
        }
        drop(open);
        self.connections.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn admitted(connections: &Arc<Connections>) -> (Slot, Option<Closing>) {
        match connections.admit() {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Refused => panic!("refused"),
        }
    }

    fn budget(n: usize) -> Arc<Connections> {
        Connections::new(n, Deadlines::default())
    }

    #[test]
    fn a_full_budget_evicts_the_oldest_unauthenticated_idle_connection_first() {
        let connections = budget(3);
        let (pos, _) = admitted(&connections);
        pos.connection().mark_authenticated();
        let (silent, _) = admitted(&connections);
        let (slow, _) = admitted(&connections);
        assert_eq!(connections.open(), 3);

        let (newcomer, evicted) = admitted(&connections);
        assert_eq!(evicted, Some(Closing::EvictedUnauthenticated));
        assert!(silent.connection().is_closing());
        assert!(!pos.connection().is_closing());
        assert!(!slow.connection().is_closing());
        // Counted until its socket is released.
        assert_eq!(connections.open(), 4);
        drop(silent);
        assert_eq!(connections.open(), 3);
        drop((newcomer, slow));
    }

    #[test]
    fn busy_connections_stay_and_an_all_busy_budget_refuses() {
        let connections = budget(2);
        let (stream, _) = admitted(&connections);
        let _streaming = stream.connection().begin_request();
        let (pos, _) = admitted(&connections);
        pos.connection().mark_authenticated();
        // The authenticated idle one goes: the busy one never does.
        let (newcomer, evicted) = admitted(&connections);
        assert_eq!(evicted, Some(Closing::EvictedIdle));
        assert!(pos.connection().is_closing());
        let _busy = newcomer.connection().begin_request();
        assert!(matches!(connections.admit(), Admission::Refused));
    }

    #[test]
    fn a_closed_connection_frees_its_place() {
        let connections = budget(1);
        let (first, _) = admitted(&connections);
        let _busy = first.connection().begin_request();
        assert!(matches!(connections.admit(), Admission::Refused));
        drop(first);
        let (_second, evicted) = admitted(&connections);
        assert_eq!(evicted, None);
    }

    #[test]
    fn deadlines_depend_on_what_a_connection_does() {
        let deadlines = Deadlines::default();
        let connection = Connection::new(0, Instant::now());
        let at = |seconds: u64| seconds * 1000;
        // Silent and never authenticated: 5 s.
        assert!(!connection.overdue(at(4), &deadlines));
        assert!(connection.overdue(at(5), &deadlines));
        // Authenticated and idle: a minute.
        connection.mark_authenticated();
        assert!(!connection.overdue(at(59), &deadlines));
        assert!(connection.overdue(at(60), &deadlines));
        // A head begun at 10 s must be whole by 15 s, authenticated or not.
        connection.head_started_ms.store(at(10), Ordering::Release);
        assert!(!connection.overdue(at(14), &deadlines));
        assert!(connection.overdue(at(15), &deadlines));
        // A request in flight has no deadline here (the handlers bound their own work).
        let arc = Arc::new(connection);
        let _busy = arc.begin_request();
        assert!(!arc.overdue(at(1000), &deadlines));
    }

    /// Whether the accept loop may accept now (one poll, no waiting).
    fn room_now(connections: &Connections) -> bool {
        connections.room_to_accept().now_or_never().is_some()
    }

    #[test]
    fn the_closing_count_follows_marks_and_releases_only() {
        let at_once = Deadlines {
            head: Duration::ZERO,
            unauthenticated_idle: Duration::ZERO,
            authenticated_idle: Duration::ZERO,
        };
        let connections = Connections::new(1, at_once);
        let (evicted, _) = admitted(&connections);
        let (reaped, _) = admitted(&connections);
        assert_eq!(connections.closing(), 1);
        // The reaper marks the live one only: the evicted one is counted once.
        assert_eq!(connections.reap(), 1);
        assert_eq!(connections.closing(), 2);
        assert_eq!(connections.reap(), 0);
        assert_eq!(connections.closing(), 2);
        // Both closing: a newcomer evicts no one and is not counted.
        let (newcomer, none) = admitted(&connections);
        assert_eq!(none, None);
        assert!(connections.full());
        // A connection its client closed was never marked: the count stays.
        drop(newcomer);
        assert_eq!(connections.closing(), 2);
        assert!(!connections.full());
        drop(evicted);
        assert_eq!(connections.closing(), 1);
        drop(reaped);
        assert_eq!(connections.closing(), 0);
        assert_eq!(connections.open(), 0);
    }

    #[tokio::test]
    async fn many_closing_connections_hold_the_accept_loop_until_one_is_released() {
        let connections = budget(1);
        let mut slots: Vec<Slot> = (0..=MAX_CLOSING)
            .map(|_| admitted(&connections).0)
            .collect();
        assert_eq!(connections.closing(), MAX_CLOSING);
        assert!(!room_now(&connections));
        // The oldest, evicted first, releases its socket.
        drop(slots.remove(0));
        assert_eq!(connections.closing(), MAX_CLOSING - 1);
        assert!(room_now(&connections));
    }

    #[tokio::test]
    async fn a_closing_connection_is_told_even_before_it_waits() {
        let connections = budget(1);
        let (first, _) = admitted(&connections);
        let (_second, _) = admitted(&connections);
        tokio::time::timeout(Duration::from_secs(5), first.connection().closing())
            .await
            .expect("told");
    }
}
