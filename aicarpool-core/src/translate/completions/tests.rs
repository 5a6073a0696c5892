use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::stream::frames::SseFrames;
use crate::stream::tap::StreamTap;
use crate::translate::neutral::{
    fold, Answer, Conversation, Effort, Event, Image, JsonOutput, Part, Reasoning, Role,
    StopReason, ToolCall, ToolChoice, ToolResult, ToolSpec, Turn,
};
use crate::translate::responses::{self, ResponsesWriter};
use crate::translate::tap::{ReadUpstream, Translated};
use crate::usage::Usage;

fn call(id: &str, name: &str, args: Value) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args,
    })
}

fn result(id: &str, content: Vec<Part>) -> Part {
    Part::ToolResult(ToolResult {
        call_id: id.into(),
        name: None,
        content,
        is_error: false,
    })
}

fn png() -> Image {
    Image::Inline {
        media_type: "image/png".into(),
        data: "iVBOR".into(),
    }
}

fn tool_conversation() -> Conversation {
    Conversation {
        model: "claude-sonnet-4".into(),
        system: vec!["You are helpful.".into(), "Be brief.".into()],
        turns: vec![
            Turn {
                role: Role::User,
                parts: vec![Part::Text("Read a and shoot b".into()), Part::Image(png())],
            },
            Turn {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking {
                        text: "two tools".into(),
                        signature: Some("sig".into()),
                    },
                    Part::Text("On it.".into()),
                    call("toolu_a", "Read", json!({"path": "a"})),
                    call("toolu_b", "Screenshot", json!({})),
                ],
            },
            Turn {
                role: Role::User,
                parts: vec![
                    Part::Text("and hurry".into()),
                    result("toolu_a", vec![Part::Text("contents of a".into())]),
                    result("toolu_b", vec![Part::Image(png())]),
                ],
            },
        ],
        tools: vec![ToolSpec {
            name: "Read".into(),
            description: Some("Reads a file".into()),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        }],
        tool_choice: Some(ToolChoice::Tool("Read".into())),
        parallel_tool_calls: Some(false),
        max_tokens: Some(1000),
        temperature: Some(0.5),
        top_p: Some(0.9),
        top_k: Some(40),
        stop: vec!["END".into()],
        stream: true,
        reasoning: Some(Reasoning {
            budget_tokens: Some(20_000),
            effort: None,
            show: true,
        }),
        json: Some(JsonOutput {
            schema: Some(json!({"type": "object"})),
        }),
        user: Some("u1".into()),
    }
}

#[test]
fn requests_put_tool_results_right_after_the_calls() {
    let body = write_request(&tool_conversation()).unwrap();
    assert!(body.get("model").is_none());
    assert!(body.get("top_k").is_none());
    let m = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "user",
            "user"
        ]
    );
    assert_eq!(m[0]["content"], "You are helpful.\n\nBe brief.");
    assert_eq!(
        m[1]["content"][0],
        json!({"type": "text", "text": "Read a and shoot b"})
    );
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBOR"
    );
    assert_eq!(m[2]["content"], "On it.");
    assert!(
        m[2].get("reasoning_content").is_none(),
        "thinking is dropped"
    );
    assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_a");
    assert_eq!(m[2]["tool_calls"][0]["type"], "function");
    assert_eq!(
        m[2]["tool_calls"][0]["function"],
        json!({"name": "Read", "arguments": "{\"path\":\"a\"}"})
    );
    assert_eq!(m[2]["tool_calls"][1]["function"]["arguments"], "{}");
    assert_eq!(
        (&m[3]["tool_call_id"], &m[3]["content"]),
        (&json!("toolu_a"), &json!("contents of a"))
    );
    assert_eq!(
        (&m[4]["tool_call_id"], &m[4]["content"]),
        (&json!("toolu_b"), &json!("[image]"))
    );
    assert_eq!(m[5]["content"][0]["type"], "image_url");
    assert_eq!(m[6]["content"], "and hurry");
    assert_eq!(body["tools"][0]["function"]["name"], "Read");
    assert_eq!(body["tools"][0]["function"]["description"], "Reads a file");
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "Read"}})
    );
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["max_tokens"], 1000);
    assert_eq!(body["stop"], json!(["END"]));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["reasoning_effort"], "high");
    assert_eq!(body["response_format"]["json_schema"]["name"], "answer");
    assert_eq!(body["response_format"]["json_schema"]["strict"], false);
    assert_eq!(body["user"], "u1");
}

