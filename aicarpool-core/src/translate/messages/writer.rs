//! Answers written to a Messages client: the SSE stream
//! ([`MessagesWriter`]) and the whole JSON answer ([`write_answer`]).
//!
//! **Written**: `message_start` (id `msg_…`, model, the usage known so
//! far), one `content_block_start` / `content_block_delta` /
//! `content_block_stop` series per block with its index (`text_delta`,
//! `thinking_delta`, `signature_delta`, `input_json_delta`),
//! `message_delta` (stop reason and the final usage, cache reads and
//! writes included) and `message_stop`; errors as `event: error`.
//!
//! **Thinking without a signature** (from accounts that do not sign, e.g.
//! Gemini without a thought signature or OpenAI Chat): its
//! `content_block_start` carries `"signature": ""`, exactly as Anthropic
//! opens a thinking block, and no `signature_delta` follows. The SDKs
//! keep the empty signature; when Claude Code sends the block back,
//! [`super::read_request`] reads the empty signature as none.
//!
//! **Dropped**: `stop_sequence` is always `null` (the neutral stop does
//! not say which sequence matched); a thinking block holding
//! `redacted_thinking` streams as a thinking block with that signature
//! (the whole answer writes it as `redacted_thinking`).

use bytes::Bytes;
use serde_json::{json, Value};

use super::{error_json, message_id, stop_reason_name, usage_json, REDACTED_PREFIX};
use crate::translate::neutral::{Answer, Block, Event, Part, StopReason};
use crate::translate::tap::WriteClient;
use crate::usage::Usage;

/// What kind of block is open, for the deltas that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    ToolCall,
}

/// Writes neutral events as a Messages SSE stream.
#[derive(Debug)]
pub struct MessagesWriter {
    model: String,
    started: bool,
    /// `message_stop` or `error` went out: nothing more is written.
    done: bool,
    open: Option<Open>,
    /// The index the next block gets.
    next_index: u64,
    /// The last usage seen, for a stream that ends without `Finish`.
    usage: Usage,
}

impl MessagesWriter {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            done: false,
            open: None,
            next_index: 0,
            usage: Usage::default(),
        }
    }

    fn start(&mut self, id: Option<&str>, usage: Usage, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.usage = usage;
        let message = json!({
            "id": message_id(id), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": usage_json(&usage),
        });
        sse(
            "message_start",
            &json!({"type": "message_start", "message": message}),
            out,
        );
    }

    fn open_block(&mut self, block: &Block, out: &mut Vec<u8>) {
        self.start(None, Usage::default(), out);
        self.close_block(out);
        let (open, content) = match block {
            Block::Text => (Open::Text, json!({"type": "text", "text": ""})),
            Block::Thinking => (
                Open::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ),
            Block::ToolCall { id, name } => (
                Open::ToolCall,
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            ),
        };
        self.open = Some(open);
        sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next_index, "content_block": content}),
            out,
        );
    }

    fn delta(&mut self, text: &str, out: &mut Vec<u8>) {
        let Some(open) = self.open else {
            // A delta with no block open is text (a reader that skipped
            // BlockStart); open one so nothing is lost.
            self.open_block(&Block::Text, out);
            return self.delta(text, out);
        };
        let delta = match open {
            Open::Text => json!({"type": "text_delta", "text": text}),
            Open::Thinking => json!({"type": "thinking_delta", "thinking": text}),
            Open::ToolCall => json!({"type": "input_json_delta", "partial_json": text}),
        };
        self.block_delta(delta, out);
    }

    fn block_delta(&self, delta: Value, out: &mut Vec<u8>) {
        sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.next_index, "delta": delta}),
            out,
        );
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            sse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.next_index}),
                out,
            );
            self.next_index += 1;
        }
    }

    fn finish(&mut self, stop: StopReason, usage: Usage, out: &mut Vec<u8>) {
        self.start(None, Usage::default(), out);
        self.close_block(out);
        self.done = true;
        sse(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason_name(stop), "stop_sequence": null},
                "usage": usage_json(&usage)}),
            out,
        );
        sse("message_stop", &json!({"type": "message_stop"}), out);
    }

    fn error(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        self.done = true;
        sse("error", &error_json(status, message), out);
    }
}

impl WriteClient for MessagesWriter {
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            Event::Start { id, usage } => self.start(id.as_deref(), *usage, out),
            Event::BlockStart(block) => self.open_block(block, out),
            Event::Delta(text) => self.delta(text, out),
            Event::Signature(signature) => {
                if self.open == Some(Open::Thinking) {
                    self.block_delta(
                        json!({"type": "signature_delta", "signature": signature}),
                        out,
                    );
                }
            }
            Event::BlockEnd => self.close_block(out),
            Event::Finish { stop, usage } => self.finish(*stop, *usage, out),
            Event::Error { status, message } => self.error(*status, message, out),
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            let usage = self.usage;
            self.finish(StopReason::EndTurn, usage, out);
        }
    }

    fn broken(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        // A client that already has `message_stop` has the whole answer.
        if !self.done {
            self.error(status, message, out);
        }
    }
}

fn sse(name: &str, data: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}

