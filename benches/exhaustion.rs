//! Issue 12's exhaustion scenario: the agent as deployed (`serve --config` through real
//! pcscd + vpcd and the mTLS test upstream, with the unit's `LimitNOFILE=`) while another
//! process holds 10 000 idle connections and 1 000 slow-header connections to its API, and
//! opens them again as fast as they are closed. Meanwhile a POS asks `GET /v1/readers` 20
//! times a second on its kept-alive connection and 10 times a second on fresh ones, and a
//! card is inserted, read and advised every few seconds (its events followed on the POS's
//! stream, opened before the attack). Reports the POS's latency (p50, p99, max), its
//! unanswered requests, the cards advised, and the agent's descriptors, threads and memory
//! at their peak (what the unit's limits are sized from).
//!
//! cargo bench --bench exhaustion                     (30 s; needs pcscd + vpcd)
//! BEID_BASELINE_AGENT=PATH cargo bench --bench exhaustion
//!     also runs the same scenario, first, against another build of the agent (the code
//!     before issue 12, whose unit set no limit: systemd's default 1024 open files).
//!
//! BEID_EXHAUSTION=0,0,30 cargo bench --bench exhaustion
//!     the same POS and cards without an attack (the machine's own noise).
//!
//! Without `--bench` (as `cargo test --all-targets` runs it): 600 + 60 connections for 3 s.

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::agent::{Launch, ServedAgent, TOKEN};
use common::load::percentile;
use common::upstream::{self, Pki, Reply, Upstream};
use common::Pcscd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The attack and the measurement.
#[derive(Debug, Clone, Copy)]
struct Spec {
    idle: usize,
    slow: usize,
    duration: Duration,
}

