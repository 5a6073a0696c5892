//! OpenAI chat ⇄ Gemini `generateContent`.
//!
//! Gemini 3 models sign their function calls (`thoughtSignature`) and want
//! the signature back with the call in the next turn. Chat clients keep
//! only the tool call id, so the signature travels inside it
//! (`gsig_<signature>`) and is restored on the way back.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat::{
    ChatMessage, ChatOut, ChatRequest, ChatStreamWriter, Content, Image, OutToolCall,
};
use super::TranslateError;
use crate::id::new_id;
use crate::stream::frames::{SseEvent, SseFrames};
use crate::stream::gemini::{usage_from_body, GeminiError, GeminiStreamUsage};
use crate::stream::tap::{StreamSummary, StreamTap, Summarize};

/// Tool call ids that carry a Gemini thought signature start with this.
const SIGNED_ID: &str = "gsig_";

/// The `generateContent` body for `chat` (the model is in the URL).
pub fn request(chat: &ChatRequest) -> Result<Bytes, TranslateError> {
    chat.refuse_unsupported()?;
    let names: HashMap<&str, &str> = chat
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| (c.id.as_str(), c.function.name.as_str()))
        .collect();
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &chat.messages {
        let (role, parts) = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = &m.content {
                    system.push(json!({"text": c.text(&m.role)?}));
                }
                continue;
            }
            "user" => ("user", user_parts(m.content.as_ref())?),
            "assistant" => ("model", model_parts(m)?),
            "tool" => ("user", vec![function_response(m, &names)?]),
            other => {
                return Err(TranslateError::Invalid(format!(
                    "messages: unknown role `{other}`"
                )))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, p)) if *last == role => p.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::Invalid(
            "messages: at least one user message is required".into(),
        ));
    }
    let mut body = Map::new();
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let config = generation_config(chat)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    tools(chat, &mut body)?;
    Ok(Bytes::from(Value::Object(body).to_string()))
}

fn generation_config(chat: &ChatRequest) -> Result<Map<String, Value>, TranslateError> {
    let mut c = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(k.into(), v);
        }
    };
    put("temperature", chat.temperature.map(Value::from));
    put("topP", chat.top_p.map(Value::from));
    put("maxOutputTokens", chat.max_output().map(Value::from));
    put(
        "stopSequences",
        chat.stop.as_ref().map(|s| json!(s.sequences())),
    );
    put("presencePenalty", chat.presence_penalty.map(Value::from));
    put("frequencyPenalty", chat.frequency_penalty.map(Value::from));
    put("seed", chat.seed.map(Value::from));
    if let Some((_, schema)) = chat.json_format()? {
        put("responseMimeType", Some(json!("application/json")));
        put("responseJsonSchema", schema);
    }
    Ok(c)
}

fn tools(chat: &ChatRequest, body: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let decls: Vec<Value> = chat
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref())
        .map(|f| {
            let mut d = json!({"name": f.name});
            if let Some(desc) = &f.description {
                d["description"] = json!(desc);
            }
            if let Some(p) = &f.parameters {
                d["parametersJsonSchema"] = p.clone();
            }
            d
        })
        .collect();
    let config = match &chat.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
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
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
    };
    if decls.is_empty() {
        return Ok(());
    }
    body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    if let Some(c) = config {
        body.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
    }
    Ok(())
}

fn user_parts(content: Option<&Content>) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(s)) => return Ok(vec![json!({"text": s})]),
        Some(Content::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match (p.kind.as_str(), &p.text, &p.image_url) {
            ("text", Some(t), _) => out.push(json!({"text": t})),
            ("image_url", _, Some(url)) => match url.image()? {
                Image::Inline { mime, data } => {
                    out.push(json!({"inlineData": {"mimeType": mime, "data": data}}));
                }
                Image::Remote(_) => {
                    return Err(TranslateError::Unsupported(
                        "an http(s) image URL (send a data: URL)".into(),
                    ))
                }
            },
            (kind, _, _) => {
                return Err(TranslateError::Unsupported(format!(
                    "`{kind}` content in a user message"
                )))
            }
        }
    }
    Ok(out)
}

