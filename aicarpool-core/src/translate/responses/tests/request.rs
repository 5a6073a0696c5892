//! Reading requests: the real clients' fixtures, content, refusals and settings.

use serde_json::{json, Value};

use super::*;

#[test]
fn codex_request_translates() {
    let req = read_request(&codex_body()).unwrap();
    let c = &req.conversation;
    assert_eq!(c.model, "gpt-5-codex");
    assert!(c.stream);
    assert_eq!(c.system.len(), 2, "the two developer messages");
    assert!(c.system[0].starts_with("You are a coding agent running in the Codex CLI"));
    let last = c.turns.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert_eq!(last.parts.last(), Some(&Part::Text("say pong".into())));
    let tool = |n: &str| c.tools.iter().find(|t| t.name == n);
    assert!(tool("exec_command").unwrap().parameters["properties"]["cmd"].is_object());
    let spawn = tool("multi_agent_v1__spawn_agent").expect("namespaced tools are flattened");
    assert!(spawn.parameters.is_object());
    assert_eq!(
        req.namespaced.get("multi_agent_v1__spawn_agent"),
        Some(&("multi_agent_v1".to_owned(), "spawn_agent".to_owned()))
    );
    assert_eq!(req.dropped_tools, vec!["web_search".to_owned()]);
    assert!(tool("web_search").is_none());
    assert_eq!(c.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(c.parallel_tool_calls, Some(true));
    let r = c.reasoning.unwrap();
    assert!(r.show, "summary auto shows the reasoning");
    assert_eq!(r.effort, None);
}

#[test]
fn python_sdk_string_input() {
    let body = fixture_body(include_str!(
        "../../../../../testkit/fixtures/py_openai_responses_stream.jsonl"
    ));
    let req = read_request(&body).unwrap();
    let c = &req.conversation;
    assert_eq!(c.model, "gpt-4o-mini");
    assert!(c.stream);
    assert_eq!(c.turns.len(), 1);
    assert_eq!(c.turns[0].parts, vec![Part::Text("say pong".into())]);
}

#[test]
fn images_and_content_parts() {
    let req = read_json(json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "high"},
    ]}, {"role": "assistant", "content": [{"type": "output_text", "text": "a cat"},
        {"type": "refusal", "refusal": "no more"}]}]}))
    .unwrap();
    let turns = &req.conversation.turns;
    assert_eq!(
        turns[0].parts[1],
        Part::Image(Image::Inline {
            media_type: "image/png".into(),
            data: "iVBORw0".into()
        })
    );
    assert_eq!(
        turns[0].parts[2],
        Part::Image(Image::Url("https://example.com/cat.jpg".into()))
    );
    assert_eq!(turns[1].parts[1], Part::Text("no more".into()));

    let refused = |content: Value| {
        read_json(json!({"model": "m", "input": [{"role": "user", "content": [content]}]}))
    };
    assert!(matches!(
        refused(json!({"type": "input_image", "file_id": "file-1"})),
        Err(TranslateError::Unsupported(m)) if m.contains("file_id")
    ));
    assert!(matches!(
        refused(json!({"type": "input_file", "file_data": "x"})),
        Err(TranslateError::Unsupported(_))
    ));
    assert!(matches!(
        refused(json!({"type": "input_image", "image_url": "ftp://x"})),
        Err(TranslateError::Invalid(_))
    ));
    let image_result = read_json(json!({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "c", "output": [
            {"type": "input_text", "text": "shot"},
            {"type": "input_image", "image_url": "data:image/jpeg;base64,AAA"}]}]}))
    .unwrap();
    let Part::ToolResult(r) = &image_result.conversation.turns[0].parts[0] else {
        panic!("a tool result");
    };
    assert!(matches!(r.content[1], Part::Image(Image::Inline { .. })));
}

#[test]
fn stored_state_is_refused() {
    for extra in [
        json!({"previous_response_id": "resp_1"}),
        json!({"conversation": "conv_1"}),
        json!({"background": true}),
        json!({"prompt": {"id": "pmpt_1"}}),
        json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
        json!({"tool_choice": {"type": "web_search_preview"}}),
    ] {
        let mut body = json!({"model": "m", "input": "hi"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let err = read_json(body).unwrap_err();
        assert!(matches!(err, TranslateError::Unsupported(_)), "{extra}");
    }
    assert!(matches!(
        read_json(json!({"input": "hi"})),
        Err(TranslateError::Invalid(_))
    ));
    // Built-in tool calls in the history are left out, not refused.
    let req = read_json(json!({"model": "m", "input": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"type": "message", "role": "user", "content": "hi"}]}))
    .unwrap();
    assert_eq!(req.conversation.turns.len(), 1);
}

#[test]
fn settings_are_read() {
    let req = read_json(json!({
        "model": "m", "instructions": "be brief", "input": "hi",
        "max_output_tokens": 300, "temperature": 0.2, "top_p": 0.9, "user": "u1",
        "reasoning": {"effort": "high", "summary": "none"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "tool_choice": {"type": "function", "name": "f"},
        "store": false, "include": ["reasoning.encrypted_content"], "service_tier": "auto",
    }))
    .unwrap();
    let c = &req.conversation;
    assert_eq!(c.system, vec!["be brief".to_owned()]);
    assert_eq!(c.max_tokens, Some(300));
    assert_eq!((c.temperature, c.top_p), (Some(0.2), Some(0.9)));
    assert_eq!(c.user.as_deref(), Some("u1"));
    let r = c.reasoning.unwrap();
    assert_eq!(r.effort, Some(crate::translate::neutral::Effort::High));
    assert!(!r.show);
    assert_eq!(
        c.json.as_ref().unwrap().schema,
        Some(json!({"type": "object"}))
    );
    assert_eq!(c.tool_choice, Some(ToolChoice::Tool("f".into())));
    let none = read_json(
        json!({"model": "m", "input": "hi", "reasoning": {"effort": "none"},
        "tool_choice": "required"}),
    )
    .unwrap();
    assert_eq!(none.conversation.reasoning, None);
    assert_eq!(none.conversation.tool_choice, Some(ToolChoice::Any));
}

#[test]
fn error_bodies_in_the_openai_shape() {
    let v: Value = serde_json::from_slice(&error_body(429, "slow")).unwrap();
    assert_eq!(v["error"]["message"], "slow");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let v: Value = serde_json::from_slice(&error_body(400, "bad")).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["code"].is_null());
}
