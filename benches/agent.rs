//! The agent under load, in-process over real sockets: API latency at a fixed request rate,
//! and insertion → advice with the simulated readers (T=0 wire-time model off and on).
//!
//! cargo bench --bench agent            (API: 500 req/s for 10 s; 200 insertions each way)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/load.rs"]
mod load;

use std::time::{Duration, Instant};

use load::{percentile, readers_at_rate, start, token, CLIENTS};

const READER: [&str; 1] = ["Simulated reader 1"];

async fn api_at_rate(rate: u32, seconds: u64) {
    let (base, _engine, _simulator) = start(&READER, false, false).await;
    let http = reqwest::Client::new();
    // A card in the reader, so /v1/readers has a session to report.
    let insert = http
        .post(format!("{base}/v1/simulator/insert"))
        .bearer_auth(token(0))
        .json(&serde_json::json!({"card": "gen-1.8-ec"}))
        .send()
        .await
        .unwrap();
    assert_eq!(insert.status(), 200);
    let (latencies, failures) =
        readers_at_rate(&http, &base, rate, Duration::from_secs(seconds)).await;
    println!(
        "api GET /v1/readers at {rate} req/s for {seconds} s: {} requests, {failures} not 200; p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
}

async fn insertion_to_advice(wire_time: bool, rounds: usize) {
    let (base, engine, _simulator) = start(&READER, wire_time, true).await;
    let http = reqwest::Client::new();
    let mut events = engine.subscribe();
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let card = if round % 2 == 0 {
            "gen-1.8-ec"
        } else {
            "gen-1.7-rsa2048"
        };
        let started = Instant::now();
        http.post(format!("{base}/v1/simulator/insert"))
            .bearer_auth(token(round % CLIENTS))
            .json(&serde_json::json!({"card": card}))
            .send()
            .await
            .unwrap();
        loop {
            let event = events.recv().await.unwrap();
            if event.event.name() == "advice" {
                break;
            }
        }
        latencies.push(started.elapsed());
        http.post(format!("{base}/v1/simulator/remove"))
            .bearer_auth(token(round % CLIENTS))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
    }
    latencies.sort();
    println!(
        "insertion -> advice event, simulated readers, wire-time model {}: {rounds} cards, p50 {:?}, p99 {:?}",
        if wire_time { "on " } else { "off" },
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
}

fn main() {
    // `cargo test --benches` runs benches with --bench absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if quick {
            api_at_rate(50, 1).await;
            insertion_to_advice(false, 4).await;
        } else {
            api_at_rate(500, 10).await;
            insertion_to_advice(false, 200).await;
            insertion_to_advice(true, 200).await;
        }
    });
}
