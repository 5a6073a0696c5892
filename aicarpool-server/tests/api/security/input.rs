//! Hostile client input: no panic, no unbounded strings, no internals in errors.

use aicarpool_testkit::MockUpstream;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::setup::{team, Team};
use crate::support::{self, TestServer};

const UPSTREAM_KEY: &str = "sk-ant-api03-input";

/// A team whose one account is `base_url`, and a member key.
async fn carpool(s: &TestServer, base_url: &str) -> (Team, String, String) {
    let t = team(s).await;
    let (st, account) = t
        .add_account(
            s,
            &t.owner,
            json!({"name": "upstream", "platform": "claude_api", "baseUrl": base_url,
                   "credentials": {"apiKey": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{account}");
    let id = account["id"].as_str().unwrap().to_owned();
    let key = t.bind_and_key(s, &[&id]).await;
    (t, id, key)
}

/// A Messages call with `body` and extra `headers`: status and body text.
async fn send(
    s: &TestServer,
    key: &str,
    body: &Value,
    headers: &[(&str, String)],
) -> (StatusCode, String) {
    let mut req = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_huge_client_timeout_is_answered_not_a_closed_connection() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = support::spawn().await;
    let (_, _, key) = carpool(&s, &mock.url).await;
    for timeout in ["1e300", "18446744073709551616", "NaN", "inf", "-5", "0"] {
        let (status, body) = send(
            &s,
            &key,
            &hello("claude-sonnet-4-5"),
            &[("x-stainless-timeout", timeout.into())],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{timeout}: {body}");
    }
}

#[tokio::test]
async fn oversized_or_control_models_are_refused_and_never_stored() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = support::spawn().await;
    let (t, _, key) = carpool(&s, &mock.url).await;
    let huge = "m".repeat(1 << 20);
    for model in [huge.as_str(), "claude\r\nX-Injected: 1", "claude\u{0}"] {
        let (status, body) = send(&s, &key, &hello(model), &[]).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}",
            &body[..body.len().min(300)]
        );
        assert!(body.contains("invalid_request_error"), "{}", &body[..200]);
        assert!(body.len() < 1024, "the refusal echoes the model");
    }
    assert_eq!(mock.hits(), 0, "a refused model reached the upstream");
    // A fine request still works, and the report holds no long name.
    let (status, _) = send(&s, &key, &hello("claude-sonnet-4-5"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let q = format!("scope=group&id={}&groupBy=model", t.group);
    // Three refusals (recorded without a model) and one answer.
    let report = support::report_with(&s, &t.owner, &q, 4).await;
    assert_eq!(report["totals"]["errors"], 3, "{report}");
    for row in report["rows"].as_array().unwrap() {
        let bucket = row["bucket"].as_str().unwrap_or_default();
        assert!(bucket.len() <= 128 && !bucket.contains('\r'), "{bucket}");
    }
}

#[tokio::test]
async fn long_session_ids_and_user_agents_are_cut_not_kept() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = support::spawn().await;
    let (_, _, key) = carpool(&s, &mock.url).await;
    let long = "s".repeat(64 * 1024);
    let (status, body) = send(
        &s,
        &key,
        &hello("claude-sonnet-4-5"),
        &[
            ("x-claude-code-session-id", long.clone()),
            ("user-agent", format!("claude-cli/2.0.0 {long}")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn errors_never_name_the_upstream_host_port_or_path() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = support::spawn().await;
    let base = format!("http://127.0.0.1:{port}/internal-path-XYZ");
    let (t, account, key) = carpool(&s, &base).await;
    let leaks = |text: &str| {
        text.contains("127.0.0.1") || text.contains(&port.to_string()) || text.contains("XYZ")
    };

    let (status, body) = send(&s, &key, &hello("claude-sonnet-4-5"), &[]).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(!leaks(&body), "a member learns the upstream: {body}");

    let (st, report) = s
        .post(
            &format!("/api/accounts/{account}/test"),
            &t.owner,
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["errorClass"], "unreachable", "{report}");
    assert!(!leaks(&report.to_string()), "the test report: {report}");
}
