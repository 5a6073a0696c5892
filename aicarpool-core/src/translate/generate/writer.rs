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
            // The array's `[` is the only opening frame: Gemini's SSE has none.
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
            // Gemini CLI takes a chunk with an empty part as invalid.
            Event::Delta(d) if d.is_empty() => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::neutral::unfold;

    fn usage() -> Usage {
        Usage {
            input_tokens: 10,
            output_tokens: 7,
            cache_read_tokens: 100,
            cache_write_5m_tokens: 5,
            ..Usage::default()
        }
    }

    fn tool_turn() -> Vec<Event> {
        vec![
            Event::Start {
                id: Some("msg_1".into()),
                usage: Usage::default(),
            },
            Event::BlockStart(Block::Thinking),
            Event::Delta("let me ".into()),
            Event::Delta("look".into()),
            Event::Signature("sig-1".into()),
            Event::BlockEnd,
            Event::BlockStart(Block::Text),
            Event::Delta("Reading.".into()),
            Event::BlockEnd,
            Event::BlockStart(Block::ToolCall {
                id: "toolu_1".into(),
                name: "read_file".into(),
            }),
            Event::Delta("{\"file_path\":".into()),
            Event::Delta("\"a\"}".into()),
            Event::BlockEnd,
            Event::BlockStart(Block::ToolCall {
                id: "toolu_2".into(),
                name: "read_file".into(),
            }),
            Event::BlockEnd,
            Event::Finish {
                stop: StopReason::ToolUse,
                usage: usage(),
            },
        ]
    }

    fn sse_chunks(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n\r\n"));
        text.split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_tool_turn_streams_as_sse_chunks() {
        let mut w = GeminiWriter::new("claude-sonnet-4-5", true);
        let mut out = Vec::new();
        for e in tool_turn() {
            w.event(&e, &mut out);
        }
        w.end(&mut out);
        let chunks = sse_chunks(&out);
        let parts: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/candidates/0/content/parts/0"))
            .collect();
        assert_eq!(parts.len(), 5, "{chunks:?}");
        assert_eq!(parts[0], &json!({"text": "let me ", "thought": true}));
        assert_eq!(parts[1], &json!({"text": "look", "thought": true}));
        assert_eq!(parts[2], &json!({"text": "Reading."}));
        assert_eq!(
            parts[3]["functionCall"],
            json!({"name": "read_file", "args": {"file_path": "a"}, "id": "toolu_1"})
        );
        // The signed thinking rides on the next call only.
        let packed = parts[3]["thoughtSignature"].as_str().unwrap();
        assert_eq!(
            super::super::signature::unpack_thinking(packed),
            Some(Part::Thinking {
                text: "let me look".into(),
                signature: Some("sig-1".into())
            })
        );
        assert_eq!(
            parts[4]["functionCall"],
            json!({"name": "read_file", "args": {}, "id": "toolu_2"})
        );
        assert!(parts[4].get("thoughtSignature").is_none());
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["usageMetadata"],
            json!({"promptTokenCount": 115, "candidatesTokenCount": 7,
                   "totalTokenCount": 122, "cachedContentTokenCount": 100})
        );
        assert!(chunks
            .iter()
            .all(|c| c["responseId"] == "msg_1" && c["modelVersion"] == "claude-sonnet-4-5"));
    }

    #[test]
    fn without_sse_the_stream_is_one_json_array() {
        let mut w = GeminiWriter::new("m", false);
        let mut out = Vec::new();
        for e in tool_turn() {
            w.event(&e, &mut out);
        }
        w.end(&mut out);
        w.end(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 6);
        assert_eq!(v[5]["candidates"][0]["finishReason"], "STOP");
    }

    #[test]
    fn errors_end_the_stream_in_geminis_shape() {
        let mut w = GeminiWriter::new("m", true);
        let mut out = Vec::new();
        w.event(
            &Event::Start {
                id: None,
                usage: Usage::default(),
            },
            &mut out,
        );
        w.event(&Event::BlockStart(Block::Text), &mut out);
        w.event(&Event::Delta("par".into()), &mut out);
        w.event(&Event::Delta(String::new()), &mut out);
        w.event(
            &Event::Error {
                status: 529,
                message: "Overloaded".into(),
            },
            &mut out,
        );
        w.event(&Event::Delta("ignored".into()), &mut out);
        w.end(&mut out);
        let chunks = sse_chunks(&out);
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[1],
            json!({"error": {"code": 529, "message": "Overloaded", "status": "UNAVAILABLE"}})
        );

        let mut w = GeminiWriter::new("m", false);
        let mut out = Vec::new();
        w.broken(502, "reset", &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!([{"error": {"code": 502, "message": "reset", "status": "INTERNAL"}}])
        );
    }

    #[test]
    fn statuses_map_to_geminis_names() {
        let names: Vec<&str> = [400, 401, 403, 404, 429, 503, 529, 500, 502]
            .map(error_status)
            .to_vec();
        assert_eq!(
            names,
            [
                "INVALID_ARGUMENT",
                "UNAUTHENTICATED",
                "PERMISSION_DENIED",
                "NOT_FOUND",
                "RESOURCE_EXHAUSTED",
                "UNAVAILABLE",
                "UNAVAILABLE",
                "INTERNAL",
                "INTERNAL"
            ]
        );
        let v: Value = serde_json::from_slice(&error_body(429, "slow down")).unwrap();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[test]
    fn a_whole_answer_is_one_response() {
        let answer = Answer {
            id: Some("chatcmpl-1".into()),
            parts: vec![
                Part::Text("Hi".into()),
                Part::ToolCall(ToolCall {
                    id: "call_9".into(),
                    name: "f".into(),
                    arguments: json!({"x": 1}),
                }),
            ],
            stop: StopReason::ToolUse,
            usage: usage(),
        };
        let v: Value = serde_json::from_slice(&write_answer(&answer, "gpt-5")).unwrap();
        let parts = &v["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0], json!({"text": "Hi"}));
        assert_eq!(parts[1]["functionCall"]["id"], "call_9");
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        assert_eq!(v["responseId"], "chatcmpl-1");
        for (stop, reason) in [
            (StopReason::MaxTokens, "MAX_TOKENS"),
            (StopReason::Refusal, "SAFETY"),
        ] {
            let a = Answer {
                stop,
                ..Answer::default()
            };
            let v: Value = serde_json::from_slice(&write_answer(&a, "m")).unwrap();
            assert_eq!(v["candidates"][0]["finishReason"], reason);
            // The streamed form ends the same way.
            let mut w = GeminiWriter::new("m", true);
            let mut out = Vec::new();
            for e in unfold(&a) {
                w.event(&e, &mut out);
            }
            assert_eq!(
                sse_chunks(&out).last().unwrap()["candidates"][0]["finishReason"],
                reason
            );
        }
    }
}
