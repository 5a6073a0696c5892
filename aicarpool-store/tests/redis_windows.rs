#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `RedisWindowLedger` against a real Redis: the window ledger conformance
//! suite, and two ledgers on one Redis seeing each other's charges.
//!
//! Set `AICARPOOL_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`) to run
//! them; without it they print that they were skipped.

use aicarpool_core::fair::{MemberId, WindowCharge, WindowId, WindowKind, WindowLedger};
use aicarpool_core::id::new_id;
use aicarpool_store::RedisWindowLedger;

fn redis_url() -> Option<String> {
    std::env::var("AICARPOOL_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

#[tokio::test]
async fn redis_window_ledger_conforms() {
    let Some(url) = redis_url() else {
        println!("skipped: AICARPOOL_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("aicp-test:{}:window:", new_id());
    let ledger = RedisWindowLedger::connect(&url)
        .await
        .unwrap()
        .with_prefix(prefix);
    aicarpool_core::testing::fair::ledger(&ledger).await;
}

#[tokio::test]
async fn two_instances_share_one_window() {
    let Some(url) = redis_url() else {
        println!("skipped: AICARPOOL_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("aicp-test:{}:window:", new_id());
    let a = RedisWindowLedger::connect(&url)
        .await
        .unwrap()
        .with_prefix(prefix.clone());
    let b = RedisWindowLedger::connect(&url)
        .await
        .unwrap()
        .with_prefix(prefix);
    let window = WindowId {
        account_id: new_id(),
        kind: WindowKind::FiveHour,
        // Soon, so a shared Redis lets the keys expire.
        resets_at: chrono::Utc::now().timestamp().unsigned_abs() + 5 * 3600,
    };
    let charge = |user: &str, micro_usd, utilization| WindowCharge {
        member: MemberId::new("grp", user),
        weight: 1,
        micro_usd,
        utilization,
    };
    a.charge(&window, &charge("ann", 700, Some(0.0)))
        .await
        .unwrap();
    b.charge(&window, &charge("bob", 300, Some(0.5)))
        .await
        .unwrap();
    let seen_by_a = a.window(&window).await.unwrap();
    assert_eq!(seen_by_a, b.window(&window).await.unwrap());
    assert_eq!(seen_by_a.sent_micro_usd, 1000);
    // Capacity from b's observation of a's use: 700 sent for 50 %.
    assert_eq!(seen_by_a.capacity(), Some(1400));
}
