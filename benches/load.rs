//! 200 SSE subscribers and 500 API requests a second for 10 s while two simulated readers
//! read cards one after the other: API latency, and every event counted at every subscriber.
//!
//! cargo bench --bench load      (target: p99 ≤ 2 ms at 500 req/s, no event lost)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/load.rs"]
mod load;

use std::time::Duration;

use beid_agent::advice::SimulatedSettings;

fn main() {
    // `cargo test --benches` runs this without `--bench`: a short smoke run then.
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = if full { 10 } else { 2 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let healthy = SimulatedSettings::default();
    let failing = SimulatedSettings {
        latency: Duration::from_secs(2),
        failure_rate: 0.5,
        fixture: None,
    };
    for (name, upstream) in [
        ("healthy rule service", healthy),
        (
            "rule service answering in 2 s, half of it failures",
            failing,
        ),
    ] {
        let report = runtime.block_on(load::run(load::LoadSpec {
            subscribers: 200,
            rate: 500,
            duration: Duration::from_secs(seconds),
            upstream,
        }));
        println!(
            "load ({name}): 200 SSE subscribers + GET /v1/readers at 500 req/s for {seconds} s: {} requests, {} not 200; p50 {:?}, p99 {:?}, max {:?}",
            report.requests, report.failures, report.p50, report.p99, report.max
        );
        println!(
            "load ({name}): {} card cycles during the load; {} events expected at each subscriber; {} of {} subscribers missed or gained any; decisions {:?}; false noes {}",
            report.cycles,
            report.expected_events,
            report.subscribers_with_losses(),
            report.seen.len(),
            report.decisions,
            report.false_noes()
        );
        assert_eq!(report.subscribers_with_losses(), 0);
        assert_eq!(report.failures, 0);
        assert_eq!(report.false_noes(), 0);
    }
}