fn model_parts(m: &ChatMessage) -> Result<Vec<Value>, TranslateError> {
    let mut parts = Vec::new();
    if let Some(c) = &m.content {
        let text = c.text("assistant")?;
        if !text.is_empty() {
            parts.push(json!({"text": text}));
        }
    }
    for call in m.tool_calls.iter().flatten() {
        let mut part = json!({"functionCall": {"name": call.function.name, "args": call.function.arguments_json()?}});
        if let Some(sig) = call.id.strip_prefix(SIGNED_ID) {
            part["thoughtSignature"] = json!(sig);
        }
        parts.push(part);
    }
    Ok(parts)
}

fn function_response(
    m: &ChatMessage,
    names: &HashMap<&str, &str>,
) -> Result<Value, TranslateError> {
    let id = m.tool_call_id.as_deref().unwrap_or("");
    let name = names.get(id).ok_or_else(|| {
        TranslateError::Invalid(format!(
            "messages: tool_call_id `{id}` answers no tool call of an earlier assistant message"
        ))
    })?;
    let text = match &m.content {
        Some(c) => c.text("tool")?,
        None => String::new(),
    };
    // A JSON object result is given as is; anything else as its text.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"content": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// Gemini's `finishReason` as a chat `finish_reason`.
pub fn finish_reason(reason: &str, tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// The text (thoughts left out) and function calls of a response's first
/// candidate, and its finish reason.
fn candidate(v: &Value) -> (String, Vec<OutToolCall>, Option<String>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let c = v.pointer("/candidates/0");
    let parts = c
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array);
    for p in parts.into_iter().flatten() {
        if let Some(f) = p.get("functionCall") {
            let id = match p.get("thoughtSignature").and_then(Value::as_str) {
                Some(sig) => format!("{SIGNED_ID}{sig}"),
                None => format!("call_{}", new_id()),
            };
            calls.push(OutToolCall {
                id,
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: f.get("args").map_or_else(|| "{}".into(), Value::to_string),
            });
        } else if p.get("thought") != Some(&Value::Bool(true)) {
            text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""));
        }
    }
    let finish = c
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            v.pointer("/promptFeedback/blockReason")
                .map(|_| "SAFETY".to_owned())
        });
    (text, calls, finish)
}

/// A `generateContent` answer as a `chat.completion`; `None` when it is
/// not one.
pub fn response(body: &[u8], model: &str) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("candidates").is_none() && v.get("promptFeedback").is_none() {
        return None;
    }
    let id = v
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or("gemini");
    let (text, calls, finish) = candidate(&v);
    let finish = finish_reason(finish.as_deref().unwrap_or("STOP"), !calls.is_empty());
    let usage = usage_from_body(body).unwrap_or_default();
    let text = (!text.is_empty() || calls.is_empty()).then_some(text);
    let out = ChatOut::new(id, model);
    Some(Bytes::from(
        out.completion(text, &calls, finish, &usage).to_string(),
    ))
}

/// Turns a Gemini stream (`alt=sse`) into chat chunks while counting its
/// usage. Gemini has no end marker: `[DONE]` follows the upstream's end.
#[derive(Debug)]
pub struct ChatFromGemini {
    frames: SseFrames,
    sink: GeminiStreamUsage,
    writer: ChatStreamWriter,
}

impl ChatFromGemini {
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            frames: SseFrames::new(),
            sink: GeminiStreamUsage::default(),
            writer: ChatStreamWriter::new(ChatOut::new("gemini", model), include_usage),
        }
    }

    fn event(&mut self, ev: &SseEvent, buf: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        self.sink.frame(data);
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let w = &mut self.writer;
        if let Some(e) = v.get("error") {
            let e: GeminiError = serde_json::from_value(e.clone()).unwrap_or_default();
            w.error(buf, e.http_status(), &e.message);
            return;
        }
        if let Some(id) = v.get("responseId").and_then(Value::as_str) {
            w.set_id(id);
        }
        w.start(buf);
        let (text, calls, finish) = candidate(&v);
        w.text(buf, &text);
        for c in &calls {
            w.tool_call(buf, &c.id, &c.name, &c.arguments);
        }
        if let Some(f) = finish {
            let tools = w.has_tool_calls();
            w.finish(buf, finish_reason(&f, tools));
        }
    }

    fn usage(&self) -> crate::usage::Usage {
        self.sink.usage.map(|u| u.to_usage()).unwrap_or_default()
    }
}

impl StreamTap for ChatFromGemini {
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
        let usage = self.usage();
        match broken {
            Some(reason) => self.writer.error(&mut buf, 502, reason),
            None => self.writer.close(&mut buf, &usage),
        }
        (Bytes::from(buf), self.sink.summary())
    }
}
