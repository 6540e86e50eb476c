//! The accept loop, our own rather than `axum::serve`'s: that one has no header-read
//! timeout, no idle timeout and no bound on connections, so a local process holding about a
//! thousand silent connections took every file descriptor the agent had, and pcscd, the
//! audit log and the POS failed with it.
//!
//! Here:
//! - HTTP/1.1 only (what browsers and POS clients speak to `http://` on loopback). hyper's
//!   protocol sniffing for HTTP/2 reads the first bytes without any timeout, so a silent
//!   connection would sit there for ever.
//! - Deadlines and a budget ([`super::connections`]): 5 s for a request head from its first
//!   byte, 5 s without a request for a connection that never authenticated, a minute
//!   between requests for one that did; a budget of connections well below the descriptor
//!   limit (the rest reserved for card I/O, the audit log and the upstream); when it is full
//!   an idle connection gives way to the newcomer, one that never authenticated first, and
//!   only when every connection is busy is a newcomer refused (`503`). hyper's own
//!   header-read timeout, which also runs between requests, backs the minute up.
//! - At shutdown requests in flight get [`DRAIN`] to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use super::connections::{Admission, Closing, Connection, Connections, Deadlines, InFlight, Slot};
use super::error::ApiError;
use super::views::ErrorView;
use super::AppState;
use crate::metrics::Metrics;

/// How long requests in flight may take to finish once shutdown has begun. An event
/// stream never finishes by itself: without this bound, the open stream every POS holds
/// would keep `systemctl stop` (and so every package upgrade) waiting until systemd's stop
/// timeout kills the agent. Clients see their stream end and subscribe again.
const DRAIN: Duration = Duration::from_secs(2);

/// At most this many API connections, whatever the descriptor limit: a counter's POS,
/// counter page and kiosk page need a handful.
pub const MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept for everything but the API: pcscd contexts, the audit log and its head,
/// the RRN key cache, the upstream's connections, journald, the runtime. The agent uses about
/// 30 of them (measured: `BENCHMARKS.md`, "Hostile neighbours").
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// The largest request head: browsers send about 1 KiB to the agent (no cookies on loopback).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Connections the kernel queues until the loop accepts them (capped by
/// `net.core.somaxconn`): a flood of connections must not crowd out the POS's.
const BACKLOG: u32 = 4096;

/// How often deadlines are checked: they are met to within this.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// The limits of one API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections held at once.
    pub connections: usize,
    pub deadlines: Deadlines,
}

impl ServeLimits {
    /// [`MAX_CONNECTIONS`], or fewer when this process's descriptor limit leaves less room
    /// beside the [`RESERVED_DESCRIPTORS`].
    pub fn for_this_process() -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        Self::for_descriptor_limit(limit)
    }

    fn for_descriptor_limit(limit: u64) -> Self {
        let room = limit.saturating_sub(RESERVED_DESCRIPTORS);
        Self {
            connections: usize::try_from(room)
                .unwrap_or(usize::MAX)
                .clamp(16, MAX_CONNECTIONS),
            deadlines: Deadlines::default(),
        }
    }
}

/// A listening socket for the API with a deep accept queue ([`BACKLOG`]).
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Serves the API on `listener` until `shutdown` completes (systemd may pass the listener),
/// then lets requests in flight finish for at most [`DRAIN`]. Limits from the process's
/// descriptor limit ([`ServeLimits::for_this_process`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, ServeLimits::for_this_process()).await
}

/// [`serve`] with these limits.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let metrics = state.metrics.clone();
    let router = super::router(state);
    let connections = Connections::new(limits.connections, limits.deadlines);
    let reaper = tokio::spawn(reap(connections.clone(), metrics.clone()));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // A backstop: the reaper closes a connection at its deadline, hyper a little later.
        .header_read_timeout(limits.deadlines.authenticated_idle + 2 * REAP_EVERY)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(64);
    let (stopping, stop) = watch::channel(false);
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = async {
                // Connections being closed hold descriptors until their task has run.
                connections.room_to_accept().await;
                listener.accept().await
            } => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                accept_errors.back_off(&error).await;
                continue;
            }
        };
        match connections.admit() {
            Admission::Refused => {
                metrics.api_connection_refused();
                refuse(stream);
            }
            Admission::Admitted { slot, evicted } => {
                metrics.api_connection_opened();
                if let Some(closing) = evicted {
                    metrics.api_connection_closed_by_agent(closing.into());
                }
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    slot,
                    router.clone(),
                    http.clone(),
                    stop.clone(),
                    metrics.clone(),
                ));
            }
        }
    }
    drop(listener);
    reaper.abort();
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(DRAIN, connections.all_closed()).await;
    Ok(())
}

