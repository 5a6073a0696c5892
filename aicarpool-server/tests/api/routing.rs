//! Routing through the server with two or three mock upstreams: every
//! failure kind cools (or does not cool) the right account, failover hides
//! it from the member, sessions stick, accounts come back by themselves,
//! and the health and routing endpoints say what happened.

use aicarpool_testkit::{Behavior, MockUpstream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{spawn, TestServer};

mod sessions;

const KEY: &str = "sk-ant-routing-test";

/// A carpool group served by accounts on the given upstreams.
struct Carpool {
    token: String,
    group: String,
    accounts: Vec<String>,
    key: String,
}

/// One account per `(url, priority)`, bound dedicated in that order.
async fn carpool(s: &TestServer, upstreams: &[(&str, i32)]) -> Carpool {
    let email = format!(
        "owner-{}@example.com",
        aicarpool_core::id::new_id().to_lowercase()
    );
    let (_, token) = s.register(&email).await;
    let (st, group) = s
        .post("/api/groups", &token, json!({"name": "routing"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let mut accounts = Vec::new();
    for (i, (url, priority)) in upstreams.iter().enumerate() {
        let (st, a) = s
            .post(
                &format!("/api/groups/{group}/accounts"),
                &token,
                json!({"name": format!("acc-{i}"), "platform": "claude_api", "baseUrl": url,
                       "priority": priority, "credentials": {"apiKey": KEY}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        accounts.push(a["id"].as_str().unwrap().to_owned());
    }
    let bound: Vec<Value> = accounts.iter().map(|a| json!({"accountId": a})).collect();
    let (st, b) = s
        .put(
            &format!("/api/groups/{group}/binding"),
            &token,
            json!({"mode": "dedicated", "accounts": bound}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, key) = s
        .post(
            &format!("/api/groups/{group}/keys"),
            &token,
            json!({"name": "cli"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    Carpool {
        token,
        group,
        accounts,
        key: key["key"].as_str().unwrap().to_owned(),
    }
}

/// A small request; each `turn` is its own conversation unless `session`.
fn request(
    s: &TestServer,
    c: &Carpool,
    turn: usize,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &c.key)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1,
                      "messages": [{"role": "user", "content": format!("question {turn}")}]}));
    if let Some(id) = session {
        req = req.header("x-claude-code-session-id", id);
    }
    req
}

async fn send(s: &TestServer, c: &Carpool, turn: usize) -> StatusCode {
    request(s, c, turn, None).send().await.unwrap().status()
}

async fn health(s: &TestServer, c: &Carpool, account: usize) -> Value {
    let (st, h) = s
        .get(
            &format!("/api/accounts/{}/health", c.accounts[account]),
            &c.token,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{h}");
    h
}

fn secs_from_now(v: &Value) -> i64 {
    let at: DateTime<Utc> = v.as_str().unwrap().parse().unwrap();
    (at - Utc::now()).num_seconds()
}

async fn mocks(n: usize) -> Vec<MockUpstream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(MockUpstream::start(KEY).await.unwrap());
    }
    out
}

#[tokio::test]
async fn rate_limit_with_retry_after_cools_until_then_and_fails_over() {
    let m = mocks(2).await;
    m[0].push([Behavior::RateLimited {
        retry_after: Some(30),
        unified_reset: None,
    }]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    for turn in 0..4 {
        assert_eq!(send(&s, &c, turn).await, StatusCode::OK);
    }
    assert_eq!(m[0].hits(), 1, "a cooling account gets no request");
    assert_eq!(m[1].hits(), 4);
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "cooling", "{h}");
    assert_eq!(h["reason"], "rate_limited");
    assert!(
        (27..=30).contains(&secs_from_now(&h["coolingUntil"])),
        "{h}"
    );
    assert_eq!(h["lastError"]["status"], 429);
    assert_eq!(h["recentSuccessRate"], 0.0);
    assert_eq!(health(&s, &c, 1).await["recentSuccessRate"], 1.0);

    let (st, r) = s
        .get(&format!("/api/groups/{}/routing", c.group), &c.token)
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["eligible"], 1);
    assert_eq!(r["mode"], "dedicated");
    let rows = r["candidates"].as_array().unwrap();
    assert_eq!(rows[0]["eligible"], false);
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("cooling: rate limited until"),
        "{r}"
    );
    assert_eq!(rows[0]["state"], "cooling");
    assert_eq!(rows[1]["eligible"], true);
    assert_eq!(rows[1]["reason"], "eligible");
}

#[tokio::test]
async fn rate_limit_with_a_unified_reset_cools_until_the_reset() {
    let m = mocks(2).await;
    let reset = Utc::now().timestamp() + 600;
    m[0].push([Behavior::RateLimited {
        retry_after: None,
        unified_reset: Some(reset),
    }]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    assert_eq!(send(&s, &c, 0).await, StatusCode::OK);
    let h = health(&s, &c, 0).await;
    let until: DateTime<Utc> = h["coolingUntil"].as_str().unwrap().parse().unwrap();
    assert_eq!(until.timestamp(), reset, "{h}");
    assert_eq!(h["unifiedWindow"]["fiveHour"]["status"], "rejected", "{h}");
    let reset_at: DateTime<Utc> = h["unifiedWindow"]["resetAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset_at.timestamp(), reset);
    assert_eq!(send(&s, &c, 1).await, StatusCode::OK);
    assert_eq!(m[0].hits(), 1);
}

#[tokio::test]
async fn overload_529_cools_for_thirty_seconds() {
    let m = mocks(2).await;
    m[0].push([Behavior::Overloaded]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    assert_eq!(send(&s, &c, 0).await, StatusCode::OK);
    assert_eq!(send(&s, &c, 1).await, StatusCode::OK);
    let h = health(&s, &c, 0).await;
    assert_eq!(h["reason"], "overloaded", "{h}");
    assert!(
        (27..=30).contains(&secs_from_now(&h["coolingUntil"])),
        "{h}"
    );
    assert_eq!((m[0].hits(), m[1].hits()), (1, 2));
}

#[tokio::test]
async fn server_errors_cool_after_three_within_a_minute() {
    let m = mocks(2).await;
    m[0].push([
        Behavior::ServerError,
        Behavior::ServerError,
        Behavior::ServerError,
    ]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    assert_eq!(send(&s, &c, 0).await, StatusCode::OK);
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "healthy", "one 500 is not enough: {h}");
    assert_eq!(h["lastError"]["status"], 500);
    for turn in 1..5 {
        assert_eq!(send(&s, &c, turn).await, StatusCode::OK);
    }
    assert_eq!(m[0].hits(), 3, "cooled after the third");
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "cooling");
    assert_eq!(h["reason"], "failing");
    assert_eq!(m[1].hits(), 5);
}

#[tokio::test]
async fn refused_connections_cool_after_three() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let m = mocks(1).await;
    let s = spawn().await;
    let c = carpool(&s, &[(&closed, 1), (&m[0].url, 2)]).await;
    for turn in 0..5 {
        assert_eq!(send(&s, &c, turn).await, StatusCode::OK);
    }
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "cooling", "{h}");
    assert_eq!(h["reason"], "failing");
    assert_eq!(h["recentOutcomes"], 3, "no attempt after it cooled: {h}");
    assert!(
        h["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{h}"
    );
    assert_eq!(m[0].hits(), 5);
}

#[tokio::test]
async fn refused_credentials_need_attention_until_an_admin_fixes_them() {
    let m = mocks(2).await;
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{}", c.accounts[0]),
            &c.token,
            json!({"credentials": {"apiKey": "sk-ant-revoked"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    for turn in 0..3 {
        assert_eq!(send(&s, &c, turn).await, StatusCode::OK);
    }
    assert_eq!(m[0].hits(), 1, "401 once, then left alone");
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "needs_attention", "{h}");
    assert_eq!(h["lastError"]["status"], 401);
    let (_, r) = s
        .get(&format!("/api/groups/{}/routing", c.group), &c.token)
        .await;
    assert!(
        r["candidates"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("needs attention"),
        "{r}"
    );

    let (st, _) = s
        .patch(
            &format!("/api/accounts/{}", c.accounts[0]),
            &c.token,
            json!({"credentials": {"apiKey": KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(health(&s, &c, 0).await["state"], "healthy");
    assert_eq!(send(&s, &c, 9).await, StatusCode::OK);
    assert_eq!(m[0].hits(), 2, "chosen again once fixed");
}

#[tokio::test]
async fn an_error_event_mid_stream_counts_against_the_account() {
    let m = mocks(2).await;
    m[0].push([Behavior::ErrorMidStream]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &c.key)
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": true,
                      "messages": [{"role": "user", "content": "stream please"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the first byte had gone out");
    let mut body = resp.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&text).contains("event: error"));
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "cooling", "{h}");
    assert_eq!(h["reason"], "overloaded");
    assert_eq!(send(&s, &c, 1).await, StatusCode::OK);
    assert_eq!((m[0].hits(), m[1].hits()), (1, 1));
}

#[tokio::test]
async fn a_client_error_does_not_count_against_the_account() {
    let m = mocks(2).await;
    let bad_request = || Behavior::Error {
        status: 400,
        kind: "invalid_request_error".into(),
    };
    m[0].push([bad_request(), bad_request(), bad_request(), bad_request()]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    for turn in 0..4 {
        assert_eq!(
            send(&s, &c, turn).await,
            StatusCode::BAD_REQUEST,
            "passed through"
        );
    }
    assert_eq!(m[1].hits(), 0, "no failover on the client's own error");
    let h = health(&s, &c, 0).await;
    assert_eq!(h["state"], "healthy", "{h}");
    assert_eq!(h["recentOutcomes"], 0);
    assert!(h["lastError"].is_null());
    assert_eq!(send(&s, &c, 5).await, StatusCode::OK);
    assert_eq!(m[0].hits(), 5);
}

#[tokio::test]
async fn every_account_rate_limited_answers_429_with_the_soonest_recovery() {
    let m = mocks(3).await;
    let reset = Utc::now().timestamp() + 300;
    m[0].push([Behavior::RateLimited {
        retry_after: Some(40),
        unified_reset: None,
    }]);
    m[1].push([Behavior::RateLimited {
        retry_after: Some(20),
        unified_reset: None,
    }]);
    m[2].push([Behavior::RateLimited {
        retry_after: None,
        unified_reset: Some(reset),
    }]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2), (&m[2].url, 3)]).await;
    let resp = request(&s, &c, 0, None).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "20");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // All cooling now: the answer comes without calling anyone.
    let resp = request(&s, &c, 1, None).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((18..=20).contains(&wait), "{wait}");
    assert_eq!(m.iter().map(MockUpstream::hits).sum::<usize>(), 3);
}

#[tokio::test]
async fn overloaded_and_down_accounts_answer_529() {
    let m = mocks(2).await;
    m[0].push([Behavior::Overloaded]);
    m[1].push([Behavior::ServerError]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    let resp = request(&s, &c, 0, None).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 529);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn routing_explains_every_account_to_admins_only() {
    let m = mocks(3).await;
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 5), (&m[2].url, 1)]).await;
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{}", c.accounts[2]),
            &c.token,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{}", c.accounts[1]),
            &c.token,
            json!({"models": ["claude-haiku-*"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, r) = s
        .get(
            &format!("/api/groups/{}/routing?model=claude-sonnet-4-5", c.group),
            &c.token,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["model"], "claude-sonnet-4-5");
    let rows = r["candidates"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["accountId"], c.accounts[0].as_str());
    assert_eq!(rows[0]["eligible"], true);
    assert_eq!(rows[1]["eligible"], false);
    assert!(
        rows[1]["reason"]
            .as_str()
            .unwrap()
            .contains("does not serve model"),
        "{r}"
    );
    assert_eq!(rows[2]["state"], "disabled");
    assert_eq!(rows[2]["eligible"], false);
    let (_, any) = s
        .get(&format!("/api/groups/{}/routing", c.group), &c.token)
        .await;
    assert_eq!(any["candidates"][1]["eligible"], true);
    assert!(
        any["candidates"][1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("standby"),
        "{any}"
    );
    let h = health(&s, &c, 2).await;
    assert_eq!(h["state"], "disabled");
    assert_eq!(h["inFlight"], 0);

    let (_, outsider) = s.register("routing-outsider@example.com").await;
    let (st, _) = s
        .get(&format!("/api/groups/{}/routing", c.group), &outsider)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/groups/{}/routing", c.group),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

/// Without `protocol`, each account is judged for requests of its own
/// protocol (a Gemini key next to Claude accounts is not "wrong protocol"
/// and forms its own tier); with it, for that protocol only.
#[tokio::test]
async fn routing_judges_each_account_by_its_protocol() {
    let s = spawn().await;
    let c = carpool(&s, &[("http://127.0.0.1:9", 1)]).await;
    let (st, gemini) = s
        .post(
            &format!("/api/groups/{}/accounts", c.group),
            &c.token,
            json!({"name": "gem", "platform": "gemini", "baseUrl": "http://127.0.0.1:9",
                   "priority": 5, "credentials": {"apiKey": "AIza-routing"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{gemini}");
    let gemini = gemini["id"].as_str().unwrap().to_owned();
    let bound = json!([{"accountId": c.accounts[0]}, {"accountId": gemini}]);
    let (st, b) = s
        .put(
            &format!("/api/groups/{}/binding", c.group),
            &c.token,
            json!({"mode": "dedicated", "accounts": bound}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");

    let path = format!("/api/groups/{}/routing", c.group);
    let (st, own) = s.get(&path, &c.token).await;
    assert_eq!(st, StatusCode::OK, "{own}");
    assert_eq!(own["protocol"], Value::Null);
    assert_eq!(own["eligible"], 2, "{own}");
    let rows = own["candidates"].as_array().unwrap();
    assert_eq!(rows[1]["accountId"], gemini.as_str());
    assert_eq!(rows[1]["reason"], "eligible", "its own tier: {own}");

    let (st, as_gemini) = s.get(&format!("{path}?protocol=gemini"), &c.token).await;
    assert_eq!(st, StatusCode::OK, "{as_gemini}");
    assert_eq!(as_gemini["protocol"], "gemini");
    assert_eq!(as_gemini["eligible"], 1);
    assert_eq!(
        as_gemini["candidates"][0]["reason"],
        "speaks the anthropic protocol, not gemini"
    );
    assert_eq!(as_gemini["candidates"][1]["eligible"], true);

    let (st, bad) = s.get(&format!("{path}?protocol=grpc"), &c.token).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("protocol must be one of"));
}
