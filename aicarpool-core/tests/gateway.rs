//! The gateway against mock upstreams that speak the real Anthropic wire
//! format: pass-through, streaming, failover, errors and usage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/carpool.rs"]
mod carpool;
#[path = "common/harness.rs"]
mod harness;

use harness::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicarpool_core::account::{Platform, Preset};
use aicarpool_core::gateway::{Invalidation, InvalidationBus};
use aicarpool_core::key::MemberKey;
use aicarpool_core::store::KeyStore;
use aicarpool_core::usage::Accuracy;
use aicarpool_testkit::{fixtures, Behavior, MockUpstream};
use bytes::Bytes;
use http_body_util::BodyExt;

#[tokio::test]
async fn claude_code_request_streams_through_unchanged() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![api_account(&mock.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = body_text(resp.into_body()).await;
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    assert_eq!(text.matches("content_block_delta").count(), 10);

    let got = &mock.received()[0];
    let captured = fixtures::claude_code_authtoken();
    assert_eq!(
        got.body.as_ref(),
        captured.body.as_slice(),
        "body must arrive byte for byte"
    );
    assert_eq!(got.path, "/v1/messages?beta=true");
    assert_eq!(got.headers["x-api-key"], UPSTREAM_KEY);
    assert!(
        got.headers.get("authorization").is_none(),
        "member key leaked upstream"
    );
    assert_eq!(got.headers["accept-encoding"], "identity");
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert!(got.headers["anthropic-beta"]
        .to_str()
        .unwrap()
        .contains("claude-code-20250219"));
    assert!(got.headers.get("x-claude-code-session-id").is_some());

    let records = h.records().await;
    assert_eq!(records.len(), 1);
    let u = mock.usage();
    assert_eq!(records[0].usage.input_tokens, u.input_tokens);
    assert_eq!(records[0].usage.output_tokens, u.output_tokens);
    assert_eq!(
        records[0].usage.cache_write_5m_tokens,
        u.cache_write_5m_tokens
    );
    assert_eq!(
        records[0].usage.cache_write_1h_tokens,
        u.cache_write_1h_tokens
    );
    assert_eq!(records[0].accuracy, Accuracy::Exact);
    assert_eq!(records[0].model, "claude-opus-4-8");
    assert_eq!(records[0].user_id, h.key_record.user_id);
    assert_eq!(records[0].usage.cache_read_tokens, u.cache_read_tokens);
    assert!(records[0].cost_micro_usd > 0);
    assert_eq!(records[0].status, 200);
}

#[tokio::test]
async fn model_map_rewrites_only_the_model() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let mut spec = api_account(&format!("{}/anthropic", mock.url));
    spec.platform = Platform::AnthropicCompatible;
    spec.preset = Some(Preset::Kimi);
    spec.model_map
        .insert("claude-opus-4-8".into(), "kimi-k2-0905-preview".into());
    let h = harness(vec![spec]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 200);
    body_text(resp.into_body()).await;
    let got = &mock.received()[0];
    assert_eq!(
        got.path, "/anthropic/v1/messages",
        "relays get no ?beta=true"
    );
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    let original = fixtures::claude_code_authtoken().body;
    let expected = String::from_utf8(original).unwrap().replacen(
        "\"claude-opus-4-8\"",
        "\"kimi-k2-0905-preview\"",
        1,
    );
    assert_eq!(std::str::from_utf8(&got.body).unwrap(), expected);
    let records = h.records().await;
    assert_eq!(records[0].model, "claude-opus-4-8");
    assert_eq!(
        records[0].served_model.as_deref(),
        Some("kimi-k2-0905-preview")
    );
}

#[tokio::test]
async fn fails_over_on_429_529_5xx_and_connect_errors() {
    for first in [
        Some(Behavior::RateLimited {
            retry_after: Some(30),
            unified_reset: None,
        }),
        Some(Behavior::Overloaded),
        Some(Behavior::ServerError),
        None, // connection refused
    ] {
        let bad = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
        let good = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
        let bad_url = match &first {
            Some(b) => {
                bad.push([b.clone()]);
                bad.url.clone()
            }
            None => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let url = format!("http://{}", l.local_addr().unwrap());
                drop(l);
                url
            }
        };
        let h = harness(vec![api_account(&bad_url), api_account(&good.url)]).await;
        let resp = h.gateway.handle(h.claude_code_request()).await;
        assert_eq!(resp.status(), 200, "{first:?}");
        let text = body_text(resp.into_body()).await;
        assert!(text.contains("message_stop"));
        assert_eq!(good.hits(), 1);
        let records = h.records().await;
        assert_eq!(records.len(), 1, "one record per request");
        assert_eq!(
            records[0].account_id.as_deref(),
            Some(h.account_ids[1].as_str())
        );
        assert_eq!(records[0].attempts, 2, "{first:?}");
        assert_eq!(records[0].served_model, None, "no map, no served model");
    }
}

