//! Translation between the three client protocols (Anthropic Messages,
//! OpenAI Chat Completions and Responses, Gemini `generateContent`) and
//! the three account protocols (Anthropic Messages, OpenAI Chat
//! Completions, Gemini), so any client can be served by any account its
//! owner lets serve it.
//!
//! Every direction goes through the [`neutral`] form. Each protocol has
//! one module, with the same parts:
//!
//! | module | protocol | client side | account side |
//! |---|---|---|---|
//! | [`messages`] | Anthropic Messages | `read_request`, `MessagesWriter`, `write_answer`, `error_body` | `write_request`, `MessagesReader`, `read_answer` |
//! | [`generate`] | Gemini `generateContent` | `read_request`, `GeminiWriter`, `write_answer`, `error_body` | `write_request`, `GeminiReader`, `read_answer` |
//! | [`responses`] | OpenAI Responses | `read_request`, `ResponsesWriter`, `write_answer`, `error_body` | — |
//! | [`completions`] | OpenAI Chat Completions | (see below) | `write_request`, `CompletionsReader`, `read_answer` |
//!
//! A stream is translated by [`tap::Translated`]: the account side's
//! reader turns each SSE event into neutral events, the client side's
//! writer turns those into the client's bytes, one event at a time.
//!
//! A Chat Completions *client* is served by Claude and Gemini accounts
//! through the older direct translators ([`chat`], [`anthropic`],
//! [`gemini`]), described next.
//!
//! ### Chat Completions clients
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
pub mod completions;
pub mod gemini;
pub mod generate;
pub mod messages;
pub mod neutral;
pub mod responses;
pub mod tap;

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
    Bytes::from(error_json(status, &upstream_message(upstream)).to_string())
}

/// The message of an upstream's error answer, in any protocol's shape
/// (`error.message` or `message`), or its text.
pub fn upstream_message(upstream: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(upstream).ok();
    parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(upstream).trim().to_owned())
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
