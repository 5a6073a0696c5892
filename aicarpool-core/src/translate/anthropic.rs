//! OpenAI chat ⇄ Anthropic Messages.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat::{
    ChatMessage, ChatOut, ChatRequest, ChatStreamWriter, Content, Image, OutToolCall,
};
use super::TranslateError;
use crate::stream::anthropic::{usage_from_body, AnthropicStreamUsage};
use crate::stream::frames::{SseEvent, SseFrames};
use crate::stream::tap::{anthropic_error_status, StreamSummary, StreamTap, Summarize};
use crate::stream::EventSink;

/// `max_tokens` sent when the client set none (Claude requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Messages body for `chat`, without `model` (set per account by
/// [`with_model`]).
pub fn request(chat: &ChatRequest) -> Result<Map<String, Value>, TranslateError> {
    chat.refuse_unsupported()?;
    if chat.json_format()?.is_some() {
        return Err(TranslateError::Unsupported(
            "response_format with a JSON mode".into(),
        ));
    }
    let penalty = |p: Option<f64>| p.is_some_and(|v| v != 0.0);
    if penalty(chat.presence_penalty) || penalty(chat.frequency_penalty) {
        return Err(TranslateError::Unsupported(
            "presence_penalty/frequency_penalty".into(),
        ));
    }
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &chat.messages {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = &m.content {
                    system.push(c.text(&m.role)?);
                }
                continue;
            }
            "user" => ("user", user_blocks(m.content.as_ref())?),
            "assistant" => ("assistant", assistant_blocks(m)?),
            "tool" => ("user", vec![tool_result(m)?]),
            other => {
                return Err(TranslateError::Invalid(format!(
                    "messages: unknown role `{other}`"
                )))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, b)) if *last == role => b.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(TranslateError::Invalid(
            "messages: at least one user message is required".into(),
        ));
    }
    let mut body = Map::new();
    body.insert(
        "max_tokens".into(),
        json!(chat.max_output().unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = chat.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = chat.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &chat.stop {
        body.insert("stop_sequences".into(), json!(stop.sequences()));
    }
    if chat.is_stream() {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &chat.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    tools(chat, &mut body)?;
    Ok(body)
}

/// The request body for one account's model.
pub fn with_model(body: &Map<String, Value>, model: &str) -> Bytes {
    let mut body = body.clone();
    body.insert("model".into(), json!(model));
    Bytes::from(Value::Object(body).to_string())
}

fn tools(chat: &ChatRequest, body: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let defs: Vec<Value> = chat
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref())
        .map(|f| {
            let mut t = json!({
                "name": f.name,
                "input_schema": f.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = &f.description {
                t["description"] = json!(d);
            }
            t
        })
        .collect();
    let mut choice = match &chat.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(TranslateError::Invalid(format!(
                    "tool_choice `{other}` is unknown"
                )))
            }
        }),
        Some(v) => {
            let name = v.pointer("/function/name").and_then(Value::as_str);
            let name = name.ok_or_else(|| {
                TranslateError::Invalid("tool_choice: function.name is required".into())
            })?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if defs.is_empty() {
        return Ok(());
    }
    if chat.parallel_tool_calls == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    body.insert("tools".into(), Value::Array(defs));
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    Ok(())
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn user_blocks(content: Option<&Content>) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(s)) => return Ok(text_block(s).into_iter().collect()),
        Some(Content::Parts(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for p in parts {
        match (p.kind.as_str(), &p.text, &p.image_url) {
            ("text", Some(t), _) => blocks.extend(text_block(t)),
            ("image_url", _, Some(url)) => blocks.push(match url.image()? {
                Image::Inline { mime, data } => json!({"type": "image",
                    "source": {"type": "base64", "media_type": mime, "data": data}}),
                Image::Remote(u) => json!({"type": "image", "source": {"type": "url", "url": u}}),
            }),
            (kind, _, _) => {
                return Err(TranslateError::Unsupported(format!(
                    "`{kind}` content in a user message"
                )))
            }
        }
    }
    Ok(blocks)
}

fn assistant_blocks(m: &ChatMessage) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    if let Some(c) = &m.content {
        blocks.extend(text_block(&c.text("assistant")?));
    }
    for call in m.tool_calls.iter().flatten() {
        blocks.push(json!({
            "type": "tool_use", "id": call.id, "name": call.function.name,
            "input": call.function.arguments_json()?,
        }));
    }
    Ok(blocks)
}

fn tool_result(m: &ChatMessage) -> Result<Value, TranslateError> {
    let id = m.tool_call_id.as_deref().ok_or_else(|| {
        TranslateError::Invalid("messages: a tool message needs tool_call_id".into())
    })?;
    let text = match &m.content {
        Some(c) => c.text("tool")?,
        None => String::new(),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": text}))
}

/// Claude's `stop_reason` as a chat `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// A Messages answer as a `chat.completion`; `None` when it is not one.
pub fn response(body: &[u8], model: &str) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let blocks = v.get("content")?.as_array()?;
    let out = ChatOut::new(v.get("id").and_then(Value::as_str).unwrap_or("msg"), model);
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(OutToolCall {
                id: b.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: b.get("input").map_or_else(|| "{}".into(), Value::to_string),
            }),
            _ => {}
        }
    }
    let finish = finish_reason(v.get("stop_reason").and_then(Value::as_str).unwrap_or(""));
    let usage = usage_from_body(body).unwrap_or_default();
    let text = (!text.is_empty() || calls.is_empty()).then_some(text);
    Some(Bytes::from(
        out.completion(text, &calls, finish, &usage).to_string(),
    ))
}

