//! The chat request, written from the neutral form and read back.

use serde_json::{json, Map, Value};

use crate::translate::neutral::{
    Conversation, Effort, Image, JsonOutput, Part, Reasoning, Role, ToolCall, ToolChoice,
    ToolResult, ToolSpec, Turn,
};
use crate::translate::TranslateError;

/// The chat body for `c`, without `model`.
pub fn write_request(c: &Conversation) -> Result<Map<String, Value>, TranslateError> {
    let mut messages = Vec::new();
    let system: Vec<&str> = c
        .system
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system.join("\n\n")}));
    }
    for turn in &c.turns {
        match turn.role {
            Role::User => write_user(&turn.parts, &mut messages),
            Role::Assistant => write_assistant(&turn.parts, &mut messages),
        }
    }
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err(TranslateError::Invalid(
            "the conversation has no messages".into(),
        ));
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !c.tools.is_empty() {
        let tools: Vec<Value> = c
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        // Providers refuse `parallel_tool_calls` without tools.
        if let Some(p) = c.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(choice) = &c.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), v);
    }
    if let Some(n) = c.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = c.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = c.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !c.stop.is_empty() {
        body.insert("stop".into(), json!(c.stop));
    }
    if c.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(r) = &c.reasoning {
        body.insert("reasoning_effort".into(), json!(r.effort_level().as_str()));
    }
    if let Some(j) = &c.json {
        let format = match &j.schema {
            Some(schema) => json!({"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": false}}),
            None => json!({"type": "json_object"}),
        };
        body.insert("response_format".into(), format);
    }
    if let Some(u) = &c.user {
        body.insert("user".into(), json!(u));
    }
    Ok(body)
}

