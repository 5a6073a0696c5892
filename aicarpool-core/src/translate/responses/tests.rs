use serde_json::{json, Value};

use super::*;
use crate::translate::neutral::{
    unfold, Answer, Block, Event, Image, Part, Role, StopReason, ToolCall, ToolChoice,
};
use crate::translate::tap::WriteClient;
use crate::translate::TranslateError;
use crate::usage::Usage;

mod request;

fn fixture_body(jsonl: &str) -> Vec<u8> {
    let line: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    serde_json::to_vec(&line["body_json"]).unwrap()
}

fn codex_body() -> Vec<u8> {
    fixture_body(include_str!(
        "../../../../testkit/fixtures/codex_custom_provider.jsonl"
    ))
}

/// The events of a Responses stream: (event name, data).
fn events(sse: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(sse).unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                }
            }
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["type"], name.as_str(), "the event names its type");
            (name, data)
        })
        .collect()
}

fn stream(request: &ResponsesRequest, evs: &[Event]) -> Vec<(String, Value)> {
    let mut w = ResponsesWriter::new("gpt-5-codex", request);
    let mut out = Vec::new();
    for e in evs {
        w.event(e, &mut out);
    }
    w.end(&mut out);
    let all = events(&out);
    for (i, (_, d)) in all.iter().enumerate() {
        assert_eq!(d["sequence_number"], i as u64);
    }
    all
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

fn done_items(evs: &[(String, Value)]) -> Vec<Value> {
    evs.iter()
        .filter(|(n, _)| n == "response.output_item.done")
        .map(|(_, d)| d["item"].clone())
        .collect()
}

fn tool_turn_events(calls: &[(&str, &str, &[&str])], stop: StopReason) -> Vec<Event> {
    let mut evs = vec![
        Event::Start {
            id: Some("msg_up".into()),
            usage: Usage::default(),
        },
        Event::BlockStart(Block::Thinking),
        Event::Delta("Let me look.".into()),
        Event::Signature("sig-claude".into()),
        Event::BlockEnd,
        Event::BlockStart(Block::Text),
        Event::Delta("Checking".into()),
        Event::Delta(" files.".into()),
        Event::BlockEnd,
    ];
    for (id, name, fragments) in calls {
        evs.push(Event::BlockStart(Block::ToolCall {
            id: (*id).into(),
            name: (*name).into(),
        }));
        evs.extend(fragments.iter().map(|f| Event::Delta((*f).into())));
        evs.push(Event::BlockEnd);
    }
    evs.push(Event::Finish {
        stop,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 20,
            cache_write_5m_tokens: 5,
            cache_read_tokens: 100,
            ..Usage::default()
        },
    });
    evs
}

#[test]
fn a_codex_tool_turn_streams_and_comes_back_with_the_same_call_id() {
    let req = read_request(&codex_body()).unwrap();
    let evs = tool_turn_events(
        &[("toolu_01", "exec_command", &["{\"cmd\":", "\"ls -la\"}"])],
        StopReason::ToolUse,
    );
    let out = stream(&req, &evs);
    assert_eq!(
        names(&out),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &out[0].1["response"];
    assert!(created["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], "gpt-5-codex");
    let items = done_items(&out);
    assert_eq!(items[0]["type"], "reasoning");
    assert!(items[0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(items[0]["encrypted_content"], "sig-claude");
    assert_eq!(items[0]["summary"][0]["text"], "Let me look.");
    assert_eq!(items[1]["content"][0]["text"], "Checking files.");
    assert!(items[1]["id"].as_str().unwrap().starts_with("msg_"));
    let call = &items[2];
    assert_eq!(call["type"], "function_call");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(call["call_id"], "toolu_01");
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["arguments"], "{\"cmd\":\"ls -la\"}");
    assert!(call.get("namespace").is_none());
    let delta = &out[16].1;
    assert_eq!(delta["item_id"], call["id"]);
    assert_eq!(delta["output_index"], 2);
    let done = &out.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["id"], created["id"]);
    assert_eq!(done["output"].as_array().unwrap(), &items);
    assert_eq!(done["usage"]["input_tokens"], 115);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 100);
    assert_eq!(done["usage"]["output_tokens"], 20);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        0
    );
    assert_eq!(done["usage"]["total_tokens"], 135);

    // Codex sends the output items back with the tool's output.
    let mut body: Value = serde_json::from_slice(&codex_body()).unwrap();
    let input = body["input"].as_array_mut().unwrap();
    input.extend(items.iter().cloned());
    input.push(
        json!({"type": "function_call_output", "call_id": "toolu_01", "output": "a.txt\nb.txt"}),
    );
    let next = read_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    let turns = &next.conversation.turns;
    let assistant = &turns[turns.len() - 2];
    assert_eq!(assistant.role, Role::Assistant);
    assert_eq!(
        assistant.parts[0],
        Part::Thinking {
            text: "Let me look.".into(),
            signature: Some("sig-claude".into())
        }
    );
    assert_eq!(assistant.parts[1], Part::Text("Checking files.".into()));
    assert_eq!(
        assistant.parts[2],
        Part::ToolCall(ToolCall {
            id: "toolu_01".into(),
            name: "exec_command".into(),
            arguments: json!({"cmd": "ls -la"}),
        })
    );
    let Part::ToolResult(result) = &turns[turns.len() - 1].parts[0] else {
        panic!("the tool output is a tool result");
    };
    assert_eq!(result.call_id, "toolu_01");
    assert_eq!(result.text(), "a.txt\nb.txt");
    assert_eq!(
        next.conversation.tool_name("toolu_01"),
        Some("exec_command")
    );
}

#[test]
fn namespaced_calls_go_out_split_and_come_back_flat() {
    let req = read_request(&codex_body()).unwrap();
    let evs = tool_turn_events(
        &[(
            "toolu_ns",
            "multi_agent_v1__spawn_agent",
            &["{\"message\":\"hi\"}"],
        )],
        StopReason::ToolUse,
    );
    let items = done_items(&stream(&req, &evs));
    let call = &items[2];
    assert_eq!(call["name"], "spawn_agent");
    assert_eq!(call["namespace"], "multi_agent_v1");
    let body = json!({"model": "m", "input": [call,
        {"type": "function_call_output", "call_id": "toolu_ns", "output": "ok"}]});
    let back = read_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(
        back.conversation.tool_name("toolu_ns"),
        Some("multi_agent_v1__spawn_agent")
    );
}

const APPLY_PATCH: &str = "*** Begin Patch\n*** Add File: a.txt\n+hello \"world\"\n*** End Patch";

fn read_json(body: Value) -> Result<ResponsesRequest, TranslateError> {
    read_request(&serde_json::to_vec(&body).unwrap())
}

fn custom_tool_request() -> ResponsesRequest {
    let body = json!({
        "model": "gpt-5-codex", "stream": true,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "add a.txt"}]}],
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Use apply_patch to edit files.",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}],
    });
    read_request(&serde_json::to_vec(&body).unwrap()).unwrap()
}

