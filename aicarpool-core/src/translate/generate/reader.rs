//! A Gemini account's answer read into neutral events (streamed,
//! `alt=sse`) or an [`Answer`] (whole).

use serde_json::Value;

use super::signature;
use crate::id::new_id;
use crate::stream::frames::SseEvent;
use crate::stream::gemini::{usage_from_body, GeminiError, GeminiStreamUsage};
use crate::stream::tap::{StreamSummary, Summarize};
use crate::stream::EventSink;
use crate::translate::neutral::{Answer, Blocks, Event, Part, StopReason, ToolCall};
use crate::translate::tap::ReadUpstream;
use crate::usage::Usage;

/// A Gemini `finishReason` as a stop reason.
fn stop_reason(reason: &str, called: bool) -> StopReason {
    match reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::Refusal
        }
        "STOP" if called => StopReason::ToolUse,
        // MALFORMED_FUNCTION_CALL, OTHER, …: the turn is over.
        _ => StopReason::EndTurn,
    }
}

/// One part of a candidate, as neutral content.
enum Piece {
    Text(String),
    Thought(String, Option<String>),
    Call(ToolCall),
}

/// The first candidate's parts, and its finish reason (a blocked prompt
/// is a safety stop).
fn candidate(v: &Value) -> (Vec<Piece>, Option<&str>) {
    let c = v.pointer("/candidates/0");
    let mut pieces = Vec::new();
    let parts = c
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array);
    for p in parts.into_iter().flatten() {
        let sig = p.get("thoughtSignature").and_then(Value::as_str);
        if let Some(f) = p.get("functionCall") {
            let gemini_id = f
                .get("id")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty());
            pieces.push(Piece::Call(ToolCall {
                id: signature::call_id(sig, gemini_id, || format!("call_{}", new_id())),
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: match f.get("args") {
                    Some(a @ Value::Object(_)) => a.clone(),
                    _ => Value::Object(serde_json::Map::new()),
                },
            }));
        } else if let Some(text) = p.get("text").and_then(Value::as_str) {
            if p.get("thought") == Some(&Value::Bool(true)) {
                pieces.push(Piece::Thought(text.to_owned(), sig.map(str::to_owned)));
            } else {
                pieces.push(Piece::Text(text.to_owned()));
            }
        }
    }
    let finish = c
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
        .or_else(|| v.pointer("/promptFeedback/blockReason").map(|_| "SAFETY"));
    (pieces, finish)
}

fn error_of(v: &Value) -> Option<GeminiError> {
    let e = v.get("error")?;
    Some(
        serde_json::from_value(e.clone()).unwrap_or_else(|_| GeminiError {
            message: e.to_string(),
            ..GeminiError::default()
        }),
    )
}

/// Reads a Gemini stream (`alt=sse`: each `data:` a whole
/// `GenerateContentResponse`, no end marker).
#[derive(Debug, Default)]
pub struct GeminiReader {
    sink: GeminiStreamUsage,
    blocks: Blocks,
    /// A function call was seen: `STOP` means tool use.
    called: bool,
}

impl GeminiReader {
    pub fn new() -> Self {
        Self::default()
    }

    fn usage(&self) -> Usage {
        self.sink.usage.map(|u| u.to_usage()).unwrap_or_default()
    }
}

impl ReadUpstream for GeminiReader {
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
        if let Some(e) = error_of(&v) {
            self.blocks.error(e.http_status(), &e.message, out);
            return;
        }
        let id = v
            .get("responseId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.blocks.start(id, self.usage(), out);
        let (pieces, finish) = candidate(&v);
        for piece in pieces {
            match piece {
                Piece::Text(t) => self.blocks.text(&t, out),
                Piece::Thought(t, sig) => {
                    self.blocks.thinking(&t, out);
                    if let Some(sig) = sig {
                        self.blocks.signature(&sig, out);
                    }
                }
                Piece::Call(call) => {
                    self.called = true;
                    self.blocks.tool_call(&call.id, &call.name, out);
                    self.blocks.arguments(&call.arguments_json(), out);
                    self.blocks.close(out);
                }
            }
        }
        if let Some(reason) = finish {
            let stop = stop_reason(reason, self.called);
            let usage = self.usage();
            self.blocks.finish(stop, usage, out);
        }
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        let stop = if self.called {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        };
        let usage = self.usage();
        self.blocks.finish(stop, usage, out);
    }

