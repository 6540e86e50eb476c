//! Verification cost per card: the full check (RRN certificate against its root, then the
//! identity signature) against the warm path (a cached RRN key verifies the signature).
//!
//! cargo bench --bench verification

// Bench set-up on committed fixtures: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use beid_agent::beid::Identity;
use beid_agent::sim::CardDump;
use beid_agent::trust::{verify_card, CardFiles, RrnKeyCache, TrustStore};
use criterion::{criterion_group, criterion_main, Criterion};

fn load(card: &str) -> CardDump {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cards")
        .join(card);
    match CardDump::load(&dir) {
        Ok(dump) => dump,
        Err(error) => panic!("{card}: {error}"),
    }
}

fn verification(c: &mut Criterion) {
    let store = match TrustStore::production().with_test_roots() {
        Ok(store) => store,
        Err(error) => panic!("{error}"),
    };
    let mut group = c.benchmark_group("verify");
    for card in ["alice-2009", "gen-1.7-rsa2048", "gen-1.8-ec"] {
        let dump = load(card);
        let file = |fid| dump.files.get(&fid).map(|f| f.to_vec()).unwrap_or_default();
        let (identity, signature, certificate) = (file(0x4031), file(0x4032), file(0x503C));
        let at = Identity::parse(&identity)
            .ok()
            .and_then(|i| i.validity_begin)
            .unwrap_or(time::macros::date!(2024 - 01 - 01));
        let files = CardFiles {
            identity: &identity,
            identity_signature: &signature,
            rrn_certificate: &certificate,
        };
        let verified = match verify_card(&store, &files, at) {
            Ok(verified) => verified,
            Err(error) => panic!("{card}: {error}"),
        };
        let mut cache = RrnKeyCache::new();
        let _ = cache.insert(verified.certificate);

        group.bench_function(format!("{card}/cold"), |b| {
            b.iter(|| verify_card(&store, &files, at).map(|v| v.algorithm))
        });
        group.bench_function(format!("{card}/warm"), |b| {
            b.iter(|| {
                cache
                    .find_identity_signer(&identity, &signature, at)
                    .is_some()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
