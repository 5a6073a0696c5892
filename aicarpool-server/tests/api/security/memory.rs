//! Bounded memory: request bodies buffered across requests stay within a
//! budget, and a stranger without a key buffers nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aicarpool_server::ServeConfig;
use aicarpool_testkit::MockUpstream;
use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::setup::team;
use crate::support::{self, TestServer, ADMIN_TOKEN};

const UPSTREAM_KEY: &str = "sk-ant-api03-memory";
const KIB: usize = 1024;

/// A Messages body of about `size` bytes (padding in the prompt).
fn body_of(size: usize) -> Vec<u8> {
    let pad = "x".repeat(size.saturating_sub(120));
    serde_json::to_vec(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
        "messages": [{"role": "user", "content": pad}]}))
    .unwrap()
}

/// Sends `body` with its length declared, the second half only once
/// `go` fires: the request holds its share of the budget meanwhile.
async fn send_held(
    s: &TestServer,
    key: &str,
    body: Vec<u8>,
    go: oneshot::Receiver<()>,
) -> (StatusCode, String) {
    let len = body.len();
    let (first, second) = body.split_at(len / 2);
    let (first, second) = (
        Bytes::copy_from_slice(first),
        Bytes::copy_from_slice(second),
    );
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures::stream::once(async move {
            let _ = go.await;
            Ok(second)
        }),
    );
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .header("content-length", len)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_body_budget_answers_503_in_the_protocol_and_recovers() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = Arc::new(
        support::spawn_with(ServeConfig {
            max_buffered_body_mb: 1,
            ..ServeConfig::for_tests(ADMIN_TOKEN)
        })
        .await,
    );
    let t = team(&s).await;
    let (st, account) = t
        .add_account(
            &s,
            &t.owner,
            json!({"name": "api", "platform": "claude_api", "baseUrl": upstream.url,
                   "credentials": {"apiKey": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{account}");
    let key = t.bind_and_key(&s, &[account["id"].as_str().unwrap()]).await;

    // 700 KiB held of the 1 MiB budget: a 500 KiB body finds no room.
    let (go, wait) = oneshot::channel();
    let held = tokio::spawn({
        let (s, key) = (s.clone(), key.clone());
        async move { send_held(&s, &key, body_of(700 * KIB), wait).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body_of(500 * KIB))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let refusal: Value = resp.json().await.unwrap();
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["error"]["type"], "overloaded_error", "{refusal}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited for room first"
    );
    assert_eq!(upstream.hits(), 0);

    // The held request finishes and gives its bytes back; the next fits.
    go.send(()).unwrap();
    let (st, body) = held.await.unwrap();
    assert_eq!(st, StatusCode::OK, "{body}");
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body_of(900 * KIB))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_body_without_a_valid_key_is_not_read() {
    let s = support::spawn_with(ServeConfig {
        max_buffered_body_mb: 1,
        ..ServeConfig::for_tests(ADMIN_TOKEN)
    })
    .await;
    // A declared 30 MiB that never arrives: the answer comes at once.
    let (_go, wait) = oneshot::channel::<()>();
    let stream = futures::stream::once(async move {
        let _ = wait.await;
        Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))
    });
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        s.http
            .post(format!("{}/v1/messages", s.url))
            .header("x-api-key", "aicp_not_a_real_key")
            .header("content-length", 30 << 20)
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    )
    .await
    .expect("answered before the body came")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
