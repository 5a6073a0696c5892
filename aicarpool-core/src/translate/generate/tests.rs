//! Both sides together: round trips, whole tool-use turns, and inputs
//! that must never panic.

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::stream::tap::StreamTap;
use crate::translate::neutral::{
    unfold, Answer, Conversation, Image, Part, Reasoning, Role, StopReason, ToolCall, ToolChoice,
    ToolResult, ToolSpec, Turn,
};
use crate::translate::tap::{Translated, WriteClient};
use crate::usage::Usage;
use aicarpool_testkit::fixtures;

fn conversation() -> Conversation {
    let call = |id: &str, path: &str| {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: "Read".into(),
            arguments: json!({"path": path}),
        })
    };
    let result = |id: &str, text: &str, is_error| {
        Part::ToolResult(ToolResult {
            call_id: id.into(),
            name: Some("Read".into()),
            content: vec![Part::Text(text.into())],
            is_error,
        })
    };
    Conversation {
        model: "gemini-2.5-pro".into(),
        system: vec!["Be brief.".into()],
        turns: vec![
            Turn {
                role: Role::User,
                parts: vec![
                    Part::Text("read a and b".into()),
                    Part::Image(Image::Inline {
                        media_type: "image/png".into(),
                        data: "iVBOR".into(),
                    }),
                ],
            },
            Turn {
                role: Role::Assistant,
                parts: vec![
                    Part::Text("Reading.".into()),
                    call("toolu_1", "a"),
                    call("toolu_2", "b"),
                ],
            },
            Turn {
                role: Role::User,
                parts: vec![
                    result("toolu_1", "A", false),
                    result("toolu_2", "gone", true),
                ],
            },
            Turn {
                role: Role::Assistant,
                parts: vec![Part::Text("Done.".into())],
            },
            Turn {
                role: Role::User,
                parts: vec![Part::Text("thanks".into())],
            },
        ],
        tools: vec![ToolSpec {
            name: "Read".into(),
            description: Some("Reads".into()),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        }],
        tool_choice: Some(ToolChoice::Auto),
        max_tokens: Some(1000),
        temperature: Some(0.2),
        top_p: Some(0.9),
        top_k: Some(20),
        stop: vec!["END".into()],
        stream: true,
        reasoning: Some(Reasoning {
            budget_tokens: Some(2048),
            effort: None,
            show: true,
        }),
        ..Conversation::default()
    }
}

#[test]
fn a_conversation_survives_writing_and_reading_back() {
    let c = conversation();
    let body = Value::Object(write_request(&c).unwrap()).to_string();
    let back = read_request(body.as_bytes(), &c.model, true).unwrap();
    assert_eq!(back, c);
}

