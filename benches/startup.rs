//! Start-up time to ready and resident memory of `beid-agent serve --simulate`: the time from
//! spawning the process to its systemd `READY=1` (the API listens, the card engine runs), and
//! VmRSS when idle and after 20 cards with advice.
//!
//! cargo bench --bench startup     (target: idle RSS ≤ 20 MB)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_beid-agent");

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

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
        let mut child = Command::new(AGENT)
            .args([
                "serve",
                "--simulate",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(dir.path().join(format!("state-{run}")))
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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
        idle.push(rss_kib(child.id()));
        if run == 0 {
            busy = after_cards(&mut child, &dir.path().join(format!("state-{run}")));
        }
        let _ = child.kill();
        let _ = child.wait();
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

/// Inserts and removes 20 cards, asking an advice for each; the RSS afterwards.
fn after_cards(child: &mut std::process::Child, state: &std::path::Path) -> u64 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let base = banner.trim().rsplit(' ').next().unwrap().to_owned();
    let token = std::fs::read_to_string(state.join("demo-token")).unwrap();
    let token = token.trim().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        for round in 0..20 {
            let card = if round % 2 == 0 {
                "gen-1.8-ec"
            } else {
                "gen-1.7-rsa2048"
            };
            let inserted: serde_json::Value = http
                .post(format!("{base}/v1/simulator/insert"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "card": card }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let session = inserted["session"].as_str().unwrap();
            let advice: serde_json::Value = http
                .post(format!("{base}/v1/sessions/{session}/advice"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "useCase": "uitpas-kansentarief" }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(advice["decision"].is_string(), "{advice}");
            http.post(format!("{base}/v1/simulator/remove"))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
        }
    });
    rss_kib(child.id())
}
