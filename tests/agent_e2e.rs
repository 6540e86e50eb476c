//! The whole agent as deployed: `beid-agent serve --config` with real pcscd + vpcd, the
//! simulated card, and a real HTTPS rule service requiring a client certificate. Measures
//! insertion → advice event, and checks the agent's whole log for the national number.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent;
use common::upstream;

use std::time::Instant;

use agent::{ServedAgent, TOKEN};
use common::{expected, Pcscd};
use upstream::{Pki, Reply, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insertion_to_advice_through_pcscd_and_the_https_upstream() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let pcscd = Pcscd::start();
    let mut served = ServedAgent::start(&pcscd, &server.url, &pki, "");
    let mut events = served.events().await;

    let mut latencies = Vec::new();
    let rounds: [(&str, &[&str]); 4] = [
        ("gen-1.8-ec", &[]),
        ("gen-1.7-rsa2048", &[]),
        ("gen-1.8-ec", &[]),
        ("gen-1.8-ec", &["--wire-time"]),
    ];
    for (round, (card, extra)) in rounds.iter().enumerate() {
        let inserted_at = Instant::now();
        let inserted = pcscd.insert_with(card, 0, extra);
        let event = events.until("card-inserted").await;
        let seen_at = Instant::now();
        let session = event["session"].as_str().unwrap().to_owned();
        let read = events.until("card-read").await;
        assert_eq!(read["authentic"], true, "{card}");
        let advice = events.until("advice").await;
        let latency = inserted_at.elapsed();
        let agent_share = seen_at.elapsed();
        assert_eq!(advice["session"], session.as_str());
        assert_eq!(advice["decision"], "eligible");
        latencies.push(latency);
        eprintln!(
            "round {round} {card} {extra:?}: insertion -> advice event {latency:?}; \
             card-inserted event -> advice event {agent_share:?} (the rest is vpcd's 0-400 ms poll)"
        );
        tokio::task::spawn_blocking(move || inserted.remove())
            .await
            .unwrap();
        let removed = events.until("card-removed").await;
        assert_eq!(removed["session"], session.as_str());
        let gone = served
            .http
            .post(format!("{}/v1/sessions/{session}/advice", served.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"useCase": "uitpas-kansentarief"}))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 410);
    }
    // The upstream was asked once per card, with the card's own number.
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    assert_eq!(
        bodies[1]["nationalNumber"],
        expected("gen-1.7-rsa2048")["national_number"]
    );

    // The agent's whole log (trace level, JSON): no national number in any line.
    let log = served.stop();
    assert!(log.contains("card session"), "logging was not on: {log}");
    for card in ["gen-1.8-ec", "gen-1.7-rsa2048"] {
        let number = expected(card)["national_number"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !log.contains(&number),
            "{card}: national number in the agent's log"
        );
    }
    drop(pcscd);
}
