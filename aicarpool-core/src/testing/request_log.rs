//! Conformance checks: the request log (`RequestLogStore`).

use std::collections::BTreeMap;

use super::*;
use crate::usage::{RequestCursor, RequestQuery, StatusFilter, UsageRollup};

/// Records of one group spread over a few hours, with every kind of
/// status, refusal, model and failover path, several sharing a
/// millisecond so the id breaks ties.
fn records(
    g: &str,
    users: &[String],
    keys: &[String],
    accounts: &[String; 2],
    base: DateTime<Utc>,
) -> Vec<UsageRecord> {
    let statuses = [200, 429, 200, 500, 400, 200, 529];
    (0..37)
        .map(|i: usize| {
            let at = base + Duration::milliseconds((i as i64 / 3) * 731_003);
            let mut r = usage_record(
                g,
                &users[i % users.len()],
                &keys[i % keys.len()],
                (i % 4 != 0).then_some(accounts[i % 2].as_str()),
                at,
            );
            r.status = statuses[i % statuses.len()];
            r.model = ["claude-sonnet-4-5", "kimi-k2"][i % 2].into();
            r.served_model = (i % 5 == 0).then(|| "deepseek-chat".into());
            // The 429s are refused for each reason in turn, the last one
            // the upstream's own (no refusal).
            r.refusal = if r.status == 429 {
                RefusalReason::ALL.get(i / statuses.len()).copied()
            } else {
                None
            };
            r.failed_over = if i % 6 == 0 {
                vec!["acc-x".into(), "acc-y".into()]
            } else {
                Vec::new()
            };
            r.attempts = r.failed_over.len() as u32 + u32::from(r.account_id.is_some());
            r.usage.input_tokens = i as u64 * 11 + 1;
            r.cost_micro_usd = i as i64 * 101;
            r.accuracy = [Accuracy::Exact, Accuracy::Partial, Accuracy::Estimated][i % 3];
            r
        })
        .collect()
}

/// Narrows a query.
type Filter<'a> = Box<dyn Fn(&mut RequestQuery) + 'a>;
/// Whether a record belongs to a scope.
type InScope<'a> = Box<dyn Fn(&UsageRecord) -> bool + 'a>;

/// Every page of `q`, followed by its cursors.
async fn all_pages<S: Store + ?Sized>(store: &S, mut q: RequestQuery) -> Vec<UsageRecord> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let page = store.requests(&q).await.unwrap();
        assert!(page.rows.len() <= q.page_size());
        out.extend(page.rows);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
    panic!("the pages never end");
}

/// The request log reads back every field, newest first with ties by id,
/// pages without losing or repeating a row, and filters by status,
/// refusal, model (asked or served) and time.
pub async fn request_log<S: Store + ?Sized>(store: &S) {
    let g = new_id();
    let users = [new_id(), new_id()];
    let keys = [new_id(), new_id(), new_id()];
    let base = now_ms() - Duration::hours(3);
    let records = records(&g, &users, &keys, &[new_id(), new_id()], base);
    store.insert_usage(&records).await.unwrap();

    let query = |scope: UsageScope| RequestQuery {
        scope,
        status: None,
        model: None,
        from: None,
        to: None,
        limit: 7,
        cursor: None,
    };
    let expect = |q: &RequestQuery, in_scope: &dyn Fn(&UsageRecord) -> bool| {
        let mut rows: Vec<UsageRecord> = records
            .iter()
            .filter(|r| in_scope(r) && q.keeps(r))
            .cloned()
            .collect();
        crate::usage::log_order(&mut rows);
        rows
    };

    let whole = query(UsageScope::Group(g.clone()));
    let got = all_pages(store, whole.clone()).await;
    assert_eq!(got.len(), records.len());
    assert_eq!(got, expect(&whole, &|_| true), "every field, in log order");

    let filters: Vec<Filter> = vec![
        Box::new(|q| q.status = Some(StatusFilter::Ok)),
        Box::new(|q| q.status = Some(StatusFilter::Error)),
        Box::new(|q| q.status = Some(StatusFilter::Refused)),
        Box::new(|q| q.status = Some(StatusFilter::Code(529))),
        Box::new(|q| q.model = Some("kimi-k2".into())),
        Box::new(|q| q.model = Some("deepseek-chat".into())),
        Box::new(|q| q.from = Some(base + Duration::milliseconds(731_003 * 4))),
        Box::new(|q| {
            q.from = Some(base + Duration::milliseconds(731_003 * 2) + Duration::microseconds(1));
            q.to = Some(base + Duration::milliseconds(731_003 * 9));
            q.limit = 1;
        }),
        Box::new(|q| q.limit = 100_000),
    ];
    let scopes: Vec<(UsageScope, InScope)> = vec![
        (UsageScope::Group(g.clone()), Box::new(|_| true)),
        (UsageScope::Key(keys[1].clone()), {
            let k = keys[1].clone();
            Box::new(move |r| r.key_id == k)
        }),
        (UsageScope::User(users[0].clone()), {
            let u = users[0].clone();
            Box::new(move |r| r.user_id == u)
        }),
        (
            UsageScope::Member {
                group_id: g.clone(),
                user_id: users[1].clone(),
            },
            {
                let u = users[1].clone();
                Box::new(move |r| r.user_id == u)
            },
        ),
    ];
    for (scope, in_scope) in &scopes {
        for f in &filters {
            let mut q = query(scope.clone());
            f(&mut q);
            let got = all_pages(store, q.clone()).await;
            assert_eq!(got, expect(&q, in_scope.as_ref()), "{q:?}");
        }
    }

    // A cursor resumes just after its row, even among rows of one
    // millisecond.
    let first = store.requests(&whole).await.unwrap();
    let third = &first.rows[2];
    let mut resumed = whole.clone();
    resumed.cursor = Some(RequestCursor::after(third));
    let rest = store.requests(&resumed).await.unwrap();
    assert_eq!(rest.rows[..4], first.rows[3..]);
    assert!(store
        .requests(&query(UsageScope::Key(new_id())))
        .await
        .unwrap()
        .rows
        .is_empty());
}

