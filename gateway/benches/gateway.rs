//! The gateway under load, as one replica serves a city: `beid-gateway` (the release
//! binary, its own process) with 1 000 devices connected over mutual TLS, asking at
//! 500 checks/s while the UiTPAS stand-in answers each search in 50 ms.
//!
//! Measures: the latency the gateway adds (device-observed latency minus the stand-in's
//! 50 ms, and beside it a direct client of the stand-in at the same rate), token calls per
//! token lifetime, resident memory (VmRSS), and the highest rate one replica holds with a
//! p99 of at most 100 ms. The load generator shares the machine.
//!
//! cargo bench -p beid-gateway --bench gateway     (targets: p99 added ≤ 10 ms; one token
//!                                                  call per lifetime)
//! `cargo test --benches` runs it without `--bench`: a short smoke run then. The audit log
//! is written under the target directory (a disk: every record is synced); `BENCH_DIR`
//! names another place (`/dev/shm` to leave the disk out).

// Bench set-up: a failure must stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Device, Pki};
use uitpas_standin::{Kind, StandIn};

const GATEWAY: &str = env!("CARGO_BIN_EXE_beid-gateway");
const STANDIN_DELAY: Duration = Duration::from_millis(50);

struct Scale {
    devices: usize,
    rate: u32,
    seconds: u64,
    token_lifetime: Duration,
    token_margin_s: u64,
    capacity_steps: &'static [u32],
    step_seconds: u64,
}

const FULL: Scale = Scale {
    devices: 1000,
    rate: 500,
    seconds: 40,
    token_lifetime: Duration::from_secs(15),
    token_margin_s: 5,
    capacity_steps: &[1000, 1500, 2000, 3000, 4000],
    step_seconds: 8,
};

const SHORT: Scale = Scale {
    devices: 20,
    rate: 50,
    seconds: 1,
    token_lifetime: Duration::from_secs(3600),
    token_margin_s: 60,
    capacity_steps: &[],
    step_seconds: 1,
};

struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

fn start_gateway(dir: &std::path::Path, standin: &StandIn, scale: &Scale) -> Gateway {
    let config = dir.join("gateway.toml");
    let text = common::config_text(standin, (100_000, 10_000), "").replace(
        "timeout_ms = 1000",
        &format!(
            "timeout_ms = 1000\ntoken_margin_s = {}",
            scale.token_margin_s
        ),
    );
    std::fs::write(&config, text).unwrap();
    let (child, url) = common::spawn_binary(
        GATEWAY,
        &["--config".as_ref(), config.as_os_str()],
        Some("warn"),
        Stdio::inherit(),
    );
    Gateway { child, url }
}

fn devices(pki: &Pki, url: &str, count: usize) -> Vec<Arc<Device>> {
    (0..count)
        .map(|i| {
            let id = format!("balie-{i}");
            let (cert, key) = pki.issue(
                &format!("d{i}"),
                &[&id],
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            );
            let http = beid_gateway::tls::http_client(
                Some(&pki.ca_bundle()),
                Some((&cert, &key)),
                Duration::from_secs(10),
            )
            .unwrap();
            Arc::new(Device {
                http,
                url: url.to_owned(),
                id,
            })
        })
        .collect()
}

/// Open loop: `rate` checks a second for `seconds`, round robin over the devices: the
/// sorted latencies of the answered checks (all `eligible`), and how many were refused
/// (`503` when the audit queue is full).
async fn load(devices: &[Arc<Device>], rate: u32, seconds: u64) -> (Vec<Duration>, usize) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let total = u64::from(rate) * seconds;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticks.tick().await;
        let device = devices[i as usize % devices.len()].clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let (status, answer) = device.check(Kind::ActiveGent.national_number()).await;
            match status {
                200 => {
                    assert_eq!(answer["decision"], "eligible", "{answer}");
                    Some(started.elapsed())
                }
                503 => None,
                other => panic!("{other}: {answer}"),
            }
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Some(latency) => latencies.push(latency),
            None => refused += 1,
        }
    }
    latencies.sort();
    (latencies, refused)
}