#[test]
fn a_custom_tool_round_trips_as_raw_input() {
    let req = custom_tool_request();
    let spec = &req.conversation.tools[0];
    assert_eq!(spec.name, "apply_patch");
    assert_eq!(spec.parameters["required"], json!(["input"]));
    assert_eq!(spec.parameters["properties"]["input"]["type"], "string");
    let description = spec.description.as_deref().unwrap();
    assert!(description.starts_with("Use apply_patch to edit files."));
    assert!(description.contains("start: begin_patch hunk+ end_patch"));
    assert!(req.custom_tools.contains("apply_patch"));

    let arguments = json!({"input": APPLY_PATCH}).to_string();
    let (a, b) = arguments.split_at(20);
    let out = stream(
        &req,
        &tool_turn_events(&[("toolu_p", "apply_patch", &[a, b])], StopReason::ToolUse),
    );
    let n = names(&out);
    assert!(!n.contains(&"response.function_call_arguments.delta"));
    assert!(n.contains(&"response.custom_tool_call_input.delta"));
    let input_done = out
        .iter()
        .find(|(n, _)| n == "response.custom_tool_call_input.done")
        .unwrap();
    assert_eq!(input_done.1["input"], APPLY_PATCH);
    let call = done_items(&out).pop().unwrap();
    assert_eq!(call["type"], "custom_tool_call");
    assert!(call["id"].as_str().unwrap().starts_with("ctc_"));
    assert_eq!(call["call_id"], "toolu_p");
    assert_eq!(call["name"], "apply_patch");
    assert_eq!(call["input"], APPLY_PATCH);

    let body = json!({"model": "m", "input": [call,
        {"type": "custom_tool_call_output", "call_id": "toolu_p", "output": "Done!"}]});
    let back = read_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    let turns = &back.conversation.turns;
    assert_eq!(
        turns[0].parts[0],
        Part::ToolCall(ToolCall {
            id: "toolu_p".into(),
            name: "apply_patch".into(),
            arguments: json!({"input": APPLY_PATCH}),
        })
    );
    let Part::ToolResult(r) = &turns[1].parts[0] else {
        panic!("a tool result");
    };
    assert_eq!(
        (r.call_id.as_str(), r.text().as_str()),
        ("toolu_p", "Done!")
    );
}

