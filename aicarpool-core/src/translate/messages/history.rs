//! The history written for a Claude account: turns merged so roles
//! alternate, content blocks, tool ids Claude takes (see
//! [`super::upstream`] for what is carried, dropped and refused).

use serde_json::{json, Value};

use crate::translate::neutral::{Image, Part, Role, ToolResult, Turn};

/// A tool call id as Claude takes it (`[A-Za-z0-9_-]+`); the same id
/// always maps the same way, so calls and results still match.
fn tool_id(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "toolu_".to_owned()
    } else {
        clean
    }
}

/// The turns as messages: roles alternate, tool results lead user turns.
pub(super) fn write_turns(turns: &[Turn]) -> Vec<Value> {
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
            "type": "tool_use", "id": tool_id(&call.id), "name": call.name,
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
    let mut b = json!({"type": "tool_result", "tool_use_id": tool_id(&r.call_id)});
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::messages::{write_request, DEFAULT_MAX_TOKENS};
    use crate::translate::neutral::{Conversation, ToolCall};

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
}
