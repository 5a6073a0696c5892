//! Reading a Responses request's `tools` and `tool_choice`.

use serde_json::{json, Value};

use super::request::{invalid, str_of, unsupported};
use super::{flat_name, ResponsesRequest};
use crate::translate::neutral::{ToolChoice, ToolSpec};
use crate::translate::TranslateError;

/// The parameters a custom tool is given: its raw input as one string.
fn custom_parameters() -> Value {
    json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]})
}

pub(super) fn read_tools(
    tools: Option<&Value>,
    req: &mut ResponsesRequest,
) -> Result<(), TranslateError> {
    let Some(list) = tools.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let list = list
        .as_array()
        .ok_or_else(|| invalid("tools: must be a list"))?;
    for tool in list {
        match str_of(tool, "type").unwrap_or("") {
            "function" | "custom" => add_tool(tool, None, req)?,
            "namespace" => {
                let ns = str_of(tool, "name")
                    .ok_or_else(|| invalid("tools: a namespace needs a `name`"))?;
                for inner in tool
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match str_of(inner, "type").unwrap_or("function") {
                        "function" | "custom" => add_tool(inner, Some(ns), req)?,
                        other => req.dropped_tools.push(format!("{ns}.{other}")),
                    }
                }
            }
            other => req.dropped_tools.push(other.to_owned()),
        }
    }
    Ok(())
}

fn add_tool(
    tool: &Value,
    namespace: Option<&str>,
    req: &mut ResponsesRequest,
) -> Result<(), TranslateError> {
    let custom = str_of(tool, "type") == Some("custom");
    let name = str_of(tool, "name").ok_or_else(|| invalid("tools: a tool needs a `name`"))?;
    let flat = match namespace {
        Some(ns) => {
            let flat = flat_name(ns, name);
            req.namespaced
                .insert(flat.clone(), (ns.to_owned(), name.to_owned()));
            flat
        }
        None => name.to_owned(),
    };
    let mut description = str_of(tool, "description").map(str::to_owned);
    let parameters = if custom {
        req.custom_tools.insert(flat.clone());
        if let Some(grammar) = tool.get("format").and_then(|f| str_of(f, "definition")) {
            let syntax = tool
                .get("format")
                .and_then(|f| str_of(f, "syntax"))
                .unwrap_or("lark");
            let note = format!(
                "The `input` argument must follow this {syntax} grammar:\n```\n{grammar}\n```"
            );
            description = Some(match description {
                Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                _ => note,
            });
        }
        custom_parameters()
    } else {
        match tool.get("parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => json!({"type": "object", "properties": {}}),
        }
    };
    req.conversation.tools.push(ToolSpec {
        name: flat,
        description,
        parameters,
    });
    Ok(())
}

pub(super) fn read_tool_choice(
    choice: Option<&Value>,
) -> Result<Option<ToolChoice>, TranslateError> {
    let Some(choice) = choice.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Some(mode) = choice.as_str() {
        return match mode {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Any)),
            other => Err(TranslateError::Invalid(format!(
                "tool_choice: unknown mode `{other}`"
            ))),
        };
    }
    match str_of(choice, "type").unwrap_or("") {
        "function" | "custom" => {
            let name = str_of(choice, "name")
                .ok_or_else(|| invalid("tool_choice: a tool choice needs a `name`"))?;
            let name = match str_of(choice, "namespace") {
                Some(ns) => flat_name(ns, name),
                None => name.to_owned(),
            };
            Ok(Some(ToolChoice::Tool(name)))
        }
        // The set of allowed tools is not kept: only whether one must be called.
        "allowed_tools" => Ok(Some(if str_of(choice, "mode") == Some("required") {
            ToolChoice::Any
        } else {
            ToolChoice::Auto
        })),
        other => Err(unsupported(format!(
            "tool_choice `{other}` (a built-in tool)"
        ))),
    }
}
