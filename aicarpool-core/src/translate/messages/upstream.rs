//! A [`Conversation`] written as the Messages request for a Claude or
//! Anthropic-compatible account, without `model` (the gateway sets the
//! account's).
//!
//! **Carried**: the system instructions (one string, joined by blank
//! lines); turns, merged so roles alternate, tool results first in each
//! user turn; text, images (`base64` and `url`), tool calls and results
//! with their ids (characters Claude refuses in an id become `_`),
//! `is_error`; signed thinking, and `redacted_thinking`
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
//! whitespace-only stop sequences, thinking when a tool call is forced,
//! after a prefill, or in a tool loop whose last assistant turn lost its
//! signed thinking;
//! with thinking on, `temperature`, `top_k` and a `top_p` under 0.95;
//! `top_p` when `temperature` is also set (newer Claude models take one).
//! With thinking on, `max_tokens` is raised above the budget. Trailing
//! whitespace of a final assistant turn (a prefill) is trimmed. Effort is
//! sent as a budget, not as `output_config.effort`, which compatible
//! accounts lack.
//!
//! **Refused**: a conversation with no turns, a tool schema that is not an
//! object, a JSON answer schema that is not an object.
//!
//! **Limits**: tool names are sent as they are (Claude takes
//! `[A-Za-z0-9_-]{1,64}`); a thinking signature is taken to be Claude's
//! (one another account made, after the client switched accounts, is
//! refused by Claude); history with tool calls but no tools defined, or
//! calls without results, is sent as it is and Claude may refuse it; a
//! JSON schema's nested Gemini-style capital types are not rewritten.

use serde_json::{json, Map, Value};

use super::history::write_turns;
use crate::translate::neutral::{Conversation, JsonOutput, ToolChoice, ToolSpec};
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
        .filter(|_| !forced && thinking_fits(&body))
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

/// Whether Claude takes thinking with these messages: not with a prefill
/// (a final assistant turn), nor in a tool loop whose last assistant turn
/// does not open with its signed thinking (a client that could not keep
/// it, or an earlier answer from another account).
fn thinking_fits(body: &Map<String, Value>) -> bool {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return true;
    };
    if messages.last().is_some_and(|m| m["role"] == "assistant") {
        return false;
    }
    let Some(last_assistant) = messages.iter().rev().find(|m| m["role"] == "assistant") else {
        return true;
    };
    let blocks = last_assistant["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let calls_tools = blocks.iter().any(|b| b["type"] == "tool_use");
    let opens_with_thinking = blocks
        .first()
        .is_some_and(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking");
    !calls_tools || opens_with_thinking
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
    use crate::translate::neutral::{Part, Reasoning, Role, ToolCall, ToolResult, Turn};

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
    fn thinking_is_dropped_where_claude_would_refuse_it() {
        let thinking = |turns| Conversation {
            reasoning: Some(Reasoning::default()),
            ..conversation(turns)
        };
        let unsigned_loop = thinking(vec![
            user("hi"),
            Turn {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall {
                    id: "fc.1/x".into(),
                    name: "f".into(),
                    arguments: json!({}),
                })],
            },
            Turn {
                role: Role::User,
                parts: vec![Part::ToolResult(ToolResult {
                    call_id: "fc.1/x".into(),
                    name: None,
                    content: vec![],
                    is_error: false,
                })],
            },
        ]);
        let body = write_request(&unsigned_loop).unwrap();
        assert!(!body.contains_key("thinking"));
        assert_eq!(body["messages"][1]["content"][0]["id"], "fc_1_x");
        assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "fc_1_x");
        let prefill = thinking(vec![
            user("hi"),
            Turn {
                role: Role::Assistant,
                parts: vec![Part::Text("{".into())],
            },
        ]);
        assert!(!write_request(&prefill).unwrap().contains_key("thinking"));
        assert!(write_request(&thinking(vec![user("hi")]))
            .unwrap()
            .contains_key("thinking"));
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
