//! A [`Conversation`] written as the Messages request for a Claude or
//! Anthropic-compatible account, without `model` (the gateway sets the
//! account's).
//!
//! **Carried**: the system instructions (one string, joined by blank
//! lines); turns, merged so roles alternate, tool results first in each
//! user turn; text, images (`base64` and `url`), tool calls and results
//! with their ids, `is_error`; signed thinking, and `redacted_thinking`
//! (see [`super::REDACTED_PREFIX`]) in assistant turns; tools with an
//! object `input_schema`; `tool_choice` and `disable_parallel_tool_use`;
//! `max_tokens` ([`DEFAULT_MAX_TOKENS`] when absent), `temperature`,
//! `top_p`, `top_k`, `stop_sequences`, `stream`; reasoning as
//! `thinking: {type: enabled, budget_tokens}` (at least 1024); the user as
//! `metadata.user_id`.
//!
//! **Emulated**: a JSON answer is a forced call of the tool [`JSON_TOOL`]
//! whose input schema is the client's (the gateway wraps the stream in
//! `tap::JsonFromTool`).
//!
//! **Dropped**, because Claude refuses the combination: thinking without
//! a signature (only Claude's own signed thinking goes back), empty text,
//! whitespace-only stop sequences, thinking when a tool call is forced;
//! with thinking on, `temperature`, `top_k` and a `top_p` under 0.95;
//! `top_p` when `temperature` is also set (newer Claude models take one).
//! With thinking on, `max_tokens` is raised above the budget. Trailing
//! whitespace of a final assistant turn (a prefill) is trimmed. Effort is
//! sent as a budget, not as `output_config.effort`, which compatible
//! accounts lack.
//!
//! **Refused**: a conversation with no turns, a tool schema that is not an
//! object, a JSON answer schema that is not an object.

use serde_json::{json, Map, Value};

use crate::translate::neutral::{
    Conversation, Image, JsonOutput, Part, Role, ToolChoice, ToolResult, ToolSpec, Turn,
};
use crate::translate::TranslateError;

/// `max_tokens` when the client set none (Claude requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

/// The tool a JSON answer is forced through.
pub const JSON_TOOL: &str = "json_answer";

/// The smallest thinking budget Claude takes.
const MIN_THINKING_BUDGET: u64 = 1024;

/// Room left for the answer when `max_tokens` is raised above a thinking
/// budget.
const ANSWER_ROOM_TOKENS: u64 = 4096;

/// Writes the Messages request body for `c`.
pub fn write_request(c: &Conversation) -> Result<Map<String, Value>, TranslateError> {
    let messages = write_turns(&c.turns);
    if messages.is_empty() {
        return Err(TranslateError::Invalid(
            "messages: at least one message with content is required".into(),
        ));
    }
    let mut body = Map::new();
    let system: Vec<&str> = c
        .system
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages));

    let mut tools = c
        .tools
        .iter()
        .map(write_tool)
        .collect::<Result<Vec<_>, _>>()?;
    let mut choice = c.tool_choice.as_ref().map(write_tool_choice);
    if let Some(json) = &c.json {
        tools.push(json_tool(json)?);
        // The answer must come through the tool; a tool the client forces
        // stays forced (its JSON comes next turn).
        if !matches!(c.tool_choice, Some(ToolChoice::Tool(_))) {
            choice = Some(if c.tools.is_empty() {
                json!({"type": "tool", "name": JSON_TOOL})
            } else {
                json!({"type": "any"})
            });
        }
    }
    if !tools.is_empty() {
        match (c.parallel_tool_calls, choice.as_mut()) {
            (Some(_), Some(ch)) if ch["type"] == "none" => {}
            (Some(parallel), Some(ch)) => ch["disable_parallel_tool_use"] = json!(!parallel),
            (Some(false), None) => {
                choice = Some(json!({"type": "auto", "disable_parallel_tool_use": true}));
            }
            _ => {}
        }
        body.insert("tools".into(), Value::Array(tools));
        // Claude refuses tool_choice without tools.
        if let Some(choice) = &choice {
            body.insert("tool_choice".into(), choice.clone());
        }
    }
    let forced = body
        .get("tool_choice")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "any" || t == "tool");

    let budget = c
        .reasoning
        .filter(|_| !forced)
        .map(|r| r.budget().max(MIN_THINKING_BUDGET));
    let mut max_tokens = c.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(budget) = budget {
        if max_tokens <= budget {
            max_tokens = budget + ANSWER_ROOM_TOKENS;
        }
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    body.insert("max_tokens".into(), json!(max_tokens));

    let thinking = budget.is_some();
    if let Some(t) = c.temperature.filter(|_| !thinking) {
        body.insert("temperature".into(), json!(t));
    }
    let top_p = c
        .top_p
        .filter(|p| !thinking || *p >= 0.95)
        .filter(|_| !body.contains_key("temperature"));
    if let Some(p) = top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = c.top_k.filter(|_| !thinking) {
        body.insert("top_k".into(), json!(k));
    }
    let stop: Vec<&str> = c
        .stop
        .iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), json!(stop));
    }
    if c.stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &c.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(body)
}

