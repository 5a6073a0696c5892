//! The Gemini path against mock Gemini upstreams, with the requests Gemini
//! CLI and the google-genai SDKs really send: pass-through, usage, errors
//! in Gemini's shape, failover and limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use aicarpool_core::router::CoolReason;
use aicarpool_core::usage::Accuracy;
use aicarpool_testkit::{fixtures, Behavior, MockGemini, MockUsage, GEMINI_ANSWER};
use proxy_support::*;
use serde_json::Value;

const USAGE: MockUsage = MockUsage {
    input_tokens: 300,
    output_tokens: 40,
    cache_write_5m_tokens: 0,
    cache_write_1h_tokens: 0,
    cache_read_tokens: 1000,
};

fn frames_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter_map(|f| {
            f.pointer("/candidates/0/content/parts/0/text")
                .and_then(Value::as_str)
        })
        .collect()
}

#[tokio::test]
async fn gemini_cli_stream_passes_through_and_usage_is_recorded() {
    let mock = MockGemini::start_with_usage(UPSTREAM_KEY, USAGE)
        .await
        .unwrap();
    let h = harness(vec![gemini(&mock.url)]).await;
    let captured = fixtures::gemini_cli_model_flag();
    let resp = h
        .gateway
        .handle(h.replay(&captured, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = text(resp).await;
    assert!(!body.contains("[DONE]"));
    let frames = sse_data(&body);
    assert_eq!(frames_text(&frames), GEMINI_ANSWER);
    assert_eq!(
        frames.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );

    let got = &mock.received()[0];
    assert_eq!(
        got.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(got.body.as_ref(), captured.body.as_slice(), "byte for byte");
    assert_eq!(got.headers["x-goog-api-key"], UPSTREAM_KEY);
    assert!(got.headers.get("authorization").is_none());
    assert_eq!(got.headers["accept-encoding"], "identity");
    assert!(got.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("GeminiCLI"));

    let records = h.records().await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.model, "gemini-2.5-flash");
    assert_eq!(r.usage.input_tokens, 300);
    assert_eq!(r.usage.cache_read_tokens, 1000);
    // Thoughts are output: 30 candidates + 10 thoughts.
    assert_eq!(r.usage.output_tokens, 40);
    assert_eq!(r.accuracy, Accuracy::Exact);
    assert_eq!(r.status, 200);
    assert!(r.cost_micro_usd > 0, "gemini-2.5-flash is priced");
    assert_eq!(r.account_id.as_deref(), Some(h.account_ids[0].as_str()));
}

#[tokio::test]
async fn the_routing_call_gets_json_that_fits_its_schema() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![gemini(&mock.url)]).await;
    let captured = fixtures::gemini_cli_routing();
    assert!(captured.path.ends_with(":generateContent"));
    let resp = h
        .gateway
        .handle(h.replay(&captured, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 200);
    let v = json(resp).await;
    let answer = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let routed: Value = serde_json::from_str(answer).unwrap();
    assert!(routed["complexity_score"].is_i64(), "{routed}");
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].model, "gemini-3.5-flash-lite");
    assert_eq!(records[0].usage.output_tokens, mock.usage().output_tokens);
}

#[tokio::test]
async fn the_sdk_paths_and_the_key_in_the_query() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![gemini(&mock.url)]).await;
    // google-genai 3.x calls /v1; the key may come as ?key=.
    let captured = fixtures::py_genai_generate();
    let req = http::Request::post(format!("/api/ai-proxy{}?key={}", captured.path, h.key))
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(captured.body.clone()))
        .unwrap();
    let resp = h.gateway.handle(req).await;
    assert_eq!(resp.status(), 200);
    let v = json(resp).await;
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        GEMINI_ANSWER
    );
    let got = &mock.received()[0];
    assert_eq!(got.path, "/v1/models/gemini-2.5-flash:generateContent");
    assert!(
        !got.path.contains("key="),
        "the member key must not go upstream"
    );

    // 1.x streams under /v1beta.
    let old = fixtures::pyold_genai_stream();
    let resp = h.gateway.handle(h.replay(&old, "x-goog-api-key")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(frames_text(&sse_data(&text(resp).await)), GEMINI_ANSWER);

    // countTokens is served but neither limited nor recorded.
    let count = fixtures::py_genai_count_tokens();
    let resp = h.gateway.handle(h.replay(&count, "x-goog-api-key")).await;
    assert_eq!(resp.status(), 200);
    assert!(json(resp).await["totalTokens"].as_u64().unwrap() > 0);
    let records = h.records().await;
    assert_eq!(records.len(), 2, "countTokens is not recorded");
}

