//! Usage and errors in Gemini `generateContent` answers.
//!
//! A streamed answer (`alt=sse`) is a series of `data:` frames, each a
//! whole `GenerateContentResponse`, with no `[DONE]`; `usageMetadata` may
//! ride on every frame and is complete in the last one. A JSON answer is
//! one such response.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::tap::{StreamFailure, StreamSummary, Summarize};
use super::EventSink;
use crate::usage::Usage;

/// `usageMetadata` as Gemini writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Part of the prompt count, read from the context cache.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Thinking; billed as output but not in the candidates count.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// Tool results fed back to the model; billed as input.
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    #[serde(default)]
    pub total_token_count: u64,
}

impl UsageMetadata {
    /// As the gateway counts: cached prompt tokens are cache reads, the
    /// rest input; thoughts are output.
    pub fn to_usage(&self) -> Usage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        let cached = self.cached_content_token_count.min(prompt);
        Usage {
            input_tokens: prompt - cached,
            output_tokens: self.candidates_token_count + self.thoughts_token_count,
            cache_read_tokens: cached,
            ..Usage::default()
        }
    }
}

/// Gemini's error body: `{"error":{"code":…,"message":…,"status":…}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeminiError {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
}

impl GeminiError {
    /// The HTTP status the error stands for.
    pub fn http_status(&self) -> u16 {
        if (400..600).contains(&self.code) {
            return self.code;
        }
        match self.status.as_str() {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
            "UNAUTHENTICATED" => 401,
            "PERMISSION_DENIED" => 403,
            "NOT_FOUND" => 404,
            "RESOURCE_EXHAUSTED" => 429,
            "UNAVAILABLE" => 503,
            _ => 500,
        }
    }
}

#[derive(Deserialize)]
struct Candidate<'a> {
    #[serde(default, rename = "finishReason", borrow)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame<'a> {
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    error: Option<GeminiError>,
}

/// What a Gemini stream said about usage and how it ended.
#[derive(Debug, Default)]
pub struct GeminiStreamUsage {
    pub usage: Option<UsageMetadata>,
    /// A candidate carried a `finishReason`.
    pub finished: bool,
    pub error: Option<GeminiError>,
}

impl GeminiStreamUsage {
    /// Reads one frame's data.
    pub fn frame(&mut self, data: &[u8]) {
        let Ok(frame) = serde_json::from_slice::<Frame<'_>>(data) else {
            return;
        };
        if let Some(u) = frame.usage_metadata {
            self.usage = Some(u);
        }
        if frame.candidates.iter().any(|c| c.finish_reason.is_some()) {
            self.finished = true;
        }
        if let Some(e) = frame.error {
            self.error = Some(e);
        }
    }
}

impl EventSink for GeminiStreamUsage {
    fn wants(&self, _event: Option<&str>) -> bool {
        true
    }

    fn on_event(&mut self, _event: Option<&str>, data: &[u8]) {
        self.frame(data);
    }
}

impl Summarize for GeminiStreamUsage {
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

/// Usage from a JSON answer (`generateContent`).
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    let frame: Frame<'_> = serde_json::from_slice(body).ok()?;
    frame.usage_metadata.map(|u| u.to_usage())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::SseObserver;

    const STREAM: &str = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],",
        "\"usageMetadata\":{\"promptTokenCount\":120,\"totalTokenCount\":120},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],",
        "\"usageMetadata\":{\"promptTokenCount\":120,\"candidatesTokenCount\":7,\"cachedContentTokenCount\":100,",
        "\"thoughtsTokenCount\":30,\"totalTokenCount\":157}}\r\n\r\n",
    );

    #[test]
    fn the_last_frame_has_the_whole_usage() {
        let mut o = SseObserver::new(GeminiStreamUsage::default());
        for c in STREAM.as_bytes().chunks(9) {
            o.feed(c);
        }
        let s = o.finish().summary();
        assert!(s.completed);
        assert_eq!(
            s.usage,
            Usage {
                input_tokens: 20,
                output_tokens: 37,
                cache_read_tokens: 100,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn an_error_frame_is_seen_and_a_cut_stream_is_not_complete() {
        let mut o = SseObserver::new(GeminiStreamUsage::default());
        o.feed(STREAM.split("\r\n\r\n").next().unwrap().as_bytes());
        o.feed(b"\r\n\r\ndata: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n");
        let s = o.finish().summary();
        assert!(!s.completed);
        assert_eq!(s.error.unwrap().status, 503);
        assert_eq!(s.usage.input_tokens, 120);
    }

    #[test]
    fn body_usage() {
        let u = usage_from_body(br#"{"candidates":[],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"toolUsePromptTokenCount":3}}"#).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (8, 2));
        assert!(usage_from_body(b"{}").is_none());
    }
}
