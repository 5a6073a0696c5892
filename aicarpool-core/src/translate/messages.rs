//! Anthropic Messages, both sides of translation.
//!
//! **Client side** (Claude Code or an Anthropic SDK is the client, the
//! account speaks another protocol): [`read_request`] reads `/v1/messages`
//! into a [`Conversation`]; [`MessagesWriter`] writes the neutral stream
//! as Messages SSE, [`write_answer`] the whole answer, [`error_body`] an
//! error.
//!
//! **Account side** (the client speaks another protocol, the account is
//! Claude or Anthropic-compatible): [`write_request`] writes the request
//! body (without `model`, which the gateway sets per account);
//! [`MessagesReader`] reads the account's SSE into neutral events,
//! [`read_answer`] its whole answer.
//!
//! Each file's docs say what it carries, drops and refuses:
//! [`request`] (the client's request in, its tools and settings in
//! `options`), [`upstream`] (the account's request out, its history in
//! `history`), [`writer`] (answers out to the client), [`reader`]
//! (answers in from the account).
//!
//! Shared here: stop reasons both ways, the error shape, the usage
//! object, and the encoding of `redacted_thinking` in the neutral form
//! (a [`Part::Thinking`] with no text whose signature is
//! [`REDACTED_PREFIX`] and the block's `data`, so a Claude account gets
//! it back intact whatever protocol the client speaks).
//!
//! [`Conversation`]: super::neutral::Conversation
//! [`Part::Thinking`]: super::neutral::Part::Thinking

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::neutral::StopReason;
use crate::usage::Usage;

mod history;
mod options;
pub mod reader;
pub mod request;
pub mod upstream;
pub mod writer;

#[cfg(test)]
mod tests;

pub use reader::{read_answer, MessagesReader};
pub use request::read_request;
pub use upstream::{write_request, DEFAULT_MAX_TOKENS, JSON_TOOL};
pub use writer::{write_answer, MessagesWriter};

/// Marks a neutral thinking signature that holds a `redacted_thinking`
/// block's `data` (Anthropic's signatures are base64 and never contain
/// a colon).
pub const REDACTED_PREFIX: &str = "redacted:";

/// A `stop_reason` as the neutral stop. Unknown reasons (and
/// `pause_turn`, which only server tools cause) are an end of turn.
pub fn stop_reason(s: &str) -> StopReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// The `stop_reason` a neutral stop is written as.
pub fn stop_reason_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::Refusal => "refusal",
    }
}

/// The Anthropic error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The error object Anthropic writes, in a body and in an `error` event.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// An error answer in the Anthropic shape.
pub fn error_body(status: u16, message: &str) -> Bytes {
    Bytes::from(error_json(status, message).to_string())
}

/// `usage` as Anthropic writes it: `input_tokens` excludes cached tokens,
/// which are counted apart as reads and writes.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens(),
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
    })
}

/// A message id in Anthropic's `msg_…` form: the upstream's id (prefixed
/// when it lacks `msg_`), or a fresh one.
pub fn message_id(upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) => format!("msg_{id}"),
        None => {
            let n: u128 = rand::random();
            format!("msg_{n:032x}")
        }
    }
}

/// The string at `key`, or "".
fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `{"type": "object"}`, with `properties` as Anthropic's own tools have.
fn empty_object_schema() -> Value {
    Value::Object(Map::from_iter([
        ("type".to_owned(), json!("object")),
        ("properties".to_owned(), json!({})),
    ]))
}
