//! The window ledger conformance suite: one contract for every
//! [`WindowLedger`] (in memory, Redis). Windows get fresh account ids, so
//! runs never see each other's use on one shared Redis.
//!
//! ```
//! # async fn conformance() {
//! use aicarpool_core::fair::MemoryLedger;
//!
//! aicarpool_core::testing::fair::ledger(&MemoryLedger::new()).await;
//! # }
//! ```

use futures::future::join_all;

use crate::fair::{MemberId, Observation, WindowCharge, WindowId, WindowKind, WindowLedger};
use crate::id::new_id;

fn charge(user: &str, weight: u32, micro_usd: i64, utilization: Option<f64>) -> WindowCharge {
    WindowCharge {
        member: MemberId::new("grp", user),
        weight,
        micro_usd,
        utilization,
    }
}

/// Runs every check against `ledger`.
pub async fn ledger<L: WindowLedger + ?Sized>(ledger: &L) {
    let account = new_id();
    let window = WindowId {
        account_id: account.clone(),
        kind: WindowKind::FiveHour,
        // Soon, so a shared Redis lets the keys expire.
        resets_at: chrono::Utc::now().timestamp().unsigned_abs() + 5 * 3600,
    };
    let empty = ledger.window(&window).await.unwrap();
    assert!(empty.members.is_empty() && empty.first.is_none() && empty.sent_micro_usd == 0);

    ledger
        .charge(&window, &charge("ann", 1, 500, Some(0.1)))
        .await
        .unwrap();
    ledger
        .charge(&window, &charge("bob", 2, 300, None))
        .await
        .unwrap();
    ledger
        .charge(&window, &charge("ann", 3, 200, Some(0.4)))
        .await
        .unwrap();
    let usage = ledger.window(&window).await.unwrap();
    assert_eq!(usage.sent_micro_usd, 1000);
    // Each observation pairs with what was sent before its charge.
    assert_eq!(
        usage.first,
        Some(Observation {
            utilization: 0.1,
            sent_micro_usd: 0
        })
    );
    assert_eq!(
        usage.last,
        Some(Observation {
            utilization: 0.4,
            sent_micro_usd: 800
        })
    );
    let ann = usage.member(&MemberId::new("grp", "ann")).unwrap();
    assert_eq!((ann.used_micro_usd, ann.weight), (700, 3), "latest weight");
    assert_eq!(ann.requests, 2);
    let bob = usage.member(&MemberId::new("grp", "bob")).unwrap();
    assert_eq!((bob.used_micro_usd, bob.weight), (300, 2));
    assert_eq!(usage.members.len(), 2);

    // Another window of the same account and the same window of another
    // account keep their own counts.
    let week = WindowId {
        kind: WindowKind::SevenDay,
        ..window.clone()
    };
    let next = WindowId {
        resets_at: window.resets_at + 5 * 3600,
        ..window.clone()
    };
    ledger
        .charge(&next, &charge("ann", 1, 50, None))
        .await
        .unwrap();
    assert!(ledger.window(&week).await.unwrap().members.is_empty());
    assert_eq!(ledger.window(&next).await.unwrap().sent_micro_usd, 50);

    // Concurrent charges all count.
    let busy = WindowId {
        account_id: new_id(),
        ..window.clone()
    };
    join_all((0..50).map(|i| {
        let c = charge(if i % 2 == 0 { "ann" } else { "bob" }, 1, 10, None);
        let busy = &busy;
        async move { ledger.charge(busy, &c).await.unwrap() }
    }))
    .await;
    let usage = ledger.window(&busy).await.unwrap();
    assert_eq!(usage.sent_micro_usd, 500);
    let total: i64 = usage.members.iter().map(|m| m.used_micro_usd).sum();
    assert_eq!(total, 500);
}
