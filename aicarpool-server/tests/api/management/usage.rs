//! Usage reports and who may read them.

use super::*;

#[tokio::test]
async fn usage_reports_and_permissions() {
    let s = support::spawn().await;
    let t = team(&s, "usage").await;
    let g = &t.group;
    let (_, k) = s
        .post(&format!("/api/groups/{g}/keys"), &t.member.1, json!({}))
        .await;
    let key_id = k["id"].as_str().unwrap().to_owned();
    let (_, acc) = s
        .post(
            &format!("/api/groups/{g}/accounts"),
            &t.owner.1,
            json!({"name": "a", "platform": "claude_api", "credentials": {"apiKey": "k"}}),
        )
        .await;
    let account_id = acc["id"].as_str().unwrap().to_owned();
    let record = |n: u64, status: u16, at: chrono::DateTime<Utc>| UsageRecord {
        id: aicarpool_core::id::new_id(),
        at,
        key_id: key_id.clone(),
        user_id: t.member.0.clone(),
        group_id: g.clone(),
        account_id: Some(account_id.clone()),
        model: "claude-sonnet-4-5".into(),
        usage: Usage {
            input_tokens: n,
            output_tokens: 2 * n,
            cache_write_5m_tokens: 1,
            cache_write_1h_tokens: 1,
            cache_read_tokens: 3,
        },
        cost_micro_usd: 1_500_000,
        latency_ms: 10,
        status,
        accuracy: Accuracy::Exact,
        served_model: None,
        refusal: None,
        ttfb_ms: Some(5),
        attempts: 1,
        failed_over: Vec::new(),
    };
    let day = |d: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 3, d)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
    };
    s.state
        .store
        .insert_usage(&[record(10, 200, day(1)), record(5, 500, day(2))])
        .await
        .unwrap();

    // The member's own usage, by day (the default scope).
    let (st, r) = s.get("/api/usage?groupBy=day", &t.member.1).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["totals"]["requests"], 2);
    assert_eq!(r["totals"]["inputTokens"], 15);
    assert_eq!(r["totals"]["outputTokens"], 30);
    assert_eq!(r["totals"]["cacheWriteTokens"], 4);
    assert_eq!(r["totals"]["cacheReadTokens"], 6);
    assert_eq!(r["totals"]["costUsd"], 3.0);
    assert_eq!(r["totals"]["errors"], 1);
    assert_eq!(r["rows"].as_array().unwrap().len(), 2);
    assert_eq!(r["rows"][0]["bucket"], "2026-03-01");

    let (st, r) = s
        .get(
            &format!("/api/usage?scope=key&id={key_id}&from=2026-03-02&to=2026-03-02"),
            &t.member.1,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["totals"]["requests"], 1);

    // Group and account scope: owner/admin only.
    let (st, _) = s
        .get(&format!("/api/usage?scope=group&id={g}"), &t.member.1)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = s
        .get(
            &format!("/api/usage?scope=group&id={g}&groupBy=user"),
            &t.admin.1,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["rows"][0]["bucket"], t.member.0.as_str());
    let (st, _) = s
        .get(
            &format!("/api/usage?scope=account&id={account_id}"),
            &t.member.1,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = s
        .get(
            &format!("/api/usage?scope=account&id={account_id}"),
            &t.owner.1,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["totals"]["requests"], 2);
    let (st, _) = s
        .get(&format!("/api/usage?scope=key&id={key_id}"), &t.admin.1)
        .await;
    assert_eq!(st, StatusCode::OK);

    // Others' usage.
    let (_, stranger) = s.register("nosy@example.com").await;
    let (st, _) = s
        .get(&format!("/api/usage?scope=group&id={g}"), &stranger)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .get(&format!("/api/usage?scope=key&id={key_id}"), &stranger)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .get(
            &format!("/api/usage?scope=user&id={}", t.member.0),
            &t.admin.1,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = s
        .get(
            &format!("/api/usage?scope=user&id={}", t.member.0),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["totals"]["requests"], 2);

    for (q, needle) in [
        ("scope=planet&id=x", "scope"),
        ("scope=group", "id"),
        ("from=last-week", "from"),
        ("to=2026-13-01", "to"),
        ("groupBy=week", "groupBy"),
    ] {
        let (st, body) = s.get(&format!("/api/usage?{q}"), &t.member.1).await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, needle);
    }
}
