//! A gateway that points at itself serves one hop, then refuses.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::setup::{messages, team};
use crate::support;

/// Open file descriptors of this process (the server runs in it).
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test]
async fn an_account_pointing_at_the_gateway_makes_one_hop_then_an_error() {
    // The test configuration allows loopback, so the account may point here.
    let s = support::spawn().await;
    let t = team(&s).await;
    let (st, account) = t
        .add_account(
            &s,
            &t.owner,
            json!({"name": "self", "platform": "claude_api", "baseUrl": s.url,
                   "credentials": {"apiKey": "sk-ant-api03-loop"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{account}");
    let key = t.bind_and_key(&s, &[account["id"].as_str().unwrap()]).await;

    // The first request makes one hop; the inner one is refused as a loop
    // and the refusal reaches the member, in Anthropic's shape.
    let (status, body) = messages(&s, &key).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"type\":\"error\""), "{body}");
    assert!(body.contains("leads back to the gateway itself"), "{body}");

    // Later ones find the account resting after that failure, or make the
    // same single hop: never more.
    let files_before = open_files();
    let started = Instant::now();
    for _ in 0..20 {
        let (status, body) = messages(&s, &key).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("\"type\":\"error\""), "{body}");
    }
    // Each request is two hops and a refusal, not thousands of requests.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let files_after = open_files();
    assert!(
        files_after <= files_before + 16,
        "open files grew from {files_before} to {files_after}"
    );

    // What the inner hop got: a request with this deployment's mark is
    // refused before its key is even looked up.
    let direct = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("x-aicarpool-hop", s.state.gateway.deployment_id())
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status().as_u16(), 508);
    let text = direct.text().await.unwrap();
    assert!(text.contains("passed through this gateway"), "{text}");
}

#[tokio::test]
async fn a_member_key_is_refused_as_an_upstream_credential() {
    let s = support::spawn().await;
    let t = team(&s).await;
    let first = t
        .add_account(
            &s,
            &t.owner,
            json!({"name": "ok", "platform": "claude_api",
                   "credentials": {"apiKey": "sk-ant-api03-fine"}}),
        )
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let member_key = t.bind_and_key(&s, &[first.1["id"].as_str().unwrap()]).await;
    for key in [
        member_key.clone(),
        format!("  {}", member_key.to_uppercase()),
    ] {
        let (st, body) = t
            .add_account(
                &s,
                &t.owner,
                json!({"name": "loop", "platform": "claude_api", "baseUrl": s.url,
                       "credentials": {"apiKey": key}}),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.to_string().contains("member key"), "{body}");
    }
    // Nor can a key be swapped in afterwards.
    let (st, body) = s
        .patch(
            &format!("/api/accounts/{}", first.1["id"].as_str().unwrap()),
            &t.owner,
            json!({"credentials": {"apiKey": member_key}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
}
