//! Both directions together: requests written and read back, streams
//! written and read back, and garbage in every reader.

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::stream::frames::SseFrames;
use crate::stream::tap::StreamTap;
use crate::translate::neutral::{
    fold, unfold, Answer, Conversation, Event, Image, Part, Reasoning, Role, StopReason, ToolCall,
    ToolChoice, ToolResult, ToolSpec, Turn,
};
use crate::translate::tap::{JsonFromTool, ReadUpstream, Translated, WriteClient};
use crate::usage::Usage;

fn claude_code_body() -> Vec<u8> {
    let jsonl = include_str!("../../../../testkit/fixtures/claude_authtoken.jsonl");
    let line: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    serde_json::to_vec(&line["body_json"]).unwrap()
}

/// The request an account gets, with the model the gateway would set.
fn sent(c: &Conversation) -> Vec<u8> {
    let mut body = write_request(c).unwrap();
    body.insert("model".into(), json!(c.model));
    serde_json::to_vec(&Value::Object(body)).unwrap()
}

fn call(id: &str, name: &str, arguments: Value) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    })
}

fn result(id: &str, content: Vec<Part>, is_error: bool) -> Part {
    Part::ToolResult(ToolResult {
        call_id: id.into(),
        name: None,
        content,
        is_error,
    })
}

fn turn(role: Role, parts: Vec<Part>) -> Turn {
    Turn { role, parts }
}

fn agent_conversation() -> Conversation {
    Conversation {
        model: "claude-sonnet-4-5".into(),
        system: vec!["Be brief.".into()],
        turns: vec![
            turn(
                Role::User,
                vec![
                    Part::Text("What is in these?".into()),
                    Part::Image(Image::Inline {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgo=".into(),
                    }),
                    Part::Image(Image::Url("https://example.com/a.jpg".into())),
                ],
            ),
            turn(
                Role::Assistant,
                vec![
                    Part::Thinking {
                        text: "two files".into(),
                        signature: Some("EqQBCkYIBRgCKkA".into()),
                    },
                    Part::Text("Reading both.".into()),
                    call("toolu_01", "Read", json!({"path": "a.txt"})),
                    call("toolu_02", "Read", json!({"path": "b.txt", "n": [1, 2]})),
                ],
            ),
            turn(
                Role::User,
                vec![
                    result("toolu_01", vec![Part::Text("alpha".into())], false),
                    result(
                        "toolu_02",
                        vec![
                            Part::Text("no such file".into()),
                            Part::Image(Image::Inline {
                                media_type: "image/jpeg".into(),
                                data: "/9j/".into(),
                            }),
                        ],
                        true,
                    ),
                    result("toolu_03", vec![], false),
                    Part::Text("Go on.".into()),
                ],
            ),
        ],
        tools: vec![ToolSpec {
            name: "Read".into(),
            description: Some("Reads a file".into()),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        }],
        tool_choice: Some(ToolChoice::Auto),
        parallel_tool_calls: Some(false),
        max_tokens: Some(16000),
        stop: vec!["END".into()],
        stream: true,
        reasoning: Some(Reasoning {
            budget_tokens: Some(4096),
            effort: None,
            show: true,
        }),
        user: Some("user-1".into()),
        ..Conversation::default()
    }
}

#[test]
fn a_conversation_survives_writing_and_reading_back() {
    let c = agent_conversation();
    assert_eq!(read_request(&sent(&c)).unwrap(), c);

    let plain = Conversation {
        model: "m".into(),
        turns: vec![turn(Role::User, vec![Part::Text("hi".into())])],
        tools: agent_conversation().tools,
        tool_choice: Some(ToolChoice::Tool("Read".into())),
        parallel_tool_calls: Some(true),
        temperature: Some(0.25),
        top_k: Some(40),
        max_tokens: Some(100),
        ..Conversation::default()
    };
    assert_eq!(read_request(&sent(&plain)).unwrap(), plain);

    let choices = [ToolChoice::Any, ToolChoice::None];
    for choice in choices {
        let c = Conversation {
            tool_choice: Some(choice),
            parallel_tool_calls: None,
            ..plain.clone()
        };
        assert_eq!(read_request(&sent(&c)).unwrap(), c);
    }
}