/// The turns as messages: roles alternate, tool results lead user turns.
fn write_turns(turns: &[Turn]) -> Vec<Value> {
    let mut merged: Vec<(Role, Vec<Value>, Vec<Value>)> = Vec::new();
    for turn in turns {
        let mut results = Vec::new();
        let mut blocks = Vec::new();
        for part in &turn.parts {
            match part {
                Part::ToolResult(r) => results.push(tool_result_block(r)),
                other => blocks.extend(block(other, turn.role)),
            }
        }
        if results.is_empty() && blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, r, b)) if *role == turn.role => {
                r.append(&mut results);
                b.append(&mut blocks);
            }
            _ => merged.push((turn.role, results, blocks)),
        }
    }
    if let Some((Role::Assistant, _, blocks)) = merged.last_mut() {
        trim_prefill(blocks);
    }
    merged
        .into_iter()
        .filter_map(|(role, mut results, blocks)| {
            results.extend(blocks);
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            (!results.is_empty()).then(|| json!({"role": role, "content": results}))
        })
        .collect()
}

/// Claude refuses a final assistant turn ending in whitespace.
fn trim_prefill(blocks: &mut Vec<Value>) {
    let Some(last) = blocks.last_mut() else {
        return;
    };
    if last["type"] != "text" {
        return;
    }
    let trimmed = last["text"].as_str().unwrap_or("").trim_end().to_owned();
    if trimmed.is_empty() {
        blocks.pop();
    } else {
        last["text"] = json!(trimmed);
    }
}