/// The whole Messages answer for `answer`.
pub fn write_answer(answer: &Answer, model: &str) -> Bytes {
    let content: Vec<Value> = answer
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text(text) => Some(json!({"type": "text", "text": text})),
            Part::Thinking { text, signature } => {
                let signature = signature.as_deref().unwrap_or("");
                Some(match signature.strip_prefix(REDACTED_PREFIX) {
                    Some(data) if text.is_empty() => {
                        json!({"type": "redacted_thinking", "data": data})
                    }
                    _ => json!({"type": "thinking", "thinking": text, "signature": signature}),
                })
            }
            Part::ToolCall(call) => Some(json!({
                "type": "tool_use", "id": call.id, "name": call.name,
                "input": Value::Object(call.arguments_object()),
            })),
            Part::Image(_) | Part::ToolResult(_) => None,
        })
        .collect();
    let body = json!({
        "id": message_id(answer.id.as_deref()), "type": "message", "role": "assistant",
        "model": model, "content": content, "stop_reason": stop_reason_name(answer.stop),
        "stop_sequence": null, "usage": usage_json(&answer.usage),
    });
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::neutral::{unfold, ToolCall};

    /// The stream's events as (name, data).
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(bytes).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut lines = e.lines();
                let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
                let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
                (name.to_owned(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    fn write(events: &[Event]) -> Vec<u8> {
        let mut w = MessagesWriter::new("claude-x");
        let mut out = Vec::new();
        for e in events {
            w.event(e, &mut out);
        }
        w.end(&mut out);
        out
    }

    fn answer() -> Answer {
        Answer {
            id: Some("resp_1".into()),
            parts: vec![
                Part::Thinking {
                    text: "think".into(),
                    signature: None,
                },
                Part::Text("Reading.".into()),
                Part::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "Read".into(),
                    arguments: json!({"path": "a"}),
                }),
                Part::ToolCall(ToolCall {
                    id: "call_2".into(),
                    name: "Read".into(),
                    arguments: json!({"path": "b"}),
                }),
            ],
            stop: StopReason::ToolUse,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 20,
                cache_read_tokens: 30,
                cache_write_5m_tokens: 4,
                cache_write_1h_tokens: 1,
            },
        }
    }

    #[test]
    fn a_tool_use_turn_streams_with_indexes_and_usage() {
        let ev = events(&write(&unfold(&answer())));
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "message_start");
        assert_eq!(ev[0].1["message"]["id"], "msg_resp_1");
        assert_eq!(ev[0].1["message"]["model"], "claude-x");
        let starts: Vec<&Value> = ev
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(starts.len(), 4);
        for (i, s) in starts.iter().enumerate() {
            assert_eq!(s["index"], i as u64);
        }
        assert_eq!(starts[0]["content_block"]["signature"], "");
        assert_eq!(starts[2]["content_block"]["id"], "call_1");
        assert!(!names.contains(&"error"));
        assert!(!ev
            .iter()
            .any(|(_, d)| d["delta"]["type"] == "signature_delta"));
        let args: Vec<&str> = ev
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta" && d["index"] == 3)
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(args.concat(), "{\"path\":\"b\"}");
        let (name, delta) = &ev[ev.len() - 2];
        assert_eq!(name, "message_delta");
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["cache_read_input_tokens"], 30);
        assert_eq!(delta["usage"]["cache_creation_input_tokens"], 5);
        assert_eq!(delta["usage"]["output_tokens"], 20);
        assert_eq!(names.last(), Some(&"message_stop"));
        assert_eq!(names.iter().filter(|n| **n == "message_stop").count(), 1);
    }

    #[test]
    fn signatures_go_out_as_signature_deltas() {
        let ev = events(&write(&[
            Event::BlockStart(Block::Thinking),
            Event::Delta("x".into()),
            Event::Signature("sig".into()),
            Event::BlockEnd,
        ]));
        assert!(ev
            .iter()
            .any(|(_, d)| d["delta"] == json!({"type": "signature_delta", "signature": "sig"})));
    }

    #[test]
    fn an_unfinished_stream_is_closed_and_an_error_ends_it() {
        let ev = events(&write(&[Event::Delta("hi".into())]));
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let ev = events(&write(&[
            Event::Delta("hi".into()),
            Event::Error {
                status: 529,
                message: "Overloaded".into(),
            },
            Event::Delta("late".into()),
        ]));
        let (name, data) = ev.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "overloaded_error");
        assert_eq!(data["error"]["message"], "Overloaded");
        let mut w = MessagesWriter::new("m");
        let mut out = Vec::new();
        w.event(&Event::Delta("a".into()), &mut out);
        w.broken(502, "reset", &mut out);
        let (name, data) = events(&out).pop().unwrap();
        assert_eq!(
            (name.as_str(), data["error"]["type"].as_str()),
            ("error", Some("api_error"))
        );
    }

    #[test]
    fn the_whole_answer_has_every_block() {
        let body: Value = serde_json::from_slice(&write_answer(&answer(), "claude-x")).unwrap();
        assert_eq!(body["type"], "message");
        assert_eq!(body["stop_reason"], "tool_use");
        assert_eq!(body["content"][0]["type"], "thinking");
        assert_eq!(body["content"][0]["signature"], "");
        assert_eq!(body["content"][3]["input"], json!({"path": "b"}));
        assert_eq!(body["usage"]["input_tokens"], 10);
        assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    }
}