#[test]
fn claude_codes_request_goes_to_a_claude_account_whole() {
    let raw: Value = serde_json::from_slice(&claude_code_body()).unwrap();
    let c = read_request(&claude_code_body()).unwrap();
    let body = write_request(&c).unwrap();
    assert_eq!(
        body["tools"].as_array().unwrap().len(),
        raw["tools"].as_array().unwrap().len()
    );
    for (sent, raw) in body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .zip(raw["tools"].as_array().unwrap())
    {
        assert_eq!(sent["name"], raw["name"]);
        assert_eq!(sent["input_schema"], raw["input_schema"]);
        assert_eq!(sent["description"], raw["description"]);
    }
    let system = body["system"].as_str().unwrap();
    assert!(system.starts_with("You are a Claude agent"));
    assert!(system.contains("Available agent types"));
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["content"][1]["text"], "say pong");
    // Adaptive thinking at high effort becomes the high budget.
    assert_eq!(body["thinking"]["budget_tokens"], 24576);
    assert_eq!(body["max_tokens"], 64000);
    assert_eq!(body["metadata"]["user_id"], raw["metadata"]["user_id"]);
    assert_eq!(body["stream"], true);
}

/// A writer's bytes read back through the reader.
fn read_back(bytes: &[u8]) -> (Vec<Event>, crate::stream::tap::StreamSummary) {
    let mut frames = SseFrames::new();
    let mut reader = MessagesReader::new();
    let mut events = Vec::new();
    for ev in frames.push(bytes) {
        reader.event(&ev, &mut events);
    }
    reader.end(&mut events);
    (events, reader.summary())
}

fn tool_answer() -> Answer {
    Answer {
        id: Some("msg_01".into()),
        parts: vec![
            Part::Thinking {
                text: "two calls".into(),
                signature: Some("SIG".into()),
            },
            Part::Text("Reading.".into()),
            call("toolu_01", "Read", json!({"path": "a"})),
            call("toolu_02", "Read", json!({})),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input_tokens: 12,
            output_tokens: 34,
            cache_write_5m_tokens: 5,
            cache_write_1h_tokens: 6,
            cache_read_tokens: 789,
        },
    }
}

#[test]
fn a_streamed_answer_survives_writing_and_reading_back() {
    let answer = tool_answer();
    let mut writer = MessagesWriter::new("claude-x");
    let mut bytes = Vec::new();
    for e in unfold(&answer) {
        writer.event(&e, &mut bytes);
    }
    writer.end(&mut bytes);
    let (events, summary) = read_back(&bytes);
    assert!(summary.completed);
    assert_eq!(summary.usage, answer.usage);
    assert_eq!(fold(events).unwrap(), answer);
}

#[test]
fn a_whole_answer_survives_writing_and_reading_back() {
    for stop in [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::StopSequence,
        StopReason::ToolUse,
        StopReason::Refusal,
    ] {
        let answer = Answer {
            stop,
            ..tool_answer()
        };
        assert_eq!(read_answer(&write_answer(&answer, "m")).unwrap(), answer);
        assert_eq!(stop_reason(stop_reason_name(stop)), stop);
    }
}

#[test]
fn a_tool_call_streamed_out_comes_back_with_its_id() {
    // Claude's stream of a call, through the tap to a Messages client.
    let upstream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"usage\":{\"input_tokens\":9}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_xyz\",\"name\":\"Bash\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\":\\\"ls\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(
        MessagesReader::new(),
        MessagesWriter::new("claude-x"),
    ));
    let mut client = Vec::new();
    for chunk in upstream.as_bytes().chunks(11) {
        client.extend_from_slice(&tap.chunk(Bytes::copy_from_slice(chunk)));
    }
    let (tail, summary) = tap.end(None);
    client.extend_from_slice(&tail);
    assert!(summary.completed);
    assert_eq!(summary.usage.output_tokens, 15);
    let answer = fold(read_back(&client).0).unwrap();
    assert_eq!(
        answer.parts,
        vec![call("toolu_xyz", "Bash", json!({"command": "ls"}))]
    );

    // The client's next request carries the result under the same id.
    let mut next = agent_conversation();
    next.turns.push(turn(Role::Assistant, answer.parts.clone()));
    next.turns.push(turn(
        Role::User,
        vec![result("toolu_xyz", vec![Part::Text("a.txt".into())], false)],
    ));
    let body = write_request(&next).unwrap();
    let messages = body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_xyz");
    assert_eq!(
        messages[messages.len() - 2]["content"][0]["id"],
        "toolu_xyz"
    );
    // The call came without thinking, so Claude would refuse thinking now.
    assert!(!body.contains_key("thinking"));
    next.reasoning = None;
    assert_eq!(read_request(&sent(&next)).unwrap(), next);
}

