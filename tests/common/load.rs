//! The load scenario of issue 8, shared by `tests/load.rs` (short, in the suite) and
//! `benches/load.rs` (release figures): the agent in-process over real sockets, with two
//! simulated readers reading cards one after the other, `subscribers` SSE clients counting
//! every event, and `rate` API requests a second spread over 25 POS clients. `start` and
//! `percentile` serve `benches/agent.rs` too.

// Each includer uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beid_agent::advice::{self as rules, SimulatedSettings, UpstreamSettings};
use beid_agent::api::{self, AppState, Client, Clients, Scope};
use beid_agent::metrics::Metrics;
use beid_agent::session::{Engine, EngineEvent, EngineSettings};
use beid_agent::sim::SimulatedReaders;
use tokio::sync::watch;

/// POS clients; the agent allows each 50 requests a second.
pub const CLIENTS: usize = 25;
/// Requests outstanding at once in [`readers_at_rate`]: far more than a counter PC's POS
/// ever has, well within the agent's connection budget beside the subscribers.
pub const IN_FLIGHT: usize = 256;
const READERS: [&str; 2] = ["Simulated reader 1", "Simulated reader 2"];

pub struct LoadSpec {
    pub subscribers: usize,
    pub rate: u32,
    pub duration: Duration,
    /// The simulated rule service: its latency and failure rate.
    pub upstream: SimulatedSettings,
}

#[derive(Debug)]
pub struct LoadReport {
    pub requests: usize,
    pub failures: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Card cycles (insert, read, advice, remove) during the load.
    pub cycles: usize,
    /// Events each subscriber had to see: four a cycle.
    pub expected_events: usize,
    /// Per subscriber, the events it saw, by name.
    pub seen: Vec<BTreeMap<String, usize>>,
    /// The advice each card got: (card, decision) → count.
    pub decisions: BTreeMap<(String, String), usize>,
}

impl LoadReport {
    /// "Not eligible" for a card the rule service calls eligible: what a failing upstream
    /// must never cause.
    pub fn false_noes(&self) -> usize {
        self.decisions
            .iter()
            .filter(|((card, decision), _)| card == "gen-1.8-ec" && decision == "NotEligible")
            .map(|(_, count)| count)
            .sum()
    }

    /// Subscribers that saw other than exactly the expected events.
    pub fn subscribers_with_losses(&self) -> usize {
        self.seen
            .iter()
            .filter(|counts| {
                counts.values().sum::<usize>() != self.expected_events
                    || counts.contains_key("card-error")
                    || counts.contains_key("reader-error")
                    || counts.contains_key("events-missed")
            })
            .count()
    }
}

