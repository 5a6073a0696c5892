//! The OpenAI paths against mock OpenAI-compatible upstreams, with the
//! requests Codex and the openai SDK really send: Responses and chat
//! pass-through, the usage chunk the gateway asks for, `/v1/models`, the
//! WebSocket refusal, errors in OpenAI's shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::time::Duration;

use aicarpool_core::key::Service;
use aicarpool_core::usage::Accuracy;
use aicarpool_testkit::{fixtures, Behavior, MockOpenAi, MockUsage, OPENAI_ANSWER};
use proxy_support::*;
use serde_json::{json, Value};

const USAGE: MockUsage = MockUsage {
    input_tokens: 1200,
    output_tokens: 80,
    cache_write_5m_tokens: 0,
    cache_write_1h_tokens: 0,
    cache_read_tokens: 4000,
};

fn assert_usage(r: &aicarpool_core::usage::UsageRecord) {
    assert_eq!(r.usage.input_tokens, USAGE.input_tokens);
    assert_eq!(r.usage.cache_read_tokens, USAGE.cache_read_tokens);
    assert_eq!(r.usage.output_tokens, USAGE.output_tokens);
    assert_eq!(r.usage.cache_write_tokens(), 0);
    assert_eq!(r.accuracy, Accuracy::Exact);
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn codex_responses_stream_through_and_usage_is_recorded() {
    let mock = MockOpenAi::start_with_usage(UPSTREAM_KEY, USAGE)
        .await
        .unwrap();
    let h = harness(vec![openai(&mock.url)]).await;
    let captured = fixtures::codex_responses();
    let resp = h.gateway.handle(h.replay(&captured, "authorization")).await;
    assert_eq!(resp.status(), 200);
    let body = text(resp).await;
    let events = sse_data(&body);
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    let delta: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(delta, OPENAI_ANSWER);

    let got = &mock.received()[0];
    assert_eq!(got.path, "/v1/responses");
    assert_eq!(got.body.as_ref(), captured.body.as_slice(), "byte for byte");
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert!(got.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("codex_exec"));
    assert!(got.headers.get("session-id").is_some());

    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_usage(&records[0]);
    assert_eq!(records[0].model, "gpt-5-codex");
    assert!(records[0].cost_micro_usd > 0);
}

#[tokio::test]
async fn sdk_chat_with_include_usage_passes_unchanged() {
    let mock = MockOpenAi::start_with_usage(UPSTREAM_KEY, USAGE)
        .await
        .unwrap();
    let h = harness(vec![openai(&mock.url)]).await;
    let captured = fixtures::py_openai_chat_stream();
    let resp = h.gateway.handle(h.replay(&captured, "authorization")).await;
    assert_eq!(resp.status(), 200);
    let body = text(resp).await;
    assert!(body.ends_with("data: [DONE]\n\n"));
    let chunks = sse_data(&body);
    assert_eq!(chat_text(&chunks), OPENAI_ANSWER);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 5200);
    assert_eq!(mock.received()[0].body.as_ref(), captured.body.as_slice());
    assert_usage(&h.records().await[0]);
}

#[tokio::test]
async fn chat_without_include_usage_gets_no_usage_chunk_but_is_recorded() {
    let mock = MockOpenAi::start_with_usage(UPSTREAM_KEY, USAGE)
        .await
        .unwrap();
    let h = harness(vec![openai(&mock.url)]).await;
    let body = json!({"model": "gpt-4o-mini", "stream": true,
                      "messages": [{"role": "user", "content": "say pong"}]});
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/chat/completions", body.to_string()))
        .await;
    assert_eq!(resp.status(), 200);
    let text = text(resp).await;
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks = sse_data(&text);
    // Chunks keep their bytes (`"usage":null` included); the usage-only
    // chunk the client did not ask for is gone.
    assert!(chunks.iter().all(|c| c["usage"].is_null()), "{text}");
    assert!(chunks
        .iter()
        .all(|c| !c["choices"].as_array().unwrap().is_empty()));
    assert_eq!(chat_text(&chunks), OPENAI_ANSWER);
    let sent: Value = serde_json::from_slice(&mock.received()[0].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["messages"], body["messages"]);
    assert_usage(&h.records().await[0]);
}

#[tokio::test]
async fn chat_json_and_the_unified_path() {
    let mock = MockOpenAi::start_with_usage(UPSTREAM_KEY, USAGE)
        .await
        .unwrap();
    let h = harness(vec![openai(&mock.url).map("gpt-4o-mini", "gpt-4.1-mini")]).await;
    let captured = fixtures::py_openai_chat_nonstream();
    for path in ["/api/ai-proxy/v1/chat/completions", "/api/ai-proxy/chat"] {
        let resp = h.gateway.handle(h.post(path, captured.body.clone())).await;
        assert_eq!(resp.status(), 200, "{path}");
        let v = json(resp).await;
        assert_eq!(v["choices"][0]["message"]["content"], OPENAI_ANSWER);
    }
    let sent: Value = serde_json::from_slice(&mock.received()[0].body).unwrap();
    assert_eq!(sent["model"], "gpt-4.1-mini", "mapped for the account");
    let records = h.records().await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].model, "gpt-4o-mini");
    assert_usage(&records[1]);
}