/// One connection, until the client closes it, a timeout does, the budget evicts it, or the
/// agent stops.
async fn serve_connection(
    stream: TcpStream,
    slot: Slot,
    router: Router,
    http: http1::Builder,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let connection = slot.connection().clone();
    let service = {
        let connection = connection.clone();
        hyper::service::service_fn(move |request| {
            handle(router.clone(), connection.clone(), request)
        })
    };
    let watched = Watched {
        stream,
        connection: connection.clone(),
    };
    {
        let served = http.serve_connection(TokioIo::new(watched), service);
        tokio::pin!(served);
        tokio::select! {
            served = served.as_mut() => {
                // hyper's own header-read timeout, the reaper's backstop, closed it.
                if served.is_err_and(|error| error.is_timeout()) {
                    metrics.api_connection_closed_by_agent(Closing::TimedOut.into());
                }
            }
            () = connection.closing() => {}
            _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                served.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = served.as_mut() => {}
                    () = connection.closing() => {}
                }
            }
        }
        // Leaving this block drops the connection, which closes its socket at once: before
        // the slot gives its place back, so the budget counts every open descriptor.
    }
    metrics.api_connection_closed();
    drop(slot);
}

/// Closes connections past their deadlines, every [`REAP_EVERY`].
async fn reap(connections: Arc<Connections>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for _ in 0..connections.reap() {
            metrics.api_connection_closed_by_agent(Closing::TimedOut.into());
        }
    }
}

/// A connection's socket, telling the connection when bytes arrive (they start a request
/// head, which has [`Deadlines::head`] to be whole).
struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.bytes_arrived();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router's answer to one request; the connection counts as busy until the response
/// body is dropped (after its last byte, or when the client leaves an event stream).
async fn handle(
    router: Router,
    connection: Arc<Connection>,
    mut request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Tracked>, Infallible> {
    let in_flight = connection.begin_request();
    request
        .extensions_mut()
        .insert(super::connections::ConnectionHandle(connection));
    let response = router.oneshot(request).await?;
    Ok(response.map(|body| Tracked {
        body,
        _in_flight: in_flight,
    }))
}

/// A response body that keeps its connection marked busy while it lives.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What a refused connection is told: every connection is busy.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let error = ApiError::CONNECTIONS;
    let body = serde_json::to_string(&ErrorView {
        error: error.code,
        message: error.message,
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\nretry-after: 5\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Answers `503` and closes, without waiting for anything: the request already sent is read
/// first (closing on unread data would reset the connection before the client reads the
/// answer), and the answer fits in a fresh socket's buffer.
fn refuse(stream: TcpStream) {
    let mut scratch = [0u8; 4096];
    while matches!(stream.try_read(&mut scratch), Ok(n) if n > 0) {}
    let _ = stream.try_write(&REFUSAL);
}

/// Failed `accept` calls: a connection the client reset before it was accepted is simply
/// skipped; running out of descriptors (something else holds them) is logged once a minute
/// and waited out briefly, since accepting again at once would spin.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
}

impl AcceptErrors {
    async fn back_off(&mut self, error: &std::io::Error) {
        use rustix::io::Errno;
        let out_of_resources = [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
            .iter()
            .any(|errno| error.raw_os_error() == Some(errno.raw_os_error()));
        if !out_of_resources {
            return;
        }
        if self
            .last_logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            self.last_logged = Some(Instant::now());
            tracing::error!(%error, "the API cannot accept connections: the process is out of descriptors or memory");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::connections::MAX_CLOSING;

    #[test]
    fn the_budget_leaves_room_for_card_io_and_the_audit_log() {
        // systemd's default soft limit: the budget shrinks, the reserve stays.
        let limits = ServeLimits::for_descriptor_limit(1024);
        assert_eq!(limits.connections, 1024 - 256);
        assert_eq!(
            ServeLimits::for_descriptor_limit(65_536).connections,
            MAX_CONNECTIONS
        );
        assert!(limits.deadlines.head <= Duration::from_secs(5));
        assert!(limits.deadlines.unauthenticated_idle <= Duration::from_secs(5));
    }

    #[test]
    fn the_units_open_file_limit_holds_the_whole_budget_and_the_reserve() {
        let unit = include_str!("../../systemd/beid-agent.service");
        let limit: u64 = unit
            .lines()
            .find_map(|line| line.strip_prefix("LimitNOFILE="))
            .expect("the unit sets LimitNOFILE")
            .trim()
            .parse()
            .expect("a number of files");
        assert_eq!(
            ServeLimits::for_descriptor_limit(limit).connections,
            MAX_CONNECTIONS
        );
        // Connections still closing hold their descriptors on top of the budget.
        let needed = u64::try_from(MAX_CONNECTIONS + MAX_CLOSING).unwrap() + RESERVED_DESCRIPTORS;
        assert!(limit >= needed, "LimitNOFILE={limit} < {needed}");
    }

    #[test]
    fn a_refusal_is_our_json_error() {
        let text = String::from_utf8(REFUSAL.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "too_many_connections");
    }
}
