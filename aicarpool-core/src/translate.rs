//! Translation between the OpenAI Chat Completions API and the Anthropic
//! Messages and Gemini `generateContent` APIs, so an OpenAI-shaped chat
//! request can be served by a Claude (or Anthropic-compatible) account or
//! by a Gemini account.
//!
//! **Translated** (request → upstream, answer → client, streamed or not):
//! - `messages`: `system` and `developer` turns become the system prompt
//!   (Claude `system`, Gemini `systemInstruction`); `user` text and images
//!   (`data:` URLs; `http(s)` URLs for Claude only); `assistant` text and
//!   `tool_calls`; `tool` results (`tool_call_id`). Consecutive turns of one
//!   role are merged, as both upstreams require alternating roles.
//! - `tools` (type `function`), `tool_choice` (`auto`, `none`, `required`,
//!   one function), `parallel_tool_calls: false` (Claude).
//! - `max_tokens` / `max_completion_tokens` (Claude needs one: 4096 when
//!   absent), `temperature`, `top_p`, `stop`, `stream`,
//!   `stream_options.include_usage`, `user` (Claude `metadata.user_id`);
//!   for Gemini also `presence_penalty`, `frequency_penalty`, `seed` and
//!   `response_format` (`json_object`, `json_schema`).
//! - The answer: text, tool calls, `finish_reason` (`stop`, `length`,
//!   `tool_calls`, `content_filter`) and `usage` (`prompt_tokens` counts
//!   cached and cache-written tokens, `prompt_tokens_details.cached_tokens`
//!   the cache reads). Upstream errors keep their status and message, in
//!   the OpenAI error shape.
//!
//! **Refused with 400** (they cannot be honoured): `n` > 1, `logprobs`,
//! `top_logprobs`, `logit_bias`, audio output, `prediction`, the legacy
//! `functions`/`function_call`, `web_search_options`, tools other than
//! functions, non-text content in system or tool turns, other content
//! parts (audio, files); for Claude also `response_format` JSON modes and
//! non-zero penalties; for Gemini `http(s)` image URLs.
//!
//! **Ignored**: `seed` (Claude), `store`, `metadata`, `service_tier`,
//! `reasoning_effort`, `prompt_cache_key` and fields not listed here.
//! Thinking is not shown: Claude `thinking` blocks and Gemini thought
//! parts are left out of the answer (their tokens are counted).

use bytes::Bytes;
use serde_json::{json, Value};

pub mod anthropic;
pub mod chat;
pub mod gemini;

/// Why a chat request cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The request asks for something the upstream cannot do.
    #[error("{0} cannot be translated for this model's upstream")]
    Unsupported(String),
}

/// The OpenAI error object for `status`.
pub fn error_json(status: u16, message: &str) -> Value {
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    json!({"error": {"message": message, "type": kind, "code": status}})
}

/// An upstream's error answer (any protocol) in the OpenAI error shape,
/// status and message kept.
pub fn error_body(status: u16, upstream: &[u8]) -> Bytes {
    let parsed: Option<Value> = serde_json::from_slice(upstream).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(upstream).trim().to_owned());
    Bytes::from(error_json(status, &message).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_errors_keep_status_and_message() {
        let b = error_body(
            400,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#,
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["message"], "max_tokens: too big");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let b = error_body(
            429,
            br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "quota");
    }
}
