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
