//! Translation on its own: a full chat conversation (system, images, tool
//! calls and results) to Claude and Gemini requests, and their answers and
//! streams back to chat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aicarpool_core::stream::tap::StreamTap;
use aicarpool_core::translate::anthropic::{self, ChatFromMessages};
use aicarpool_core::translate::chat::ChatRequest;
use aicarpool_core::translate::gemini::{self, ChatFromGemini};
use aicarpool_core::translate::TranslateError;
use bytes::Bytes;
use serde_json::{json, Value};

fn conversation() -> Value {
    json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "get_time"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "stop": "END",
        "max_tokens": 100,
        "top_p": 0.9,
        "user": "u-1",
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

fn parse(v: &Value) -> ChatRequest {
    ChatRequest::parse(v.to_string().as_bytes()).unwrap()
}

#[test]
fn a_conversation_to_claude() {
    let body = anthropic::request(&parse(&conversation())).unwrap();
    let sent: Value = serde_json::from_slice(&anthropic::with_model(&body, "claude-x")).unwrap();
    assert_eq!(sent["model"], "claude-x");
    assert_eq!(sent["system"], "You are terse.\n\nUse tools.");
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["metadata"]["user_id"], "u-1");
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        sent["tools"][1]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
    let m = sent["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(
        m[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(
        m[1]["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    assert_eq!(
        m[1]["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(m[1]["content"][2]["input"], json!({}));
    // Tool results and the next user turn merge into one user message.
    assert_eq!(m[2]["role"], "user");
    assert_eq!(
        m[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "{\"temp\":21}"})
    );
    assert_eq!(m[2]["content"][1]["tool_use_id"], "call_2");
    assert_eq!(
        m[2]["content"][2],
        json!({"type": "text", "text": "Thanks"})
    );
}

#[test]
fn a_conversation_to_gemini() {
    let sent: Value =
        serde_json::from_slice(&gemini::request(&parse(&conversation())).unwrap()).unwrap();
    assert_eq!(
        sent["systemInstruction"]["parts"],
        json!([{"text": "You are terse."}, {"text": "Use tools."}])
    );
    let c = sent["contents"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(
        c[0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(c[1]["role"], "model");
    assert_eq!(
        c[1]["parts"][1],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}})
    );
    assert_eq!(
        c[2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"temp": 21}}})
    );
    assert_eq!(
        c[2]["parts"][1],
        json!({"functionResponse": {"name": "get_time", "response": {"content": "noon"}}})
    );
    assert_eq!(c[2]["parts"][2], json!({"text": "Thanks"}));
    assert_eq!(
        sent["generationConfig"],
        json!({"maxOutputTokens": 100, "stopSequences": ["END"], "topP": 0.9})
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["type"],
        "object"
    );
}

#[test]
fn json_modes_and_penalties_go_to_gemini_only() {
    let mut v = conversation();
    v["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}});
    v["presence_penalty"] = json!(0.5);
    let chat = parse(&v);
    let sent: Value = serde_json::from_slice(&gemini::request(&chat).unwrap()).unwrap();
    assert_eq!(
        sent["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        sent["generationConfig"]["responseJsonSchema"],
        json!({"type": "object"})
    );
    assert_eq!(sent["generationConfig"]["presencePenalty"], 0.5);
    assert!(matches!(
        anthropic::request(&chat),
        Err(TranslateError::Unsupported(_))
    ));
}

#[test]
fn refusals_and_malformed_requests() {
    let refused = |extra: Value| {
        let mut v = conversation();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let chat = parse(&v);
        (
            anthropic::request(&chat).err(),
            gemini::request(&chat).err(),
        )
    };
    for extra in [
        json!({"n": 3}),
        json!({"top_logprobs": 2}),
        json!({"logit_bias": {"50256": -100}}),
        json!({"modalities": ["text", "audio"]}),
        json!({"functions": [{"name": "f"}]}),
        json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
    ] {
        let (a, g) = refused(extra.clone());
        assert!(matches!(a, Some(TranslateError::Unsupported(_))), "{extra}");
        assert!(matches!(g, Some(TranslateError::Unsupported(_))), "{extra}");
        assert!(a.unwrap().to_string().contains("cannot be translated"));
    }
    let (a, g) = refused(json!({"messages": [{"role": "assistant", "content": "x",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}));
    assert!(matches!(a, Some(TranslateError::Invalid(_))));
    assert!(matches!(g, Some(TranslateError::Invalid(_))));
    let (_, g) =
        refused(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
    assert!(g.unwrap().to_string().contains("nope"));
    assert!(
        ChatRequest::parse(b"{\"messages\":[]}").is_err(),
        "model is required"
    );
    let (a, _) = refused(json!({"messages": []}));
    assert!(matches!(a, Some(TranslateError::Invalid(_))));
}

fn run(
    tap: Box<dyn StreamTap>,
    stream: &str,
    broken: Option<&str>,
) -> (
    Vec<Value>,
    String,
    aicarpool_core::stream::tap::StreamSummary,
) {
    let mut tap = tap;
    let mut out = Vec::new();
    for c in stream.as_bytes().chunks(13) {
        out.extend_from_slice(&tap.chunk(Bytes::copy_from_slice(c)));
    }
    let (tail, seen) = tap.end(broken);
    out.extend_from_slice(&tail);
    let text = String::from_utf8(out).unwrap();
    let chunks = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (chunks, text, seen)
}

const CLAUDE_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":90,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking\"}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Rome\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"get_time\",\"input\":{}}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":33}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn a_claude_stream_becomes_chat_chunks() {
    let (chunks, text, seen) = run(
        Box::new(ChatFromMessages::new("claude-x", true)),
        CLAUDE_STREAM,
        None,
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-msg_9"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Checking", "thinking is left out");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    let args = |i: u64| -> String {
        calls
            .iter()
            .filter(|c| c["index"] == i)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect()
    };
    assert_eq!(args(0), "{\"city\":\"Rome\"}");
    assert_eq!(args(1), "{}", "a tool without arguments gets {{}}");
    assert_eq!(calls[0]["id"], "toolu_1");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage,
        &json!({"prompt_tokens": 100, "completion_tokens": 33, "total_tokens": 133,
                              "prompt_tokens_details": {"cached_tokens": 90}})
    );
    assert!(seen.completed);
    assert_eq!(
        (
            seen.usage.input_tokens,
            seen.usage.cache_read_tokens,
            seen.usage.output_tokens
        ),
        (10, 90, 33)
    );
}

#[test]
fn a_broken_claude_stream_ends_with_an_error_chunk() {
    let cut = &CLAUDE_STREAM[..CLAUDE_STREAM.find("event: message_delta").unwrap()];
    let (chunks, text, seen) = run(
        Box::new(ChatFromMessages::new("claude-x", false)),
        cut,
        Some("connection reset"),
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(
        chunks.last().unwrap()["error"]["message"],
        "connection reset"
    );
    assert!(!seen.completed);
    assert_eq!(seen.usage.input_tokens, 10);
}

const GEMINI_STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"plan\",\"thought\":true}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":50},\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Sunny\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":50}}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Rome\"}},\"thoughtSignature\":\"U0lH\"}],\"role\":\"model\"},",
    "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":50,\"candidatesTokenCount\":7,\"thoughtsTokenCount\":20,\"cachedContentTokenCount\":30}}\r\n\r\n",
);

#[test]
fn a_gemini_stream_becomes_chat_chunks() {
    let (chunks, text, seen) = run(
        Box::new(ChatFromGemini::new("gemini-x", true)),
        GEMINI_STREAM,
        None,
    );
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "[DONE] follows the upstream's end"
    );
    assert_eq!(chunks[0]["id"], "chatcmpl-r1");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Sunny", "thoughts are left out");
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .unwrap();
    assert_eq!(call["id"], "gsig_U0lH");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Rome\"}");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 27);
    assert!(seen.completed);
    assert_eq!(
        (
            seen.usage.input_tokens,
            seen.usage.cache_read_tokens,
            seen.usage.output_tokens
        ),
        (20, 30, 27)
    );
}

#[test]
fn whole_answers_become_chat_completions() {
    let claude = json!({"id": "msg_1", "type": "message", "role": "assistant",
        "content": [{"type": "thinking", "thinking": "x"}, {"type": "text", "text": "Hi"}],
        "stop_reason": "max_tokens", "usage": {"input_tokens": 3, "output_tokens": 4}});
    let v: Value =
        serde_json::from_slice(&anthropic::response(claude.to_string().as_bytes(), "m").unwrap())
            .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hi");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["total_tokens"], 7);
    assert_eq!(v["model"], "m");

    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}});
    let v: Value =
        serde_json::from_slice(&gemini::response(blocked.to_string().as_bytes(), "g").unwrap())
            .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    assert!(gemini::response(b"{\"error\":{}}", "g").is_none());
}
