//! OpenAI Chat Completions, the account side of translation.
//!
//! An `openai_compatible` account (DeepSeek, OpenRouter, Kimi, …) serves
//! an Anthropic Messages or Gemini client: [`write_request`] writes the
//! neutral [`Conversation`](super::neutral::Conversation) as a chat
//! request (without `model`: the account's model map sets it),
//! [`CompletionsReader`] reads the chunk stream into neutral events and
//! [`read_answer`] a whole `chat.completion`. [`read_request`] reads a
//! chat request back into the neutral form (for tests and property
//! checks of the round trip).
//!
//! **Translated**
//! - The system prompt as one leading `system` message; user text (one
//!   string when the turn is only text, else `text` / `image_url` parts,
//!   images as `data:` URLs or their URL); assistant text and
//!   `tool_calls` (`arguments` as JSON text); each tool result as its own
//!   `tool` message right after the assistant turn that called it, before
//!   the rest of the user's turn.
//! - `tools` (functions), `tool_choice` (`auto`, `none`, `required`, one
//!   function), `parallel_tool_calls` (only with tools), `max_tokens`,
//!   `temperature`, `top_p`, `stop`, `stream` with
//!   `stream_options.include_usage` (the usage chunk is what settles the
//!   request), `reasoning_effort` when reasoning was asked for,
//!   `response_format` (`json_schema` named `answer`, or `json_object`),
//!   `user`.
//! - The answer: `content` as text, `reasoning_content` (DeepSeek, Kimi)
//!   or `reasoning` (OpenRouter) as thinking, `tool_calls` by `index`,
//!   `finish_reason` (`stop`, `length`, `tool_calls` / `function_call`,
//!   `content_filter`), `usage` (`prompt_tokens_details.cached_tokens`, or
//!   DeepSeek's `prompt_cache_hit_tokens`, as cache reads), in-stream
//!   `error` chunks.
//!
//! **Dropped**
//! - Thinking in the history: compatible providers cannot take it back
//!   (DeepSeek refuses `reasoning_content` in input), and their own
//!   reasoning has no signature.
//! - `top_k` (not in the Chat API), a tool result's error flag (the API
//!   has none; the text says what went wrong), the reasoning budget and
//!   whether to show it (only the effort level is sent).
//!
//! **Honest limits**
//! - Images in tool results go in a `user` message after the `tool`
//!   messages (tool messages carry text only); a tool message without
//!   text says `[image]`.
//! - Several text parts of one turn are joined with blank lines, as many
//!   compatible providers take only string content.
//! - Streamed tool calls: the first call streams as it comes; later calls
//!   (parallel calls, or fragments of several calls interleaved) are
//!   gathered by `index` and written whole when the answer finishes, so
//!   interleaved fragments are never mixed up. A call without an `id`
//!   gets `call_<n>`.
//! - The `Finish` event waits for the usage chunk (it comes after the
//!   `finish_reason` chunk), `[DONE]` or the end of the stream.

use serde_json::Value;

use super::neutral::StopReason;
use crate::usage::Usage;

mod answer;
mod request;
mod stream;
#[cfg(test)]
mod tests;

pub use answer::read_answer;
pub use request::{read_request, write_request};
pub use stream::CompletionsReader;

/// The stop a `finish_reason` stands for.
fn stop_reason(finish: &str) -> StopReason {
    match finish {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// A chat `usage` object as the gateway counts it: cached prompt tokens
/// (OpenAI's `prompt_tokens_details.cached_tokens`, DeepSeek's
/// `prompt_cache_hit_tokens`, Kimi's `cached_tokens`) are cache reads.
fn read_usage(usage: &Value) -> Usage {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64);
    let prompt = n(usage.get("prompt_tokens")).unwrap_or(0);
    let cached = n(usage.pointer("/prompt_tokens_details/cached_tokens"))
        .or_else(|| n(usage.get("prompt_cache_hit_tokens")))
        .or_else(|| n(usage.get("cached_tokens")))
        .unwrap_or(0)
        .min(prompt);
    Usage {
        input_tokens: prompt - cached,
        output_tokens: n(usage.get("completion_tokens")).unwrap_or(0),
        cache_read_tokens: cached,
        ..Usage::default()
    }
}
