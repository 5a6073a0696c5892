//! OpenAI Responses, the client side of translation.
//!
//! Codex and the OpenAI SDKs speak Responses; a Claude or Gemini account
//! answers. [`read_request`] reads `POST /v1/responses` into the neutral
//! [`Conversation`] (plus what the answer needs to be written in the
//! client's terms: which tools were custom or namespaced), and
//! [`ResponsesWriter`] / [`write_answer`] write the answer back as the
//! Responses stream or response object.
//!
//! **Translated**
//! - `model`, `instructions` and `system`/`developer` messages (the system
//!   prompt, in order), `input` as a string or as items: `message` (roles
//!   `user`, `assistant`, `system`, `developer`; parts `input_text`,
//!   `output_text`, `refusal`, `input_image` as a `data:` or `http(s)`
//!   URL), `function_call` / `function_call_output` (the `call_id` is the
//!   tool call's id both ways), `custom_tool_call` /
//!   `custom_tool_call_output`, `reasoning` (summary text, and
//!   `encrypted_content` as the thinking signature: a Claude signature
//!   sent out as `encrypted_content` comes back to Claude unchanged).
//! - `tools`: `function`; `custom` (freeform tools such as Codex's
//!   `apply_patch`) as a function taking `{"input": string}`, its grammar
//!   appended to the description, answered as `custom_tool_call` with the
//!   raw `input`; `namespace` groups flattened to `<namespace>__<name>`
//!   (Codex's own flat spelling) and answered as a `function_call` with
//!   `name` and `namespace` apart again.
//! - `tool_choice` (`auto`, `none`, `required`, one function or custom
//!   tool; `allowed_tools` as its mode), `parallel_tool_calls`,
//!   `max_output_tokens`, `temperature`, `top_p`, `stream`, `reasoning`
//!   (`effort`; `summary` other than `none` shows the reasoning),
//!   `text.format` (`json_schema`, `json_object`), `user` (or
//!   `safety_identifier`).
//! - The answer: `message`, `reasoning`, `function_call` and
//!   `custom_tool_call` items with the stream's `output_item`,
//!   `content_part`, `output_text`, `reasoning_summary_*`,
//!   `function_call_arguments` and `custom_tool_call_input` events, then
//!   `response.completed` with the whole response (see below for its
//!   status and usage). Errors end the stream with `response.failed`.
//!
//! **Dropped**
//! - Built-in tools that live at OpenAI (`web_search*`, `file_search`,
//!   `computer_use*`, `image_generation`, `code_interpreter`, `mcp`,
//!   `local_shell`, `tool_search` and any other non-function type): no
//!   other provider can run them. Codex always sends `web_search`. Their
//!   types are listed in [`ResponsesRequest::dropped_tools`].
//! - History items of those tools (`web_search_call`, `local_shell_call`
//!   and its output, `computer_call`, `mcp_*`, `image_generation_call`,
//!   `code_interpreter_call`, `file_search_call`), `compaction` items
//!   (encrypted by OpenAI, readable only there) and unknown item types.
//! - `store`, `include`, `prompt_cache_key`, `client_metadata`,
//!   `metadata`, `service_tier`, `text.verbosity`, `truncation`,
//!   `max_tool_calls`, `top_logprobs`, image `detail`.
//! - A `developer` or `system` message in the middle of the history joins
//!   the system prompt (the neutral form has one system prompt).
//!
//! **Refused** ([`super::TranslateError::Unsupported`]): `previous_response_id`
//! and `conversation` (the gateway stores no responses: send the whole
//! history), `background`, `prompt` (stored templates), `item_reference`
//! items, `input_image` by `file_id`, `input_file`, `input_audio`, images
//! in system messages, and a `tool_choice` naming a built-in tool.
//!
//! **Honest limits**
//! - The stream ends with `response.completed` in every non-error case;
//!   an answer cut by the token limit or a content filter has `status:
//!   "incomplete"` and `incomplete_details.reason` (`max_output_tokens`,
//!   `content_filter`) in it, as Codex and the SDKs only finish on
//!   `response.completed`.
//! - A custom tool's input is written in one `custom_tool_call_input.delta`
//!   when the call is complete (the upstream streams it as JSON
//!   arguments, which are only decodable whole).
//! - Ids are made here: `resp_…`, `msg_…`, `rs_…`, `fc_…`, `ctc_…`; the
//!   `call_id` is the upstream's tool call id. `output_tokens_details.
//!   reasoning_tokens` is 0 (upstreams count thinking as output).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::json;

use super::neutral::Conversation;

mod object;
mod request;
mod stream;
#[cfg(test)]
mod tests;
mod tools;

pub use request::read_request;
pub use stream::{write_answer, ResponsesWriter};

/// A Responses request read into the neutral form, with what the answer
/// needs to be written back in the client's terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponsesRequest {
    pub conversation: Conversation,
    /// Flat names of the custom (freeform) tools: their calls are answered
    /// as `custom_tool_call` with the raw `input`.
    pub custom_tools: BTreeSet<String>,
    /// Flat name (`<namespace>__<name>`) → (namespace, name) of the tools
    /// of `namespace` groups.
    pub namespaced: BTreeMap<String, (String, String)>,
    /// Types of the built-in tools left out.
    pub dropped_tools: Vec<String>,
}

/// How a tool the upstream called is named to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTool {
    pub namespace: Option<String>,
    pub name: String,
    /// Answered as `custom_tool_call` rather than `function_call`.
    pub custom: bool,
}

impl ResponsesRequest {
    /// The client's name for the tool the upstream called `flat`.
    pub fn client_tool(&self, flat: &str) -> ClientTool {
        let (namespace, name) = match self.namespaced.get(flat) {
            Some((ns, name)) => (Some(ns.clone()), name.clone()),
            None => (None, flat.to_owned()),
        };
        ClientTool {
            namespace,
            name,
            custom: self.custom_tools.contains(flat),
        }
    }
}

/// The flat name of `name` in `namespace`, spelled as Codex spells it
/// when a boundary cannot keep the two apart.
pub fn flat_name(namespace: &str, name: &str) -> String {
    format!(
        "{}__{}",
        namespace.trim_end_matches('_'),
        name.trim_start_matches('_')
    )
}

/// An error answer in the OpenAI shape: `{"error": {"message", "type",
/// "param", "code"}}`.
pub fn error_body(status: u16, message: &str) -> Bytes {
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    let code = match status {
        401 => Some("invalid_api_key"),
        404 => Some("model_not_found"),
        429 => Some("rate_limit_exceeded"),
        500..=599 => Some("server_error"),
        _ => None,
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    Bytes::from(body.to_string())
}

/// The `error.code` of a `response.failed` for an upstream status.
pub(crate) fn failure_code(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_exceeded",
        _ => "server_error",
    }
}