/// The same open loop straight to the stand-in (search with a token), for the baseline.
async fn direct(standin: &StandIn, rate: u32, seconds: u64) -> Vec<Duration> {
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(standin.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        uitpas_standin::CLIENT_ID,
        uitpas_standin::CLIENT_SECRET
    );
    let token: serde_json::Value = http
        .post(standin.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let url = format!(
        "{}passholders?inszNumber={}&organizerId={}",
        standin.api_url(),
        Kind::ActiveGent.national_number(),
        uitpas_standin::ORGANIZER_ID
    );
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut tasks = Vec::new();
    for _ in 0..u64::from(rate) * seconds {
        ticks.tick().await;
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            started.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { FULL } else { SHORT };
    common::install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let standin = StandIn::start().await.unwrap();
        standin.set_delay(STANDIN_DELAY);
        standin.set_token_lifetime(scale.token_lifetime);
        // On disk (not a tmpfs): every audit record is synced.
        let place = std::env::var("BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into());
        let dir = tempfile::tempdir_in(place).unwrap();
        let pki = Pki::new(dir.path());
        common::write_uitpas_files(dir.path(), &standin);
        let gateway = start_gateway(dir.path(), &standin, &scale);
        let idle = gateway.rss_kib();
        let devices = devices(&pki, &gateway.url, scale.devices);
        // Every device connects (mutual TLS) and waits for the gateway to be ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        for device in &devices {
            while device.get("/v1/health").await.status() != 200 {
                assert!(Instant::now() < deadline, "never healthy");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let connected = gateway.rss_kib();
        let tokens_before = standin.token_calls();
        let started = Instant::now();
        let (latencies, refused) = load(&devices, scale.rate, scale.seconds).await;
        assert_eq!(refused, 0, "checks refused at {} /s", scale.rate);
        let took = started.elapsed();
        let token_calls = standin.token_calls() - tokens_before;
        let loaded = gateway.rss_kib();
        let added: Vec<Duration> = latencies.iter().map(|l| l.saturating_sub(STANDIN_DELAY)).collect();
        println!(
            "gateway: {} devices over mTLS, {} checks/s for {:.1} s against a stand-in answering in {} ms",
            scale.devices, scale.rate, took.as_secs_f64(), STANDIN_DELAY.as_millis()
        );
        println!(
            "gateway: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; added (minus 50 ms) p50 {:.1} ms, p99 {:.1} ms",
            ms(percentile(&latencies, 0.5)), ms(percentile(&latencies, 0.99)), ms(latencies[latencies.len() - 1]),
            ms(percentile(&added, 0.5)), ms(percentile(&added, 0.99)),
        );
        let renew = scale.token_lifetime.as_secs().saturating_sub(scale.token_margin_s.min(scale.token_lifetime.as_secs() / 2));
        println!(
            "gateway: {} token calls in {:.0} s with tokens of {} s renewed every {} s (expected {}), for {} checks",
            token_calls, took.as_secs_f64(), scale.token_lifetime.as_secs(), renew,
            took.as_secs() / renew.max(1), latencies.len(),
        );
        println!(
            "gateway: VmRSS idle {:.1} MB, {} connections {:.1} MB, after the load {:.1} MB",
            idle as f64 / 1024.0, scale.devices, connected as f64 / 1024.0, loaded as f64 / 1024.0
        );
        if !full {
            assert!(token_calls <= 1);
            return;
        }
        let baseline = direct(&standin, scale.rate, 10).await;
        println!(
            "baseline: the stand-in asked directly at {} /s: p50 {:.1} ms, p99 {:.1} ms; gateway p99 minus direct p99: {:.1} ms",
            scale.rate, ms(percentile(&baseline, 0.5)), ms(percentile(&baseline, 0.99)),
            ms(percentile(&latencies, 0.99).saturating_sub(percentile(&baseline, 0.99))),
        );
        let mut held = scale.rate;
        for &rate in scale.capacity_steps {
            // Let the audit writer catch up with the step before.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (latencies, refused) = load(&devices, rate, scale.step_seconds).await;
            let p99 = percentile(&latencies, 0.99);
            println!(
                "capacity: {rate} checks/s for {} s: p50 {:.1} ms, p99 {:.1} ms, refused (audit queue full) {refused}, VmRSS {:.1} MB",
                scale.step_seconds, ms(percentile(&latencies, 0.5)), ms(p99), gateway.rss_kib() as f64 / 1024.0
            );
            if p99 > Duration::from_millis(100) || refused > 0 {
                break;
            }
            held = rate;
        }
        println!("capacity: one replica held {held} checks/s with p99 <= 100 ms and none refused (load generator on the same 2 cores)");
    });
}
