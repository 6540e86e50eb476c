//! Soak: 1000 insert → advice → remove cycles against one `serve --simulate` process (the
//! in-process simulated readers: the PC/SC path is soaked by the reliability tests, and vpcd's
//! 400 ms insertion poll would make 1000 cycles take a quarter of an hour). Every cycle must
//! get its advice and every ended session must answer 410; the agent's resident memory must
//! stay flat. Paced under the API's per-client rate limit (50 requests/s).

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::simulated;

use simulated::SimulatedServe;

const CYCLES: usize = 1000;
const WARM_UP: usize = 100;
const CARDS: [&str; 2] = ["gen-1.8-ec", "gen-1.7-rsa2048"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cards_later_memory_is_flat_and_every_card_got_its_advice() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let agent = SimulatedServe::start();
    let http = reqwest::Client::new();
    let mut pace = simulated::pace();

    let mut rss = Vec::new();
    let mut decisions = std::collections::BTreeMap::<String, usize>::new();
    let mut previous: Option<String> = None;
    for cycle in 0..CYCLES {
        if cycle == WARM_UP {
            rss.push((cycle, agent.rss_kib()));
        }
        let (session, decision) = agent
            .visit(&http, CARDS[cycle % CARDS.len()], &mut pace)
            .await;
        assert_ne!(previous.as_deref(), Some(session.as_str()), "cycle {cycle}");
        *decisions.entry(decision).or_default() += 1;
        previous = Some(session);
    }
    rss.push((CYCLES, agent.rss_kib()));
    let gone = http
        .get(format!("{}/v1/sessions/{}", agent.base, previous.unwrap()))
        .bearer_auth(&agent.token)
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
