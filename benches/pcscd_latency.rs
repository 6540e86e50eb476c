//! Insertion → advice through real pcscd + vpcd with the simulated card, the T=0 wire-time
//! model off and on: the agent's engine on PC/SC readers, the simulated rule service.
//! Reports median and p99 of (a) card-inserted event → advice event (the agent's share)
//! and (b) card connected to vpcd → advice event (adds vpcd's 0-400 ms insertion poll).
//!
//! cargo bench --bench pcscd_latency        (30 cards each way; needs pcscd + vpcd)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use beid_agent::metrics::Metrics;
use beid_agent::reader::PcscBackend;
use beid_agent::session::{Engine, EngineSettings};
use common::Pcscd;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn next(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<beid_agent::session::Published>>,
    name: &str,
) {
    let wait = async {
        loop {
            if events.recv().await.unwrap().event.name() == name {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {name} event"));
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 2 } else { 30 };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pcscd = Pcscd::start();
    // libpcsclite reads this once per process: before any PC/SC call.
    std::env::set_var("PCSCLITE_CSOCK_NAME", pcscd.socket());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let settings = EngineSettings {
            device_id: "bench".into(),
            auto_advice: vec!["uitpas-kansentarief".into()],
            ..EngineSettings::simulated(None).unwrap()
        };
        let engine = Engine::start(Arc::new(PcscBackend::default()), settings, Arc::new(Metrics::default())).unwrap();
        let mut events = engine.subscribe();
        for wire_time in [false, true] {
            let extra: &[&str] = if wire_time { &["--wire-time"] } else { &[] };
            let (mut agent, mut total) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                let card = if round % 2 == 0 { "gen-1.8-ec" } else { "gen-1.7-rsa2048" };
                let connected = Instant::now();
                let inserted = pcscd.insert_with(card, 0, extra);
                next(&mut events, "card-inserted").await;
                let seen = Instant::now();
                next(&mut events, "advice").await;
                agent.push(seen.elapsed());
                total.push(connected.elapsed());
                tokio::task::block_in_place(|| inserted.remove());
                next(&mut events, "card-removed").await;
            }
            agent.sort();
            total.sort();
            println!(
                "through pcscd, wire-time model {}: {rounds} cards; card-inserted -> advice p50 {:?} p99 {:?}; \
                 connected -> advice p50 {:?} p99 {:?}",
                if wire_time { "on " } else { "off" },
                percentile(&agent, 0.5),
                percentile(&agent, 0.99),
                percentile(&total, 0.5),
                percentile(&total, 0.99)
            );
        }
    });
}
