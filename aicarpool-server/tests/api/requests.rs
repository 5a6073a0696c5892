//! `GET /api/requests`: the request log read back after real requests,
//! who may read it, its paging and filters, and its retention.

use aicarpool_core::usage::{Accuracy, Usage, UsageRecord};
use aicarpool_testkit::{Behavior, MockUpstream};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{report_with, spawn, TestServer, ADMIN_TOKEN};

const KEY: &str = "sk-ant-request-log";

struct Carpool {
    owner: String,
    member: (String, String),
    group: String,
    accounts: Vec<String>,
    key: String,
}

/// Two accounts (the first preferred), a member with a key limited to
/// three requests a minute.
async fn carpool(s: &TestServer, first: &str, second: &str) -> Carpool {
    let tag = aicarpool_core::id::new_id().to_lowercase();
    let (_, owner) = s.register(&format!("owner-{tag}@example.com")).await;
    let (_, group) = s.post("/api/groups", &owner, json!({"name": "log"})).await;
    let group = group["id"].as_str().unwrap().to_owned();
    let mut accounts = Vec::new();
    for (i, url) in [first, second].into_iter().enumerate() {
        let (st, a) = s
            .post(
                &format!("/api/groups/{group}/accounts"),
                &owner,
                json!({"name": format!("acc-{i}"), "platform": "claude_api", "baseUrl": url,
                       "priority": i + 1, "credentials": {"apiKey": KEY}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        accounts.push(a["id"].as_str().unwrap().to_owned());
    }
    let bound: Vec<Value> = accounts.iter().map(|a| json!({"accountId": a})).collect();
    let (st, b) = s
        .put(
            &format!("/api/groups/{group}/binding"),
            &owner,
            json!({"mode": "dedicated", "accounts": bound}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let member = s.register(&format!("member-{tag}@example.com")).await;
    let (st, inv) = s
        .post(
            &format!("/api/groups/{group}/invitations"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let token = inv["token"].as_str().unwrap();
    let (st, j) = s
        .post(
            &format!("/api/invitations/{token}/accept"),
            &member.1,
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{j}");
    let (st, key) = s
        .post(
            &format!("/api/groups/{group}/keys"),
            &member.1,
            json!({"name": "cli", "limits": {"requestsPerMinute": 3}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    Carpool {
        owner,
        member,
        group,
        accounts,
        key: key["key"].as_str().unwrap().to_owned(),
    }
}

async fn send(s: &TestServer, c: &Carpool, model: &str, stream: bool) -> StatusCode {
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &c.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": model, "max_tokens": 16, "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    resp.bytes().await.unwrap();
    status
}

#[tokio::test]
async fn the_log_shows_each_request_with_its_failover_path_to_whoever_may_see_it() {
    let failing = MockUpstream::start(KEY).await.unwrap();
    let healthy = MockUpstream::start(KEY).await.unwrap();
    failing.push([Behavior::Overloaded]);
    let s = spawn().await;
    let c = carpool(&s, &failing.url, &healthy.url).await;

    // Fails over from the first account; then a stream; then two more
    // than the key's three a minute, refused.
    assert_eq!(
        send(&s, &c, "claude-sonnet-4-5", false).await,
        StatusCode::OK
    );
    assert_eq!(send(&s, &c, "claude-opus-4-1", true).await, StatusCode::OK);
    assert_eq!(
        send(&s, &c, "claude-sonnet-4-5", false).await,
        StatusCode::OK
    );
    assert_eq!(
        send(&s, &c, "claude-sonnet-4-5", false).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let usage = report_with(&s, &c.member.1, "", 4).await;

    let (st, log) = s.get("/api/requests", &c.member.1).await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let rows = log["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{log}");
    assert_eq!(log["next"], Value::Null);
    // Newest first (requests ending within one millisecond may swap).
    let times: Vec<&str> = rows.iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let refused: Vec<&Value> = rows.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert_eq!(refused[0]["refusal"], "rate-limit");
    assert_eq!(refused[0]["attempts"], 0);
    assert_eq!(refused[0]["accountId"], Value::Null);
    let failed_over = rows
        .iter()
        .find(|r| r["attempts"] == 2)
        .expect("the failed-over row");
    assert_eq!(failed_over["status"], 200);
    assert_eq!(failed_over["attempts"], 2);
    assert_eq!(failed_over["accountId"], c.accounts[1].as_str());
    assert_eq!(failed_over["failedOver"], json!([c.accounts[0]]));
    assert_eq!(failed_over["accuracy"], "exact");
    assert_eq!(failed_over["refusal"], Value::Null);
    assert!(failed_over["ttfbMs"].as_u64().is_some());
    assert!(failed_over["inputTokens"].as_u64().unwrap() > 0);
    let opus = rows
        .iter()
        .find(|r| r["model"] == "claude-opus-4-1")
        .unwrap();
    assert_eq!(opus["failedOver"], json!([]));
    for r in rows {
        assert_eq!(r["userId"], c.member.0.as_str());
        assert_eq!(r["groupId"], c.group.as_str());
    }
    let summed: f64 = rows.iter().map(|r| r["costUsd"].as_f64().unwrap()).sum();
    assert!((summed - usage["totals"]["costUsd"].as_f64().unwrap()).abs() < 1e-9);
    // Bodies are never kept, so the log cannot show one.
    assert!(!log.to_string().contains("\"hi\""));

    // Filters and pages.
    let (_, errors) = s.get("/api/requests?status=error", &c.member.1).await;
    assert_eq!(errors["rows"].as_array().unwrap().len(), 1);
    let (_, refused) = s.get("/api/requests?status=refused", &c.member.1).await;
    assert_eq!(refused["rows"].as_array().unwrap().len(), 1);
    let (_, opus) = s
        .get("/api/requests?model=claude-opus-4-1", &c.member.1)
        .await;
    assert_eq!(opus["rows"].as_array().unwrap().len(), 1);
    let group_log = format!("/api/requests?scope=group&id={}", c.group);
    let (st, page) = s.get(&format!("{group_log}&limit=3"), &c.owner).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert_eq!(page["rows"].as_array().unwrap().len(), 3);
    let next = page["next"].as_str().unwrap();
    let (_, last) = s
        .get(&format!("{group_log}&limit=3&cursor={next}"), &c.owner)
        .await;
    assert_eq!(last["rows"].as_array().unwrap().len(), 1);
    let (_, whole) = s.get(&group_log, &c.owner).await;
    assert_eq!(last["rows"][0]["id"], whole["rows"][3]["id"]);
    assert_eq!(last["next"], Value::Null);

    // Visibility is the usage reports': a member sees their own, not the
    // group's; a stranger sees nothing; the admin token everything.
    let (st, _) = s.get(&group_log, &c.member.1).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, stranger) = s.register("log-stranger@example.com").await;
    let (st, _) = s.get(&group_log, &stranger).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .get(
            &format!("/api/requests?scope=user&id={}", c.member.0),
            &stranger,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, all) = s.get(&group_log, ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all["rows"].as_array().unwrap().len(), 4);

    // Bad queries name what is wrong.
    for (q, what) in [
        ("status=teapot", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=nonsense", "cursor"),
        ("from=yesterday", "from"),
    ] {
        let (st, e) = s.get(&format!("/api/requests?{q}"), &c.member.1).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(what),
            "{e}"
        );
    }
}

#[tokio::test]
async fn retention_drops_old_rows_from_the_log_but_not_from_totals() {
    let upstream = MockUpstream::start(KEY).await.unwrap();
    let s = spawn().await;
    let c = carpool(&s, &upstream.url, &upstream.url).await;
    assert_eq!(
        send(&s, &c, "claude-sonnet-4-5", false).await,
        StatusCode::OK
    );
    let before = report_with(&s, &c.member.1, "", 1).await;
    // An old record, as if written 40 days ago.
    let (_, log) = s.get("/api/requests", &c.member.1).await;
    let (_, keys) = s
        .get(&format!("/api/groups/{}/keys", c.group), &c.member.1)
        .await;
    let old = UsageRecord {
        id: aicarpool_core::id::new_id(),
        at: Utc::now() - Duration::days(40),
        key_id: keys[0]["id"].as_str().unwrap().to_owned(),
        user_id: c.member.0.clone(),
        group_id: c.group.clone(),
        account_id: Some(c.accounts[0].clone()),
        model: "claude-sonnet-4-5".into(),
        usage: Usage {
            input_tokens: 100,
            ..Usage::default()
        },
        cost_micro_usd: 2_000_000,
        latency_ms: 10,
        status: 200,
        accuracy: Accuracy::Exact,
        served_model: None,
        refusal: None,
        ttfb_ms: Some(5),
        attempts: 1,
        failed_over: Vec::new(),
    };
    s.state.store.insert_usage(&[old]).await.unwrap();
    let (_, with_old) = s.get("/api/requests", &c.member.1).await;
    assert_eq!(with_old["rows"].as_array().unwrap().len(), 2);

    let folded = aicarpool_server::retention::run_once(&s.state.store, 30, Utc::now()).await;
    assert_eq!(folded, 1);
    let (_, after) = s.get("/api/requests", &c.member.1).await;
    assert_eq!(after["rows"], log["rows"], "only the recent row is left");
    // The total still counts it, at hourly grain.
    let (_, total) = s.get("/api/usage", &c.member.1).await;
    assert_eq!(total["totals"]["requests"], 2);
    let cost = total["totals"]["costUsd"].as_f64().unwrap();
    let expected = before["totals"]["costUsd"].as_f64().unwrap() + 2.0;
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    // Zero days keeps everything.
    assert_eq!(
        aicarpool_server::retention::run_once(&s.state.store, 0, Utc::now()).await,
        0
    );
}
