//! Upstreams that answer compressed whatever the gateway asked: the
//! client gets decoded bytes and no `content-encoding`, and the usage is
//! read from them, streamed and whole, for gzip, br and deflate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/carpool.rs"]
mod carpool;
#[path = "common/harness.rs"]
mod harness;

use harness::*;

use aicarpool_core::usage::Accuracy;
use aicarpool_testkit::{Behavior, Encoding, MockUpstream};
use serde_json::json;

fn body(stream: bool) -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn each_encoding_reaches_the_client_decoded_with_its_usage() {
    for encoding in Encoding::ALL {
        for stream in [true, false] {
            let what = format!(
                "{} {}",
                encoding.as_str(),
                if stream { "stream" } else { "whole" }
            );
            let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
            mock.push([Behavior::Compressed(encoding)]);
            let h = harness(vec![api_account(&mock.url)]).await;
            let resp = h.gateway.handle(h.json_request(body(stream))).await;
            assert_eq!(resp.status(), 200, "{what}");
            assert!(
                resp.headers().get("content-encoding").is_none(),
                "{what}: decoded bytes carry no encoding"
            );
            let text = body_text(resp.into_body()).await;
            if stream {
                assert!(text.starts_with("event: message_start"), "{what}: {text}");
                assert!(text.contains("event: message_stop"), "{what}: {text}");
            } else {
                let answer: serde_json::Value = serde_json::from_str(&text).expect(&what);
                assert_eq!(answer["stop_reason"], "end_turn", "{what}");
            }
            let records = h.records().await;
            assert_eq!(records[0].accuracy, Accuracy::Exact, "{what}");
            assert_eq!(records[0].usage.input_tokens, 25, "{what}");
            assert_eq!(records[0].usage.output_tokens, 12, "{what}");
        }
    }
}

#[tokio::test]
async fn the_gateway_still_asks_for_identity() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![api_account(&mock.url)]).await;
    // Claude Code offers gzip, deflate, br and zstd.
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 200);
    let _ = body_text(resp.into_body()).await;
    assert_eq!(mock.received()[0].headers["accept-encoding"], "identity");
}

#[tokio::test]
async fn an_encoding_the_gateway_cannot_decode_fails_over_never_reaches_the_client() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let b = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::AnswerWithHeaders(vec![(
        "content-encoding".into(),
        "zstd".into(),
    )])]);
    let h = harness(vec![api_account(&a.url), api_account(&b.url)]).await;
    let resp = h.gateway.handle(h.json_request(body(false))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    let text = body_text(resp.into_body()).await;
    assert!(text.contains("end_turn"), "{text}");
    assert_eq!(b.hits(), 1, "the second account served");
    assert_eq!(h.records().await[0].attempts, 2);
}