#[tokio::test]
async fn models_lists_what_the_key_may_use() {
    let mock = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let h = harness_with(
        vec![
            openai(&mock.url),
            gemini(&mock.url).models(&["gemini-2.5-flash"]),
            claude(&mock.url).models(&["claude-sonnet-4-5"]),
        ],
        |k| k.services = vec![Service::Openai, Service::Gemini],
    )
    .await;
    let resp = h.gateway.handle(h.get("/api/ai-proxy/v1/models")).await;
    assert_eq!(resp.status(), 200);
    let v = json(resp).await;
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-4o-mini"), "{ids:?}");
    assert!(ids.contains(&"gemini-2.5-flash"), "{ids:?}");
    assert!(
        !ids.iter().any(|m| m.starts_with("claude")),
        "the key may not use claude"
    );
    let resp = h
        .gateway
        .handle(h.get("/api/ai-proxy/v1/models/gpt-4o-mini"))
        .await;
    assert_eq!(json(resp).await["owned_by"], "openai");
    let resp = h
        .gateway
        .handle(h.get("/api/ai-proxy/v1/models/claude-sonnet-4-5"))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["code"], 404);
    assert_eq!(mock.hits(), 0, "the list is the gateway's own");
}

#[tokio::test]
async fn a_websocket_attempt_is_refused_at_once() {
    let h = harness(vec![]).await;
    let req = http::Request::get("/api/ai-proxy/v1/responses")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(1), h.gateway.handle(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 426);
    assert!(json(resp).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("HTTP"));
}

#[tokio::test]
async fn errors_are_in_openai_shape_and_failover_works() {
    let first = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let second = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    first.push([Behavior::Overloaded]);
    let h = harness(vec![openai(&first.url), openai(&second.url)]).await;
    let body = fixtures::py_openai_responses_stream().body;
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", body.clone()))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(text(resp).await.contains("response.completed"));
    assert_eq!((first.hits(), second.hits()), (1, 1));

    let no_key = http::Request::post("/api/ai-proxy/v1/responses")
        .body(bytes::Bytes::from(body))
        .unwrap();
    let resp = h.gateway.handle(no_key).await;
    assert_eq!(resp.status(), 401);
    let v = json(resp).await;
    assert_eq!(v["error"]["type"], "authentication_error");
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/embeddings", "{}"))
        .await;
    assert_eq!(resp.status(), 404);
    assert!(json(resp).await["error"]["message"].is_string());
    let resp = h
        .gateway
        .handle(h.get("/api/ai-proxy/v1/chat/completions"))
        .await;
    assert_eq!(resp.status(), 405);
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", "not json"))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_responses_stream_that_fails_is_recorded_with_its_usage() {
    let mock = MockOpenAi::start_with_usage(UPSTREAM_KEY, USAGE)
        .await
        .unwrap();
    mock.push([Behavior::ErrorMidStream, Behavior::DropMidStream]);
    let h = harness(vec![openai(&mock.url)]).await;
    let body = fixtures::py_openai_responses_stream().body;
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", body.clone()))
        .await;
    let events = sse_data(&text(resp).await);
    assert_eq!(events.last().unwrap()["type"], "response.failed");
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", body))
        .await;
    let events = sse_data(&text(resp).await);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{last}");
    assert!(last["response"]["error"]["message"].is_string());
    let records = h.records().await;
    assert_eq!(records.len(), 2);
    // `response.failed` carries the final usage: exact, with its status.
    assert_eq!(records[0].status, 500);
    assert_eq!(records[0].accuracy, Accuracy::Exact);
    assert_eq!(records[0].usage.output_tokens, USAGE.output_tokens);
    assert_eq!(
        (records[1].status, records[1].accuracy),
        (502, Accuracy::Partial)
    );
}

#[tokio::test]
async fn openai_limits_and_services() {
    let mock = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let h = harness_with(vec![openai(&mock.url)], |k| {
        k.services = vec![Service::Claude];
    })
    .await;
    let body = fixtures::py_openai_responses_stream().body;
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", body.clone()))
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(json(resp).await["error"]["type"], "permission_error");

    let h = harness_with(vec![openai(&mock.url)], |k| {
        k.limits.requests_per_minute = 1
    })
    .await;
    let ok = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", body.clone()))
        .await;
    assert_eq!(ok.status(), 200);
    text(ok).await;
    let refused = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/responses", body))
        .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(json(refused).await["error"]["type"], "rate_limit_error");
    let records = h.records().await;
    assert_eq!(records.iter().filter(|r| r.status == 429).count(), 1);
}

#[tokio::test]
async fn a_refused_key_fails_over_and_the_account_needs_attention() {
    // The first mock expects another key: OpenAI's 401 `invalid_api_key`.
    let revoked = MockOpenAi::start("sk-some-other-key").await.unwrap();
    let good = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![openai(&revoked.url), openai(&good.url)]).await;
    let chat = fixtures::py_openai_chat_stream();
    for _ in 0..2 {
        let resp = h.gateway.handle(h.replay(&chat, "authorization")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(chat_text(&sse_data(&text(resp).await)), OPENAI_ANSWER);
    }
    assert_eq!((revoked.hits(), good.hits()), (1, 2));
    let health = h.gateway.account_health(&h.account_ids[0]);
    assert_eq!(health.state, "needs_attention");
    assert_eq!(health.last_error.unwrap().status, Some(401));
}