/// Turns a Messages stream into chat chunks while counting its usage.
#[derive(Debug)]
pub struct ChatFromMessages {
    frames: SseFrames,
    sink: AnthropicStreamUsage,
    writer: ChatStreamWriter,
    /// Content block index → tool call index, and whether arguments came.
    tools: Vec<(u64, u32, bool)>,
}

impl ChatFromMessages {
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            frames: SseFrames::new(),
            sink: AnthropicStreamUsage::default(),
            writer: ChatStreamWriter::new(ChatOut::new("msg", model), include_usage),
            tools: Vec::new(),
        }
    }

    fn event(&mut self, ev: &SseEvent, buf: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        if self.sink.wants(ev.name.as_deref()) {
            self.sink.on_event(ev.name.as_deref(), data);
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let w = &mut self.writer;
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(id) = v.pointer("/message/id").and_then(Value::as_str) {
                    w.set_id(id);
                }
                w.start(buf);
            }
            "content_block_start"
                if v.pointer("/content_block/type") == Some(&json!("tool_use")) =>
            {
                let field = |f: &str| {
                    v.pointer(&format!("/content_block/{f}"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                };
                let at = w.tool_call(buf, field("id"), field("name"), "");
                self.tools.push((index, at, false));
            }
            "content_block_delta" => match v.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => {
                    w.text(
                        buf,
                        v.pointer("/delta/text")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    );
                }
                Some("input_json_delta") => {
                    let part = v
                        .pointer("/delta/partial_json")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if let Some(t) = self.tools.iter_mut().find(|t| t.0 == index) {
                        if !part.is_empty() {
                            t.2 = true;
                            w.tool_arguments(buf, t.1, part);
                        }
                    }
                }
                _ => {}
            },
            "content_block_stop" => {
                // A tool called without arguments still gets valid JSON.
                if let Some(t) = self.tools.iter_mut().find(|t| t.0 == index && !t.2) {
                    t.2 = true;
                    w.tool_arguments(buf, t.1, "{}");
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    w.finish(buf, finish_reason(r));
                }
            }
            "message_stop" => w.close(buf, &self.sink.usage),
            "error" => {
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error");
                w.error(buf, anthropic_error_status(kind), msg);
            }
            _ => {}
        }
    }
}

impl StreamTap for ChatFromMessages {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let mut buf = Vec::new();
        for ev in self.frames.push(&chunk) {
            self.event(&ev, &mut buf);
        }
        Bytes::from(buf)
    }

    fn end(mut self: Box<Self>, broken: Option<&str>) -> (Bytes, StreamSummary) {
        let mut buf = Vec::new();
        if let Some(ev) = self.frames.finish() {
            self.event(&ev, &mut buf);
        }
        match broken {
            Some(reason) => self.writer.error(&mut buf, 502, reason),
            None => self.writer.close(&mut buf, &self.sink.usage),
        }
        (Bytes::from(buf), self.sink.summary())
    }
}