pub fn token(i: usize) -> String {
    format!("load-client-{i:04}-0123456789-0123456789")
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The agent in-process on a loopback port: simulated readers (with the T=0 wire-time
/// model or not), advice asked at once or not, the `CLIENTS` POS clients.
pub async fn start(
    readers: &[&str],
    wire_time: bool,
    auto_advice: bool,
) -> (String, Engine, Arc<SimulatedReaders>) {
    start_with(
        readers,
        wire_time,
        auto_advice,
        SimulatedSettings::default(),
    )
    .await
}

/// [`start`] with this simulated rule service.
pub async fn start_with(
    readers: &[&str],
    wire_time: bool,
    auto_advice: bool,
    upstream: SimulatedSettings,
) -> (String, Engine, Arc<SimulatedReaders>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let source = Arc::new(SimulatedReaders::new(readers, wire_time));
    let settings = EngineSettings {
        advice: rules::build(&UpstreamSettings::Simulated(upstream)).unwrap(),
        auto_advice: if auto_advice {
            vec!["uitpas-kansentarief".into()]
        } else {
            Vec::new()
        },
        ..EngineSettings::simulated(None).unwrap()
    };
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(source.clone(), settings, metrics.clone()).unwrap();
    let clients = (0..CLIENTS)
        .map(|i| Client::new(&format!("c{i}"), &token(i), vec![Scope::Advice], vec![]))
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = AppState::new(engine.clone(), Clients::new(clients), metrics, port)
        .with_simulator(Some(source.clone()));
    tokio::spawn(api::serve(listener, state, std::future::pending()));
    (format!("http://127.0.0.1:{port}"), engine, source)
}

/// One SSE subscriber: counts events by name until it has seen `target` of them (the target
/// is known once the cards stop) or the stream goes quiet for 10 s.
async fn subscribe(
    http: reqwest::Client,
    base: String,
    token: String,
    mut target: watch::Receiver<usize>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> BTreeMap<String, usize> {
    let ticket: serde_json::Value = http
        .post(format!("{base}/v1/events/ticket"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut stream = http
        .get(format!(
            "{base}/v1/events?ticket={}",
            ticket["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let _ = ready.send(()).await;
    let mut counts = BTreeMap::<String, usize>::new();
    let mut buffer = String::new();
    loop {
        if counts.values().sum::<usize>() >= *target.borrow() {
            return counts;
        }
        tokio::select! {
            chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk()) => {
                let Ok(Ok(Some(chunk))) = chunk else { return counts };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    // The snapshot that opens every stream is not one of the counted
                    // card events.
                    let name = block.lines().find_map(|l| l.strip_prefix("event: "));
                    if let Some(name) = name.filter(|name| *name != "snapshot") {
                        *counts.entry(name.to_owned()).or_default() += 1;
                    }
                }
            }
            _ = target.changed() => {}
        }
    }
}

/// `GET /v1/readers` at `rate` requests a second for `duration`, spread over the `CLIENTS`
/// tokens, each due on time whatever the answers before it: the latencies from when each was
/// due (sorted) and how many were not 200.
///
/// At most [`IN_FLIGHT`] requests are outstanding; one due beyond that waits for a place (and
/// its wait counts in its latency). Unbounded, a stall of the machine (a busy CI runner)
/// would turn 500 requests a second into thousands of simultaneous connections, past the
/// agent's connection budget, which rightly refuses them: the test would measure the stall,
/// not the agent.
pub async fn readers_at_rate(
    http: &reqwest::Client,
    base: &str,
    rate: u32,
    duration: Duration,
) -> (Vec<Duration>, usize) {
    let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = tokio::time::Instant::now();
    let places = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let place = places.clone().acquire_owned().await.unwrap();
        let request = http
            .get(format!("{base}/v1/readers"))
            .bearer_auth(token(i % CLIENTS));
        requests.push(tokio::spawn(async move {
            let status = request.send().await.map(|r| r.status().as_u16());
            drop(place);
            (due.elapsed(), status)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failures = 0;
    for request in requests {
        let (latency, status) = request.await.unwrap();
        if !matches!(status, Ok(200)) {
            failures += 1;
        }
        latencies.push(latency);
    }
    latencies.sort();
    (latencies, failures)
}

/// Runs the scenario.
pub async fn run(spec: LoadSpec) -> LoadReport {
    // Cards are read at a real card's pace (the T=0 wire-time model): one after the other,
    // as fast as citizens could possibly insert them.
    let (base, engine, simulator) = start_with(&READERS, true, true, spec.upstream.clone()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(spec.subscribers + 64)
        .build()
        .unwrap();

    // Subscribers first, all connected before anything happens.
    let (target_tx, target_rx) = watch::channel(usize::MAX);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(spec.subscribers);
    let subscribers: Vec<_> = (0..spec.subscribers)
        .map(|i| {
            tokio::spawn(subscribe(
                http.clone(),
                base.clone(),
                token(i % CLIENTS),
                target_rx.clone(),
                ready_tx.clone(),
            ))
        })
        .collect();
    for _ in 0..spec.subscribers {
        ready_rx.recv().await.unwrap();
    }

    // Cards: each reader in turn, insert → advice → remove, for the whole duration.
    let driver = {
        let engine = engine.clone();
        let duration = spec.duration;
        tokio::spawn(async move {
            let mut events = engine.subscribe();
            let started = Instant::now();
            let mut cycles = 0;
            let mut decisions = BTreeMap::<(String, String), usize>::new();
            while started.elapsed() < duration {
                let reader = READERS[cycles % READERS.len()];
                let card = if cycles % 2 == 0 {
                    "gen-1.8-ec"
                } else {
                    "gen-1.7-rsa2048"
                };
                simulator.insert(Some(reader), card).unwrap();
                let decision = loop {
                    let published = events.recv().await.unwrap();
                    if let EngineEvent::Advice { decision, .. } = &published.event {
                        break format!("{decision:?}");
                    }
                };
                *decisions.entry((card.to_owned(), decision)).or_default() += 1;
                simulator.remove(Some(reader)).unwrap();
                loop {
                    let published = events.recv().await.unwrap();
                    if published.event.name() == "card-removed" {
                        break;
                    }
                }
                cycles += 1;
            }
            (cycles, decisions)
        })
    };

    let (latencies, failures) = readers_at_rate(&http, &base, spec.rate, spec.duration).await;

    let (cycles, decisions) = driver.await.unwrap();
    let expected_events = cycles * 4;
    target_tx.send_replace(expected_events);
    let mut seen = Vec::with_capacity(subscribers.len());
    for subscriber in subscribers {
        seen.push(subscriber.await.unwrap());
    }
    LoadReport {
        requests: latencies.len(),
        failures,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap(),
        cycles,
        expected_events,
        seen,
        decisions,
    }
}