#[test]
fn a_json_answer_comes_through_the_forced_tool_as_text() {
    let upstream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"usage\":{\"input_tokens\":9}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"json_answer\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let mut tap: Box<dyn StreamTap> = Box::new(Translated::adapted(
        MessagesReader::new(),
        MessagesWriter::new("m"),
        JsonFromTool::new(JSON_TOOL),
    ));
    let mut client = tap.chunk(Bytes::from_static(upstream.as_bytes())).to_vec();
    client.extend_from_slice(&tap.end(None).0);
    let answer = fold(read_back(&client).0).unwrap();
    assert_eq!(answer.parts, vec![Part::Text("{\"a\":1}".into())]);
    assert_eq!(answer.stop, StopReason::EndTurn);
}

#[test]
fn a_broken_upstream_ends_the_clients_stream_with_an_error() {
    let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(
        MessagesReader::new(),
        MessagesWriter::new("m"),
    ));
    let mut client = tap
        .chunk(Bytes::from_static(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n",
        ))
        .to_vec();
    let (tail, summary) = tap.end(Some("connection reset"));
    client.extend_from_slice(&tail);
    assert!(!summary.completed);
    let text = String::from_utf8(client).unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(text.ends_with(
        "event: error\ndata: {\"error\":{\"message\":\"connection reset\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"
    ));
}

#[test]
fn errors_have_the_anthropic_shape() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (500, "api_error"),
        (502, "api_error"),
    ] {
        let v: Value = serde_json::from_slice(&error_body(status, "why")).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind, "{status}");
        assert_eq!(v["error"]["message"], "why");
    }
}

/// Cheap deterministic mutations: truncations and byte flips.
fn mutations(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let step = (input.len() / 60).max(1);
    for cut in (0..input.len()).step_by(step) {
        out.push(input[..cut].to_vec());
        let mut flipped = input.to_vec();
        for b in [b'"', b'{', b']', b'0', b'\n', 0xff] {
            flipped[cut] = b;
            out.push(flipped.clone());
        }
    }
    out
}

#[test]
fn garbage_never_panics() {
    let small = json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r"}]}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f"}, "thinking": {"type": "enabled", "budget_tokens": 2000}})
    .to_string();
    let big = claude_code_body();
    for input in mutations(small.as_bytes())
        .into_iter()
        .chain(mutations(&big))
    {
        if let Ok(c) = read_request(&input) {
            let _ = write_request(&c);
        }
        let _ = read_answer(&input);
    }
    let mut writer_bytes = Vec::new();
    let mut w = MessagesWriter::new("m");
    for e in unfold(&tool_answer()) {
        w.event(&e, &mut writer_bytes);
    }
    for input in mutations(&writer_bytes) {
        let (events, _) = read_back(&input);
        let mut w = MessagesWriter::new("m");
        let mut out = Vec::new();
        for e in &events {
            w.event(e, &mut out);
        }
        w.end(&mut out);
        w.broken(502, "x", &mut out);
    }
    // Events out of order still make a well-formed stream.
    let mut w = MessagesWriter::new("m");
    let mut out = Vec::new();
    for e in [
        Event::BlockEnd,
        Event::Signature("s".into()),
        Event::Delta("x".into()),
        Event::Start {
            id: None,
            usage: Usage::default(),
        },
        Event::BlockEnd,
        Event::BlockEnd,
    ] {
        w.event(&e, &mut out);
    }
    w.end(&mut out);
    let (events, summary) = read_back(&out);
    assert!(summary.completed);
    assert_eq!(fold(events).unwrap().parts, vec![Part::Text("x".into())]);
}