#[test]
fn a_request_without_reasoning_or_tools_stays_plain() {
    let c = Conversation {
        turns: vec![Turn {
            role: Role::User,
            parts: vec![Part::Text("hi".into())],
        }],
        parallel_tool_calls: Some(true),
        json: Some(JsonOutput { schema: None }),
        ..Conversation::default()
    };
    let body = write_request(&c).unwrap();
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
    for key in ["reasoning_effort", "parallel_tool_calls", "tools", "stream"] {
        assert!(body.get(key).is_none(), "{key}");
    }
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert!(write_request(&Conversation::default()).is_err());
}

#[test]
fn the_chat_request_reads_back_with_every_message_tool_and_id() {
    let c = tool_conversation();
    let back = read_request(&serde_json::to_vec(&write_request(&c).unwrap()).unwrap()).unwrap();
    assert_eq!(
        back.system,
        vec!["You are helpful.\n\nBe brief.".to_owned()]
    );
    assert_eq!(back.tools, c.tools);
    assert_eq!(back.tool_choice, c.tool_choice);
    assert_eq!(back.tool_name("toolu_a"), Some("Read"));
    assert_eq!(back.tool_name("toolu_b"), Some("Screenshot"));
    let ids: Vec<&str> = back.turns[2]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some(r.call_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["toolu_a", "toolu_b"]);
    assert_eq!(back.reasoning.and_then(|r| r.effort), Some(Effort::High));
    assert_eq!((back.max_tokens, back.stream), (Some(1000), true));

    // Codex's real request, through the Responses reader, survives too.
    let line = include_str!("../../../../testkit/fixtures/codex_custom_provider.jsonl");
    let line: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let codex = responses::read_request(&serde_json::to_vec(&line["body_json"]).unwrap())
        .unwrap()
        .conversation;
    let body = write_request(&codex).unwrap();
    let back = read_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(back.tools, codex.tools);
    assert_eq!(back.turns.len(), codex.turns.len());
    assert_eq!(back.system, vec![codex.system.join("\n\n")]);
}

const PARALLEL: &[&str] = &[
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Reading both."},"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"Read","arguments":""}}]}}]}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}}]}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}}]}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"Read","arguments":"{\"path\""}}]}}]}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":\"b\"}"}}]}}]}"#,
    r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":40}}}"#,
    "[DONE]",
];

fn sse(chunks: &[&str]) -> String {
    chunks.iter().map(|c| format!("data: {c}\n\n")).collect()
}

fn read_stream(stream: &str, piece: usize) -> (Vec<Event>, crate::stream::tap::StreamSummary) {
    let mut reader = CompletionsReader::new();
    let mut frames = SseFrames::new();
    let mut out = Vec::new();
    for c in stream.as_bytes().chunks(piece) {
        for ev in frames.push(c) {
            reader.event(&ev, &mut out);
        }
    }
    if let Some(ev) = frames.finish() {
        reader.event(&ev, &mut out);
    }
    reader.end(&mut out);
    (out, reader.summary())
}

fn read_tool(answer: &Answer, i: usize) -> (&str, &str, Value) {
    match &answer.parts[i] {
        Part::ToolCall(c) => (c.id.as_str(), c.name.as_str(), c.arguments.clone()),
        other => panic!("not a tool call: {other:?}"),
    }
}