#[tokio::test]
async fn the_model_map_renames_the_model_in_the_path() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![
        gemini(&mock.url).map("gemini-2.5-flash", "gemini-2.5-flash-lite")
    ])
    .await;
    let captured = fixtures::py_genai_stream();
    let resp = h
        .gateway
        .handle(h.replay(&captured, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 200);
    text(resp).await;
    assert_eq!(
        mock.received()[0].path,
        "/v1/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse"
    );
    let records = h.records().await;
    assert_eq!(
        records[0].model, "gemini-2.5-flash",
        "the client's model is recorded"
    );
}

#[tokio::test]
async fn a_rate_limited_account_fails_over_to_the_next() {
    let first = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let second = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    first.push([Behavior::RateLimited {
        retry_after: Some(30),
        unified_reset: None,
    }]);
    let h = harness(vec![gemini(&first.url), gemini(&second.url)]).await;
    let resp = h
        .gateway
        .handle(h.replay(&fixtures::py_genai_stream(), "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(frames_text(&sse_data(&text(resp).await)), GEMINI_ANSWER);
    assert_eq!((first.hits(), second.hits()), (1, 1));
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].account_id.as_deref(),
        Some(h.account_ids[1].as_str())
    );

    // With every account rate limited the client gets one Gemini 429.
    let h = harness(vec![gemini(&first.url)]).await;
    first.push([Behavior::RateLimited {
        retry_after: Some(7),
        unified_reset: None,
    }]);
    let resp = h
        .gateway
        .handle(h.replay(&fixtures::py_genai_generate(), "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let v = json(resp).await;
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["code"], 429);
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_gemini_error_and_is_recorded() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::ErrorMidStream, Behavior::DropMidStream]);
    let h = harness(vec![gemini(&mock.url)]).await;
    let stream = fixtures::py_genai_stream();

    // The upstream's own error frame passes on and is what is recorded.
    let resp = h.gateway.handle(h.replay(&stream, "x-goog-api-key")).await;
    assert_eq!(resp.status(), 200);
    let frames = sse_data(&text(resp).await);
    assert!(frames.len() > 1);
    assert_eq!(frames.last().unwrap()["error"]["code"], 503);

    // A broken connection ends the client's stream with a Gemini error.
    let resp = h.gateway.handle(h.replay(&stream, "x-goog-api-key")).await;
    assert_eq!(resp.status(), 200);
    let frames = sse_data(&text(resp).await);
    let last = frames.last().unwrap();
    assert_eq!(last["error"]["status"], "UNAVAILABLE", "{last}");

    let records = h.records().await;
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].status, records[1].status), (503, 502));
    assert!(records.iter().all(|r| r.accuracy == Accuracy::Partial));
    // The frames before the error carried the prompt count.
    let u = mock.usage();
    assert_eq!(
        records[0].usage.input_tokens,
        u.input_tokens + u.cache_read_tokens
    );
}

