//! 200 SSE subscribers and 500 API requests a second while cards are read: no request fails,
//! no subscriber misses an event. Latency figures come from the release build:
//! `cargo bench --bench load` (BENCHMARKS.md); this debug-build run only prints them.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::load;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscribers_and_500_requests_a_second_lose_nothing() {
    let report = load::run(load::LoadSpec {
        subscribers: 200,
        rate: 500,
        duration: Duration::from_secs(3),
        upstream: Default::default(),
    })
    .await;
    println!(
        "{} requests, {} failed, p50 {:?} p99 {:?} max {:?}; {} card cycles, {} events to each of {} subscribers",
        report.requests,
        report.failures,
        report.p50,
        report.p99,
        report.max,
        report.cycles,
        report.expected_events,
        report.seen.len()
    );
    assert_eq!(report.failures, 0);
    assert_eq!(report.false_noes(), 0, "{:?}", report.decisions);
    assert!(
        report.cycles >= 10,
        "cards were read under load: {}",
        report.cycles
    );
    assert_eq!(
        report.subscribers_with_losses(),
        0,
        "{:?}",
        report
            .seen
            .iter()
            .find(|c| c.values().sum::<usize>() != report.expected_events)
    );
}

/// A slow, failing rule service must not slow the API or lose events. (That a failure never
/// becomes a "no" is proven against the real HTTPS client and a real mTLS server, every
/// failing status and transport fault: `tests/upstream.rs`, `tests/reliability.rs`. Here the
/// failures are the simulated service's own, which answers `unknown` by construction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_and_failing_rule_service_costs_the_api_and_the_event_stream_nothing() {
    let report = load::run(load::LoadSpec {
        subscribers: 50,
        rate: 500,
        duration: Duration::from_secs(3),
        upstream: beid_agent::advice::SimulatedSettings {
            latency: Duration::from_millis(400),
            // Every question fails: deterministic.
            failure_rate: 1.0,
            fixture: None,
        },
    })
    .await;
    println!("{:?}", report.decisions);
    assert_eq!(report.failures, 0);
    assert_eq!(report.subscribers_with_losses(), 0);
    assert!(report.cycles >= 2, "{report:?}");
    assert!(
        report
            .decisions
            .keys()
            .all(|(_, decision)| decision == "Unknown"),
        "a failed question is unknown, for every card: {:?}",
        report.decisions
    );
}
