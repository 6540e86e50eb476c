//! Soak: 1000 insert → advice → remove cycles against one `serve --simulate` process (the
//! in-process simulated readers: the PC/SC path is soaked by the reliability tests, and vpcd's
//! 400 ms insertion poll would make 1000 cycles take a quarter of an hour). Every cycle must
//! get its advice and every ended session must answer 410; the agent's resident memory must
//! stay flat. Paced under the API's per-client rate limit (50 requests/s).

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const CYCLES: usize = 1000;
const WARM_UP: usize = 100;
const CARDS: [&str; 2] = ["gen-1.8-ec", "gen-1.7-rsa2048"];

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cards_later_memory_is_flat_and_every_card_got_its_advice() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::AGENT)
        .args([
            "serve",
            "--simulate",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let pid = child.id();
    let _served = Served(child);
    let base = banner
        .trim()
        .rsplit(' ')
        .next()
        .filter(|b| b.starts_with("http://"))
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    let token = std::fs::read_to_string(dir.path().join("demo-token")).unwrap();
    let token = token.trim();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    // Three requests a cycle, under the client's 50 requests a second (bursts of 100).
    let mut pace = tokio::time::interval(Duration::from_millis(21));

    let mut rss = Vec::new();
    let mut decisions = std::collections::BTreeMap::<String, usize>::new();
    let mut previous: Option<String> = None;
    for cycle in 0..CYCLES {
        if cycle == WARM_UP {
            rss.push((cycle, rss_kib(pid)));
        }
        let card = CARDS[cycle % CARDS.len()];
        pace.tick().await;
        let inserted = http
            .post(format!("{base}/v1/simulator/insert"))
            .bearer_auth(token)
            .json(&json!({ "card": card }))
            .send()
            .await
            .unwrap();
        assert_eq!(inserted.status(), 200, "cycle {cycle}");
        let inserted: Value = inserted.json().await.unwrap();
        let session = inserted["session"]
            .as_str()
            .unwrap_or_else(|| panic!("cycle {cycle}: {inserted}"))
            .to_owned();
        assert_ne!(previous.as_deref(), Some(session.as_str()));
        pace.tick().await;
        let advice: Value = http
            .post(format!("{base}/v1/sessions/{session}/advice"))
            .bearer_auth(token)
            .json(&json!({ "useCase": "uitpas-kansentarief" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let decision = advice["decision"]
            .as_str()
            .unwrap_or_else(|| panic!("cycle {cycle}: {advice}"))
            .to_owned();
        *decisions.entry(decision).or_default() += 1;
        pace.tick().await;
        let removed = http
            .post(format!("{base}/v1/simulator/remove"))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), 204, "cycle {cycle}");
        previous = Some(session);
    }
    rss.push((CYCLES, rss_kib(pid)));
    let gone = http
        .get(format!("{base}/v1/sessions/{}", previous.unwrap()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);

    println!(
        "decisions over {CYCLES} cycles: {decisions:?}; resident memory (cycle, KiB): {rss:?}"
    );
    assert_eq!(decisions.values().sum::<usize>(), CYCLES);
    assert!(
        !decisions.contains_key("unknown"),
        "the simulated service knows every fixture card: {decisions:?}"
    );
    let (start, end) = (rss[0].1, rss[1].1);
    // Flat: what 900 more card sessions may add is the bounded list of ended ids and the
    // allocator's slack, well under a megabyte.
    assert!(
        end <= start + 1024,
        "resident memory grew from {start} KiB to {end} KiB over {} cycles",
        CYCLES - WARM_UP
    );
}
