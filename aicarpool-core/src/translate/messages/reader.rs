//! Answers read from a Claude or Anthropic-compatible account: its SSE
//! stream ([`MessagesReader`]) and its whole JSON answer
//! ([`read_answer`]).
//!
//! **Read**: `message_start` (id, input and cache usage), text, thinking
//! (with `signature_delta`) and `tool_use` blocks with their deltas,
//! `message_delta` (stop reason, usage), `message_stop`, `error` events
//! (status from the error type). A `tool_use` block with no input deltas
//! gets `{}` as its arguments. `redacted_thinking` becomes a thinking part
//! with no text whose signature is [`super::REDACTED_PREFIX`] and the
//! data, so it can go back to Claude.
//!
//! **Ignored**: `ping`, `citations_delta`, server-tool blocks
//! (`server_tool_use`, `*_tool_result`; never asked for), unknown events.
//! A stream that ends after `message_delta` but before `message_stop`
//! finishes with that stop; one that ends earlier is an error (the answer
//! is cut short).
//!
//! The usage is the [`AnthropicStreamUsage`] sink's, fed every event, so
//! the summary is the pass-through accounting.

use serde_json::Value;

use super::{stop_reason, str_at, REDACTED_PREFIX};
use crate::stream::anthropic::{usage_from_body, AnthropicStreamUsage};
use crate::stream::frames::SseEvent;
use crate::stream::tap::{anthropic_error_status, StreamSummary, Summarize};
use crate::stream::EventSink;
use crate::translate::neutral::{Answer, Blocks, Event, Part, StopReason, ToolCall};
use crate::translate::tap::ReadUpstream;

/// Reads a Messages SSE stream as neutral events.
#[derive(Debug, Default)]
pub struct MessagesReader {
    sink: AnthropicStreamUsage,
    blocks: Blocks,
    /// The stop `message_delta` said, for `message_stop`.
    stop: Option<StopReason>,
    /// A `tool_use` block is open and no input fragment came yet.
    tool_without_input: bool,
}

impl MessagesReader {
    pub fn new() -> Self {
        Self::default()
    }

    fn content_block_start(&mut self, v: &Value, out: &mut Vec<Event>) {
        self.close(out);
        let block = v.get("content_block").unwrap_or(&Value::Null);
        match block.get("type").and_then(Value::as_str) {
            Some("text") => self.blocks.text(str_at(block, "text"), out),
            Some("thinking") => {
                self.blocks.thinking(str_at(block, "thinking"), out);
                let signature = str_at(block, "signature");
                if !signature.is_empty() {
                    self.blocks.signature(signature, out);
                }
            }
            Some("redacted_thinking") => {
                let signature = format!("{REDACTED_PREFIX}{}", str_at(block, "data"));
                self.blocks.signature(&signature, out);
            }
            Some("tool_use") => {
                self.blocks
                    .tool_call(str_at(block, "id"), str_at(block, "name"), out);
                self.tool_without_input = true;
                // Streams start with `input: {}`; a filled one is the input.
                if let Some(input) = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|m| !m.is_empty()))
                {
                    self.arguments(&input.to_string(), out);
                }
            }
            _ => {}
        }
    }

    fn content_block_delta(&mut self, v: &Value, out: &mut Vec<Event>) {
        let delta = v.get("delta").unwrap_or(&Value::Null);
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => self.blocks.text(str_at(delta, "text"), out),
            Some("thinking_delta") => self.blocks.thinking(str_at(delta, "thinking"), out),
            Some("signature_delta") => {
                let signature = str_at(delta, "signature");
                if !signature.is_empty() {
                    self.blocks.signature(signature, out);
                }
            }
            Some("input_json_delta") => self.arguments(str_at(delta, "partial_json"), out),
            _ => {}
        }
    }

    fn arguments(&mut self, fragment: &str, out: &mut Vec<Event>) {
        if !fragment.is_empty() {
            self.tool_without_input = false;
        }
        self.blocks.arguments(fragment, out);
    }

    /// Closes the open block; a tool call that got no input gets `{}`.
    fn close(&mut self, out: &mut Vec<Event>) {
        if std::mem::take(&mut self.tool_without_input) {
            self.blocks.arguments("{}", out);
        }
        self.blocks.close(out);
    }

    fn error(&mut self, v: &Value, out: &mut Vec<Event>) {
        let error = v.get("error").unwrap_or(&Value::Null);
        let message = Some(str_at(error, "message"))
            .filter(|m| !m.is_empty())
            .unwrap_or("the upstream reported an error");
        self.blocks
            .error(anthropic_error_status(str_at(error, "type")), message, out);
    }
}