#[tokio::test]
async fn all_rate_limited_answers_429_with_the_soonest_retry() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let b = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let reset = chrono::Utc::now().timestamp() + 120;
    a.push([Behavior::RateLimited {
        retry_after: None,
        unified_reset: Some(reset),
    }]);
    b.push([Behavior::RateLimited {
        retry_after: Some(45),
        unified_reset: None,
    }]);
    let h = harness(vec![api_account(&a.url), api_account(&b.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "45");
    let v: serde_json::Value = serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let records = h.records().await;
    assert_eq!(records[0].status, 429, "the refusal is counted as an error");
    assert_eq!(
        (records[0].refusal, records[0].attempts),
        (None, 2),
        "the accounts refused, not the gateway"
    );
    assert_eq!(
        records[0].account_id.as_deref(),
        Some(h.account_ids[1].as_str())
    );
}

#[tokio::test]
async fn all_overloaded_answers_529() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::Overloaded]);
    let h = harness(vec![api_account(&a.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 529);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn error_event_mid_stream_reaches_the_client_and_is_recorded() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let b = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::ErrorMidStream]);
    let h = harness(vec![api_account(&a.url), api_account(&b.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(
        resp.status(),
        200,
        "the first byte had gone out: no failover"
    );
    let text = body_text(resp.into_body()).await;
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"));
    assert_eq!(b.hits(), 0);
    let records = h.records().await;
    assert_eq!(records[0].status, 529, "the error event's status");
    assert_eq!(records[0].accuracy, Accuracy::Partial);
    assert_eq!(records[0].usage.input_tokens, 25, "what was seen is kept");
}

#[tokio::test]
async fn dropped_upstream_ends_the_stream_with_an_error_event() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::DropMidStream]);
    let h = harness(vec![api_account(&a.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    let text = body_text(resp.into_body()).await;
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("api_error"));
}

#[tokio::test]
async fn first_event_arrives_before_the_upstream_finishes() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::Gated]);
    let h = harness(vec![api_account(&a.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event must not wait for the whole stream")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(first.starts_with(b"event: message_start"));
    assert_eq!(a.completed_streams(), 0, "the upstream is still streaming");
    a.release();
    let rest = body_text(body).await;
    assert!(rest.contains("message_stop"));
}

#[tokio::test]
async fn client_disconnect_still_records_full_usage() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::Gated]);
    let h = harness(vec![api_account(&a.url)]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    let mut body = resp.into_body();
    let _first = body.frame().await.unwrap().unwrap();
    drop(body); // the client goes away after the first event
    a.release();
    // The drained stream completes upstream.
    for _ in 0..500 {
        if a.completed_streams() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.completed_streams(), 1);
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].usage.output_tokens, 12,
        "final usage from the drained stream"
    );
    assert_eq!(records[0].accuracy, Accuracy::Exact);
}

#[tokio::test]
async fn non_streaming_answer_and_count_tokens() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![api_account(&a.url)]).await;
    let resp = h
        .gateway
        .handle(h.json_request(serde_json::json!({
            "model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]
        })))
        .await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
    assert_eq!(v["type"], "message");

    let captured = fixtures::py_anthropic_count_tokens();
    let req = http::Request::post("/v1/messages/count_tokens")
        .header("authorization", format!("Bearer {}", h.key))
        .body(Bytes::from(captured.body))
        .unwrap();
    let resp = h.gateway.handle(req).await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(a.received()[1].path, "/v1/messages/count_tokens");

    let records = h.records().await;
    assert_eq!(records.len(), 1, "count_tokens is free and not recorded");
    assert_eq!(records[0].usage.output_tokens, 12);
}

