//! The storage conformance suite against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aicarpool_core::store::{DynStore, MemoryStore};
use aicarpool_core::testing;

#[tokio::test]
async fn memory_store_conforms() {
    testing::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn conforms_behind_dyn_store() {
    let store: DynStore = std::sync::Arc::new(MemoryStore::new());
    testing::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn suite_can_run_twice_on_one_store() {
    let store = MemoryStore::new();
    testing::run_all(&store).await;
    testing::run_all(&store).await;
}

#[tokio::test]
async fn in_memory_limiter_conforms() {
    use std::sync::Arc;

    use aicarpool_core::limit::{InMemoryLimiter, Limiter};
    use aicarpool_core::testing::limiter::{run_all, LimiterSetup};

    run_all(|s: LimiterSetup| async move {
        Arc::new(InMemoryLimiter::with_clock(s.baseline, s.tz, s.clock)) as Arc<dyn Limiter>
    })
    .await;
}

#[tokio::test]
async fn in_memory_window_ledger_conforms() {
    aicarpool_core::testing::fair::ledger(&aicarpool_core::fair::MemoryLedger::new()).await;
}