impl ReadUpstream for MessagesReader {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        let Some(data) = event.data.as_deref() else {
            return;
        };
        let name = event.name.as_deref();
        if self.sink.wants(name) {
            self.sink.on_event(name, data);
        }
        if self.blocks.finished() {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match str_at(&v, "type") {
            "message_start" => {
                let id = v
                    .pointer("/message/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.blocks.start(id, self.sink.usage, out);
            }
            "content_block_start" => self.content_block_start(&v, out),
            "content_block_delta" => self.content_block_delta(&v, out),
            "content_block_stop" => self.close(out),
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(stop_reason(r));
                }
            }
            "message_stop" => {
                self.close(out);
                let stop = self.stop.unwrap_or_default();
                self.blocks.finish(stop, self.sink.usage, out);
            }
            "error" => self.error(&v, out),
            _ => {}
        }
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        if self.blocks.finished() {
            return;
        }
        self.close(out);
        match self.stop {
            Some(stop) => self.blocks.finish(stop, self.sink.usage, out),
            None => self.blocks.error(
                502,
                "the upstream's stream ended before the answer was complete",
                out,
            ),
        }
    }

    fn summary(self) -> StreamSummary {
        self.sink.summary()
    }
}

/// A whole Messages answer; `None` when the body is not one.
pub fn read_answer(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let blocks = v.get("content")?.as_array()?;
    let parts = blocks
        .iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str)? {
            "text" => Some(Part::Text(str_at(b, "text").to_owned())),
            "thinking" => Some(Part::Thinking {
                text: str_at(b, "thinking").to_owned(),
                signature: Some(str_at(b, "signature"))
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            }),
            "redacted_thinking" => Some(Part::Thinking {
                text: String::new(),
                signature: Some(format!("{REDACTED_PREFIX}{}", str_at(b, "data"))),
            }),
            "tool_use" => Some(Part::ToolCall(ToolCall {
                id: str_at(b, "id").to_owned(),
                name: str_at(b, "name").to_owned(),
                arguments: match b.get("input") {
                    None | Some(Value::Null) => Value::Object(Default::default()),
                    Some(input) => input.clone(),
                },
            })),
            _ => None,
        })
        .collect();
    Some(Answer {
        id: v.get("id").and_then(Value::as_str).map(str::to_owned),
        parts,
        stop: stop_reason(str_at(&v, "stop_reason")),
        usage: usage_from_body(body).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::frames::SseFrames;
    use crate::translate::neutral::{fold, Block};
    use crate::usage::Usage;
    use serde_json::json;

    /// A stream as Claude writes it, cut into `chunk`-byte pieces.
    fn read(stream: &str, chunk: usize) -> (Vec<Event>, StreamSummary) {
        let mut frames = SseFrames::new();
        let mut reader = MessagesReader::new();
        let mut out = Vec::new();
        for c in stream.as_bytes().chunks(chunk) {
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

    pub(super) fn sse(events: &[Value]) -> String {
        events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
            .collect()
    }

    fn tool_turn() -> String {
        sse(&[
            json!({"type": "message_start", "message": {"id": "msg_9", "model": "claude", "usage":
                {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7, "output_tokens": 1}}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Reading"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"path\":"}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"a\"}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "List", "input": {}}}),
            json!({"type": "content_block_stop", "index": 3}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 42}}),
            json!({"type": "message_stop"}),
        ])
    }

    #[test]
    fn a_tool_use_turn_reads_in_order_with_usage() {
        for chunk in [1, 7, 4096] {
            let (events, summary) = read(&tool_turn(), chunk);
            assert!(summary.completed);
            assert_eq!(summary.usage.cache_read_tokens, 100);
            assert_eq!(
                events[0],
                Event::Start {
                    id: Some("msg_9".into()),
                    usage: Usage {
                        input_tokens: 10,
                        output_tokens: 1,
                        cache_read_tokens: 100,
                        cache_write_5m_tokens: 7,
                        ..Usage::default()
                    }
                }
            );
            let answer = fold(events.clone()).unwrap();
            assert_eq!(answer.stop, StopReason::ToolUse);
            assert_eq!(answer.usage.output_tokens, 42);
            assert_eq!(answer.usage, summary.usage);
            assert_eq!(
                answer.parts,
                vec![
                    Part::Thinking {
                        text: "let me".into(),
                        signature: Some("SIG".into())
                    },
                    Part::Text("Reading".into()),
                    Part::ToolCall(ToolCall {
                        id: "toolu_1".into(),
                        name: "Read".into(),
                        arguments: json!({"path": "a"})
                    }),
                    Part::ToolCall(ToolCall {
                        id: "toolu_2".into(),
                        name: "List".into(),
                        arguments: json!({})
                    }),
                ]
            );
            let empty_tool = events
                .iter()
                .position(|e| matches!(e, Event::BlockStart(Block::ToolCall { id, .. }) if id == "toolu_2"))
                .unwrap();
            assert_eq!(events[empty_tool + 1], Event::Delta("{}".into()));
        }
    }

    #[test]
    fn an_error_mid_stream_ends_it_with_its_status() {
        let stream = sse(&[
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "par"}}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]);
        let (events, summary) = read(&stream, 5);
        assert_eq!(
            events.last(),
            Some(&Event::Error {
                status: 529,
                message: "Overloaded".into()
            })
        );
        assert_eq!(summary.error.unwrap().status, 529);
        assert!(!summary.completed);
    }

    #[test]
    fn a_cut_stream_finishes_or_fails_honestly() {
        let cut = sse(&[
            json!({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 3}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}}),
        ]);
        let (events, _) = read(&cut, 100);
        assert!(matches!(
            events.last(),
            Some(Event::Error { status: 502, .. })
        ));
        let no_stop = format!(
            "{cut}{}",
            sse(&[
                json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}})
            ])
        );
        let (events, summary) = read(&no_stop, 100);
        let answer = fold(events).unwrap();
        assert_eq!(answer.stop, StopReason::MaxTokens);
        assert_eq!(answer.parts, vec![Part::Text("Hi".into())]);
        assert!(!summary.completed);
    }

    #[test]
    fn whole_answers_read_every_block() {
        let body = json!({"id": "msg_2", "type": "message", "role": "assistant", "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "redacted_thinking", "data": "D"},
            {"type": "text", "text": "x"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
            "stop_reason": "refusal",
            "usage": {"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 3}});
        let a = read_answer(body.to_string().as_bytes()).unwrap();
        assert_eq!(a.id.as_deref(), Some("msg_2"));
        assert_eq!(a.stop, StopReason::Refusal);
        assert_eq!(a.usage.cache_read_tokens, 3);
        assert_eq!(a.parts.len(), 4);
        assert_eq!(
            a.parts[1],
            Part::Thinking {
                text: String::new(),
                signature: Some(format!("{REDACTED_PREFIX}D"))
            }
        );
        assert!(read_answer(br#"{"type":"error","error":{}}"#).is_none());
    }
}