fn image_url(image: &Image) -> Value {
    let url = match image {
        Image::Inline { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(u) => u.clone(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// Text and images as chat content: a string when it is only text.
fn content(texts: &[&str], images: &[&Image]) -> Value {
    if images.is_empty() {
        return json!(texts.join("\n\n"));
    }
    let mut parts: Vec<Value> = texts
        .iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    parts.extend(images.iter().map(|i| image_url(i)));
    Value::Array(parts)
}

/// A user turn: its tool results first (each a `tool` message), the
/// images they returned, then the user's own text and images.
fn write_user(parts: &[Part], messages: &mut Vec<Value>) {
    let mut result_images: Vec<&Image> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut images: Vec<&Image> = Vec::new();
    for part in parts {
        match part {
            Part::ToolResult(r) => {
                let mut text = r.text();
                let mut has_image = false;
                for p in &r.content {
                    if let Part::Image(i) = p {
                        result_images.push(i);
                        has_image = true;
                    }
                }
                if text.is_empty() && has_image {
                    text = "[image]".into();
                }
                messages.push(json!({"role": "tool", "tool_call_id": r.call_id, "content": text}));
            }
            Part::Text(t) => texts.push(t),
            Part::Image(i) => images.push(i),
            Part::Thinking { .. } | Part::ToolCall(_) => {}
        }
    }
    if !result_images.is_empty() {
        messages.push(json!({"role": "user", "content": content(&[], &result_images)}));
    }
    if !texts.is_empty() || !images.is_empty() {
        messages.push(json!({"role": "user", "content": content(&texts, &images)}));
    }
}

fn write_assistant(parts: &[Part], messages: &mut Vec<Value>) {
    let mut texts: Vec<&str> = Vec::new();
    let mut calls = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => texts.push(t),
            Part::ToolCall(c) => calls.push(json!({"id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json()}})),
            Part::Thinking { .. } | Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    if texts.is_empty() && calls.is_empty() {
        return;
    }
    let text = texts.join("\n\n");
    let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    messages.push(m);
}

/// Reads a chat request into the neutral form.
pub fn read_request(body: &[u8]) -> Result<Conversation, TranslateError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Invalid(format!("the request is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| TranslateError::Invalid("the request must be a JSON object".into()))?;
    let mut c = Conversation {
        model: str_of(&value, "model").unwrap_or_default().to_owned(),
        ..Conversation::default()
    };
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::Invalid("messages: a list is required".into()))?;
    for (i, m) in messages.iter().enumerate() {
        read_message(m, i, &mut c)?;
    }
    for t in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(f) = t.get("function") else { continue };
        let Some(name) = str_of(f, "name") else {
            continue;
        };
        c.tools.push(ToolSpec {
            name: name.to_owned(),
            description: str_of(f, "description").map(str::to_owned),
            parameters: f.get("parameters").cloned().unwrap_or(json!({})),
        });
    }
    c.tool_choice = match obj.get("tool_choice") {
        Some(Value::String(s)) => match s.as_str() {
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Any),
            _ => Some(ToolChoice::Auto),
        },
        Some(v @ Value::Object(_)) => v
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Tool(n.to_owned())),
        _ => None,
    };
    c.parallel_tool_calls = obj.get("parallel_tool_calls").and_then(Value::as_bool);
    c.max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_u64));
    c.temperature = obj.get("temperature").and_then(Value::as_f64);
    c.top_p = obj.get("top_p").and_then(Value::as_f64);
    c.stop = match obj.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    c.stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    c.reasoning = str_of(&value, "reasoning_effort").map(|e| Reasoning {
        effort: Effort::parse(e),
        ..Reasoning::default()
    });
    c.json = match obj.get("response_format").and_then(|f| str_of(f, "type")) {
        Some("json_object") => Some(JsonOutput { schema: None }),
        Some("json_schema") => Some(JsonOutput {
            schema: value
                .pointer("/response_format/json_schema/schema")
                .cloned(),
        }),
        _ => None,
    };
    c.user = str_of(&value, "user").map(str::to_owned);
    Ok(c)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn push(c: &mut Conversation, role: Role, part: Part) {
    match c.turns.last_mut() {
        Some(t) if t.role == role => t.parts.push(part),
        _ => c.turns.push(Turn {
            role,
            parts: vec![part],
        }),
    }
}

fn read_parts(content: Option<&Value>) -> Vec<Part> {
    match content {
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match str_of(p, "type") {
                Some("text") => str_of(p, "text").map(|t| Part::Text(t.to_owned())),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .or_else(|| p.get("image_url"))
                        .and_then(Value::as_str)?;
                    Some(Part::Image(match url.strip_prefix("data:") {
                        Some(rest) => {
                            let (media_type, data) = rest.split_once(";base64,")?;
                            Image::Inline {
                                media_type: media_type.to_owned(),
                                data: data.to_owned(),
                            }
                        }
                        None => Image::Url(url.to_owned()),
                    }))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn read_message(m: &Value, index: usize, c: &mut Conversation) -> Result<(), TranslateError> {
    let role = str_of(m, "role")
        .ok_or_else(|| TranslateError::Invalid(format!("messages[{index}]: a role is required")))?;
    match role {
        "system" | "developer" => {
            for p in read_parts(m.get("content")) {
                if let Part::Text(t) = p {
                    c.system.push(t);
                }
            }
        }
        "user" => {
            for p in read_parts(m.get("content")) {
                push(c, Role::User, p);
            }
        }
        "assistant" => {
            for p in read_parts(m.get("content")) {
                push(c, Role::Assistant, p);
            }
            for call in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = str_of(call, "id").unwrap_or_default().to_owned();
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let raw = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let arguments = ToolCall::parse_arguments(raw);
                push(
                    c,
                    Role::Assistant,
                    Part::ToolCall(ToolCall {
                        id,
                        name,
                        arguments,
                    }),
                );
            }
        }
        "tool" => {
            let call_id = str_of(m, "tool_call_id").unwrap_or_default().to_owned();
            let result = ToolResult {
                call_id,
                name: None,
                content: read_parts(m.get("content")),
                is_error: false,
            };
            push(c, Role::User, Part::ToolResult(result));
        }
        other => {
            return Err(TranslateError::Invalid(format!(
                "messages[{index}]: unknown role `{other}`"
            )))
        }
    }
    Ok(())
}
