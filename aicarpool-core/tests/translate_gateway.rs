//! OpenAI chat requests served by Claude and Gemini accounts, through the
//! gateway: the request as the upstream gets it, the answer as the client
//! gets it (streamed and whole, text and tool calls), usage, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use aicarpool_core::usage::Accuracy;
use aicarpool_testkit::{Behavior, MockGemini, MockOpenAi, MockUpstream, GEMINI_ANSWER};
use proxy_support::*;
use serde_json::{json, Value};

const CLAUDE_ANSWER: &str = "Hello from the mock upstream.";

fn chat(model: &str, stream: bool, include_usage: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "say pong"},
        ],
        "max_completion_tokens": 256,
        "temperature": 0.2,
    });
    if stream {
        body["stream"] = json!(true);
    }
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// The tool calls of chat chunks: (id, name, arguments joined).
fn streamed_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in chunks {
        for call in c
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = call["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.push(Default::default());
            }
            if let Some(id) = call["id"].as_str() {
                calls[i].0 = id.into();
            }
            if let Some(n) = call.pointer("/function/name").and_then(Value::as_str) {
                calls[i].1 = n.into();
            }
            calls[i].2 += call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("");
        }
    }
    calls
}

fn finish_reason(chunks: &[Value]) -> Option<String> {
    chunks
        .iter()
        .find_map(|c| {
            c.pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
}

#[tokio::test]
async fn a_claude_account_serves_a_streamed_chat() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![claude(&mock.url)]).await;
    let body = chat("claude-sonnet-4-5", true, true);
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/v1/chat/completions", body.to_string()))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = text(resp).await;
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks = sse_data(&text);
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["model"], "claude-sonnet-4-5");
    assert_eq!(chat_text(&chunks), CLAUDE_ANSWER);
    assert_eq!(finish_reason(&chunks).as_deref(), Some("stop"));
    let u = mock.usage();
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage["prompt_tokens"],
        u.input_tokens + u.cache_write_5m_tokens + u.cache_write_1h_tokens + u.cache_read_tokens
    );
    assert_eq!(usage["completion_tokens"], u.output_tokens);
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"],
        u.cache_read_tokens
    );

    let got = &mock.received()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.headers["x-api-key"], UPSTREAM_KEY);
    assert!(got.headers.get("authorization").is_none());
    let sent: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "Be terse.");
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "say pong"}]}])
    );

    let records = h.records().await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.usage.input_tokens, u.input_tokens);
    assert_eq!(r.usage.cache_write_1h_tokens, u.cache_write_1h_tokens);
    assert_eq!(r.usage.output_tokens, u.output_tokens);
    assert_eq!(r.accuracy, Accuracy::Exact);
    assert!(r.cost_micro_usd > 0);
}

#[tokio::test]
async fn a_claude_account_serves_chat_json_and_tool_calls() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![claude(&mock.url)]).await;
    let resp = h
        .gateway
        .handle(h.post(
            "/api/ai-proxy/chat",
            chat("claude-haiku-4-5", false, false).to_string(),
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let v = json(resp).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], CLAUDE_ANSWER);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let args = json!({"city": "Paris"});
    mock.push([
        Behavior::ToolCall {
            name: "get_weather".into(),
            arguments: args.clone(),
        },
        Behavior::ToolCall {
            name: "get_weather".into(),
            arguments: args.clone(),
        },
    ]);
    let mut body = chat("claude-haiku-4-5", true, false);
    body["tools"] = weather_tool();
    body["tool_choice"] = json!("required");
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/chat", body.to_string()))
        .await;
    let text = text(resp).await;
    let chunks = sse_data(&text);
    let calls = streamed_calls(&chunks);
    assert_eq!(calls.len(), 1, "{text}");
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), args);
    assert_eq!(finish_reason(&chunks).as_deref(), Some("tool_calls"));
    assert!(!text.contains("\"usage\""), "no usage chunk unless asked");
    let sent: Value = serde_json::from_slice(&mock.received()[1].body).unwrap();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));

    body["stream"] = json!(false);
    let v = json(
        h.gateway
            .handle(h.post("/api/ai-proxy/chat", body.to_string()))
            .await,
    )
    .await;
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        args
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(v["choices"][0]["message"]["content"].is_null());
    assert_eq!(h.records().await.len(), 3);
}

