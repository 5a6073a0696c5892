//! A client's `/v1/messages` request read into a [`Conversation`].
//!
//! **Carried**: `model`; `system` (a string, or text blocks, one entry
//! each); `messages` with text, images (`base64` and `url` sources),
//! `tool_use` (id, name, input), `tool_result` (string or block content,
//! `is_error`) and `thinking` (text and signature); `role: "system"`
//! messages (Claude Code's mid-conversation system prompts) are appended
//! to the system instructions; custom `tools` (`input_schema`);
//! `tool_choice` (`auto`, `any`, `tool`, `none`) and
//! `disable_parallel_tool_use`; `max_tokens`, `temperature`, `top_p`,
//! `top_k`, `stop_sequences`, `stream`; `thinking` (`enabled` with its
//! budget, `adaptive`, `disabled`; `display: "omitted"` hides it) with
//! `output_config.effort`; a JSON schema answer (`output_config.format` or
//! the beta `output_format`, type `json_schema`); `metadata.user_id`.
//!
//! **Dropped**: Claude Code's `x-anthropic-billing-header` system block
//! (a marker for Anthropic, not an instruction), `cache_control` everywhere, `citations`,
//! `redacted_thinking` blocks (only Claude can read them), an empty
//! thinking signature, `context_management`, `container`, `service_tier`,
//! `betas` and fields not named here. A system message's position in the
//! history is lost (the neutral form has one system prompt).
//!
//! **Refused** (`TranslateError::Unsupported`): server tools (any tool
//! with a `type`, e.g. `web_search_20250305`, `bash_20250124`,
//! `text_editor_*`, `code_execution_*`), `mcp_servers`, `document`,
//! `search_result`, server-tool and other content blocks, `file` image
//! sources.

use serde_json::{Map, Value};

use super::options::{read_json_output, read_reasoning, read_tool, read_tool_choice};
use super::str_at;
use crate::translate::neutral::{Conversation, Image, Part, Role, ToolCall, ToolResult, Turn};
use crate::translate::TranslateError;

/// Claude Code's first system block, a marker for Anthropic's billing
/// rather than an instruction: other accounts do not get it.
const BILLING_HEADER: &str = "x-anthropic-billing-header:";

/// Reads a Messages request body.
pub fn read_request(body: &[u8]) -> Result<Conversation, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Invalid(format!("the request is not JSON: {e}")))?;
    let Value::Object(req) = v else {
        return Err(invalid("the request must be a JSON object"));
    };
    let mut c = Conversation {
        model: req
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("model: a string is required"))?
            .to_owned(),
        ..Conversation::default()
    };
    read_system(req.get("system"), &mut c.system)?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages: an array is required"))?;
    for (i, m) in messages.iter().enumerate() {
        read_message(m, i, &mut c)?;
    }
    if let Some(tools) = req.get("tools").filter(|t| !t.is_null()) {
        let tools = tools
            .as_array()
            .ok_or_else(|| invalid("tools: an array is required"))?;
        c.tools = tools.iter().map(read_tool).collect::<Result<_, _>>()?;
    }
    if req
        .get("mcp_servers")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(TranslateError::Unsupported("mcp_servers".into()));
    }
    if let Some(choice) = req.get("tool_choice").filter(|t| !t.is_null()) {
        read_tool_choice(choice, &mut c)?;
    }
    c.max_tokens = req.get("max_tokens").and_then(Value::as_u64);
    c.temperature = req.get("temperature").and_then(Value::as_f64);
    c.top_p = req.get("top_p").and_then(Value::as_f64);
    c.top_k = req.get("top_k").and_then(Value::as_u64);
    c.stop = req
        .get("stop_sequences")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    c.stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    c.reasoning = read_reasoning(&req);
    c.json = read_json_output(&req)?;
    c.user = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(c)
}

pub(super) fn invalid(message: &str) -> TranslateError {
    TranslateError::Invalid(message.to_owned())
}