#[test]
fn whole_answers_with_parallel_calls_and_stop_reasons() {
    let req = read_request(&codex_body()).unwrap();
    let call = |id: &str, cmd: &str| {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: "exec_command".into(),
            arguments: json!({"cmd": cmd}),
        })
    };
    let answer = Answer {
        id: Some("msg_1".into()),
        parts: vec![call("t1", "ls"), call("t2", "pwd")],
        stop: StopReason::ToolUse,
        usage: Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        },
    };
    let v: Value = serde_json::from_slice(&write_answer(&answer, "gpt-5-codex", &req)).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-5-codex");
    let output = v["output"].as_array().unwrap();
    assert_eq!(output.len(), 2);
    assert_eq!(output[0]["call_id"], "t1");
    assert_eq!(output[1]["call_id"], "t2");
    assert_eq!(output[1]["arguments"], "{\"cmd\":\"pwd\"}");
    assert_ne!(output[0]["id"], output[1]["id"]);
    assert_eq!(v["usage"]["total_tokens"], 7);

    for (stop, reason) in [
        (StopReason::MaxTokens, "max_output_tokens"),
        (StopReason::Refusal, "content_filter"),
    ] {
        let cut = Answer {
            parts: vec![Part::Text("partial".into())],
            stop,
            ..Answer::default()
        };
        let v: Value = serde_json::from_slice(&write_answer(&cut, "m", &req)).unwrap();
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], reason);
        assert_eq!(v["output"][0]["content"][0]["text"], "partial");
        let evs = stream(&req, &unfold(&cut));
        let (name, last) = evs.last().unwrap();
        assert_eq!(name, "response.completed");
        assert_eq!(last["response"]["status"], "incomplete");
    }
}

#[test]
fn errors_end_the_stream_with_response_failed() {
    let req = ResponsesRequest::default();
    let evs = [
        Event::Start {
            id: None,
            usage: Usage::default(),
        },
        Event::BlockStart(Block::Text),
        Event::Delta("par".into()),
        Event::Error {
            status: 429,
            message: "slow down".into(),
        },
        Event::Delta("ignored".into()),
    ];
    let out = stream(&req, &evs);
    let (name, last) = out.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(last["response"]["error"]["message"], "slow down");
    assert_eq!(out.iter().filter(|(n, _)| n.contains("delta")).count(), 1);

    let mut w = ResponsesWriter::new("m", &req);
    let mut bytes = Vec::new();
    w.event(&evs[0], &mut bytes);
    w.broken(502, "connection reset", &mut bytes);
    w.end(&mut bytes);
    let out = events(&bytes);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].1["response"]["error"]["code"], "server_error");

    // A stream that just stops is not reported complete.
    let out = stream(&req, &evs[..3]);
    assert_eq!(out.last().unwrap().0, "response.failed");
}

#[test]
fn hidden_reasoning_keeps_only_its_signature() {
    let mut req = read_request(&codex_body()).unwrap();
    if let Some(r) = req.conversation.reasoning.as_mut() {
        r.show = false;
    }
    let evs = tool_turn_events(&[], StopReason::EndTurn);
    let out = stream(&req, &evs);
    assert!(!names(&out).iter().any(|n| n.contains("reasoning_summary")));
    let items = done_items(&out);
    assert_eq!(items[0]["type"], "reasoning");
    assert_eq!(items[0]["summary"], json!([]));
    assert_eq!(items[0]["encrypted_content"], "sig-claude");
    // Without a signature, hidden reasoning leaves no item.
    let unsigned: Vec<Event> = evs
        .into_iter()
        .filter(|e| !matches!(e, Event::Signature(_)))
        .collect();
    let items = done_items(&stream(&req, &unsigned));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["type"], "message");
}

#[test]
fn garbage_never_panics() {
    let body = codex_body();
    let small = br#"{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{"},{"type":"reasoning","summary":[{"text":1}]},{"role":"user","content":[{"type":"input_image"}]}],"tools":[{"type":"namespace"},{"type":"custom","name":"x","format":1}],"tool_choice":{"type":"allowed_tools"},"text":{"format":"x"}}"#;
    for input in [&body[..], &small[..]] {
        let step = (input.len() / 300).max(1);
        for cut in (0..input.len()).step_by(step) {
            let _ = read_request(&input[..cut]);
            let mut mutated = input.to_vec();
            mutated[cut] = mutated[cut].wrapping_add(7);
            let _ = read_request(&mutated);
        }
    }
    for v in [
        json!(null),
        json!([]),
        json!({"model": 1, "input": 2}),
        json!({"model": "m", "input": [1, "x", {"type": 3}]}),
        json!({"model": "m", "tools": {"a": 1}, "reasoning": "high"}),
    ] {
        let _ = read_json(v);
    }
    // Events out of order still make a well-formed stream.
    let req = custom_tool_request();
    let mut w = ResponsesWriter::new("m", &req);
    let mut out = Vec::new();
    for e in [
        Event::Delta("orphan".into()),
        Event::Signature("s".into()),
        Event::BlockEnd,
        Event::BlockStart(Block::ToolCall {
            id: "c".into(),
            name: "apply_patch".into(),
        }),
        Event::Delta("{not json".into()),
        Event::BlockStart(Block::Thinking),
        Event::Signature("s".into()),
        Event::Finish {
            stop: StopReason::EndTurn,
            usage: Usage::default(),
        },
        Event::Finish {
            stop: StopReason::EndTurn,
            usage: Usage::default(),
        },
    ] {
        w.event(&e, &mut out);
    }
    w.end(&mut out);
    let evs = events(&out);
    assert_eq!(
        evs.iter()
            .filter(|(n, _)| n == "response.completed")
            .count(),
        1
    );
    let call = &done_items(&evs)[0];
    assert_eq!(call["input"], "{not json");
}
