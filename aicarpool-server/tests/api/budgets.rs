//! Department and enterprise budgets stack on group and key limits: a
//! request must fit every scope, and crossing a threshold records an
//! enterprise event.

use aicarpool_testkit::MockUpstream;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{self, TestServer};

const UPSTREAM_KEY: &str = "sk-ant-budget-pool";

/// Tokens one request of the mock counts against token budgets: input,
/// output and cache writes (its default usage).
const PER_REQUEST: u64 = 25 + 12 + 100 + 200;

async fn created(s: &TestServer, path: &str, token: &str, body: Value) -> String {
    let (st, v) = s.post(path, token, body).await;
    assert_eq!(st, StatusCode::CREATED, "POST {path}: {v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn message(s: &TestServer, key: &str) -> (StatusCode, String) {
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// A group in `department` bound to the pool, with a key for the owner.
async fn group_with_key(s: &TestServer, owner: &str, department: &str, pool: &str) -> String {
    let g = created(
        s,
        "/api/groups",
        owner,
        json!({"name": "g", "departmentId": department}),
    )
    .await;
    let (st, b) = s
        .put(
            &format!("/api/groups/{g}/binding"),
            owner,
            json!({"mode": "shared", "accounts": [{"accountId": pool}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, k) = s
        .post(
            &format!("/api/groups/{g}/keys"),
            owner,
            json!({"name": "k"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    k["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn department_and_enterprise_budgets_stack_and_raise_events() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = support::spawn().await;
    let (_, owner) = s.register("cfo@budget.test").await;
    // The enterprise allows a bit more than one request a day; the second
    // department less than one.
    let e = created(
        &s,
        "/api/enterprises",
        &owner,
        json!({"name": "Budgeted", "dailyTokenBudget": PER_REQUEST + 63}),
    )
    .await;
    let deps = format!("/api/enterprises/{e}/departments");
    let open = created(&s, &deps, &owner, json!({"name": "Open"})).await;
    let tight = created(
        &s,
        &deps,
        &owner,
        json!({"name": "Tight", "dailyTokenBudget": PER_REQUEST - 37}),
    )
    .await;
    let pool = created(
        &s,
        &format!("/api/enterprises/{e}/accounts"),
        &owner,
        json!({"name": "pool", "platform": "claude_api", "baseUrl": upstream.url, "credentials": {"apiKey": UPSTREAM_KEY}}),
    )
    .await;
    let key_open = group_with_key(&s, &owner, &open, &pool).await;
    let key_tight = group_with_key(&s, &owner, &tight, &pool).await;

    // Tight: the first request fits (nothing spent yet), the second does
    // not, though its group and key have no limits at all.
    let (st, body) = message(&s, &key_tight).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = message(&s, &key_tight).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("this department"), "{body}");
    assert!(body.contains("tokens.daily"), "{body}");

    // Open has no budget of its own, but the enterprise counts Tight's
    // request too: one more request fits, then the enterprise is spent.
    let (st, body) = message(&s, &key_open).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = message(&s, &key_open).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("this enterprise"), "{body}");
    assert_eq!(
        upstream.hits(),
        2,
        "refused requests never reach the upstream"
    );

    // Raising the enterprise budget applies at once.
    let (st, b) = s
        .patch(
            &format!("/api/enterprises/{e}"),
            &owner,
            json!({"dailyTokenBudget": 100 * PER_REQUEST}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["dailyTokenBudget"], 100 * PER_REQUEST, "{b}");
    let (st, body) = message(&s, &key_open).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // Events: the department at 100 %, the enterprise at 80 % then 100 %.
    let (st, events) = s.get(&format!("/api/enterprises/{e}/events"), &owner).await;
    assert_eq!(st, StatusCode::OK, "{events}");
    let seen: Vec<(String, u64)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| {
            assert_eq!(ev["kind"], "budget.threshold", "{ev}");
            (
                ev["detail"]["scope"].as_str().unwrap().to_owned(),
                ev["detail"]["thresholdPercent"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [("department", 100), ("enterprise", 80), ("enterprise", 100)] {
        assert!(
            seen.contains(&(want.0.to_owned(), want.1)),
            "{want:?} missing from {seen:?}"
        );
    }
    assert_eq!(seen.len(), 3, "one event per crossing: {seen:?}");
    let dept_event = events
        .as_array()
        .unwrap()
        .iter()
        .find(|ev| ev["detail"]["scope"] == "department")
        .unwrap();
    assert_eq!(dept_event["departmentId"], tight);
    assert_eq!(dept_event["detail"]["budget"], "tokens.daily");
}

#[tokio::test]
async fn budgets_are_validated() {
    let s = support::spawn().await;
    let (_, owner) = s.register("val@budget.test").await;
    let (st, b) = s
        .post(
            "/api/enterprises",
            &owner,
            json!({"name": "x", "monthlyBudgetUsd": "ten"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("monthlyBudgetUsd"),
        "{b}"
    );
    let e = created(
        &s,
        "/api/enterprises",
        &owner,
        json!({"name": "x", "monthlyBudgetUsd": 12.5}),
    )
    .await;
    let (st, b) = s
        .patch(
            &format!("/api/enterprises/{e}"),
            &owner,
            json!({"monthlyBudgetUsd": 2e9}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) = s
        .patch(
            &format!("/api/enterprises/{e}"),
            &owner,
            json!({"monthlyBudgetUsd": null, "dailyTokenBudget": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["monthlyBudgetUsd"], Value::Null);
    assert_eq!(b["dailyTokenBudget"], Value::Null);
}