/// `BEID_EXHAUSTION=IDLE,SLOW,SECONDS`, e.g. `10000,1000,30`.
fn custom_spec(custom: &str) -> Spec {
    const FORMAT: &str =
        "BEID_EXHAUSTION must be IDLE,SLOW,SECONDS (three whole numbers, e.g. 0,0,30)";
    let numbers: Vec<u64> = custom
        .split(',')
        .map(|n| n.trim().parse().expect(FORMAT))
        .collect();
    let [idle, slow, seconds] = numbers[..] else {
        panic!("{FORMAT}, not {custom:?}");
    };
    Spec {
        idle: usize::try_from(idle).expect(FORMAT),
        slow: usize::try_from(slow).expect(FORMAT),
        duration: Duration::from_secs(seconds),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--attacker") {
        attacker(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap());
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let spec = if full {
        Spec {
            idle: 10_000,
            slow: 1_000,
            duration: Duration::from_secs(30),
        }
    } else {
        Spec {
            idle: 600,
            slow: 60,
            duration: Duration::from_secs(3),
        }
    };
    // BEID_EXHAUSTION=IDLE,SLOW,SECONDS: another attack (0,0,30: the same POS, unattacked).
    let spec = match std::env::var("BEID_EXHAUSTION") {
        Ok(custom) => custom_spec(&custom),
        Err(_) => spec,
    };
    raise_open_files(spec.idle + spec.slow + 1_000);
    upstream::install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(baseline) = std::env::var_os("BEID_BASELINE_AGENT") {
        let report = runtime.block_on(scenario(
            spec,
            Launch {
                binary: Some(PathBuf::from(&baseline)),
                open_files: Some(1024),
                info_logging: true,
            },
        ));
        report.print(&format!(
            "before issue 12 ({}, 1024 open files)",
            Path::new(&baseline).display()
        ));
    }
    let limit = unit_open_files();
    let report = runtime.block_on(scenario(
        spec,
        Launch {
            binary: None,
            open_files: Some(limit),
            info_logging: true,
        },
    ));
    report.print(&format!("this build (LimitNOFILE={limit})"));
    // Functional, in every mode: the POS and the cards got through.
    assert_eq!(report.unanswered, 0, "{report:?}");
    assert_eq!(report.cards_advised, report.cards, "{report:?}");
}

/// What one run measured.
#[derive(Debug, Default)]
struct Report {
    spec_idle: usize,
    spec_slow: usize,
    seconds: u64,
    kept_alive: Vec<Duration>,
    fresh: Vec<Duration>,
    unanswered: usize,
    cards: usize,
    cards_advised: usize,
    /// Open descriptors after the first card, before the attack.
    rest_descriptors: usize,
    peak_descriptors: usize,
    peak_threads: usize,
    peak_rss_kib: u64,
    attack: String,
}

impl Report {
    fn print(&self, what: &str) {
        let figures = |latencies: &[Duration]| {
            if latencies.is_empty() {
                return "none answered".to_owned();
            }
            format!(
                "{} answered, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                latencies.len(),
                ms(percentile(latencies, 0.50)),
                ms(percentile(latencies, 0.99)),
                ms(*latencies.last().unwrap())
            )
        };
        println!(
            "exhaustion, {what}: {} idle + {} slow-header connections held for {} s",
            self.spec_idle, self.spec_slow, self.seconds
        );
        println!(
            "  POS, kept-alive connection (20/s): {}",
            figures(&self.kept_alive)
        );
        println!(
            "  POS, a fresh connection each (10/s): {}",
            figures(&self.fresh)
        );
        println!(
            "  POS requests unanswered (error or 10 s without an answer): {}",
            self.unanswered
        );
        println!(
            "  cards inserted {}, read and advised {}",
            self.cards, self.cards_advised
        );
        println!(
            "  agent: {} open descriptors before the attack; peak {} open descriptors, {} threads, {:.1} MB resident",
            self.rest_descriptors,
            self.peak_descriptors,
            self.peak_threads,
            self.peak_rss_kib as f64 / 1024.0
        );
        println!("  attacker: {}", self.attack);
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The unit's `LimitNOFILE=` (what systemd gives the agent in service).
fn unit_open_files() -> u64 {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/beid-agent.service");
    std::fs::read_to_string(unit)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(1024)
}

fn raise_open_files(needed: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        have >= needed as u64,
        "{needed} open files needed, the hard limit allows {have} (ulimit -Hn)"
    );
}

async fn scenario(spec: Spec, launch: Launch) -> Report {
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let pcscd = Pcscd::start();
    let agent = ServedAgent::start_launched(&pcscd, &server.url, &pki, &[], "", &launch);
    let address = agent.base.trim_start_matches("http://").to_owned();
    let mut events = agent.events().await;
    // A first card before the attack: the RRN key is cached, as on a counter in service.
    let card = pcscd.insert("gen-1.8-ec");
    events.until("advice").await;
    tokio::task::spawn_blocking(move || card.remove())
        .await
        .unwrap();

    let rest_descriptors = descriptors(agent.pid());
    let mut attacker = Attacker::start(&address, spec);
    let resources = Resources::sample(agent.pid());
    let started = Instant::now();
    let kept_alive = tokio::spawn(pos_requests(
        agent.base.clone(),
        reqwest::Client::new(),
        Duration::from_millis(50),
        spec.duration,
    ));
    let fresh = tokio::spawn(pos_requests(
        agent.base.clone(),
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        Duration::from_millis(100),
        spec.duration,
    ));
    let cards = Arc::new(AtomicUsize::new(0));
    let advised = Arc::new(AtomicUsize::new(0));
    let driver = {
        let (cards, advised) = (cards.clone(), advised.clone());
        let pcscd = Arc::new(pcscd);
        let keep = pcscd.clone();
        let duration = spec.duration;
        let task = tokio::spawn(async move {
            while started.elapsed() + Duration::from_secs(3) < duration
                || cards.load(Ordering::Relaxed) == 0
            {
                cards.fetch_add(1, Ordering::Relaxed);
                let card = pcscd.insert("gen-1.8-ec");
                let outcome = tokio::time::timeout(Duration::from_secs(15), async {
                    loop {
                        let (name, _) = events.next().await;
                        match name.as_str() {
                            "advice" => return true,
                            "card-error" => return false,
                            _ => {}
                        }
                    }
                })
                .await;
                if outcome == Ok(true) {
                    advised.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::spawn_blocking(move || card.remove())
                    .await
                    .unwrap();
            }
        });
        (task, keep)
    };
    let (mut kept_alive, kept_failed) = kept_alive.await.unwrap();
    let (mut fresh, fresh_failed) = fresh.await.unwrap();
    // A card driver that panicked (its stream broke) has counted what it saw.
    let _ = driver.0.await;
    let attack = attacker.stop();
    let (peak_descriptors, peak_threads, peak_rss_kib) = resources.stop().await;
    kept_alive.sort();
    fresh.sort();
    drop(agent);
    Report {
        spec_idle: spec.idle,
        spec_slow: spec.slow,
        seconds: spec.duration.as_secs(),
        kept_alive,
        fresh,
        unanswered: kept_failed + fresh_failed,
        cards: cards.load(Ordering::Relaxed),
        cards_advised: advised.load(Ordering::Relaxed),
        rest_descriptors,
        peak_descriptors,
        peak_threads,
        peak_rss_kib,
        attack,
    }
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `GET /v1/readers` every `every` for `duration`, each sent on time whatever the answers
/// before it: latencies of the answered ones, and how many were not answered 200 within 10 s.
async fn pos_requests(
    base: String,
    http: reqwest::Client,
    every: Duration,
    duration: Duration,
) -> (Vec<Duration>, usize) {
    let mut pace = tokio::time::interval(every);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut requests = Vec::new();
    while started.elapsed() < duration {
        pace.tick().await;
        let request = http
            .get(format!("{base}/v1/readers"))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10));
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answered = request.send().await.map(|r| r.status().as_u16());
            (sent.elapsed(), answered)
        }));
    }
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for request in requests {
        match request.await.unwrap() {
            (latency, Ok(200)) => latencies.push(latency),
            _ => failed += 1,
        }
    }
    (latencies, failed)
}

