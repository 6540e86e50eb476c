//! What the audit log costs: an append without and with sealing (no seal due), the seal at an
//! epoch's end (the seal record, the key's step and the sealing state replaced), and `verify`
//! over a sealed log without and with the verification key.
//!
//! cargo bench -p beid-core --bench audit
//!
//! The log lives in a temporary directory (`TMPDIR`, the machine's disk unless set): every
//! append syncs, so the figures are the disk's as much as the code's.

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use beid_core::audit::{
    seal_init, verify_with, ApiRequest, AuditLog, Clock, VerificationKey, VerifyOptions,
    DEFAULT_EPOCH,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use time::OffsetDateTime;

/// 2025-03-03 08:00 UTC, when every bench's sealing starts.
const START: i64 = 1_740_988_800;

/// A clock the bench moves, in whole seconds.
struct BenchClock(AtomicI64);

impl Clock for BenchClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::Relaxed)).unwrap()
    }
}

impl BenchClock {
    fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::Relaxed);
    }
}

fn request() -> ApiRequest {
    ApiRequest {
        client: Some("balie-pos".into()),
        method: "GET".into(),
        route: "/v1/sessions/{session}".into(),
        status: 200,
        session: Some(uuid::Uuid::new_v4()),
    }
}

struct Bench {
    dir: tempfile::TempDir,
    clock: Arc<BenchClock>,
    key: Option<VerificationKey>,
}

impl Bench {
    fn new(sealed: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let start = OffsetDateTime::from_unix_timestamp(START).unwrap();
        let key = sealed.then(|| seal_init(&dir.path().join("audit.jsonl"), DEFAULT_EPOCH, start));
        Self {
            clock: Arc::new(BenchClock(AtomicI64::new(START + 60))),
            key: key.map(Result::unwrap),
            dir,
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    fn open(&self) -> AuditLog {
        let secret = self.dir.path().join("audit.key");
        AuditLog::open_with_clock(self.log_path(), secret, self.clock.clone()).unwrap()
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for (name, sealed) in [("unsealed", false), ("sealed", true)] {
        let bench = Bench::new(sealed);
        let log = bench.open();
        let request = request();
        group.bench_function(name, |b| b.iter(|| log.api_request(&request).unwrap()));
    }
    group.finish();
}

/// The idle timer's work at each epoch's end: one seal record, one key step, the sealing
/// state replaced and the old one erased.
fn seal(c: &mut Criterion) {
    let bench = Bench::new(true);
    let log = bench.open();
    c.bench_function("seal/epoch end", |b| {
        b.iter(|| {
            bench.clock.advance(DEFAULT_EPOCH.as_secs() as i64);
            log.seal_due().unwrap().unwrap()
        })
    });
}

/// `verify` over a sealed log of `records` records, a seal every 50 (a busy counter's
/// quarter of an hour), without and with the key.
fn verify(c: &mut Criterion) {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let records: u64 = if quick { 500 } else { 20_000 };
    let bench = Bench::new(true);
    let log = bench.open();
    let request = request();
    for n in 0..records {
        if n % 50 == 49 {
            bench.clock.advance(DEFAULT_EPOCH.as_secs() as i64);
        }
        log.api_request(&request).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let path = bench.log_path();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(records));
    group.sample_size(10);
    for (name, key) in [("chain only", None), ("with key", bench.key.clone())] {
        let options = VerifyOptions {
            key,
            anchors: None,
            as_of: bench.clock.now(),
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || options.clone(),
                |options| checked(&path, &options),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn checked(path: &Path, options: &VerifyOptions) -> u64 {
    let report = verify_with(path, options).unwrap();
    assert!(report.is_intact(), "{report}");
    report.records
}

criterion_group!(benches, append, seal, verify);
criterion_main!(benches);