/// Gemini CLI served by a Claude account: the call goes out with its id,
/// comes back in the next request (with or without the id) and the result
/// answers the same id.
#[test]
fn a_gemini_client_tool_turn_keeps_its_ids() {
    let first = read_request(
        &fixtures::gemini_cli_stream().body,
        "gemini-3.1-pro-preview",
        true,
    )
    .unwrap();
    assert!(first.tools.iter().any(|t| t.name == "read_file"));
    let answer = Answer {
        id: Some("msg_1".into()),
        parts: vec![
            Part::Text("Let me look.".into()),
            Part::ToolCall(ToolCall {
                id: "toolu_01A".into(),
                name: "read_file".into(),
                arguments: json!({"file_path": "a"}),
            }),
            Part::ToolCall(ToolCall {
                id: "toolu_01B".into(),
                name: "read_file".into(),
                arguments: json!({"file_path": "b"}),
            }),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input_tokens: 50,
            output_tokens: 20,
            ..Usage::default()
        },
    };
    // Streamed and whole answers carry the same parts.
    let mut w = GeminiWriter::new("gemini-3.1-pro-preview", true);
    let mut out = Vec::new();
    for e in unfold(&answer) {
        w.event(&e, &mut out);
    }
    w.end(&mut out);
    let text = String::from_utf8(out).unwrap();
    let mut streamed = Vec::new();
    for event in text.split("\r\n\r\n").filter(|e| !e.is_empty()) {
        let v: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        if let Some(parts) = v
            .pointer("/candidates/0/content/parts")
            .and_then(Value::as_array)
        {
            streamed.extend(parts.iter().cloned());
        }
    }
    let whole: Value = serde_json::from_slice(&write_answer(&answer, "m")).unwrap();
    assert_eq!(
        &Value::Array(streamed.clone()),
        &whole["candidates"][0]["content"]["parts"]
    );

    for echo_ids in [true, false] {
        let mut model_parts = streamed.clone();
        if !echo_ids {
            for p in &mut model_parts {
                if let Some(f) = p.get_mut("functionCall").and_then(Value::as_object_mut) {
                    f.remove("id");
                }
            }
        }
        let responses: Vec<Value> = streamed
            .iter()
            .filter_map(|p| p.get("functionCall"))
            .map(|f| {
                let mut r = json!({"name": f["name"], "response": {"output": format!("contents of {}", f["args"]["file_path"])}});
                if echo_ids {
                    r["id"] = f["id"].clone();
                }
                json!({"functionResponse": r})
            })
            .collect();
        let next = json!({"contents": [
            {"role": "user", "parts": [{"text": "read a and b"}]},
            {"role": "model", "parts": model_parts},
            {"role": "user", "parts": responses}
        ]});
        let c = read_request(next.to_string().as_bytes(), "m", true).unwrap();
        let calls: Vec<&ToolCall> = c.turns[1]
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall(c) => Some(c),
                _ => None,
            })
            .collect();
        let results: Vec<&ToolResult> = c.turns[2]
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolResult(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(results.len(), 2);
        for (call, result) in calls.iter().zip(&results) {
            assert_eq!(call.id, result.call_id, "echo_ids {echo_ids}");
            assert_eq!(
                result.text(),
                format!(
                    "contents of \"{}\"",
                    call.arguments["file_path"].as_str().unwrap()
                )
            );
        }
        if echo_ids {
            assert_eq!(calls[0].id, "toolu_01A");
        } else {
            assert_eq!(calls[0].id, synthesized_call_id(1, 1));
        }
    }
}

const GEMINI_TOOL_STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Reading.\"}]}}],\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[",
    "{\"functionCall\":{\"name\":\"Read\",\"args\":{\"path\":\"a\"}},\"thoughtSignature\":\"c2ln\"},",
    "{\"functionCall\":{\"name\":\"Read\",\"args\":{\"path\":\"b\"}}}]},\"finishReason\":\"STOP\"}],",
    "\"usageMetadata\":{\"promptTokenCount\":40,\"candidatesTokenCount\":9,\"cachedContentTokenCount\":30,\"totalTokenCount\":49}}\r\n\r\n",
);

