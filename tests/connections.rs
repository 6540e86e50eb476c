//! Issue 12, finding 1: another local process holding connections to the API. The agent as
//! deployed (`serve --config` through pcscd and the mTLS upstream, under systemd's default
//! limit of 1024 open files) keeps answering the POS, reading cards and writing its audit
//! log while 1100 silent connections are held; silent, slow-header and idle connections are
//! closed by the agent itself. The budget's eviction order is checked in-process.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent::{Launch, ServedAgent, TOKEN};
use common::raw::{self, closed_by_agent};
use common::simulated::SimulatedServe;
use common::upstream::{self, Pki, Reply, Upstream};
use common::Pcscd;

use std::sync::Arc;
use std::time::Duration;

use beid_agent::api::{self, AppState, Client, Clients, Deadlines, Scope, ServeLimits};
use beid_agent::metrics::Metrics;
use beid_agent::session::{Engine, EngineSettings};
use beid_agent::sim::SimulatedReaders;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_held_by_another_process_starve_neither_the_pos_nor_the_cards() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let pcscd = Pcscd::start();
    // What systemd gives a unit without LimitNOFILE=.
    let launch = Launch {
        open_files: Some(1024),
        ..Launch::default()
    };
    let agent = ServedAgent::start_launched(&pcscd, &server.url, &pki, &[], "", &launch);
    let mut events = agent.events().await;
    let address = agent.base.trim_start_matches("http://").to_owned();

    // The attack: more silent connections than the agent has descriptors.
    let mut held = Vec::new();
    for _ in 0..1100 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }

    // The POS, on fresh connections: every request answered.
    let pos = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..20 {
        let response = pos
            .get(format!("{}/v1/readers", agent.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the POS is answered during the attack");
        assert_eq!(response.status(), 200);
    }

    // A card is read through pcscd, advised, and audited.
    let card = pcscd.insert("gen-1.8-ec");
    let inserted = events.until("card-inserted").await;
    let session = inserted["session"].as_str().unwrap().to_owned();
    let read = events.until("card-read").await;
    assert_eq!(read["authentic"], true, "{read}");
    let advice = events.until("advice").await;
    assert_eq!(advice["session"], session.as_str());
    assert_eq!(advice["decision"], "eligible");
    tokio::task::spawn_blocking(move || card.remove())
        .await
        .unwrap();
    let audit = std::fs::read_to_string(agent.dir.path().join("state/audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"type\":\"advice\"") && l.contains(&session)),
        "the advice is in the audit log"
    );

    // The silent connections do not stay.
    closed_by_agent(held.last_mut().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_by_the_agent() {
    let agent = SimulatedServe::start();
    let address = agent.base.trim_start_matches("http://").to_owned();

    let mut silent = TcpStream::connect(&address).await.unwrap();

    // A head that never ends: one header byte every half second.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /v1/readers HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        for _ in 0..120 {
            tick.tick().await;
            if slow.write_all(b"x").await.is_err() {
                return true;
            }
        }
        false
    });

    // A kept-alive connection after one answered request that needs no token.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    idle.write_all(request.as_bytes()).await.unwrap();

    closed_by_agent(&mut silent).await;
    let answered = String::from_utf8_lossy(&closed_by_agent(&mut idle).await).into_owned();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(
        tokio::time::timeout(raw::WAIT, trickle)
            .await
            .expect("the slow head was cut off")
            .unwrap(),
        "the agent read a head byte by byte for a minute"
    );
}

/// The agent in-process with a budget of `budget` connections and deadlines long enough
/// never to interfere.
async fn in_process(budget: usize) -> (String, AppState) {
    let long = Duration::from_secs(600);
    in_process_with(
        budget,
        Deadlines {
            head: long,
            unauthenticated_idle: long,
            authenticated_idle: long,
        },
    )
    .await
}

async fn in_process_with(budget: usize, deadlines: Deadlines) -> (String, AppState) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let source = Arc::new(SimulatedReaders::new(&["Simulated reader 1"], false));
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(
        source,
        EngineSettings::simulated(None).unwrap(),
        metrics.clone(),
    )
    .unwrap();
    let clients = Clients::new(vec![Client::new(
        "pos",
        TOKEN,
        vec![Scope::Advice, Scope::Metrics],
        vec![],
    )]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = AppState::new(engine, clients, metrics.clone(), port);
    let limits = ServeLimits {
        connections: budget,
        deadlines,
    };
    tokio::spawn(api::serve_with(
        listener,
        state.clone(),
        std::future::pending(),
        limits,
    ));
    (format!("127.0.0.1:{port}"), state)
}

/// One request on a kept-alive raw connection: the answer's status.
async fn ask(stream: &mut TcpStream, address: &str, token: &str) -> Option<u16> {
    let request = format!(
        "GET /v1/readers HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    raw::exchange(stream, &request)
        .await
        .map(|answer| answer.status)
}

#[tokio::test]
async fn a_full_budget_evicts_connections_that_never_authenticated_first() {
    let (address, state) = in_process(8).await;
    let mut pos = TcpStream::connect(&address).await.unwrap();
    assert_eq!(ask(&mut pos, &address, TOKEN).await, Some(200));

    // Forty silent connections for eight places: the oldest silent ones give way.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut fresh = TcpStream::connect(&address).await.unwrap();
    assert_eq!(ask(&mut fresh, &address, TOKEN).await, Some(200));
    // The POS's kept-alive connection, authenticated, was never the one to go.
    assert_eq!(ask(&mut pos, &address, TOKEN).await, Some(200));
    closed_by_agent(&mut silent[0]).await;
    let text = state.metrics_text();
    assert!(
        text.lines().any(|l| {
            l.strip_prefix("beid_api_connections_closed_total{reason=\"evicted_unauthenticated\"} ")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 30)
        }),
        "{text}"
    );
    assert!(text.contains("beid_api_connections_closed_total{reason=\"evicted_idle\"} 0"));
}

/// A POS between two citizens keeps its authenticated connection longer than a stranger
/// keeps a silent one, and loses it too once idle long enough.
#[tokio::test]
async fn an_authenticated_connection_may_idle_longer_than_a_stranger() {
    let (address, state) = in_process_with(
        64,
        Deadlines {
            head: Duration::from_secs(1),
            unauthenticated_idle: Duration::from_secs(1),
            authenticated_idle: Duration::from_secs(3),
        },
    )
    .await;
    let mut pos = TcpStream::connect(&address).await.unwrap();
    assert_eq!(ask(&mut pos, &address, TOKEN).await, Some(200));
    let mut stranger = TcpStream::connect(&address).await.unwrap();
    closed_by_agent(&mut stranger).await;
    // The stranger is gone; the POS, idle as long, is still served on its connection.
    assert_eq!(ask(&mut pos, &address, TOKEN).await, Some(200));
    closed_by_agent(&mut pos).await;
    let text = state.metrics_text();
    assert!(
        text.contains("beid_api_connections_closed_total{reason=\"timed_out\"} 2"),
        "{text}"
    );
}