#[test]
fn two_parallel_tool_calls_stream_in_order() {
    for piece in [1, 7, 64, 10_000] {
        let (events, summary) = read_stream(&sse(PARALLEL), piece);
        let finishes = events
            .iter()
            .filter(|e| matches!(e, Event::Finish { .. }))
            .count();
        assert_eq!(finishes, 1);
        let answer = fold(events).unwrap();
        assert_eq!(answer.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(answer.parts[0], Part::Text("Reading both.".into()));
        assert_eq!(
            read_tool(&answer, 1),
            ("call_a", "Read", json!({"path": "a"}))
        );
        assert_eq!(
            read_tool(&answer, 2),
            ("call_b", "Read", json!({"path": "b"}))
        );
        assert_eq!(answer.stop, StopReason::ToolUse);
        assert_eq!(
            (
                answer.usage.input_tokens,
                answer.usage.cache_read_tokens,
                answer.usage.output_tokens
            ),
            (10, 40, 9)
        );
        assert!(summary.completed);
        assert_eq!(summary.usage, answer.usage);
    }
    // The finish_reason chunk alone does not finish: the usage follows.
    let (events, _) = read_stream(&sse(&PARALLEL[..8]), 10_000);
    assert!(matches!(events.last(), Some(Event::Finish { .. })));
    let mut reader = CompletionsReader::new();
    let mut out = Vec::new();
    for ev in SseFrames::new().push(sse(&PARALLEL[..8]).as_bytes()) {
        reader.event(&ev, &mut out);
    }
    assert!(!out.iter().any(|e| matches!(e, Event::Finish { .. })));
}

#[test]
fn interleaved_fragments_are_not_mixed_up() {
    let chunks = [
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c0","function":{"name":"A","arguments":"{\"x\""}},{"index":1,"id":"c1","function":{"name":"B","arguments":"{\"y\""}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":":2}"}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ];
    let answer = fold(read_stream(&sse(&chunks), 5).0).unwrap();
    assert_eq!(read_tool(&answer, 0), ("c0", "A", json!({"x": 1})));
    assert_eq!(read_tool(&answer, 1), ("c1", "B", json!({"y": 2})));
    assert_eq!(
        answer.stop,
        StopReason::ToolUse,
        "calls make it a tool stop"
    );
}

#[test]
fn reasoning_of_deepseek_and_openrouter_and_their_cache_counts() {
    let deepseek = [
        r#"{"id":"ds","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"think"}}]}"#,
        r#"{"id":"ds","choices":[{"index":0,"delta":{"content":"answer"}}]}"#,
        r#"{"id":"ds","choices":[{"index":0,"delta":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":30,"completion_tokens":5,"prompt_cache_hit_tokens":20,"prompt_cache_miss_tokens":10}}"#,
        "[DONE]",
    ];
    let answer = fold(read_stream(&sse(&deepseek), 9).0).unwrap();
    assert_eq!(
        answer.parts,
        vec![
            Part::Thinking {
                text: "think".into(),
                signature: None
            },
            Part::Text("answer".into())
        ]
    );
    assert_eq!(answer.stop, StopReason::MaxTokens);
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.cache_read_tokens),
        (10, 20)
    );

    let openrouter = [
        r#"{"choices":[{"delta":{"reasoning":"hm"}}]}"#,
        r#"{"choices":[{"delta":{"content":"no"},"finish_reason":"content_filter"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
    ];
    let (events, _) = read_stream(
        &format!(": OPENROUTER PROCESSING\n\n{}", sse(&openrouter)),
        4,
    );
    let answer = fold(events).unwrap();
    assert!(matches!(&answer.parts[0], Part::Thinking { text, .. } if text == "hm"));
    assert_eq!(answer.stop, StopReason::Refusal);
}

#[test]
fn errors_in_the_stream_and_streams_cut_short() {
    let chunks = [
        r#"{"choices":[{"delta":{"content":"par"}}]}"#,
        r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        r#"{"choices":[{"delta":{"content":"ignored"}}]}"#,
    ];
    let (events, summary) = read_stream(&sse(&chunks), 3);
    assert_eq!(
        events.last(),
        Some(&Event::Error {
            status: 429,
            message: "Rate limit reached".into()
        })
    );
    assert!(!events.contains(&Event::Delta("ignored".into())));
    assert_eq!(summary.error.map(|e| e.status), Some(429));

    let (events, summary) = read_stream(&sse(&chunks[..1]), 3);
    assert!(matches!(
        events.last(),
        Some(Event::Error { status: 502, .. })
    ));
    assert!(!summary.completed);
    // `[DONE]` without usage still finishes (the summary says it is not exact).
    let (events, summary) = read_stream(&sse(&[chunks[0], "[DONE]"]), 3);
    assert!(matches!(
        events.last(),
        Some(Event::Finish {
            stop: StopReason::EndTurn,
            ..
        })
    ));
    assert!(!summary.completed);
}

