//! Member key costs on the request path.
//!
//! - `key/parse_and_hash`: `MemberKey::parse` and the SHA-256 of a real
//!   key, which every request pays before any lookup;
//! - `key/ct_eq`: the constant-time comparison of two hashes;
//! - `key/authenticate_10k_keys_{first,last}`: parse, hash,
//!   `MemoryStore::key_by_hash` among 10,000 stored keys, then the checks
//!   the gateway makes (hash in constant time, group, user). `first` finds
//!   the first key stored, `last` the last one: the gap between them is the
//!   cost of the store's search. The gateway caches found keys, so this is
//!   the cost of a cache miss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use aicarpool_benches::key_record;
use aicarpool_core::id::new_id;
use aicarpool_core::key::{KeyHash, MemberKey};
use aicarpool_core::store::{KeyStore, MemoryStore};
use criterion::{criterion_group, criterion_main, Criterion};

const STORED_KEYS: usize = 10_000;

/// Parses, hashes, looks up and checks a presented key, as the gateway's
/// authentication does on a cache miss.
async fn authenticate(store: &MemoryStore, presented: &str) -> bool {
    let key = MemberKey::parse(presented).unwrap();
    let hash = key.hash();
    let record = store.key_by_hash(&hash).await.unwrap().unwrap();
    record.key_hash.is_some_and(|h| h.ct_eq(&hash))
        && record.group_id == key.group_id()
        && record.user_id == key.user_id()
}

fn key_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("key");

    // Ids the way the server makes them, so the key has its real length.
    let real = MemberKey::generate(&new_id(), &new_id()).expose();
    group.bench_function("parse_and_hash", |b| {
        b.iter(|| MemberKey::parse(black_box(&real)).unwrap().hash());
    });

    let a = MemberKey::parse(&real).unwrap().hash();
    let same = KeyHash(a.0);
    group.bench_function("ct_eq", |b| {
        b.iter(|| black_box(&a).ct_eq(black_box(&same)));
    });

    let store = MemoryStore::new();
    let now = chrono::Utc::now();
    let mut exposed = Vec::with_capacity(STORED_KEYS);
    rt.block_on(async {
        for _ in 0..STORED_KEYS {
            let (g, u) = (new_id(), new_id());
            let key = MemberKey::generate(&g, &u);
            store
                .create_key(&key_record(&key, &g, &u, now))
                .await
                .unwrap();
            exposed.push(key.expose());
        }
    });
    for (name, presented) in [
        ("authenticate_10k_keys_first", &exposed[0]),
        ("authenticate_10k_keys_last", &exposed[STORED_KEYS - 1]),
    ] {
        assert!(rt.block_on(authenticate(&store, presented)));
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| authenticate(&store, black_box(presented)));
        });
    }
    group.finish();
}

criterion_group!(benches, key_benches);
criterion_main!(benches);
