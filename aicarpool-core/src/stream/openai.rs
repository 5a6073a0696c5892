//! Usage and errors in OpenAI answers: Chat Completions and Responses.
//!
//! A chat stream is `data:` chunks without event names, ended by
//! `data: [DONE]`; usage comes in one final chunk with empty `choices`
//! when the request asked `stream_options.include_usage`. A Responses
//! stream names its events; usage is in the `response` of the terminal
//! `response.completed`, `response.incomplete` or `response.failed`.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::frames::SseFrames;
use super::tap::{ClientStream, StreamFailure, StreamSummary, StreamTap, Summarize};
use super::EventSink;
use crate::usage::Usage;

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct CachedDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// `usage` of either API: chat names its counts `prompt_tokens` and
/// `completion_tokens`, Responses `input_tokens` and `output_tokens`.
/// Cached prompt tokens are part of the prompt count in both.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    pub completion_tokens: Option<u64>,
    #[serde(default, alias = "input_tokens_details")]
    prompt_tokens_details: Option<CachedDetails>,
}

impl WireUsage {
    /// As the gateway counts: cached prompt tokens are cache reads.
    pub fn to_usage(&self) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(prompt);
        Usage {
            input_tokens: prompt - cached,
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_tokens: cached,
            ..Usage::default()
        }
    }
}

/// An OpenAI error object (`{"message","type","code"}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OpenAiError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
}

impl OpenAiError {
    /// The HTTP status the error stands for.
    pub fn http_status(&self) -> u16 {
        if let Some(n) = self.code.as_ref().and_then(Value::as_u64) {
            if let Ok(n @ 400..=599) = u16::try_from(n) {
                return n;
            }
        }
        let code = self.code.as_ref().and_then(Value::as_str).unwrap_or("");
        let kind = self.kind.as_deref().unwrap_or("");
        let says = |s: &str| code.contains(s) || kind.contains(s);
        if says("rate_limit") || says("quota") {
            429
        } else if says("overloaded") {
            529
        } else if says("invalid_request") || says("context_length") {
            400
        } else if says("server_error") {
            500
        } else {
            502
        }
    }
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<OpenAiError>,
}

/// What a chat stream said about usage and how it ended.
#[derive(Debug, Default)]
pub struct ChatStreamUsage {
    pub usage: Option<WireUsage>,
    /// `data: [DONE]` arrived.
    pub done: bool,
    pub error: Option<OpenAiError>,
}

impl ChatStreamUsage {
    /// Reads one chunk's data. Content deltas are skipped without a parse.
    pub fn chunk(&mut self, data: &[u8]) {
        if data.trim_ascii() == b"[DONE]" {
            self.done = true;
            return;
        }
        if !contains(data, b"\"usage\"") && !contains(data, b"\"error\"") {
            return;
        }
        let Ok(c) = serde_json::from_slice::<ChatChunk>(data) else {
            return;
        };
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        if c.error.is_some() {
            self.error = c.error;
        }
    }
}

impl EventSink for ChatStreamUsage {
    fn wants(&self, _event: Option<&str>) -> bool {
        true
    }

    fn on_event(&mut self, _event: Option<&str>, data: &[u8]) {
        self.chunk(data);
    }
}

impl Summarize for ChatStreamUsage {
    fn summary(self) -> StreamSummary {
        StreamSummary {
            usage: self.usage.map(|u| u.to_usage()).unwrap_or_default(),
            completed: self.done && self.usage.is_some(),
            error: self.error.map(|e| StreamFailure {
                status: e.http_status(),
                message: e.message,
            }),
        }
    }
}

/// A chat stream for a client that did not ask for usage: the gateway
/// asked for it (to record it), so the final usage-only chunk is read and
/// dropped; every other event passes as it came.
#[derive(Debug, Default)]
pub struct ChatUsageStrip {
    frames: SseFrames,
    sink: ChatStreamUsage,
}

#[derive(Deserialize)]
struct UsagePeek {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<IgnoredAny>,
}

impl ChatUsageStrip {
    fn pass(&mut self, event: super::frames::SseEvent, out: &mut Vec<u8>) {
        if let Some(data) = event.data.as_deref() {
            self.sink.chunk(data);
            if contains(data, b"\"usage\"") {
                let usage_only = serde_json::from_slice::<UsagePeek>(data)
                    .is_ok_and(|p| p.usage.is_some() && p.choices.is_none_or(|c| c.is_empty()));
                if usage_only {
                    return;
                }
            }
        }
        out.extend_from_slice(&event.raw);
    }
}

impl StreamTap for ChatUsageStrip {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len());
        for event in self.frames.push(&chunk) {
            self.pass(event, &mut out);
        }
        Bytes::from(out)
    }

    fn end(mut self: Box<Self>, broken: Option<&str>) -> (Bytes, StreamSummary) {
        let mut out = Vec::new();
        if let Some(event) = self.frames.finish() {
            self.pass(event, &mut out);
        }
        if let Some(reason) = broken {
            out.extend_from_slice(&ClientStream::OpenAiChat.error_event(reason));
        }
        (Bytes::from(out), self.sink.summary())
    }
}

#[derive(Deserialize)]
struct ResponseHolder {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<OpenAiError>,
}

#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    response: Option<ResponseHolder>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<Value>,
}