#[test]
fn whole_answers() {
    let body = json!({"id": "chatcmpl-9", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Reading.", "reasoning_content": "plan",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}},
                           {"id": "call_2", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"b\"}"}}]},
        "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}}});
    let answer = read_answer(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(answer.id.as_deref(), Some("chatcmpl-9"));
    assert!(matches!(&answer.parts[0], Part::Thinking { text, signature: None } if text == "plan"));
    assert_eq!(answer.parts[1], Part::Text("Reading.".into()));
    assert_eq!(
        read_tool(&answer, 3),
        ("call_2", "Read", json!({"path": "b"}))
    );
    assert_eq!(answer.stop, StopReason::ToolUse);
    assert_eq!(
        answer.usage,
        Usage {
            input_tokens: 10,
            output_tokens: 7,
            cache_read_tokens: 2,
            ..Usage::default()
        }
    );
    assert!(read_answer(br#"{"error":{"message":"bad"}}"#).is_none());
    assert!(read_answer(b"not json").is_none());
}

#[test]
fn a_chat_account_answers_a_codex_client_through_the_tap() {
    let line = include_str!("../../../../testkit/fixtures/codex_custom_provider.jsonl");
    let line: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let req = responses::read_request(&serde_json::to_vec(&line["body_json"]).unwrap()).unwrap();
    let writer = ResponsesWriter::new("gpt-5-codex", &req);
    let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(CompletionsReader::new(), writer));
    let mut out = Vec::new();
    for c in sse(PARALLEL).as_bytes().chunks(13) {
        out.extend_from_slice(&tap.chunk(Bytes::copy_from_slice(c)));
    }
    let (tail, summary) = tap.end(None);
    out.extend_from_slice(&tail);
    let text = String::from_utf8(out).unwrap();
    let completed = text
        .split("\n\n")
        .find(|e| e.starts_with("event: response.completed"))
        .and_then(|e| e.split_once("data: "))
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
        .unwrap();
    let output = completed["response"]["output"].as_array().unwrap();
    let calls: Vec<&str> = output
        .iter()
        .filter(|i| i["type"] == "function_call")
        .map(|i| i["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["call_a", "call_b"]);
    assert_eq!(completed["response"]["usage"]["input_tokens"], 50);
    assert_eq!(
        completed["response"]["usage"]["input_tokens_details"]["cached_tokens"],
        40
    );
    assert!(summary.completed);
}

#[test]
fn garbage_never_panics() {
    let stream = sse(PARALLEL);
    let bytes = stream.as_bytes();
    for cut in (0..bytes.len()).step_by(11) {
        let mut mutated = bytes.to_vec();
        mutated[cut] = mutated[cut].wrapping_add(3);
        for input in [&bytes[..cut], &mutated[..]] {
            let _ = read_stream(&String::from_utf8_lossy(input), 17);
            let _ = read_answer(input);
            let _ = read_request(input);
        }
    }
    let odd = [
        r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{"}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":"x","id":5}]}}]}"#,
        r#"{"choices":[{"delta":"text","finish_reason":7}],"usage":[1]}"#,
        r#"{"error":"plain string"}"#,
        r#"[1,2]"#,
    ];
    let _ = read_stream(&sse(&odd), 2);
    for body in [
        json!({"messages": [{"role": 1}]}),
        json!({"messages": [{"role": "tool"}, {"role": "assistant", "tool_calls": [1]}]}),
        json!([]),
    ] {
        let _ = read_request(&serde_json::to_vec(&body).unwrap());
    }
}
