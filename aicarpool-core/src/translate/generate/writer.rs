//! Answers written for a Gemini client: a streamed answer as
//! `GenerateContentResponse` chunks, a whole one as one response, errors
//! in Gemini's error shape.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::signature::pack_thinking;
use crate::id::new_id;
use crate::translate::neutral::{Answer, Block, Event, Part, StopReason, ToolCall};
use crate::translate::tap::WriteClient;
use crate::usage::Usage;

/// Gemini's status name for an HTTP status.
pub fn error_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 | 529 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

fn error_json(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": error_status(status)}})
}

/// Gemini's error body: `{"error": {"code", "message", "status"}}`.
pub fn error_body(status: u16, message: &str) -> Bytes {
    Bytes::from(error_json(status, message).to_string())
}

fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::Refusal => "SAFETY",
        // Gemini ends a turn with function calls as STOP too.
        StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "STOP",
    }
}

/// `usageMetadata`: the prompt count includes cached and cache-written
/// tokens, as Gemini's does.
fn usage_metadata(u: &Usage) -> Value {
    let prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens();
    let mut m = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": u.output_tokens,
        "totalTokenCount": prompt + u.output_tokens,
    });
    if u.cache_read_tokens > 0 {
        m["cachedContentTokenCount"] = json!(u.cache_read_tokens);
    }
    m
}

fn call_part(call: &ToolCall, thinking: Option<&(String, String)>) -> Value {
    let mut part = json!({"functionCall": {
        "name": call.name,
        "args": Value::Object(call.arguments_object()),
        "id": call.id,
    }});
    if let Some((text, sig)) = thinking {
        part["thoughtSignature"] = json!(pack_thinking(text, sig));
    }
    part
}

/// One `GenerateContentResponse`.
fn response(
    parts: Vec<Value>,
    finish: Option<(StopReason, &Usage)>,
    model: &str,
    id: &str,
) -> Value {
    let mut candidate = Map::new();
    if !parts.is_empty() {
        candidate.insert("content".into(), json!({"role": "model", "parts": parts}));
    }
    if let Some((stop, _)) = finish {
        candidate.insert("finishReason".into(), json!(finish_reason(stop)));
    }
    candidate.insert("index".into(), json!(0));
    let mut out = json!({"candidates": [candidate], "modelVersion": model, "responseId": id});
    if let Some((_, usage)) = finish {
        out["usageMetadata"] = usage_metadata(usage);
    }
    out
}

/// A whole answer as one `GenerateContentResponse`.
pub fn write_answer(answer: &Answer, model: &str) -> Bytes {
    let mut parts = Vec::new();
    let mut thinking: Option<(String, String)> = None;
    for p in &answer.parts {
        match p {
            Part::Text(t) => parts.push(json!({"text": t})),
            Part::Thinking { text, signature } => {
                parts.push(json!({"text": text, "thought": true}));
                thinking = signature.as_ref().map(|s| (text.clone(), s.clone()));
            }
            Part::ToolCall(c) => parts.push(call_part(c, thinking.take().as_ref())),
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    let id = answer.id.clone().unwrap_or_else(new_id);
    let v = response(parts, Some((answer.stop, &answer.usage)), model, &id);
    Bytes::from(v.to_string())
}

/// The block being written.
#[derive(Debug)]
enum Open {
    Text,
    /// The thinking text so far, for packing it with its signature.
    Thinking(String),
    /// Gemini's arguments are a whole object: the call waits for its end.
    Call(ToolCall),
}

/// Writes a neutral stream as Gemini's: `data:` events (`alt=sse`) or a
/// JSON array of responses.
#[derive(Debug)]
pub struct GeminiWriter {
    model: String,
    sse: bool,
    id: Option<String>,
    open: Option<Open>,
    /// The last signed thinking block, for the next call's signature.
    thinking: Option<(String, String)>,
    /// The array's `[` went out.
    opened: bool,
    /// A response went out (the next needs a `,`).
    wrote: bool,
    done: bool,
    /// The array's `]` went out.
    closed: bool,
}

impl GeminiWriter {
    pub fn new(model: &str, sse: bool) -> Self {
        Self {
            model: model.to_owned(),
            sse,
            id: None,
            open: None,
            thinking: None,
            opened: false,
            wrote: false,
            done: false,
            closed: false,
        }
    }

    fn open_array(&mut self, out: &mut Vec<u8>) {
        if !self.sse && !self.opened {
            out.push(b'[');
        }
        self.opened = true;
    }

    fn emit(&mut self, v: &Value, out: &mut Vec<u8>) {
        self.open_array(out);
        if self.sse {
            out.extend_from_slice(format!("data: {v}\r\n\r\n").as_bytes());
        } else {
            if self.wrote {
                out.extend_from_slice(b",\r\n");
            }
            out.extend_from_slice(v.to_string().as_bytes());
        }
        self.wrote = true;
    }

    fn id(&mut self) -> String {
        self.id.get_or_insert_with(new_id).clone()
    }

    fn chunk(
        &mut self,
        parts: Vec<Value>,
        finish: Option<(StopReason, &Usage)>,
        out: &mut Vec<u8>,
    ) {
        let id = self.id();
        let v = response(parts, finish, &self.model, &id);
        self.emit(&v, out);
    }

    /// Ends the open block; a tool call goes out now that it is whole.
    fn close_block(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            Some(Open::Call(mut call)) => {
                if let Value::String(raw) = &call.arguments {
                    call.arguments = ToolCall::parse_arguments(raw);
                }
                let part = call_part(&call, self.thinking.take().as_ref());
                self.chunk(vec![part], None, out);
            }
            Some(Open::Text) | Some(Open::Thinking(_)) | None => {}
        }
    }

    fn close_array(&mut self, out: &mut Vec<u8>) {
        if !self.sse && !self.closed {
            self.open_array(out);
            out.push(b']');
        }
        self.closed = true;
    }
}

impl WriteClient for GeminiWriter {
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            Event::Start { id, .. } => {
                if let Some(id) = id {
                    self.id = Some(id.clone());
                }
                self.open_array(out);
            }
            Event::BlockStart(block) => {
                self.close_block(out);
                self.open = Some(match block {
                    Block::Text => Open::Text,
                    Block::Thinking => Open::Thinking(String::new()),
                    Block::ToolCall { id, name } => Open::Call(ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: Value::String(String::new()),
                    }),
                });
            }
            Event::Delta(d) => match &mut self.open {
                Some(Open::Text) => self.chunk(vec![json!({"text": d})], None, out),
                Some(Open::Thinking(text)) => {
                    text.push_str(d);
                    self.chunk(vec![json!({"text": d, "thought": true})], None, out);
                }
                Some(Open::Call(call)) => {
                    if let Value::String(raw) = &mut call.arguments {
                        raw.push_str(d);
                    }
                }
                None => {}
            },
            Event::Signature(sig) => {
                if let Some(Open::Thinking(text)) = &self.open {
                    self.thinking = Some((text.clone(), sig.clone()));
                }
            }
            Event::BlockEnd => self.close_block(out),
            Event::Finish { stop, usage } => {
                self.close_block(out);
                self.chunk(Vec::new(), Some((*stop, usage)), out);
                self.done = true;
            }
            Event::Error { status, message } => {
                self.close_block(out);
                self.emit(&error_json(*status, message), out);
                self.done = true;
            }
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.close_block(out);
            self.done = true;
        }
        self.close_array(out);
    }

    fn broken(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            self.emit(&error_json(status, message), out);
            self.done = true;
        }
        self.close_array(out);
    }
}