#[tokio::test]
async fn refusals_in_anthropic_shape() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![api_account(&a.url)]).await;
    let body = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []});

    let cases: Vec<(http::Request<Bytes>, u16, &str)> = vec![
        (
            http::Request::post("/v1/messages")
                .body(Bytes::from(body.to_string()))
                .unwrap(),
            401,
            "authentication_error",
        ),
        (
            http::Request::post("/v1/messages")
                .header("x-api-key", "sk-ant-not-ours")
                .body(Bytes::from(body.to_string()))
                .unwrap(),
            401,
            "authentication_error",
        ),
        (
            http::Request::post("/v1/messages")
                .header(
                    "x-api-key",
                    MemberKey::generate(&h.key_record.group_id, &h.key_record.user_id).expose(),
                )
                .body(Bytes::from(body.to_string()))
                .unwrap(),
            401,
            "authentication_error",
        ),
        (
            http::Request::post("/v1/messages")
                .header("x-api-key", &h.key)
                .body(Bytes::from_static(b"{not json"))
                .unwrap(),
            400,
            "invalid_request_error",
        ),
    ];
    for (req, status, kind) in cases {
        let resp = h.gateway.handle(req).await;
        assert_eq!(resp.status(), status);
        let v: serde_json::Value =
            serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
    }
    // A key whose ids were swapped for another group's does not authenticate.
    let forged = h.key.replacen(&h.key_record.group_id, "othergroup", 1);
    let resp = h
        .gateway
        .handle(
            http::Request::post("/v1/messages")
                .header("x-api-key", forged)
                .body(Bytes::from(body.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(a.hits(), 0, "nothing refused reached the upstream");
}

#[tokio::test]
async fn key_policy_and_invalidation_apply_on_the_next_request() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![api_account(&a.url)]).await;
    let req = |h: &Harness| {
        h.json_request(serde_json::json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1,
            "messages": [{"role": "user", "content": "hi"}]
        }))
    };
    assert_eq!(h.gateway.handle(req(&h)).await.status(), 200);

    let mut record = h.key_record.clone();
    record.models = vec!["claude-haiku-*".into()];
    h.store.update_key(&record).await.unwrap();
    h.gateway.invalidate_key(&record.key_hash.unwrap());
    let resp = h.gateway.handle(req(&h)).await;
    assert_eq!(resp.status(), 403);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
    assert_eq!(v["error"]["type"], "permission_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("claude-sonnet-4-5"));

    record.models = vec![];
    record.enabled = false;
    h.store.update_key(&record).await.unwrap();
    h.gateway.invalidate_key(&record.key_hash.unwrap());
    assert_eq!(h.gateway.handle(req(&h)).await.status(), 401);

    h.store.delete_key(&record.id).await.unwrap();
    h.gateway.invalidate_key(&record.key_hash.unwrap());
    assert_eq!(h.gateway.handle(req(&h)).await.status(), 401);
}

#[tokio::test]
async fn saturated_accounts_are_skipped() {
    let a = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let b = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    a.push([Behavior::Gated]);
    let mut first = api_account(&a.url);
    first.max_concurrency = Some(1);
    let h = harness(vec![first, api_account(&b.url)]).await;
    let held = h.gateway.handle(h.claude_code_request()).await;
    let second = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(second.status(), 200);
    body_text(second.into_body()).await;
    assert_eq!(b.hits(), 1, "the saturated account was skipped");
    a.release();
    body_text(held.into_body()).await;
}

#[tokio::test]
async fn group_without_accounts_is_unavailable() {
    let h = harness(vec![]).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = serde_json::from_str(&body_text(resp.into_body()).await).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

/// Keeps what the gateway publishes to the other instances.
#[derive(Debug, Default)]
struct RecordingBus(Mutex<Vec<Invalidation>>);

impl InvalidationBus for RecordingBus {
    fn publish(&self, event: &Invalidation) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test]
async fn only_a_rate_limit_with_a_named_end_is_shared_with_other_instances() {
    let guessed = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let failing = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let named = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    guessed.push([Behavior::RateLimited {
        retry_after: None,
        unified_reset: None,
    }]);
    failing.push([Behavior::ServerError]);
    named.push([Behavior::RateLimited {
        retry_after: Some(30),
        unified_reset: None,
    }]);
    let bus = Arc::new(RecordingBus::default());
    let h = harness_with_bus(
        vec![
            api_account(&guessed.url),
            api_account(&failing.url),
            api_account(&named.url),
        ],
        Some(bus.clone()),
    )
    .await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert!(!resp.status().is_success(), "{}", resp.status());
    assert_eq!((guessed.hits(), failing.hits(), named.hits()), (1, 1, 1));
    let sent = bus.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let Invalidation::AccountCooling {
        account_id,
        until_ms,
    } = &sent[0]
    else {
        panic!("{sent:?}");
    };
    assert_eq!(account_id, &h.account_ids[2]);
    let wait = *until_ms as i64 - chrono::Utc::now().timestamp_millis();
    assert!((28_000..=30_000).contains(&wait), "{wait}");
}

#[tokio::test]
async fn upstream_calls_carry_the_hop_mark_and_a_marked_request_is_refused() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![api_account(&mock.url)]).await;
    let own = h.gateway.deployment_id().to_owned();
    let mut req = h.claude_code_request();
    req.headers_mut()
        .insert("x-aicarpool-hop", "other-gateway".parse().unwrap());
    let resp = h.gateway.handle(req).await;
    assert_eq!(resp.status(), 200);
    let _ = body_text(resp.into_body()).await;
    let sent = &mock.received()[0].headers;
    assert_eq!(
        sent["x-aicarpool-hop"],
        format!("other-gateway,{own}").as_str()
    );

    // The same request arriving again is a loop: refused, upstream untouched.
    let mut again = h.claude_code_request();
    again
        .headers_mut()
        .insert("x-aicarpool-hop", sent["x-aicarpool-hop"].clone());
    let resp = h.gateway.handle(again).await;
    assert_eq!(resp.status(), 508);
    let text = body_text(resp.into_body()).await;
    assert!(text.contains("passed through this gateway"), "{text}");
    assert_eq!(mock.hits(), 1);
}