/// A Gemini account's tool turn, read and written to any client: the
/// calls' ids (signature folded in) go back to Gemini on the next request.
#[test]
fn a_gemini_account_tool_turn_round_trips_its_signatures() {
    let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(
        GeminiReader::new(),
        GeminiWriter::new("m", false),
    ));
    let mut out = Vec::new();
    for c in GEMINI_TOOL_STREAM.as_bytes().chunks(11) {
        out.extend_from_slice(&tap.chunk(Bytes::copy_from_slice(c)));
    }
    let (tail, summary) = tap.end(None);
    out.extend_from_slice(&tail);
    assert!(summary.completed);
    assert_eq!(
        (summary.usage.input_tokens, summary.usage.cache_read_tokens),
        (10, 30)
    );
    let chunks: Value = serde_json::from_slice(&out).unwrap();
    let last = chunks.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 40);
    assert_eq!(last["usageMetadata"]["cachedContentTokenCount"], 30);

    // The same stream as neutral events, then the client's next request.
    let mut reader = GeminiReader::new();
    let mut events = Vec::new();
    for ev in crate::stream::frames::SseFrames::new().push(GEMINI_TOOL_STREAM.as_bytes()) {
        crate::translate::tap::ReadUpstream::event(&mut reader, &ev, &mut events);
    }
    let answer = crate::translate::neutral::fold(events).unwrap();
    assert_eq!(answer.stop, StopReason::ToolUse);
    let calls: Vec<ToolCall> = answer
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    let next = Conversation {
        turns: vec![
            Turn {
                role: Role::User,
                parts: vec![Part::Text("read".into())],
            },
            Turn {
                role: Role::Assistant,
                parts: answer.parts.clone(),
            },
            Turn {
                role: Role::User,
                parts: calls
                    .iter()
                    .map(|c| {
                        Part::ToolResult(ToolResult {
                            call_id: c.id.clone(),
                            name: None,
                            content: vec![Part::Text("x".into())],
                            is_error: false,
                        })
                    })
                    .collect(),
            },
        ],
        ..Conversation::default()
    };
    let body = Value::Object(write_request(&next).unwrap());
    let model = &body["contents"][1]["parts"];
    assert_eq!(model[1]["thoughtSignature"], "c2ln");
    assert!(model[1]["functionCall"].get("id").is_none());
    assert!(model[2].get("thoughtSignature").is_none());
    assert_eq!(model[2]["functionCall"]["id"], calls[1].id.as_str());
    let responses = &body["contents"][2]["parts"];
    assert_eq!(responses[0]["functionResponse"]["name"], "Read");
    assert!(responses[0]["functionResponse"].get("id").is_none());
    assert_eq!(responses[1]["functionResponse"]["id"], calls[1].id.as_str());
}

/// Truncations and byte flips of real inputs: errors, never panics.
fn mutations(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let step = (input.len() / 40).max(1);
    for cut in (0..input.len()).step_by(step) {
        out.push(input[..cut].to_vec());
        for flip in [b'"', b'{', b']', b'0', b'\n', 0xff] {
            let mut m = input.to_vec();
            m[cut] = flip;
            out.push(m);
        }
    }
    out
}

#[test]
fn garbage_never_panics() {
    let bodies = [
        fixtures::gemini_cli_stream().body,
        fixtures::gemini_cli_routing().body,
        Value::Object(write_request(&conversation()).unwrap())
            .to_string()
            .into_bytes(),
    ];
    for body in &bodies {
        for m in mutations(body) {
            let _ = read_request(&m, "m", true);
        }
    }
    for wrong in [
        json!({"contents": "x"}),
        json!({"contents": [1, {"role": 2}, {"parts": "x"}, {"parts": [null, {"text": 1}]}]}),
        json!({"contents": [{"role": "model", "parts": [{"functionCall": {"name": 1, "args": 2}}]}]}),
        json!({"contents": [], "tools": [{"functionDeclarations": [{"name": "f", "parameters": 3}]}],
               "toolConfig": {"functionCallingConfig": {"mode": 1}},
               "generationConfig": {"thinkingConfig": {"thinkingBudget": "x"}, "responseMimeType": 5}}),
        json!({"contents": [], "systemInstruction": {"parts": [{"inlineData": {}}]}}),
    ] {
        let _ = read_request(wrong.to_string().as_bytes(), "m", false);
    }
    for stream in [
        GEMINI_TOOL_STREAM.as_bytes(),
        b"data: {\"error\": 5}\n\n".as_slice(),
    ] {
        for m in mutations(stream) {
            let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(
                GeminiReader::new(),
                GeminiWriter::new("m", true),
            ));
            for c in m.chunks(13) {
                let _ = tap.chunk(Bytes::copy_from_slice(c));
            }
            let _ = tap.end(None);
            let _ = read_answer(&m);
        }
    }
    // Writers take events in any order.
    let answer = Answer {
        parts: vec![
            Part::Text("a".into()),
            Part::ToolCall(ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: json!("{bad"),
            }),
        ],
        ..Answer::default()
    };
    let events = unfold(&answer);
    for sse in [true, false] {
        for skip in 0..events.len() {
            let mut w = GeminiWriter::new("m", sse);
            let mut out = Vec::new();
            for e in events.iter().rev().skip(skip) {
                w.event(e, &mut out);
            }
            w.broken(500, "x", &mut out);
            w.end(&mut out);
        }
    }
}