/// What a Responses stream said about usage and how it ended.
#[derive(Debug, Default)]
pub struct ResponsesStreamUsage {
    pub usage: Option<WireUsage>,
    /// A terminal event arrived.
    pub finished: bool,
    pub error: Option<OpenAiError>,
}

const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl EventSink for ResponsesStreamUsage {
    fn wants(&self, event: Option<&str>) -> bool {
        match event {
            None | Some("error") => true,
            Some(name) => TERMINAL.contains(&name),
        }
    }

    fn on_event(&mut self, _event: Option<&str>, data: &[u8]) {
        let Ok(ev) = serde_json::from_slice::<ResponsesEvent>(data) else {
            return;
        };
        if TERMINAL.contains(&ev.kind.as_str()) {
            self.finished = true;
            if let Some(r) = ev.response {
                self.usage = r.usage.or(self.usage);
                if ev.kind == "response.failed" {
                    self.error = Some(r.error.unwrap_or(OpenAiError {
                        message: "the response failed".into(),
                        ..OpenAiError::default()
                    }));
                }
            }
        } else if ev.kind == "error" {
            self.error = Some(OpenAiError {
                message: ev.message.unwrap_or_default(),
                kind: None,
                code: ev.code,
            });
        }
    }
}

impl Summarize for ResponsesStreamUsage {
    fn summary(self) -> StreamSummary {
        StreamSummary {
            usage: self.usage.map(|u| u.to_usage()).unwrap_or_default(),
            completed: self.finished && self.usage.is_some(),
            error: self.error.map(|e| StreamFailure {
                status: e.http_status(),
                message: e.message,
            }),
        }
    }
}

/// Usage from a JSON answer of either API (its top-level `usage`).
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    let holder: ResponseHolder = serde_json::from_slice(body).ok()?;
    holder.usage.map(|u| u.to_usage())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::SseObserver;

    #[test]
    fn chat_usage_from_the_final_chunk() {
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"the usage\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":9,",
            "\"total_tokens\":59,\"prompt_tokens_details\":{\"cached_tokens\":40}}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut o = SseObserver::new(ChatStreamUsage::default());
        for c in stream.as_bytes().chunks(11) {
            o.feed(c);
        }
        let s = o.finish().summary();
        assert!(s.completed);
        assert_eq!(
            (
                s.usage.input_tokens,
                s.usage.cache_read_tokens,
                s.usage.output_tokens
            ),
            (10, 40, 9)
        );
    }

    #[test]
    fn the_usage_chunk_the_client_did_not_ask_for_is_dropped() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        );
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n";
        let all = format!("{stream}{usage}data: [DONE]\n\n");
        let mut tap: Box<dyn StreamTap> = Box::new(ChatUsageStrip::default());
        let mut out = Vec::new();
        for c in all.as_bytes().chunks(7) {
            out.extend_from_slice(&tap.chunk(Bytes::copy_from_slice(c)));
        }
        let (tail, seen) = tap.end(None);
        out.extend_from_slice(&tail);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{stream}data: [DONE]\n\n")
        );
        assert!(seen.completed);
        assert_eq!((seen.usage.input_tokens, seen.usage.output_tokens), (4, 2));
    }

    #[test]
    fn chat_without_usage_is_not_complete() {
        let mut o = SseObserver::new(ChatStreamUsage::default());
        o.feed(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert!(!o.finish().summary().completed);
    }

    #[test]
    fn responses_terminal_events() {
        for (kind, error) in [
            ("response.completed", None),
            ("response.incomplete", None),
            ("response.failed", Some(500)),
        ] {
            let err = if error.is_some() {
                ",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}"
            } else {
                ""
            };
            let stream = format!(
                "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"x\"}}\n\n\
                 event: {kind}\ndata: {{\"type\":\"{kind}\",\"response\":{{\"id\":\"r\",\"usage\":{{\"input_tokens\":30,\
                 \"input_tokens_details\":{{\"cached_tokens\":10}},\"output_tokens\":5}}{err}}}}}\n\n"
            );
            let mut o = SseObserver::new(ResponsesStreamUsage::default());
            o.feed(stream.as_bytes());
            let s = o.finish().summary();
            assert!(s.completed, "{kind}");
            assert_eq!(
                (
                    s.usage.input_tokens,
                    s.usage.cache_read_tokens,
                    s.usage.output_tokens
                ),
                (20, 10, 5)
            );
            assert_eq!(s.error.map(|e| e.status), error, "{kind}");
        }
    }

    #[test]
    fn body_usage_of_both_apis() {
        let chat =
            usage_from_body(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#).unwrap();
        assert_eq!((chat.input_tokens, chat.output_tokens), (3, 4));
        let resp = usage_from_body(br#"{"usage":{"input_tokens":6,"output_tokens":7,"output_tokens_details":{"reasoning_tokens":2}}}"#).unwrap();
        assert_eq!((resp.input_tokens, resp.output_tokens), (6, 7));
    }

    #[test]
    fn error_statuses() {
        let e = |code: Value, kind: &str| OpenAiError {
            message: String::new(),
            kind: Some(kind.into()),
            code: Some(code),
        };
        assert_eq!(
            e(Value::from("rate_limit_exceeded"), "requests").http_status(),
            429
        );
        assert_eq!(e(Value::from(503), "x").http_status(), 503);
        assert_eq!(e(Value::Null, "server_error").http_status(), 500);
    }
}
