//! Upstreams that go silent: before their headers, after them, or
//! mid-stream. Before the client has had a byte, the next account is
//! tried; after it, the stream ends with the protocol's error event. Every
//! case gets a complete answer, and each test bounds the time to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/carpool.rs"]
mod carpool;
#[path = "common/harness.rs"]
mod harness;

use harness::*;

use std::time::{Duration, Instant};

use aicarpool_core::gateway::GatewayConfig;
use aicarpool_core::usage::Accuracy;
use aicarpool_testkit::{Behavior, MockUpstream};
use serde_json::json;

/// Short timeouts, so a stall costs a fraction of a second.
fn short_timeouts() -> GatewayConfig {
    GatewayConfig {
        first_byte_timeout: Duration::from_millis(400),
        stream_first_byte_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(350),
        ..carpool::gateway_config()
    }
}

/// What a test allows for an answer: the timeouts it runs into plus room
/// for a loaded machine, far below the minute a stall held clients before.
const PROMPT: Duration = Duration::from_secs(3);

async fn two_accounts(
    first: Behavior,
    config: GatewayConfig,
) -> (Harness, MockUpstream, MockUpstream) {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let b = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([first]);
    let h = harness_with(vec![api_account(&a.url), api_account(&b.url)], None, config).await;
    (h, a, b)
}

fn json_body() -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
           "messages": [{"role": "user", "content": "hi"}]})
}

fn stream_body() -> serde_json::Value {
    let mut body = json_body();
    body["stream"] = json!(true);
    body
}

/// Sends `body` and reads the whole answer: status, text and how long it took.
async fn answer(h: &Harness, body: serde_json::Value) -> (u16, String, Duration) {
    let started = Instant::now();
    let resp = h.gateway.handle(h.json_request(body)).await;
    let status = resp.status().as_u16();
    let text = tokio::time::timeout(Duration::from_secs(30), body_text(resp.into_body()))
        .await
        .expect("the answer ends");
    (status, text, started.elapsed())
}

#[tokio::test]
async fn a_silence_before_the_headers_fails_over_streamed_and_whole() {
    for (body, what) in [(stream_body(), "streamed"), (json_body(), "whole")] {
        let (h, a, b) = two_accounts(Behavior::StallBeforeHeaders, short_timeouts()).await;
        let (status, text, took) = answer(&h, body).await;
        assert_eq!(status, 200, "{what}: {text}");
        assert!(
            text.contains("message_stop") || text.contains("\"end_turn\""),
            "{what}: a complete answer from the second account: {text}"
        );
        assert!(took < PROMPT, "{what}: answered in {took:?}");
        assert_eq!((a.hits(), b.hits()), (1, 1), "{what}");
        let records = h.records().await;
        assert_eq!(records.len(), 1, "{what}");
        assert_eq!(records[0].attempts, 2, "{what}");
        assert_eq!(
            records[0].account_id.as_deref(),
            Some(h.account_ids[1].as_str())
        );
        assert_eq!(records[0].accuracy, Accuracy::Exact, "{what}");
    }
}

#[tokio::test]
async fn headers_then_silence_still_fail_over_before_the_first_byte() {
    for (body, what) in [(stream_body(), "streamed"), (json_body(), "whole")] {
        let (h, _a, b) = two_accounts(Behavior::StallAfterHeaders, short_timeouts()).await;
        let (status, text, took) = answer(&h, body).await;
        assert_eq!(status, 200, "{what}: {text}");
        assert!(
            text.contains("Hello") || text.contains("mock upstream"),
            "{what}: {text}"
        );
        assert!(took < PROMPT, "{what}: answered in {took:?}");
        assert_eq!(b.hits(), 1, "{what}: the second account served");
        assert_eq!(h.records().await[0].attempts, 2, "{what}");
    }
}