fn read_system(system: Option<&Value>, out: &mut Vec<String>) -> Result<(), TranslateError> {
    match system {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            if !s.is_empty() {
                out.push(s.clone());
            }
            Ok(())
        }
        Some(Value::Array(blocks)) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = str_at(b, "text");
                        if !text.is_empty() && !text.starts_with(BILLING_HEADER) {
                            out.push(text.to_owned());
                        }
                    }
                    other => {
                        return Err(TranslateError::Unsupported(format!(
                            "system: `{}` blocks",
                            other.unwrap_or("untyped")
                        )))
                    }
                }
            }
            Ok(())
        }
        Some(_) => Err(invalid("system: a string or an array of text blocks")),
    }
}

fn read_message(m: &Value, i: usize, c: &mut Conversation) -> Result<(), TranslateError> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => return read_system(m.get("content"), &mut c.system),
        Some(other) => {
            return Err(TranslateError::Invalid(format!(
                "messages[{i}]: unknown role `{other}`"
            )))
        }
        None => return Err(TranslateError::Invalid(format!("messages[{i}]: no role"))),
    };
    let parts = match m.get("content") {
        Some(Value::String(s)) => text_part(s).into_iter().collect(),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for b in blocks {
                parts.extend(read_block(b, i)?);
            }
            parts
        }
        _ => {
            return Err(TranslateError::Invalid(format!(
                "messages[{i}].content: a string or an array of blocks is required"
            )))
        }
    };
    if !parts.is_empty() {
        c.turns.push(Turn { role, parts });
    }
    Ok(())
}

fn text_part(text: &str) -> Option<Part> {
    (!text.is_empty()).then(|| Part::Text(text.to_owned()))
}

/// One content block; `None` for a block that is dropped.
fn read_block(b: &Value, i: usize) -> Result<Option<Part>, TranslateError> {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind {
        "text" => text_part(str_at(b, "text")),
        "image" => Some(Part::Image(read_image(b, i)?)),
        "tool_use" => Some(Part::ToolCall(ToolCall {
            id: str_at(b, "id").to_owned(),
            name: str_at(b, "name").to_owned(),
            arguments: match b.get("input") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(input) => input.clone(),
            },
        })),
        "tool_result" => Some(Part::ToolResult(read_tool_result(b, i)?)),
        "thinking" => Some(Part::Thinking {
            text: str_at(b, "thinking").to_owned(),
            signature: Some(str_at(b, "signature"))
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }),
        "redacted_thinking" => None,
        other => {
            return Err(TranslateError::Unsupported(format!(
                "messages[{i}]: `{}` content blocks",
                if other.is_empty() { "untyped" } else { other }
            )))
        }
    })
}

fn read_image(b: &Value, i: usize) -> Result<Image, TranslateError> {
    let source = b.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(Image::Inline {
            media_type: str_at(source, "media_type").to_owned(),
            data: str_at(source, "data").to_owned(),
        }),
        Some("url") => Ok(Image::Url(str_at(source, "url").to_owned())),
        Some(other) => Err(TranslateError::Unsupported(format!(
            "messages[{i}]: images with a `{other}` source"
        ))),
        None => Err(TranslateError::Invalid(format!(
            "messages[{i}]: an image needs a source"
        ))),
    }
}

