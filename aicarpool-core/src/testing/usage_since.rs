//! `UsageStore::usage_since`: the sums limit counters are rebuilt from.

use chrono::{Duration, TimeZone, Utc};

use super::usage_record;
use crate::id::new_id;
use crate::store::Store;
use crate::usage::{RefusalReason, Usage, UsageQuery, UsageScope};

/// Sums since several instants at once equal one report per instant, for
/// every scope kind, with bounds that fall exactly on a record, between
/// milliseconds, and before or after everything.
pub async fn usage_since<S: Store + ?Sized>(store: &S) {
    let (g, g2, u1, u2, k1, k2) = (new_id(), new_id(), new_id(), new_id(), new_id(), new_id());
    let base = Utc.with_ymd_and_hms(2032, 7, 1, 0, 0, 0).unwrap();
    let at = |ms: i64| base + Duration::milliseconds(ms);
    let mut records = Vec::new();
    for (i, off) in [-86_400_000i64, -1, 0, 1, 500, 3_600_000, 90_000_000]
        .into_iter()
        .enumerate()
    {
        let (group, user, key) = match i % 3 {
            0 => (&g, &u1, &k1),
            1 => (&g, &u2, &k2),
            _ => (&g2, &u1, &k1),
        };
        let n = i as u64 + 1;
        let mut r = usage_record(group, user, key, None, at(off));
        r.usage = Usage {
            input_tokens: n,
            output_tokens: 10 * n,
            cache_write_5m_tokens: 100 * n,
            cache_write_1h_tokens: 1_000 * n,
            cache_read_tokens: 10_000 * n,
        };
        r.cost_micro_usd = 7 * n as i64;
        r.status = if i == 4 { 429 } else { 200 };
        r.refusal = (i == 4).then_some(RefusalReason::FairShare);
        records.push(r);
    }
    store.insert_usage(&records).await.unwrap();

    let since = [
        at(0),
        at(1) - Duration::microseconds(300),
        at(3_600_000),
        at(-86_400_000),
        Utc.timestamp_opt(0, 0).unwrap(),
        at(100_000_000),
    ];
    let scopes = [
        UsageScope::Key(k1.clone()),
        UsageScope::User(u1.clone()),
        UsageScope::Group(g.clone()),
        UsageScope::Member {
            group_id: g.clone(),
            user_id: u1.clone(),
        },
        UsageScope::Member {
            group_id: g2.clone(),
            user_id: u2.clone(),
        },
        UsageScope::Key(new_id()),
    ];
    for scope in &scopes {
        let got = store.usage_since(scope, &since).await.unwrap();
        assert_eq!(got.len(), since.len());
        for (t, sums) in since.iter().zip(&got) {
            let q = UsageQuery {
                scope: scope.clone(),
                from: Some(*t),
                to: None,
                group_by: None,
            };
            assert_eq!(*sums, q.aggregate(&records).totals, "{scope:?} since {t}");
        }
    }
    assert!(store.usage_since(&scopes[0], &[]).await.unwrap().is_empty());
}
