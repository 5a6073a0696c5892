//! The data plane through the HTTP server: a team sets up over the
//! management API, then members call the Messages API as Claude Code does.

use aicarpool_testkit::{fixtures, Behavior, MockUpstream};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{report_with, spawn, TestServer};

const UPSTREAM_KEY: &str = "sk-ant-team-account";

/// A carpool group with one account on `upstream_url` and a key for its
/// owner; returns (owner token, group id, account id, member key, key id).
async fn carpool(s: &TestServer, upstream_url: &str) -> (String, String, String, String, String) {
    let (_, token) = s
        .register(&format!(
            "owner-{}@example.com",
            aicarpool_core::id::new_id().to_lowercase()
        ))
        .await;
    let (status, group) = s.post("/api/groups", &token, json!({"name": "team"})).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (status, account) = s
        .post(
            &format!("/api/groups/{group_id}/accounts"),
            &token,
            json!({"name": "main", "platform": "claude_api", "baseUrl": upstream_url,
                   "credentials": {"apiKey": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    let (status, binding) = s
        .put(
            &format!("/api/groups/{group_id}/binding"),
            &token,
            json!({"mode": "dedicated", "accounts": [{"accountId": account_id}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{binding}");
    let (status, key) = s
        .post(
            &format!("/api/groups/{group_id}/keys"),
            &token,
            json!({"name": "laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        token,
        group_id,
        account_id,
        key["key"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    )
}

/// Sends the captured Claude Code request to `path` with `key`.
fn claude_code(s: &TestServer, path: &str, key: &str) -> reqwest::RequestBuilder {
    let captured = fixtures::claude_code_authtoken();
    let mut req = s.http.post(format!("{}{}", s.url, path));
    for (name, value) in captured.replayable_headers() {
        req = req.header(name, value);
    }
    req.bearer_auth(key).body(captured.body)
}

/// The totals of a scope's report, once it counts `requests` requests.
async fn usage_totals(s: &TestServer, token: &str, scope: &str, id: &str, requests: u64) -> Value {
    let query = format!("scope={scope}&id={id}");
    report_with(s, token, &query, requests).await["totals"].clone()
}

#[tokio::test]
async fn claude_code_through_every_prefix_streams_and_counts() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (token, group_id, account_id, key, key_id) = carpool(&s, &mock.url).await;
    assert!(key.starts_with(&format!("aicp_{group_id}_")));

    for path in [
        "/api/v1/messages?beta=true",
        "/api/v1/v1/messages?beta=true",
        "/v1/messages",
    ] {
        let resp = claude_code(&s, path, &key).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let text = resp.text().await.unwrap();
        assert!(text.contains("event: message_start"), "{path}: {text}");
        assert!(text.contains("event: message_stop"), "{path}");
    }
    let got = mock.received();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].body.as_ref(),
        fixtures::claude_code_authtoken().body.as_slice()
    );
    assert!(got.iter().all(|r| r.headers.get("authorization").is_none()));
    assert!(got.iter().all(|r| r.headers["x-api-key"] == UPSTREAM_KEY));

    let totals = usage_totals(&s, &token, "key", &key_id, 3).await;
    assert_eq!(totals["requests"], 3, "{totals}");
    assert_eq!(totals["inputTokens"], 3 * 25);
    assert_eq!(totals["outputTokens"], 3 * 12);
    // The report keeps the cache-write split and says all was exact.
    assert_eq!(totals["cacheWrite5mTokens"], 3 * 100, "{totals}");
    assert_eq!(totals["cacheWrite1hTokens"], 3 * 200);
    assert_eq!(
        (totals["estimated"].clone(), totals["partial"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(totals["cacheWriteTokens"], 3 * 300);
    assert_eq!(totals["cacheReadTokens"], 3 * 50);
    assert_eq!(totals["errors"], 0);
    assert!(totals["costUsd"].as_f64().unwrap() > 0.0);
    for (scope, id) in [("group", &group_id), ("account", &account_id)] {
        let t = usage_totals(&s, &token, scope, id, 3).await;
        assert_eq!(t["requests"], 3, "{scope}: {t}");
    }
}

#[tokio::test]
async fn first_event_is_forwarded_before_the_upstream_finishes() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::Gated]);
    let s = spawn().await;
    let (_, _, _, key, _) = carpool(&s, &mock.url).await;
    let resp = claude_code(&s, "/api/v1/messages?beta=true", &key)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .expect("the first event must arrive while the upstream is still streaming")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"event: message_start"));
    assert_eq!(mock.completed_streams(), 0);
    mock.release();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));
}

#[tokio::test]
async fn client_disconnect_mid_stream_still_records_usage() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::Gated]);
    let s = spawn().await;
    let (token, _, _, key, key_id) = carpool(&s, &mock.url).await;
    let resp = claude_code(&s, "/api/v1/messages", &key)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    mock.release();
    let totals = usage_totals(&s, &token, "key", &key_id, 1).await;
    assert_eq!(totals["requests"], 1);
    assert_eq!(
        totals["outputTokens"], 12,
        "usage of the drained stream: {totals}"
    );
}

#[tokio::test]
async fn errors_are_in_anthropic_shape() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (_, _, account_id, key, _) = carpool(&s, &mock.url).await;
    let url = format!("{}/v1/messages", s.url);

    let check = |resp: reqwest::Response, status: u16, kind: &'static str| async move {
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
    };
    check(
        s.http.post(&url).body("{}").send().await.unwrap(),
        401,
        "authentication_error",
    )
    .await;
    check(
        s.http
            .post(&url)
            .header("x-api-key", "aicp_nope_nope_0000000000000000000000")
            .body("{}")
            .send()
            .await
            .unwrap(),
        401,
        "authentication_error",
    )
    .await;
    check(
        s.http
            .post(&url)
            .header("x-api-key", &key)
            .body("{\"model\": ")
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request_error",
    )
    .await;
    let huge = vec![b' '; aicarpool_core::gateway::MAX_BODY_BYTES + 10];
    check(
        s.http
            .post(&url)
            .header("x-api-key", &key)
            .body(huge)
            .send()
            .await
            .unwrap(),
        413,
        "request_too_large",
    )
    .await;
    mock.push([Behavior::Overloaded]);
    check(
        s.http
            .post(&url)
            .header("x-api-key", &key)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []}))
            .send()
            .await
            .unwrap(),
        529,
        "overloaded_error",
    )
    .await;
    // The 529 cooled the only account; forget it so the 429 is the upstream's.
    s.state.gateway.reset_account_health(&account_id);
    mock.push([Behavior::RateLimited {
        retry_after: Some(12),
        unified_reset: None,
    }]);
    let resp = s
        .http
        .post(&url)
        .header("x-api-key", &key)
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "12");
    check(resp, 429, "rate_limit_error").await;
}

