//! Reading a Responses request into the neutral form.

use serde_json::{json, Map, Value};

use super::tools::{read_tool_choice, read_tools};
use super::{flat_name, ResponsesRequest};
use crate::translate::neutral::{
    Effort, Image, JsonOutput, Part, Reasoning, Role, ToolCall, ToolResult, Turn,
};
use crate::translate::TranslateError;

/// Item types of OpenAI's built-in tools: records of work done at OpenAI
/// that no other provider can continue, left out of the history.
const BUILT_IN_ITEMS: &[&str] = &[
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "local_shell_call",
    "local_shell_call_output",
    "image_generation_call",
    "code_interpreter_call",
    "mcp_call",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "tool_search_call",
    "tool_search_output",
    "compaction",
    "compaction_summary",
];

/// Reads a `POST /v1/responses` body.
pub fn read_request(body: &[u8]) -> Result<ResponsesRequest, TranslateError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Invalid(format!("the request is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("the request must be a JSON object"))?;
    refuse_stored_state(obj)?;
    let mut req = ResponsesRequest::default();
    read_tools(obj.get("tools"), &mut req)?;
    let c = &mut req.conversation;
    c.model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err(invalid("model: a model name is required")),
    };
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_system(&mut c.system, s.clone()),
        Some(_) => return Err(invalid("instructions: must be a string")),
    }
    let mut history = History::default();
    match obj.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => history.push(Role::User, Part::Text(s.clone())),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                read_item(item, i, &mut history, &mut c.system)?;
            }
        }
        Some(_) => return Err(invalid("input: must be a string or a list of items")),
    }
    c.turns = history.turns;
    c.tool_choice = read_tool_choice(obj.get("tool_choice"))?;
    c.parallel_tool_calls = obj.get("parallel_tool_calls").and_then(Value::as_bool);
    c.max_tokens = obj.get("max_output_tokens").and_then(Value::as_u64);
    c.temperature = obj.get("temperature").and_then(Value::as_f64);
    c.top_p = obj.get("top_p").and_then(Value::as_f64);
    c.stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    c.reasoning = read_reasoning(obj.get("reasoning"));
    c.json = read_text_format(obj.get("text"))?;
    c.user = ["user", "safety_identifier"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    Ok(req)
}

pub(super) fn invalid(message: &str) -> TranslateError {
    TranslateError::Invalid(message.to_owned())
}

pub(super) fn unsupported(what: String) -> TranslateError {
    TranslateError::Unsupported(what)
}

/// Requests that lean on state kept at OpenAI cannot be served elsewhere.
fn refuse_stored_state(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    if present("previous_response_id") {
        return Err(unsupported(
            "previous_response_id (no responses are stored here: send the whole history in `input`, with `store: false`)".into(),
        ));
    }
    if present("conversation") {
        return Err(unsupported(
            "conversation (stored conversations: send the whole history in `input`)".into(),
        ));
    }
    if obj.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "background (responses run in the background)".into(),
        ));
    }
    if present("prompt") {
        return Err(unsupported("prompt (stored prompt templates)".into()));
    }
    Ok(())
}

fn push_system(system: &mut Vec<String>, text: String) {
    if !text.is_empty() {
        system.push(text);
    }
}

/// Turns built from items: consecutive items of one role share a turn.
#[derive(Debug, Default)]
struct History {
    turns: Vec<Turn>,
}

impl History {
    fn push(&mut self, role: Role, part: Part) {
        match self.turns.last_mut() {
            Some(t) if t.role == role => t.parts.push(part),
            _ => self.turns.push(Turn {
                role,
                parts: vec![part],
            }),
        }
    }
}