#[tokio::test]
async fn a_stream_that_goes_silent_after_its_first_byte_ends_with_an_error_event() {
    let (h, _a, b) = two_accounts(Behavior::StallMidStream, short_timeouts()).await;
    let (status, text, took) = answer(&h, stream_body()).await;
    assert_eq!(status, 200, "the stream had started");
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    assert!(took < PROMPT, "ended in {took:?}");
    assert_eq!(
        b.hits(),
        0,
        "too late to fail over: the client has the start"
    );
    let records = h.records().await;
    assert_eq!(records[0].accuracy, Accuracy::Partial);
    assert_eq!(records[0].usage.input_tokens, 25, "what was seen is kept");
}

#[tokio::test]
async fn when_every_account_is_silent_the_client_gets_a_complete_error_at_once() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::StallBeforeHeaders]);
    let h = harness_with(vec![api_account(&a.url)], None, short_timeouts()).await;
    for (body, what) in [(json_body(), "whole"), (stream_body(), "streamed")] {
        a.push([Behavior::StallBeforeHeaders]);
        let (status, text, took) = answer(&h, body).await;
        assert!(status >= 500, "{what}: {status} {text}");
        let error: serde_json::Value = serde_json::from_str(&text).expect("a JSON error body");
        assert_eq!(error["type"], "error", "{what}: {text}");
        assert!(text.contains("did not answer in time"), "{what}: {text}");
        assert!(took < PROMPT, "{what}: answered in {took:?}");
    }
}

#[tokio::test]
async fn upstream_pings_keep_a_slow_stream_alive() {
    // Every event comes 200 ms after the last, 2 s in all: far past the
    // idle timeout in total, never in one silence.
    let config = GatewayConfig {
        idle_timeout: Duration::from_millis(600),
        stream_first_byte_timeout: Duration::from_millis(600),
        ..carpool::gateway_config()
    };
    let (h, _a, b) = two_accounts(Behavior::Slow(Duration::from_millis(200)), config).await;
    let (status, text, _) = answer(&h, stream_body()).await;
    assert_eq!(status, 200);
    assert!(text.contains("message_stop"), "{text}");
    assert_eq!(b.hits(), 0);
    assert_eq!(h.records().await[0].accuracy, Accuracy::Exact);
}

#[tokio::test]
async fn the_total_timeout_ends_a_stream_that_never_pauses_long() {
    let config = GatewayConfig {
        total_timeout: Duration::from_millis(700),
        ..carpool::gateway_config()
    };
    let (h, _a, _b) = two_accounts(Behavior::Slow(Duration::from_millis(150)), config).await;
    let (status, text, took) = answer(&h, stream_body()).await;
    assert_eq!(status, 200);
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    assert!(took < PROMPT, "ended in {took:?}");
    assert_eq!(h.records().await[0].accuracy, Accuracy::Partial);
}

#[tokio::test]
async fn the_client_deadline_bounds_failover_over_silent_accounts() {
    // Three silent accounts, a first-byte timeout of 2 s each, and a client
    // that gives up after 1 s: the answer comes by its deadline.
    let config = GatewayConfig {
        first_byte_timeout: Duration::from_secs(2),
        ..carpool::gateway_config()
    };
    let mocks = [
        MockUpstream::start(UPSTREAM_KEY).await.unwrap(),
        MockUpstream::start(UPSTREAM_KEY).await.unwrap(),
        MockUpstream::start(UPSTREAM_KEY).await.unwrap(),
    ];
    for m in &mocks {
        m.push([Behavior::StallBeforeHeaders]);
    }
    let accounts = mocks.iter().map(|m| api_account(&m.url)).collect();
    let h = harness_with(accounts, None, config).await;
    let mut req = h.json_request(json_body());
    req.headers_mut()
        .insert("x-stainless-timeout", http::HeaderValue::from_static("1"));
    let started = Instant::now();
    let resp = h.gateway.handle(req).await;
    let took = started.elapsed();
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert!(took < Duration::from_millis(1800), "answered in {took:?}");
}
