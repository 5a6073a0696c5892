//! The OpenAI Chat Completions side of translation: the request as the
//! client sent it, and the answer (JSON or chunks) written back to it.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::TranslateError;
use crate::usage::Usage;

/// A chat request, as much of it as translation reads. Fields not named
/// here are ignored; those that cannot be honoured are refused by
/// [`ChatRequest::refuse_unsupported`].
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(default)]
    pub response_format: Option<Value>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<Value>,
    #[serde(default)]
    pub logit_bias: Option<Map<String, Value>>,
    #[serde(default)]
    pub audio: Option<Value>,
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    #[serde(default)]
    pub prediction: Option<Value>,
    #[serde(default)]
    pub functions: Option<Value>,
    #[serde(default)]
    pub function_call: Option<Value>,
    #[serde(default)]
    pub web_search_options: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// `content`: a string, or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub image_url: Option<ImageUrl>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

impl FunctionCall {
    /// The arguments as a JSON object (an empty string is `{}`).
    pub fn arguments_json(&self) -> Result<Value, TranslateError> {
        if self.arguments.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&self.arguments).map_err(|_| {
            TranslateError::Invalid(format!(
                "tool_calls: the arguments of `{}` are not valid JSON",
                self.name
            ))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub function: Option<FunctionDef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// An image as a translation target takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image<'a> {
    /// A `data:` URL: media type and base64 data.
    Inline { mime: &'a str, data: &'a str },
    /// An `http(s)` URL.
    Remote(&'a str),
}

impl ImageUrl {
    pub fn image(&self) -> Result<Image<'_>, TranslateError> {
        if let Some(rest) = self.url.strip_prefix("data:") {
            let (mime, data) = rest.split_once(";base64,").ok_or_else(|| {
                TranslateError::Invalid("image_url: only base64 data URLs are supported".into())
            })?;
            return Ok(Image::Inline { mime, data });
        }
        if self.url.starts_with("https://") || self.url.starts_with("http://") {
            return Ok(Image::Remote(&self.url));
        }
        Err(TranslateError::Invalid(
            "image_url: must be an http(s) or data URL".into(),
        ))
    }
}

impl Content {
    /// The text of a message that may only hold text (system, tool).
    pub fn text(&self, role: &str) -> Result<String, TranslateError> {
        match self {
            Content::Text(s) => Ok(s.clone()),
            Content::Parts(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    match (p.kind.as_str(), &p.text, &p.refusal) {
                        ("text", Some(t), _) | ("refusal", _, Some(t)) => out.push(t.as_str()),
                        (kind, _, _) => {
                            return Err(TranslateError::Unsupported(format!(
                                "`{kind}` content in a {role} message"
                            )))
                        }
                    }
                }
                Ok(out.join("\n"))
            }
        }
    }
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<Self, TranslateError> {
        serde_json::from_slice(body).map_err(|e| TranslateError::Invalid(format!("{e}")))
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the client asked for the final usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The output bound the client set, under either name.
    pub fn max_output(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Refuses what neither Claude nor Gemini can do as asked.
    pub fn refuse_unsupported(&self) -> Result<(), TranslateError> {
        let refuse = |what: &str| Err(TranslateError::Unsupported(what.to_owned()));
        if self.n.is_some_and(|n| n > 1) {
            return refuse("n > 1 (several choices)");
        }
        if self.logprobs == Some(true) || self.top_logprobs.as_ref().is_some_and(|v| !v.is_null()) {
            return refuse("logprobs");
        }
        if self.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
            return refuse("logit_bias");
        }
        let audio_out = self
            .modalities
            .as_ref()
            .is_some_and(|m| m.iter().any(|x| x == "audio"));
        if self.audio.is_some() || audio_out {
            return refuse("audio output");
        }
        if self.prediction.is_some() {
            return refuse("prediction (predicted outputs)");
        }
        if self.functions.is_some() || self.function_call.is_some() {
            return refuse("functions/function_call (use tools and tool_choice)");
        }
        if self.web_search_options.is_some() {
            return refuse("web_search_options");
        }
        for t in self.tools.iter().flatten() {
            if t.kind != "function" || t.function.is_none() {
                return refuse(&format!("tools of type `{}`", t.kind));
            }
        }
        Ok(())
    }

    /// `response_format`: `None` for text, else its type and JSON schema.
    pub fn json_format(&self) -> Result<Option<(String, Option<Value>)>, TranslateError> {
        let Some(f) = self.response_format.as_ref().filter(|f| !f.is_null()) else {
            return Ok(None);
        };
        let kind = f.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => Ok(None),
            "json_object" => Ok(Some((kind.to_owned(), None))),
            "json_schema" => {
                let schema = f.pointer("/json_schema/schema").cloned();
                Ok(Some((kind.to_owned(), schema)))
            }
            other => Err(TranslateError::Invalid(format!(
                "response_format.type `{other}` is unknown"
            ))),
        }
    }
}

/// The `usage` object of a chat answer.
pub fn usage_json(u: &Usage) -> Value {
    let prompt = u.input_tokens + u.cache_write_tokens() + u.cache_read_tokens;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
    })
}