/// One part as a content block; `None` for what Claude cannot take.
fn block(part: &Part, role: Role) -> Option<Value> {
    match part {
        Part::Text(t) => text_block(t),
        Part::Image(image) => Some(image_block(image)),
        Part::Thinking { text, signature } if role == Role::Assistant => {
            let signature = signature.as_deref().filter(|s| !s.is_empty())?;
            Some(match signature.strip_prefix(super::REDACTED_PREFIX) {
                Some(data) => json!({"type": "redacted_thinking", "data": data}),
                None => json!({"type": "thinking", "thinking": text, "signature": signature}),
            })
        }
        Part::Thinking { .. } => None,
        Part::ToolCall(call) => Some(json!({
            "type": "tool_use", "id": call.id, "name": call.name,
            "input": Value::Object(call.arguments_object()),
        })),
        Part::ToolResult(r) => Some(tool_result_block(r)),
    }
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn image_block(image: &Image) -> Value {
    match image {
        Image::Inline { media_type, data } => json!({"type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}}),
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn tool_result_block(r: &ToolResult) -> Value {
    let mut b = json!({"type": "tool_result", "tool_use_id": r.call_id});
    let content: Vec<Value> = r
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => text_block(t),
            Part::Image(i) => Some(image_block(i)),
            _ => None,
        })
        .collect();
    match content.as_slice() {
        [] => {}
        [only] if only["type"] == "text" => b["content"] = only["text"].clone(),
        _ => b["content"] = Value::Array(content),
    }
    if r.is_error {
        b["is_error"] = json!(true);
    }
    b
}

fn write_tool(t: &ToolSpec) -> Result<Value, TranslateError> {
    let schema = object_schema(&t.parameters).ok_or_else(|| {
        TranslateError::Unsupported(format!("tool `{}`: a schema that is not an object", t.name))
    })?;
    let mut tool = json!({"name": t.name, "input_schema": schema});
    if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
        tool["description"] = json!(d);
    }
    Ok(tool)
}

fn json_tool(json: &JsonOutput) -> Result<Value, TranslateError> {
    let schema = match &json.schema {
        None => super::empty_object_schema(),
        Some(s) => object_schema(s).ok_or_else(|| {
            TranslateError::Unsupported("a JSON answer schema that is not an object".into())
        })?,
    };
    Ok(json!({
        "name": JSON_TOOL,
        "description": "Give your answer by calling this tool: its input is the answer, as JSON matching the schema.",
        "input_schema": schema,
    }))
}

/// `schema` as an object schema with `type: "object"` (Claude requires
/// one); `None` when it describes something else.
fn object_schema(schema: &Value) -> Option<Value> {
    let mut schema = match schema {
        Value::Null => return Some(super::empty_object_schema()),
        Value::Object(m) => m.clone(),
        _ => return None,
    };
    match schema.get("type") {
        None => {}
        // Gemini writes types in capitals.
        Some(Value::String(t)) if t.eq_ignore_ascii_case("object") => {}
        Some(_) => return None,
    }
    schema.insert("type".into(), json!("object"));
    Some(Value::Object(schema))
}

fn write_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Any => json!({"type": "any"}),
        ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::neutral::{Reasoning, ToolCall};

    fn user(text: &str) -> Turn {
        Turn {
            role: Role::User,
            parts: vec![Part::Text(text.into())],
        }
    }

    fn conversation(turns: Vec<Turn>) -> Conversation {
        Conversation {
            model: "m".into(),
            turns,
            ..Conversation::default()
        }
    }

    #[test]
    fn roles_alternate_and_tool_results_lead() {
        let call = |id: &str| {
            Part::ToolCall(ToolCall {
                id: id.into(),
                name: "f".into(),
                arguments: json!({"a": 1}),
            })
        };
        let result = |id: &str| {
            Part::ToolResult(ToolResult {
                call_id: id.into(),
                name: None,
                content: vec![Part::Text("ok".into())],
                is_error: false,
            })
        };
        let c = conversation(vec![
            user("hi"),
            Turn {
                role: Role::Assistant,
                parts: vec![call("c1")],
            },
            Turn {
                role: Role::Assistant,
                parts: vec![call("c2")],
            },
            user("also this"),
            Turn {
                role: Role::User,
                parts: vec![result("c1"), result("c2")],
            },
        ]);
        let body = write_request(&c).unwrap();
        let m = body["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1]["content"].as_array().unwrap().len(), 2);
        let last = m[2]["content"].as_array().unwrap();
        assert_eq!(last[0]["tool_use_id"], "c1");
        assert_eq!(last[1]["tool_use_id"], "c2");
        assert_eq!(last[1]["content"], "ok");
        assert_eq!(last[2]["text"], "also this");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(!body.contains_key("model"));
    }

    #[test]
    fn thinking_raises_max_tokens_and_drops_sampling() {
        let c = Conversation {
            max_tokens: Some(1000),
            temperature: Some(0.2),
            top_k: Some(3),
            reasoning: Some(Reasoning {
                budget_tokens: Some(500),
                ..Reasoning::default()
            }),
            ..conversation(vec![user("hi")])
        };
        let body = write_request(&c).unwrap();
        assert_eq!(body["thinking"]["budget_tokens"], 1024);
        assert_eq!(body["max_tokens"], 1024 + ANSWER_ROOM_TOKENS);
        assert!(!body.contains_key("temperature"));
        assert!(!body.contains_key("top_k"));
    }

    #[test]
    fn unsigned_thinking_is_not_sent_back() {
        let c = conversation(vec![
            user("hi"),
            Turn {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking {
                        text: "from gemini".into(),
                        signature: None,
                    },
                    Part::Thinking {
                        text: String::new(),
                        signature: Some(format!(
                            "{}DATA",
                            crate::translate::messages::REDACTED_PREFIX
                        )),
                    },
                    Part::Text("answer  \n".into()),
                ],
            },
        ]);
        let body = write_request(&c).unwrap();
        let blocks = body["messages"][1]["content"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks[0],
            json!({"type": "redacted_thinking", "data": "DATA"})
        );
        assert_eq!(blocks[1]["text"], "answer", "a prefill is trimmed");
    }

    #[test]
    fn json_answers_are_a_forced_tool_and_drop_thinking() {
        let c = Conversation {
            json: Some(JsonOutput {
                schema: Some(json!({"type": "OBJECT", "properties": {"a": {"type": "string"}}})),
            }),
            reasoning: Some(Reasoning::default()),
            ..conversation(vec![user("hi")])
        };
        let body = write_request(&c).unwrap();
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": JSON_TOOL})
        );
        assert_eq!(body["tools"][0]["name"], JSON_TOOL);
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert!(!body.contains_key("thinking"));
        let array = Conversation {
            json: Some(JsonOutput {
                schema: Some(json!({"type": "array"})),
            }),
            ..conversation(vec![user("hi")])
        };
        assert!(matches!(
            write_request(&array),
            Err(TranslateError::Unsupported(_))
        ));
    }

    #[test]
    fn tools_get_object_schemas_and_parallel_flag() {
        let c = Conversation {
            tools: vec![ToolSpec {
                name: "f".into(),
                description: None,
                parameters: json!({"properties": {}}),
            }],
            parallel_tool_calls: Some(false),
            temperature: Some(0.3),
            top_p: Some(0.9),
            stop: vec![" ".into(), "END".into()],
            ..conversation(vec![user("hi")])
        };
        let body = write_request(&c).unwrap();
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(
            body["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert!(!body.contains_key("top_p"));
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert!(write_request(&conversation(vec![])).is_err());
    }
}
