//! Soak: 1000 insert → advice → remove cycles against one `serve --simulate` process (the
//! in-process simulated readers: the PC/SC path is soaked by the reliability tests, and vpcd's
//! 400 ms insertion poll would make 1000 cycles take a quarter of an hour). Every cycle must
//! get its advice, exactly as the fixture says, and every ended session must answer 410. Its
//! resident memory is printed; its growth is a benchmark figure (`cargo bench --bench
//! startup`), not an assertion here. Paced under the API's per-client rate limit.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::simulated;

use simulated::SimulatedServe;

const CYCLES: usize = 1000;
const WARM_UP: usize = 100;
const CARDS: [&str; 2] = ["gen-1.8-ec", "gen-1.7-rsa2048"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cards_later_every_card_got_its_own_advice() {
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
    // The two cards alternate: gen-1.8-ec is eligible, gen-1.7-rsa2048 is not.
    let expected: std::collections::BTreeMap<String, usize> = [
        ("eligible".to_owned(), CYCLES / 2),
        ("not_eligible".to_owned(), CYCLES / 2),
    ]
    .into();
    assert_eq!(decisions, expected);
}