/// A tool call in an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct OutToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON string.
    pub arguments: String,
}

/// Who an answer is from: the id, time and model every chunk repeats.
#[derive(Debug, Clone)]
pub struct ChatOut {
    pub id: String,
    pub created: i64,
    pub model: String,
}

impl ChatOut {
    pub fn new(id: &str, model: &str) -> Self {
        Self {
            id: format!("chatcmpl-{id}"),
            created: chrono::Utc::now().timestamp(),
            model: model.to_owned(),
        }
    }

    /// A whole `chat.completion`.
    pub fn completion(
        &self,
        text: Option<String>,
        tool_calls: &[OutToolCall],
        finish_reason: &str,
        usage: &Usage,
    ) -> Value {
        let mut message = json!({"role": "assistant", "content": text, "refusal": null});
        if !tool_calls.is_empty() {
            message["tool_calls"] = tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
        }
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
            "usage": usage_json(usage),
        })
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        Bytes::from(format!("data: {c}\n\n"))
    }
}

/// Writes a `chat.completion.chunk` stream.
#[derive(Debug)]
pub struct ChatStreamWriter {
    out: ChatOut,
    include_usage: bool,
    started: bool,
    tool_calls: u32,
    closed: bool,
}

impl ChatStreamWriter {
    pub fn new(out: ChatOut, include_usage: bool) -> Self {
        Self {
            out,
            include_usage,
            started: false,
            tool_calls: 0,
            closed: false,
        }
    }

    pub fn set_id(&mut self, id: &str) {
        if !self.started {
            self.out.id = format!("chatcmpl-{id}");
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether any tool call was written.
    pub fn has_tool_calls(&self) -> bool {
        self.tool_calls > 0
    }

    fn delta(&mut self, buf: &mut Vec<u8>, delta: Value, finish: Option<&str>) {
        if !self.started {
            self.started = true;
            let first = json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "logprobs": null, "finish_reason": null}]);
            buf.extend_from_slice(&self.out.chunk(first, None));
            if delta.as_object().is_some_and(Map::is_empty) && finish.is_none() {
                return;
            }
        }
        let choices =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        buf.extend_from_slice(&self.out.chunk(choices, None));
    }

    /// The opening chunk (role), once.
    pub fn start(&mut self, buf: &mut Vec<u8>) {
        if !self.started {
            self.delta(buf, json!({}), None);
        }
    }

    pub fn text(&mut self, buf: &mut Vec<u8>, text: &str) {
        if !text.is_empty() {
            self.delta(buf, json!({"content": text}), None);
        }
    }

    /// Opens a tool call; returns its index for [`Self::tool_arguments`].
    pub fn tool_call(&mut self, buf: &mut Vec<u8>, id: &str, name: &str, arguments: &str) -> u32 {
        let index = self.tool_calls;
        self.tool_calls += 1;
        let call = json!({"index": index, "id": id, "type": "function",
                          "function": {"name": name, "arguments": arguments}});
        self.delta(buf, json!({"tool_calls": [call]}), None);
        index
    }

    pub fn tool_arguments(&mut self, buf: &mut Vec<u8>, index: u32, part: &str) {
        let call = json!({"index": index, "function": {"arguments": part}});
        self.delta(buf, json!({"tool_calls": [call]}), None);
    }

    pub fn finish(&mut self, buf: &mut Vec<u8>, reason: &str) {
        self.delta(buf, json!({}), Some(reason));
    }

    /// The usage chunk (if the client asked for it), then `[DONE]`.
    pub fn close(&mut self, buf: &mut Vec<u8>, usage: &Usage) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.include_usage {
            buf.extend_from_slice(&self.out.chunk(json!([]), Some(usage_json(usage))));
        }
        buf.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// An error chunk, as OpenAI ends a failed stream; nothing follows.
    pub fn error(&mut self, buf: &mut Vec<u8>, status: u16, message: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        let data = super::error_json(status, message);
        buf.extend_from_slice(format!("data: {data}\n\n").as_bytes());
    }
}