    fn summary(self) -> StreamSummary {
        self.sink.summary()
    }
}

/// A whole `generateContent` answer; `None` when the body is not one (an
/// error body).
pub fn read_answer(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("error").is_some()
        || (v.get("candidates").is_none() && v.get("promptFeedback").is_none())
    {
        return None;
    }
    let (pieces, finish) = candidate(&v);
    let mut parts: Vec<Part> = Vec::with_capacity(pieces.len());
    let mut called = false;
    for piece in pieces {
        match piece {
            // Gemini may split one answer's text over parts.
            Piece::Text(t) => match parts.last_mut() {
                Some(Part::Text(last)) => last.push_str(&t),
                _ => parts.push(Part::Text(t)),
            },
            Piece::Thought(text, signature) => parts.push(Part::Thinking { text, signature }),
            Piece::Call(call) => {
                called = true;
                parts.push(Part::ToolCall(call));
            }
        }
    }
    parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
    Some(Answer {
        id: v
            .get("responseId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parts,
        stop: stop_reason(finish.unwrap_or("STOP"), called),
        usage: usage_from_body(body).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::frames::SseFrames;
    use crate::stream::SseObserver;
    use crate::translate::neutral::{fold, Block};
    use serde_json::json;

    pub(crate) const TOOL_STREAM: &str = concat!(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Plan\",\"thought\":true}]},\"index\":0}],",
        "\"usageMetadata\":{\"promptTokenCount\":120,\"totalTokenCount\":120},\"modelVersion\":\"gemini-3-pro\",\"responseId\":\"r1\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Reading \"},{\"text\":\"both.\"}]},\"index\":0}],\"responseId\":\"r1\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[",
        "{\"functionCall\":{\"name\":\"Read\",\"args\":{\"path\":\"a\"}},\"thoughtSignature\":\"Q2lR+/=\"},",
        "{\"functionCall\":{\"name\":\"Read\",\"args\":{\"path\":\"b\"},\"id\":\"fc-2\"}}]},",
        "\"finishReason\":\"STOP\",\"index\":0}],",
        "\"usageMetadata\":{\"promptTokenCount\":120,\"candidatesTokenCount\":7,\"cachedContentTokenCount\":100,",
        "\"thoughtsTokenCount\":30,\"totalTokenCount\":157},\"responseId\":\"r1\"}\r\n\r\n",
    );

    pub(crate) fn read_stream(stream: &[u8], cut: usize) -> (Vec<Event>, StreamSummary) {
        let mut frames = SseFrames::new();
        let mut reader = GeminiReader::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(cut.max(1)) {
            for ev in frames.push(chunk) {
                reader.event(&ev, &mut out);
            }
        }
        if let Some(ev) = frames.finish() {
            reader.event(&ev, &mut out);
        }
        reader.end(&mut out);
        (out, reader.summary())
    }

    #[test]
    fn a_streamed_tool_turn_reads_in_order_with_the_sinks_usage() {
        let (events, summary) = read_stream(TOOL_STREAM.as_bytes(), 7);
        let mut o = SseObserver::new(GeminiStreamUsage::default());
        o.feed(TOOL_STREAM.as_bytes());
        assert_eq!(summary, o.finish().summary());
        assert!(summary.completed);
        let expected = Usage {
            input_tokens: 20,
            output_tokens: 37,
            cache_read_tokens: 100,
            ..Usage::default()
        };
        assert_eq!(
            events.first(),
            Some(&Event::Start {
                id: Some("r1".into()),
                usage: Usage {
                    input_tokens: 120,
                    ..Usage::default()
                }
            })
        );
        assert_eq!(
            events.last(),
            Some(&Event::Finish {
                stop: StopReason::ToolUse,
                usage: expected
            })
        );
        let answer = fold(events).unwrap();
        assert_eq!(answer.parts.len(), 4);
        assert_eq!(
            answer.parts[0],
            Part::Thinking {
                text: "Plan".into(),
                signature: None
            }
        );
        assert_eq!(answer.parts[1], Part::Text("Reading both.".into()));
        let Part::ToolCall(first) = &answer.parts[2] else {
            panic!("{:?}", answer.parts)
        };
        assert_eq!(signature::split_call_id(&first.id), (None, Some("Q2lR+/=")));
        assert_eq!(first.arguments, json!({"path": "a"}));
        let Part::ToolCall(second) = &answer.parts[3] else {
            panic!()
        };
        assert_eq!(second.id, "fc-2");
    }

    #[test]
    fn calls_without_ids_get_distinct_new_ones() {
        let frame = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\"}},{\"functionCall\":{\"name\":\"f\"}}]},\"finishReason\":\"STOP\"}]}\n\n";
        let (events, _) = read_stream(frame.as_bytes(), 1000);
        let ids: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::BlockStart(Block::ToolCall { id, .. }) => Some(id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(ids.iter().all(|i| i.starts_with("call_")));
    }

    #[test]
    fn finish_reasons_map() {
        for (reason, stop) in [
            ("MAX_TOKENS", StopReason::MaxTokens),
            ("SAFETY", StopReason::Refusal),
            ("RECITATION", StopReason::Refusal),
            ("PROHIBITED_CONTENT", StopReason::Refusal),
            ("MALFORMED_FUNCTION_CALL", StopReason::EndTurn),
            ("STOP", StopReason::EndTurn),
        ] {
            let frame = format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"x\"}}]}},\"finishReason\":\"{reason}\"}}]}}\n\n");
            let (events, _) = read_stream(frame.as_bytes(), 1000);
            assert!(
                matches!(events.last(), Some(Event::Finish { stop: s, .. }) if *s == stop),
                "{reason}"
            );
        }
        let blocked = "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\n\n";
        let (events, _) = read_stream(blocked.as_bytes(), 1000);
        assert!(matches!(
            events.last(),
            Some(Event::Finish {
                stop: StopReason::Refusal,
                ..
            })
        ));
    }

    #[test]
    fn an_error_frame_ends_the_stream_and_a_cut_one_finishes_with_what_was_seen() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"par\"}]}}]}\r\n\r\n",
            "data: {\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}\r\n\r\n",
        );
        let (events, summary) = read_stream(stream.as_bytes(), 5);
        assert_eq!(
            events.last(),
            Some(&Event::Error {
                status: 429,
                message: "quota".into()
            })
        );
        assert_eq!(summary.error.unwrap().status, 429);
        let cut = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"par\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n";
        let (events, summary) = read_stream(cut.as_bytes(), 5);
        assert!(!summary.completed);
        let answer = fold(events).unwrap();
        assert_eq!(answer.parts, vec![Part::Text("par".into())]);
        assert_eq!(
            (answer.stop, answer.usage.input_tokens),
            (StopReason::EndTurn, 3)
        );
    }

    #[test]
    fn a_whole_answer_reads() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"think","thought":true,"thoughtSignature":"s1"},
            {"text":"Hel"},{"text":"lo"},
            {"functionCall":{"name":"f","args":{"a":1},"id":"x"}}]},"finishReason":"STOP"}],
            "usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"cachedContentTokenCount":4},
            "responseId":"r9"}"#;
        let a = read_answer(body).unwrap();
        assert_eq!(a.id.as_deref(), Some("r9"));
        assert_eq!(
            a.parts,
            vec![
                Part::Thinking {
                    text: "think".into(),
                    signature: Some("s1".into())
                },
                Part::Text("Hello".into()),
                Part::ToolCall(ToolCall {
                    id: "x".into(),
                    name: "f".into(),
                    arguments: json!({"a": 1})
                }),
            ]
        );
        assert_eq!(a.stop, StopReason::ToolUse);
        assert_eq!(
            (
                a.usage.input_tokens,
                a.usage.cache_read_tokens,
                a.usage.output_tokens
            ),
            (5, 4, 2)
        );
        assert!(read_answer(br#"{"error":{"code":400,"message":"bad"}}"#).is_none());
        assert!(read_answer(b"[]").is_none());
        let blocked = read_answer(br#"{"promptFeedback":{"blockReason":"OTHER"}}"#).unwrap();
        assert_eq!(blocked.stop, StopReason::Refusal);
    }
}
