//! Start-up time to ready and resident memory of `beid-agent serve --simulate`: the time from
//! spawning the process to its systemd `READY=1` (the API listens, the card engine runs),
//! VmRSS when idle and after 20 cards with advice, and (full mode) its growth from card 100
//! to card 1000: the soak's memory figure, measured here rather than asserted in a test.
//!
//! cargo bench --bench startup     (target: idle RSS ≤ 20 MB; flat over 1000 cards)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/simulated.rs"]
mod simulated;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use simulated::SimulatedServe;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full { 30 } else { 3 };
    let dir = tempfile::tempdir().unwrap();
    let mut ready = Vec::with_capacity(runs);
    let mut idle = Vec::with_capacity(runs);
    let mut busy = 0;
    for run in 0..runs {
        let socket_path = dir.path().join(format!("notify-{run}"));
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let agent = SimulatedServe::start_with_env(&[("NOTIFY_SOCKET", socket_path.as_os_str())]);
        let mut buffer = [0_u8; 512];
        loop {
            let n = socket.recv(&mut buffer).expect("READY=1 within 10 s");
            if String::from_utf8_lossy(&buffer[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        ready.push(started.elapsed());
        idle.push(agent.rss_kib());
        if run == 0 {
            busy = after_visits(&agent, 20);
            if full {
                let at_100 = after_visits(&agent, 80);
                let at_1000 = after_visits(&agent, 900);
                println!(
                    "startup: VmRSS after 100 cards {:.1} MB, after 1000 cards {:.1} MB ({:+} KiB)",
                    at_100 as f64 / 1024.0,
                    at_1000 as f64 / 1024.0,
                    at_1000 as i64 - at_100 as i64
                );
            }
        }
    }
    ready.sort();
    idle.sort_unstable();
    println!(
        "startup: spawn -> READY=1 over {runs} runs: p50 {:?}, max {:?}",
        ready[runs / 2],
        ready[runs - 1]
    );
    println!(
        "startup: idle VmRSS p50 {:.1} MB (min {:.1}, max {:.1}); after 20 cards with advice {:.1} MB",
        idle[runs / 2] as f64 / 1024.0,
        idle[0] as f64 / 1024.0,
        idle[runs - 1] as f64 / 1024.0,
        busy as f64 / 1024.0
    );
}

/// `visits` visits (insert, advice, remove); the resident memory afterwards.
fn after_visits(agent: &SimulatedServe, visits: usize) -> u64 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut pace = simulated::pace();
        for round in 0..visits {
            let card = if round % 2 == 0 {
                "gen-1.8-ec"
            } else {
                "gen-1.7-rsa2048"
            };
            agent.visit(&http, card, &mut pace).await;
        }
    });
    agent.rss_kib()
}