fn read_tool_result(b: &Value, i: usize) -> Result<ToolResult, TranslateError> {
    let content = match b.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => text_part(s).into_iter().collect(),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => parts.extend(text_part(str_at(block, "text"))),
                    Some("image") => parts.push(Part::Image(read_image(block, i)?)),
                    other => {
                        return Err(TranslateError::Unsupported(format!(
                            "messages[{i}]: `{}` blocks in a tool_result",
                            other.unwrap_or("untyped")
                        )))
                    }
                }
            }
            parts
        }
        Some(_) => {
            return Err(TranslateError::Invalid(format!(
                "messages[{i}]: tool_result content must be a string or blocks"
            )))
        }
    };
    Ok(ToolResult {
        call_id: str_at(b, "tool_use_id").to_owned(),
        name: None,
        content,
        is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::neutral::{Effort, Reasoning, ToolChoice};
    use serde_json::json;

    fn fixture_body(jsonl: &str) -> Vec<u8> {
        let line: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        serde_json::to_vec(&line["body_json"]).unwrap()
    }

    fn read(v: Value) -> Result<Conversation, TranslateError> {
        read_request(v.to_string().as_bytes())
    }

    #[test]
    fn claude_codes_real_request_translates() {
        for jsonl in [
            include_str!("../../../../testkit/fixtures/claude_apikey.jsonl"),
            include_str!("../../../../testkit/fixtures/claude_authtoken.jsonl"),
        ] {
            let body = fixture_body(jsonl);
            let raw: Value = serde_json::from_slice(&body).unwrap();
            let c = read_request(&body).unwrap();
            assert_eq!(c.model, "claude-opus-4-8");
            assert!(c.stream);
            assert_eq!(c.max_tokens, Some(64000));
            // Two system blocks (the billing marker dropped), then the
            // system message from the history.
            assert_eq!(c.system.len(), 3);
            assert!(c.system[0].starts_with("You are a Claude agent"));
            assert!(c.system[2].starts_with("Available agent types"));
            let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
            let raw_names: Vec<&str> = raw["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, raw_names);
            let bash = c.tools.iter().find(|t| t.name == "Bash").unwrap();
            assert_eq!(bash.parameters, raw["tools"][1]["input_schema"]);
            assert_eq!(c.turns.len(), 1);
            assert_eq!(c.turns[0].role, Role::User);
            assert_eq!(c.turns[0].parts.len(), 2);
            assert_eq!(c.turns[0].parts[1], Part::Text("say pong".into()));
            assert_eq!(
                c.reasoning,
                Some(Reasoning {
                    budget_tokens: None,
                    effort: Some(Effort::High),
                    show: true
                })
            );
            assert!(c.user.as_deref().unwrap().contains("session_id"));
        }
    }

    #[test]
    fn the_python_sdks_plain_request_translates() {
        let body = fixture_body(include_str!(
            "../../../../testkit/fixtures/py_anthropic_nonstream.jsonl"
        ));
        let c = read_request(&body).unwrap();
        assert!(!c.stream);
        assert_eq!(c.max_tokens, Some(64));
        assert_eq!(c.turns[0].parts, vec![Part::Text("say pong".into())]);
    }

    #[test]
    fn tool_use_and_results_keep_their_ids() {
        let c = read(json!({"model": "m", "messages": [
            {"role": "user", "content": "list"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"p": "/"}},
                {"type": "tool_use", "id": "toolu_2", "name": "ls", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a b",
                 "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [
                    {"type": "text", "text": "denied"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]}]}
        ], "tools": [{"name": "ls", "input_schema": {"type": "object"}}],
           "tool_choice": {"type": "any", "disable_parallel_tool_use": true}}))
        .unwrap();
        let assistant = &c.turns[1].parts;
        assert_eq!(assistant.len(), 3, "redacted thinking is dropped");
        assert_eq!(
            assistant[0],
            Part::Thinking {
                text: "hmm".into(),
                signature: Some("sig".into())
            }
        );
        let Part::ToolResult(second) = &c.turns[2].parts[1] else {
            panic!("not a result")
        };
        assert_eq!(second.call_id, "toolu_2");
        assert!(second.is_error);
        assert_eq!(second.content.len(), 2);
        assert_eq!(c.tool_name("toolu_1"), Some("ls"));
        assert_eq!(c.tool_choice, Some(ToolChoice::Any));
        assert_eq!(c.parallel_tool_calls, Some(false));
    }

    #[test]
    fn malformed_requests_are_errors() {
        for body in [
            json!([1]),
            json!({"messages": []}),
            json!({"model": "m"}),
            json!({"model": "m", "messages": [{"content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": 3}]}),
            json!({"model": "m", "messages": [], "tool_choice": {"type": "tool"}}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image"}]}]}),
        ] {
            assert!(read(body.clone()).is_err(), "{body}");
        }
    }
}