pub(super) fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn read_item(
    item: &Value,
    index: usize,
    history: &mut History,
    system: &mut Vec<String>,
) -> Result<(), TranslateError> {
    let at = |what: &str| TranslateError::Invalid(format!("input[{index}]: {what}"));
    if !item.is_object() {
        return Err(at("must be an object"));
    }
    // A message may leave out its type (`{"role", "content"}`).
    let kind = str_of(item, "type").unwrap_or(if item.get("role").is_some() {
        "message"
    } else {
        ""
    });
    match kind {
        "message" => read_message(item, index, history, system),
        "function_call" | "custom_tool_call" => {
            let call_id = str_of(item, "call_id")
                .or_else(|| str_of(item, "id"))
                .ok_or_else(|| at("a tool call needs a `call_id`"))?;
            let name = str_of(item, "name").ok_or_else(|| at("a tool call needs a `name`"))?;
            let name = match str_of(item, "namespace") {
                Some(ns) if !ns.is_empty() => flat_name(ns, name),
                _ => name.to_owned(),
            };
            let arguments = if kind == "custom_tool_call" {
                json!({"input": str_of(item, "input").unwrap_or_default()})
            } else {
                match item.get("arguments") {
                    Some(Value::String(raw)) => ToolCall::parse_arguments(raw),
                    Some(Value::Object(m)) => Value::Object(m.clone()),
                    _ => json!({}),
                }
            };
            let call = ToolCall {
                id: call_id.to_owned(),
                name,
                arguments,
            };
            history.push(Role::Assistant, Part::ToolCall(call));
            Ok(())
        }
        "function_call_output" | "custom_tool_call_output" => {
            let call_id =
                str_of(item, "call_id").ok_or_else(|| at("a tool output needs a `call_id`"))?;
            let (content, is_error) = read_tool_output(item.get("output"), index)?;
            let result = ToolResult {
                call_id: call_id.to_owned(),
                name: None,
                content,
                is_error,
            };
            history.push(Role::User, Part::ToolResult(result));
            Ok(())
        }
        "reasoning" => {
            let texts = |key: &str| -> Vec<String> {
                item.get(key)
                    .and_then(Value::as_array)
                    .map(|parts| {
                        parts
                            .iter()
                            .filter_map(|p| str_of(p, "text"))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut text = texts("summary");
            if text.is_empty() {
                text = texts("content");
            }
            let text = text.join("\n\n");
            let signature = str_of(item, "encrypted_content")
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            if !text.is_empty() || signature.is_some() {
                history.push(Role::Assistant, Part::Thinking { text, signature });
            }
            Ok(())
        }
        "item_reference" => Err(unsupported(format!(
            "input[{index}]: item_reference (stored items: send the item itself)"
        ))),
        k if BUILT_IN_ITEMS.contains(&k) => Ok(()),
        // Newer item types carry nothing another provider could use.
        _ => Ok(()),
    }
}

fn read_message(
    item: &Value,
    index: usize,
    history: &mut History,
    system: &mut Vec<String>,
) -> Result<(), TranslateError> {
    let role = str_of(item, "role").unwrap_or("user");
    let parts = read_content(item.get("content"), index)?;
    match role {
        "system" | "developer" => {
            let mut texts = Vec::with_capacity(parts.len());
            for p in parts {
                match p {
                    Part::Text(t) => texts.push(t),
                    _ => {
                        return Err(unsupported(format!(
                            "input[{index}]: images in a {role} message"
                        )))
                    }
                }
            }
            push_system(system, texts.join("\n\n"));
        }
        "user" | "assistant" => {
            let role = if role == "user" {
                Role::User
            } else {
                Role::Assistant
            };
            for p in parts {
                history.push(role, p);
            }
        }
        other => {
            return Err(TranslateError::Invalid(format!(
                "input[{index}]: unknown role `{other}`"
            )))
        }
    }
    Ok(())
}

/// A message's `content`: a string, or text and image parts.
fn read_content(content: Option<&Value>, index: usize) -> Result<Vec<Part>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(TranslateError::Invalid(format!(
                "input[{index}].content: must be a string or a list of parts"
            )))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let kind = str_of(p, "type").unwrap_or("");
        match kind {
            "input_text" | "output_text" | "text" | "summary_text" | "reasoning_text" => {
                out.push(Part::Text(str_of(p, "text").unwrap_or_default().to_owned()))
            }
            "refusal" => out.push(Part::Text(
                str_of(p, "refusal").unwrap_or_default().to_owned(),
            )),
            "input_image" => out.push(Part::Image(read_image(p, index)?)),
            "input_file" | "input_audio" => {
                return Err(unsupported(format!("input[{index}]: `{kind}` content")))
            }
            other => {
                return Err(TranslateError::Invalid(format!(
                    "input[{index}]: unknown content part `{other}`"
                )))
            }
        }
    }
    Ok(out)
}

fn read_image(part: &Value, index: usize) -> Result<Image, TranslateError> {
    // The SDKs send `image_url` as a string; some clients nest `{url}`.
    let url = match part.get("image_url") {
        Some(Value::String(u)) => Some(u.as_str()),
        Some(v) => str_of(v, "url"),
        None => None,
    };
    let Some(url) = url else {
        if part.get("file_id").is_some_and(|v| !v.is_null()) {
            return Err(unsupported(format!(
                "input[{index}]: input_image by file_id (files stored at OpenAI)"
            )));
        }
        return Err(TranslateError::Invalid(format!(
            "input[{index}]: input_image needs an image_url"
        )));
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
            TranslateError::Invalid(format!(
                "input[{index}]: only base64 data URLs are supported"
            ))
        })?;
        return Ok(Image::Inline {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_owned()));
    }
    Err(TranslateError::Invalid(format!(
        "input[{index}]: image_url must be an http(s) or data URL"
    )))
}

/// A tool output: a string, content parts, or (older Codex) an object
/// `{content, success}`.
fn read_tool_output(
    output: Option<&Value>,
    index: usize,
) -> Result<(Vec<Part>, bool), TranslateError> {
    match output {
        None | Some(Value::Null) => Ok((vec![Part::Text(String::new())], false)),
        Some(Value::String(s)) => Ok((vec![Part::Text(s.clone())], false)),
        Some(Value::Array(_)) => Ok((read_content(output, index)?, false)),
        Some(Value::Object(o)) => {
            let failed = o.get("success").and_then(Value::as_bool) == Some(false);
            let content = match o.get("content") {
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                other => read_content(other, index)?,
            };
            Ok((content, failed))
        }
        Some(other) => Ok((vec![Part::Text(other.to_string())], false)),
    }
}

fn read_reasoning(reasoning: Option<&Value>) -> Option<Reasoning> {
    let r = reasoning.filter(|v| v.is_object())?;
    let effort = str_of(r, "effort");
    if effort == Some("none") {
        return None;
    }
    let summary = str_of(r, "summary").or_else(|| str_of(r, "generate_summary"));
    Some(Reasoning {
        budget_tokens: None,
        effort: effort.and_then(Effort::parse),
        show: summary.is_some_and(|s| s != "none"),
    })
}

fn read_text_format(text: Option<&Value>) -> Result<Option<JsonOutput>, TranslateError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match str_of(format, "type").unwrap_or("text") {
        "text" => Ok(None),
        "json_object" => Ok(Some(JsonOutput { schema: None })),
        "json_schema" => Ok(Some(JsonOutput {
            schema: format.get("schema").cloned(),
        })),
        other => Err(TranslateError::Invalid(format!(
            "text.format: unknown type `{other}`"
        ))),
    }
}
