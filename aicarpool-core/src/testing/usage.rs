//! Conformance checks: usage records and reports.

use super::*;

pub fn usage_record(
    group_id: &str,
    user_id: &str,
    key_id: &str,
    account_id: Option<&str>,
    at: DateTime<Utc>,
) -> UsageRecord {
    UsageRecord {
        id: new_id(),
        at,
        key_id: key_id.to_owned(),
        user_id: user_id.to_owned(),
        group_id: group_id.to_owned(),
        account_id: account_id.map(str::to_owned),
        model: "claude-sonnet-4-5".into(),
        usage: Usage {
            input_tokens: 1200,
            output_tokens: 340,
            cache_write_5m_tokens: 50,
            cache_write_1h_tokens: 7,
            cache_read_tokens: 9000,
        },
        cost_micro_usd: 4321,
        latency_ms: 812,
        status: 200,
        accuracy: Accuracy::Exact,
        served_model: None,
        refusal: None,
        ttfb_ms: Some(95),
        attempts: 1,
        failed_over: Vec::new(),
    }
}

/// Usage: idempotent inserts, and reports equal to [`UsageQuery::aggregate`]
/// over the same records for every scope, bucketing and time bound.
pub async fn usage<S: Store + ?Sized>(store: &S) {
    let (g, g2) = (new_id(), new_id());
    let (u1, u2) = (new_id(), new_id());
    let (k1, k2, k3) = (new_id(), new_id(), new_id());
    let (a1, a2) = (new_id(), new_id());
    // Spans midnight and several hours, so day and hour buckets differ.
    let base = Utc.with_ymd_and_hms(2031, 3, 14, 21, 59, 59).unwrap();
    let at = |ms: i64| base + Duration::milliseconds(ms);
    let models = ["claude-sonnet-4-5", "claude-opus-4-1", "kimi-k2", "Zeta"];
    let statuses = [200, 200, 429, 500, 200, 400, 201];
    let accuracies = [Accuracy::Exact, Accuracy::Partial, Accuracy::Estimated];
    let offsets = [
        0,
        1,
        999,
        1_000,
        3_600_000,
        3_600_001,
        7_199_999,
        86_400_000,
        90_061_001,
        172_800_123,
        -3_600_000,
        -1,
    ];
    let mut records = Vec::new();
    for (i, &off) in offsets.iter().enumerate() {
        let (group_id, user_id, key_id) = match i % 4 {
            0 => (&g, &u1, &k1),
            1 => (&g, &u1, &k2),
            2 => (&g, &u2, &k3),
            _ => (&g2, &u2, &k3),
        };
        let account = match i % 3 {
            0 => Some(a1.as_str()),
            1 => Some(a2.as_str()),
            _ => None,
        };
        let n = i as u64 + 1;
        records.push(UsageRecord {
            model: models[i % models.len()].into(),
            usage: Usage {
                input_tokens: n * 1_000 + (1 << 33),
                output_tokens: n * 17,
                cache_write_5m_tokens: n,
                cache_write_1h_tokens: n * 2,
                cache_read_tokens: if i % 2 == 0 { 0 } else { n * 40_000 },
            },
            cost_micro_usd: 1_000 * n as i64 + 7,
            latency_ms: 10 * n,
            status: statuses[i % statuses.len()],
            accuracy: accuracies[i % accuracies.len()],
            served_model: (i % 3 == 1).then(|| format!("served-{i}")),
            refusal: RefusalReason::ALL.get(i % 7).copied(),
            ttfb_ms: (i % 4 != 3).then_some(3 * n),
            attempts: (i % 3) as u32,
            failed_over: if i % 3 == 2 {
                vec![a2.clone(), a1.clone()]
            } else {
                Vec::new()
            },
            ..usage_record(group_id, user_id, key_id, account, at(off))
        });
    }

    store.insert_usage(&[]).await.unwrap();
    store.insert_usage(&records[..5]).await.unwrap();
    // A retry of the batch with more records, one of them twice and one
    // changed under an existing id: nothing is counted twice, the first
    // write wins.
    let mut retry = records.clone();
    retry.push(records[7].clone());
    let mut changed = records[0].clone();
    changed.usage.input_tokens = 1;
    changed.cost_micro_usd = 1;
    retry.insert(0, changed);
    store.insert_usage(&retry).await.unwrap();
    store.insert_usage(&records[3..]).await.unwrap();

    let whole_group = UsageQuery {
        scope: UsageScope::Group(g.clone()),
        from: None,
        to: None,
        group_by: None,
    };
    let report = store.usage_report(&whole_group).await.unwrap();
    assert_eq!(report.totals.requests, 9);
    assert!(report.rows.is_empty(), "no rows without group_by");
    // The cache-write split and the accuracy counts are kept apart.
    let t = &report.totals;
    assert_eq!(
        t.cache_write_5m_tokens + t.cache_write_1h_tokens,
        t.cache_write_tokens
    );
    assert_eq!(t.cache_write_1h_tokens, 2 * t.cache_write_5m_tokens);
    assert_eq!((t.estimated, t.partial), (3, 3), "{t:?}");
    // Every refusal reason counts on its own, each also an error.
    let refused: Vec<u64> = t.refusals.iter().map(|(_, n)| n).collect();
    assert_eq!(refused, [1, 2, 2, 1, 1], "{t:?}");
    assert_eq!(report, whole_group.aggregate(&records));

    let scopes = [
        UsageScope::Key(k1.clone()),
        UsageScope::Key(k3.clone()),
        UsageScope::User(u1.clone()),
        UsageScope::User(u2.clone()),
        UsageScope::Group(g.clone()),
        UsageScope::Group(g2.clone()),
        UsageScope::Account(a1.clone()),
        UsageScope::Account(a2.clone()),
        UsageScope::Key(new_id()),
        UsageScope::Member {
            group_id: g.clone(),
            user_id: u2.clone(),
        },
        UsageScope::Member {
            group_id: g2.clone(),
            user_id: u1.clone(),
        },
    ];
    let group_bys = [
        None,
        Some(UsageGroupBy::Day),
        Some(UsageGroupBy::Hour),
        Some(UsageGroupBy::Model),
        Some(UsageGroupBy::User),
        Some(UsageGroupBy::Key),
        Some(UsageGroupBy::Account),
    ];
    let sub_ms = Duration::microseconds(500);
    let bounds = [
        (None, None),
        (Some(at(1_000)), None),
        (None, Some(at(86_400_000))),
        (Some(at(1)), Some(at(7_199_999))),
        // Bounds finer than a millisecond must still be honoured exactly.
        (Some(at(999) - sub_ms), Some(at(3_600_001) + sub_ms)),
        (Some(at(999) + sub_ms), Some(at(3_600_001) - sub_ms)),
        (Some(at(5)), Some(at(5))),
        (Some(at(10)), Some(at(0))),
    ];
    for scope in &scopes {
        for group_by in group_bys {
            for (from, to) in bounds {
                let q = UsageQuery {
                    scope: scope.clone(),
                    from,
                    to,
                    group_by,
                };
                let got = store.usage_report(&q).await.unwrap();
                assert_eq!(got, q.aggregate(&records), "report for {q:?}");
            }
        }
    }

    let by_account = UsageQuery {
        scope: UsageScope::Group(g.clone()),
        from: None,
        to: None,
        group_by: Some(UsageGroupBy::Account),
    };
    let report = store.usage_report(&by_account).await.unwrap();
    assert_eq!(
        report.rows.first().map(|r| r.bucket.as_str()),
        Some(""),
        "no account"
    );
    let by_day = UsageQuery {
        group_by: Some(UsageGroupBy::Day),
        ..whole_group
    };
    let days: Vec<String> = store
        .usage_report(&by_day)
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.bucket)
        .collect();
    assert_eq!(days, ["2031-03-14", "2031-03-15", "2031-03-16"]);
}