#[tokio::test]
async fn a_gemini_account_serves_chat() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![gemini(&mock.url)]).await;
    let resp = h
        .gateway
        .handle(h.post(
            "/api/ai-proxy/v1/chat/completions",
            chat("gemini-2.5-flash", true, true).to_string(),
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let text = text(resp).await;
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks = sse_data(&text);
    assert_eq!(chat_text(&chunks), GEMINI_ANSWER);
    assert_eq!(finish_reason(&chunks).as_deref(), Some("stop"));
    let u = mock.usage();
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], u.input_tokens + u.cache_read_tokens);
    assert_eq!(usage["completion_tokens"], u.output_tokens);

    let got = &mock.received()[0];
    assert_eq!(
        got.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(got.headers["x-goog-api-key"], UPSTREAM_KEY);
    let sent: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be terse.");
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [{"text": "say pong"}]}])
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 256);

    // Whole answers and tool calls.
    let args = json!({"city": "Oslo"});
    mock.push([Behavior::ToolCall {
        name: "get_weather".into(),
        arguments: args.clone(),
    }]);
    let mut body = chat("gemini-2.5-flash", false, false);
    body["tools"] = weather_tool();
    let v = json(
        h.gateway
            .handle(h.post("/api/ai-proxy/chat", body.to_string()))
            .await,
    )
    .await;
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let id = call["id"].as_str().unwrap();
    assert!(
        id.starts_with("gsig_"),
        "the thought signature rides in the id: {id}"
    );
    let sent: Value = serde_json::from_slice(&mock.received()[1].body).unwrap();
    assert_eq!(
        mock.received()[1].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );

    // The next turn sends the call back with its signature and the result.
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": id, "content": "{\"temp\": 3}"}),
    ]);
    let v = json(
        h.gateway
            .handle(h.post("/api/ai-proxy/chat", body.to_string()))
            .await,
    )
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], GEMINI_ANSWER);
    let sent: Value = serde_json::from_slice(&mock.received()[2].body).unwrap();
    let turns = sent["contents"].as_array().unwrap();
    assert_eq!(turns[1]["role"], "model");
    assert_eq!(turns[1]["parts"][0]["thoughtSignature"], "c2lnbmF0dXJl");
    assert_eq!(
        turns[2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"temp": 3}})
    );

    let records = h.records().await;
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].usage.output_tokens, u.output_tokens);
    assert_eq!(records[0].usage.cache_read_tokens, u.cache_read_tokens);
}

#[tokio::test]
async fn the_model_and_the_binding_choose_the_account() {
    let claude_mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let gemini_mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let openai_mock = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![
        claude(&claude_mock.url),
        gemini(&gemini_mock.url),
        openai(&openai_mock.url).models(&["gpt-*"]),
    ])
    .await;
    for model in [
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "gpt-4o-mini",
        "kimi-k2-0905-preview",
    ] {
        let resp = h
            .gateway
            .handle(h.post("/api/ai-proxy/chat", chat(model, false, false).to_string()))
            .await;
        assert_eq!(resp.status(), 200, "{model}");
        text(resp).await;
    }
    // kimi: no OpenAI account serves it, so the any-model Claude account does.
    assert_eq!(
        (claude_mock.hits(), gemini_mock.hits(), openai_mock.hits()),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn what_no_bound_protocol_can_carry_is_a_clear_400() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let gem = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![claude(&mock.url), gemini(&gem.url)]).await;
    let cases = [
        ("claude-sonnet-4-5", json!({"n": 2}), "n > 1"),
        ("claude-sonnet-4-5", json!({"logprobs": true}), "logprobs"),
        (
            "gemini-2.5-flash",
            json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
            "input_audio",
        ),
    ];
    for (model, extra, says) in cases {
        let mut body = chat(model, false, false);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = h
            .gateway
            .handle(h.post("/api/ai-proxy/chat", body.to_string()))
            .await;
        assert_eq!(resp.status(), 400, "{model} {extra}");
        let v = json(resp).await;
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{msg}");
    }
    assert_eq!(mock.hits() + gem.hits(), 0);

    // What one protocol cannot carry, another account of the group may:
    // Claude has no JSON mode, the Gemini account takes the request.
    let mut body = chat("claude-sonnet-4-5", false, false);
    body["response_format"] = json!({"type": "json_object"});
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/chat", body.to_string()))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!((mock.hits(), gem.hits()), (0, 1));
    // And the other way round: Gemini fetches no image URL, Claude does.
    let mut body = chat("gemini-2.5-flash", false, false);
    body["messages"] = json!([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]);
    let resp = h
        .gateway
        .handle(h.post("/api/ai-proxy/chat", body.to_string()))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!((mock.hits(), gem.hits()), (1, 1));
}

#[tokio::test]
async fn upstream_errors_come_back_in_openai_shape() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([
        Behavior::Error {
            status: 400,
            kind: "invalid_request_error".into(),
        },
        Behavior::ErrorMidStream,
    ]);
    let h = harness(vec![claude(&mock.url)]).await;
    let resp = h
        .gateway
        .handle(h.post(
            "/api/ai-proxy/chat",
            chat("claude-sonnet-4-5", false, false).to_string(),
        ))
        .await;
    assert_eq!(resp.status(), 400);
    let v = json(resp).await;
    assert_eq!(v["error"]["message"], "mock error");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let resp = h
        .gateway
        .handle(h.post(
            "/api/ai-proxy/chat",
            chat("claude-sonnet-4-5", true, true).to_string(),
        ))
        .await;
    let text = text(resp).await;
    let chunks = sse_data(&text);
    assert_eq!(chunks.last().unwrap()["error"]["code"], 529, "{text}");
    assert!(!text.contains("[DONE]"));
    let records = h.records().await;
    assert_eq!(
        records.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![400, 529]
    );
}