#[tokio::test]
async fn key_changes_apply_on_the_next_request() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (token, _, _, key, key_id) = carpool(&s, &mock.url).await;
    let send = |k: String| {
        s.http
            .post(format!("{}/v1/messages", s.url))
            .header("x-api-key", k)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(send(key.clone()).await.unwrap().status(), StatusCode::OK);

    let (status, _) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            &token,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        send(key.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            &token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(send(key.clone()).await.unwrap().status(), StatusCode::OK);

    let (status, rotated) = s
        .post(&format!("/api/keys/{key_id}/rotate"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(
        send(key.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "rotated away"
    );
    assert_eq!(
        send(new_key.clone()).await.unwrap().status(),
        StatusCode::OK
    );

    let (status, _) = s.delete(&format!("/api/keys/{key_id}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(new_key).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn account_test_makes_a_real_call() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (token, _, account_id, _, _) = carpool(&s, &mock.url).await;
    let (status, report) = s
        .post(
            &format!("/api/accounts/{account_id}/test"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["status"], 200);
    assert!(report["latencyMs"].is_u64());
    assert_eq!(mock.hits(), 1);
    let body: Value = serde_json::from_slice(&mock.received()[0].body).unwrap();
    assert_eq!(body["max_tokens"], 1);

    let (status, account) = s
        .patch(
            &format!("/api/accounts/{account_id}"),
            &token,
            json!({"credentials": {"apiKey": "sk-wrong"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    let (_, report) = s
        .post(
            &format!("/api/accounts/{account_id}/test"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["status"], 401);
    assert!(report["error"]
        .as_str()
        .unwrap()
        .contains("invalid x-api-key"));
}

#[tokio::test]
async fn operations_endpoints() {
    let s = spawn().await;
    let resp = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = s
        .http
        .get(format!("{}/readyz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