/// Retention folds old records into hourly rollups: the request log
/// forgets them, every report over whole hours sums exactly as before,
/// and rolling up again changes nothing.
pub async fn request_log_retention<S: Store + ?Sized>(store: &S) {
    let g = new_id();
    let users = [new_id(), new_id()];
    let keys = [new_id(), new_id(), new_id()];
    // Long before anything another check writes, so only these fold.
    let base = Utc.with_ymd_and_hms(1999, 12, 31, 21, 17, 3).unwrap();
    let account_ids = [new_id(), new_id()];
    let old = records(&g, &users, &keys, &account_ids, base);
    let cutoff = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let recent = records(
        &g,
        &users,
        &keys,
        &account_ids,
        cutoff + Duration::minutes(30),
    );
    store.insert_usage(&old).await.unwrap();
    store.insert_usage(&recent).await.unwrap();
    let all: Vec<UsageRecord> = old.iter().chain(&recent).cloned().collect();

    let scopes = [
        UsageScope::Group(g.clone()),
        UsageScope::Key(keys[0].clone()),
        UsageScope::User(users[1].clone()),
        UsageScope::Account(account_ids[0].clone()),
        UsageScope::Member {
            group_id: g.clone(),
            user_id: users[0].clone(),
        },
    ];
    let group_bys = [
        None,
        Some(UsageGroupBy::Day),
        Some(UsageGroupBy::Hour),
        Some(UsageGroupBy::Model),
        Some(UsageGroupBy::Key),
        Some(UsageGroupBy::Account),
    ];
    let hours = [
        (None, None),
        (
            Some(base - Duration::minutes(17) - Duration::seconds(3)),
            None,
        ),
        (
            Some(cutoff - Duration::hours(1)),
            Some(cutoff + Duration::hours(2)),
        ),
        (None, Some(cutoff)),
    ];
    let mut before = BTreeMap::new();
    for scope in &scopes {
        for group_by in group_bys {
            for (from, to) in hours {
                let q = UsageQuery {
                    scope: scope.clone(),
                    from,
                    to,
                    group_by,
                };
                let report = store.usage_report(&q).await.unwrap();
                assert_eq!(report, q.aggregate(&all), "{q:?}");
                if q.scope == scopes[0] && q.from.is_none() && q.to == Some(cutoff) {
                    // Every reason is among the records that fold.
                    let refusals = report.totals.refusals;
                    assert!(refusals.iter().all(|(_, n)| n == 1), "{refusals:?}");
                }
                before.insert(format!("{q:?}"), (q, report));
            }
        }
    }
    let since = [
        cutoff - Duration::hours(2),
        cutoff,
        base - Duration::hours(1),
    ];
    let since_before = store.usage_since(&scopes[0], &since).await.unwrap();

    // How many it folded is not checked: a suite running beside this one
    // may have folded these records first.
    store.roll_up_before(cutoff).await.unwrap();
    for (name, (q, report)) in &before {
        assert_eq!(&store.usage_report(q).await.unwrap(), report, "{name}");
    }
    assert_eq!(
        store.usage_since(&scopes[0], &since).await.unwrap(),
        since_before
    );

    // The log keeps only the recent records.
    let log = all_pages(
        store,
        RequestQuery {
            scope: UsageScope::Group(g.clone()),
            status: None,
            model: None,
            from: None,
            to: None,
            limit: 500,
            cursor: None,
        },
    )
    .await;
    assert_eq!(log.len(), recent.len());
    assert!(log.iter().all(|r| r.at >= cutoff));

    // Again: nothing more to fold, nothing counted twice.
    store.roll_up_before(cutoff).await.unwrap();
    let q = &before.values().next().unwrap().0;
    assert_eq!(
        store.usage_report(q).await.unwrap(),
        before[&format!("{q:?}")].1
    );

    // What the rollups hold is what folding the records in Rust gives.
    let mut expected = BTreeMap::new();
    UsageRollup::fold(&mut expected, &old);
    let by_hour = UsageQuery {
        scope: UsageScope::Group(g.clone()),
        from: None,
        to: Some(cutoff),
        group_by: Some(UsageGroupBy::Hour),
    };
    assert_eq!(
        store.usage_report(&by_hour).await.unwrap(),
        by_hour.aggregate(expected.values())
    );
}
