//! The response object and its output items, shared by the stream writer
//! and the whole answer.

use serde_json::{json, Value};

use super::ResponsesRequest;
use crate::translate::neutral::{StopReason, ToolChoice};
use crate::usage::Usage;

/// What every response object repeats: ids, time and the request's
/// settings as the client sent them.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    pub id: String,
    pub created_at: i64,
    pub model: String,
    settings: Value,
}

impl Envelope {
    pub fn new(model: &str, request: &ResponsesRequest) -> Self {
        let c = &request.conversation;
        let tool_choice = match &c.tool_choice {
            None | Some(ToolChoice::Auto) => json!("auto"),
            Some(ToolChoice::None) => json!("none"),
            Some(ToolChoice::Any) => json!("required"),
            Some(ToolChoice::Tool(name)) => {
                let tool = request.client_tool(name);
                let kind = if tool.custom { "custom" } else { "function" };
                json!({"type": kind, "name": tool.name})
            }
        };
        let reasoning = match &c.reasoning {
            Some(r) => json!({
                "effort": r.effort.map(|e| e.as_str()),
                "summary": if r.show { Some("auto") } else { None },
            }),
            None => json!({"effort": null, "summary": null}),
        };
        let text_format = match &c.json {
            Some(j) if j.schema.is_some() => {
                json!({"type": "json_schema", "name": "answer", "schema": j.schema, "strict": false})
            }
            Some(_) => json!({"type": "json_object"}),
            None => json!({"type": "text"}),
        };
        Self {
            id: format!("resp_{}", crate::id::new_id()),
            created_at: chrono::Utc::now().timestamp(),
            model: model.to_owned(),
            settings: json!({
                "max_output_tokens": c.max_tokens,
                "parallel_tool_calls": c.parallel_tool_calls.unwrap_or(true),
                "reasoning": reasoning,
                "temperature": c.temperature,
                "text": {"format": text_format},
                "tool_choice": tool_choice,
                "top_p": c.top_p,
                "user": c.user,
            }),
        }
    }

    /// The response object in `status`, with `output` and `usage` so far.
    pub fn object(
        &self,
        status: &str,
        output: &[Value],
        usage: Option<&Usage>,
        stop: Option<StopReason>,
    ) -> Value {
        let incomplete = match stop {
            Some(StopReason::MaxTokens) => json!({"reason": "max_output_tokens"}),
            Some(StopReason::Refusal) => json!({"reason": "content_filter"}),
            _ => Value::Null,
        };
        let mut o = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": null,
            "metadata": {},
            "model": self.model,
            "output": output,
            "previous_response_id": null,
            "store": false,
            "tools": [],
            "truncation": "disabled",
            "usage": usage.map(usage_json),
        });
        if let (Some(o), Some(settings)) = (o.as_object_mut(), self.settings.as_object()) {
            o.extend(settings.clone());
        }
        o
    }

    /// The final object for an answer that stopped for `stop`.
    pub fn finished(&self, output: &[Value], usage: &Usage, stop: StopReason) -> Value {
        let status = match stop {
            StopReason::MaxTokens | StopReason::Refusal => "incomplete",
            _ => "completed",
        };
        self.object(status, output, Some(usage), Some(stop))
    }

    /// The object of a failed response.
    pub fn failed(&self, output: &[Value], code: &str, message: &str) -> Value {
        let mut o = self.object("failed", output, None, None);
        o["error"] = json!({"code": code, "message": message});
        o
    }
}

/// The Responses `usage`: `input_tokens` counts cache reads and writes,
/// `cached_tokens` the reads.
pub(super) fn usage_json(u: &Usage) -> Value {
    let input = u.input_tokens + u.cache_write_tokens() + u.cache_read_tokens;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + u.output_tokens,
    })
}

pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(super) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text.map(output_text).into_iter().collect();
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

pub(super) fn reasoning_item(id: &str, summary: Option<&str>, signature: Option<&str>) -> Value {
    let summary: Vec<Value> = summary
        .map(|t| json!({"type": "summary_text", "text": t}))
        .into_iter()
        .collect();
    let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
    if let Some(s) = signature {
        item["encrypted_content"] = json!(s);
    }
    item
}

/// A `function_call` or `custom_tool_call` item.
pub(super) fn call_item(call: &CallNames, status: &str, payload: &str) -> Value {
    let mut item = if call.custom {
        json!({"id": call.item_id, "type": "custom_tool_call", "status": status,
               "call_id": call.call_id, "name": call.name, "input": payload})
    } else {
        json!({"id": call.item_id, "type": "function_call", "status": status,
               "call_id": call.call_id, "name": call.name, "arguments": payload})
    };
    if let Some(ns) = &call.namespace {
        item["namespace"] = json!(ns);
    }
    item
}

/// A tool call as the client names it.
#[derive(Debug, Clone)]
pub(super) struct CallNames {
    pub item_id: String,
    pub call_id: String,
    pub name: String,
    pub namespace: Option<String>,
    pub custom: bool,
}

impl CallNames {
    pub fn new(request_tools: &ResponsesRequest, call_id: &str, flat: &str) -> Self {
        let tool = request_tools.client_tool(flat);
        let prefix = if tool.custom { "ctc" } else { "fc" };
        Self {
            item_id: format!("{prefix}_{}", crate::id::new_id()),
            call_id: call_id.to_owned(),
            name: tool.name,
            namespace: tool.namespace,
            custom: tool.custom,
        }
    }
}

/// A custom tool's raw input from the `{"input": …}` arguments the
/// upstream wrote (anything else is passed as the arguments' text).
pub(super) fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(m)) => match m.get("input") {
            Some(Value::String(s)) => s.clone(),
            Some(other) if m.len() == 1 => other.to_string(),
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}