#[tokio::test]
async fn errors_are_in_gemini_shape() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness_with(vec![gemini(&mock.url)], |k| {
        k.services = vec![aicarpool_core::key::Service::Claude];
    })
    .await;
    let captured = fixtures::py_genai_generate();
    let path = format!("/api/ai-proxy{}", captured.path);

    let no_key = http::Request::post(&path)
        .body(bytes::Bytes::from(captured.body.clone()))
        .unwrap();
    let resp = h.gateway.handle(no_key).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["error"]["status"], "UNAUTHENTICATED");

    let resp = h
        .gateway
        .handle(h.replay(&captured, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 403);
    let v = json(resp).await;
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("gemini"),
        "{v}"
    );

    let bad = h.post(
        "/api/ai-proxy/v1beta/models/gemini-2.5-flash:embedContent",
        "{}",
    );
    let resp = h.gateway.handle(bad).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["status"], "NOT_FOUND");

    let (mut parts, _) = h.post(&path, "").into_parts();
    let over = aicarpool_core::gateway::MAX_BODY_BYTES + 1;
    parts.headers.insert("content-length", over.into());
    let declared = http::Request::from_parts(parts, http_body_util::Empty::<bytes::Bytes>::new());
    let too_large = h.gateway.serve(declared).await;
    assert_eq!(too_large.status(), 413);
    assert_eq!(json(too_large).await["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn a_group_without_gemini_accounts_says_which_platform_it_needs() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![claude(&mock.url)]).await;
    let resp = h
        .gateway
        .handle(h.replay(&fixtures::py_genai_generate(), "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 404);
    let v = json(resp).await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("platform gemini"),
        "{v}"
    );
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 404);
}

#[tokio::test]
async fn member_limits_apply_with_gemini_refusals() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness_with(vec![gemini(&mock.url)], |k| {
        k.limits.requests_per_minute = 1;
    })
    .await;
    let captured = fixtures::py_genai_generate();
    let resp = h
        .gateway
        .handle(h.replay(&captured, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .contains_key("x-aicarpool-ratelimit-requests-remaining"));
    text(resp).await;
    let resp = h
        .gateway
        .handle(h.replay(&captured, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let v = json(resp).await;
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requestsPerMinute"));
    assert_eq!(mock.hits(), 1);
}

fn exhausted(retry_delay: &str) -> Behavior {
    Behavior::ResourceExhausted {
        retry_delay: retry_delay.into(),
    }
}

/// Seconds from now until `at`.
fn secs_until(at: chrono::DateTime<chrono::Utc>) -> i64 {
    (at - chrono::Utc::now()).num_seconds()
}

#[tokio::test]
async fn a_429_cools_the_account_for_its_retry_delay() {
    let first = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let second = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    first.push([exhausted("37s")]);
    let h = harness(vec![gemini(&first.url), gemini(&second.url)]).await;
    let resp = h
        .gateway
        .handle(h.replay(&fixtures::py_genai_generate(), "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 200);
    text(resp).await;
    assert_eq!((first.hits(), second.hits()), (1, 1));

    let health = h.gateway.account_health(&h.account_ids[0]);
    assert_eq!(health.state, "cooling");
    assert_eq!(health.reason, Some(CoolReason::RateLimited));
    let left = secs_until(health.cooling_until.unwrap());
    assert!(
        (35..=37).contains(&left),
        "cools for the retryDelay, not 5 s: {left}"
    );
    assert_eq!(h.gateway.account_health(&h.account_ids[1]).state, "healthy");
}

#[tokio::test]
async fn every_account_exhausted_gives_one_429_with_the_soonest_retry_delay() {
    let first = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let second = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    first.push([exhausted("37s")]);
    second.push([exhausted("52.5s")]);
    let h = harness(vec![gemini(&first.url), gemini(&second.url)]).await;
    let generate = fixtures::py_genai_generate();
    let resp = h
        .gateway
        .handle(h.replay(&generate, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "37");
    let v = json(resp).await;
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["code"], 429);

    // Both still cooling: the next request is refused without a call, and
    // still says when the first account is back.
    let resp = h
        .gateway
        .handle(h.replay(&generate, "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((35..=37).contains(&wait), "{wait}");
    assert_eq!(json(resp).await["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!((first.hits(), second.hits()), (1, 1));
}

#[tokio::test]
async fn an_invalid_api_key_fails_over_and_benches_the_account() {
    // The first mock expects another key: the account's key is invalid.
    let revoked = MockGemini::start("AIza-some-other-key").await.unwrap();
    let good = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![gemini(&revoked.url), gemini(&good.url)]).await;
    let generate = fixtures::py_genai_generate();
    for _ in 0..3 {
        let resp = h
            .gateway
            .handle(h.replay(&generate, "x-goog-api-key"))
            .await;
        assert_eq!(resp.status(), 200);
        let v = json(resp).await;
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            GEMINI_ANSWER
        );
    }
    assert_eq!((revoked.hits(), good.hits()), (1, 3), "never chosen again");

    let health = h.gateway.account_health(&h.account_ids[0]);
    assert_eq!(health.state, "needs_attention");
    assert_eq!(health.reason, Some(CoolReason::CredentialsRejected));
    let last = health.last_error.unwrap();
    assert_eq!(last.status, Some(400));
    assert_eq!(last.message, "the Gemini API key is invalid");
    let records = h.records().await;
    assert!(records
        .iter()
        .all(|r| r.account_id.as_deref() == Some(h.account_ids[1].as_str())));
}

#[tokio::test]
async fn with_only_invalid_keys_the_client_is_told_to_ask_the_admin() {
    let revoked = MockGemini::start("AIza-some-other-key").await.unwrap();
    let h = harness(vec![gemini(&revoked.url)]).await;
    let resp = h
        .gateway
        .handle(h.replay(&fixtures::py_genai_generate(), "x-goog-api-key"))
        .await;
    assert_eq!(resp.status(), 502);
    let v = json(resp).await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("admin"),
        "{v}"
    );
}

#[tokio::test]
async fn the_clients_own_400_passes_through_and_spares_the_account() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let other = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![gemini(&mock.url), gemini(&other.url)]).await;
    // Without `contents` the real upstream refuses the request itself.
    let bad = h.post(
        "/api/ai-proxy/v1beta/models/gemini-2.5-flash:generateContent",
        r#"{"generationConfig":{"maxOutputTokens":8}}"#,
    );
    let resp = h.gateway.handle(bad).await;
    assert_eq!(resp.status(), 400);
    let v = json(resp).await;
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["message"], "contents is not specified");
    assert_eq!(
        mock.hits() + other.hits(),
        1,
        "no failover on the client's fault"
    );
    for id in &h.account_ids {
        let health = h.gateway.account_health(id);
        assert_eq!(health.state, "healthy");
        assert!(health.last_error.is_none());
    }
}