/// The agent's open descriptors, threads and resident memory, sampled every 100 ms; the
/// peaks when stopped.
struct Resources {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(usize, usize, u64)>,
}

impl Resources {
    fn sample(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peaks = (0, 0, 0);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => return peaks,
                }
                let descriptors = descriptors(pid);
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |name: &str| -> u64 {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                peaks.0 = peaks.0.max(descriptors);
                peaks.1 = peaks.1.max(field("Threads:") as usize);
                peaks.2 = peaks.2.max(field("VmHWM:"));
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> (usize, usize, u64) {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

/// The hostile neighbour: this bench's binary again, as another process.
struct Attacker {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Attacker {
    /// Starts it and waits until every connection was tried once.
    fn start(address: &str, spec: Spec) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--attacker", address])
            .arg(spec.idle.to_string())
            .arg(spec.slow.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        assert!(ready.starts_with("ready"), "{ready:?}");
        Self { child, stdout }
    }

    /// Stops it (closing its stdin) and returns its account of the attack.
    fn stop(&mut self) -> String {
        drop(self.child.stdin.take());
        let mut account = String::new();
        self.stdout.read_line(&mut account).unwrap();
        let _ = self.child.wait();
        account.trim().to_owned()
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The attacker process: `idle` connections that never send a byte and `slow` ones that
/// send a request head one header line a second, each opened again as soon as the agent
/// closes it. Prints `ready` once every connection was tried, and its account when its
/// stdin closes.
fn attacker(address: &str, idle: usize, slow: usize) {
    raise_open_files(idle + slow + 100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let address = address.to_owned();
    runtime.block_on(async move {
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let tried = Arc::new(AtomicUsize::new(0));
        let (all_tried, mut tried_all) = tokio::sync::mpsc::channel::<()>(1);
        for n in 0..idle + slow {
            let address = address.clone();
            let (opened, closed, refused, tried) =
                (opened.clone(), closed.clone(), refused.clone(), tried.clone());
            let all_tried = all_tried.clone();
            let total = idle + slow;
            tokio::spawn(async move {
                let mut first = true;
                loop {
                    let connected = tokio::net::TcpStream::connect(&address).await;
                    if std::mem::take(&mut first) && tried.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        let _ = all_tried.send(()).await;
                    }
                    let Ok(mut stream) = connected else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    if n < idle {
                        let mut byte = [0u8; 1];
                        let _ = stream.read(&mut byte).await;
                    } else {
                        let _ = stream
                            .write_all(format!("GET /v1/readers HTTP/1.1\r\nHost: {address}\r\n").as_bytes())
                            .await;
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        let mut byte = [0u8; 1];
                        loop {
                            tokio::select! {
                                _ = tick.tick() => {
                                    if stream.write_all(b"X-Slow: still sending\r\n").await.is_err() {
                                        break;
                                    }
                                }
                                read = stream.read(&mut byte) => {
                                    if !matches!(read, Ok(n) if n > 0) { break; }
                                }
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        drop(all_tried);
        let _ = tried_all.recv().await;
        println!("ready");
        let _ = std::io::stdout().flush();
        // Until the bench closes our stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {}
        })
        .await;
        println!(
            "{} connections opened, {} closed by the agent, {} connects failed",
            opened.load(Ordering::Relaxed),
            closed.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        );
        let _ = std::io::stdout().flush();
    });
}
