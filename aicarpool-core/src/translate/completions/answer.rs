//! Reading a whole `chat.completion`.

use serde_json::Value;

use super::{read_usage, stop_reason};
use crate::translate::neutral::{Answer, Part, StopReason, ToolCall};

/// The answer in a `chat.completion` body; `None` when the body is not
/// one (an error, or not JSON).
pub fn read_answer(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let choice = v.pointer("/choices/0")?;
    let message = choice.get("message")?;
    let mut parts = Vec::new();
    let text_of = |key: &str| {
        message
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(t) = text_of("reasoning_content").or_else(|| text_of("reasoning")) {
        parts.push(Part::Thinking {
            text: t.to_owned(),
            signature: None,
        });
    }
    if let Some(t) = text_of("content").or_else(|| text_of("refusal")) {
        parts.push(Part::Text(t.to_owned()));
    }
    let calls = message.get("tool_calls").and_then(Value::as_array);
    for (i, call) in calls.into_iter().flatten().enumerate() {
        let field = |p: &str| call.pointer(p).and_then(Value::as_str);
        parts.push(Part::ToolCall(ToolCall {
            id: field("/id")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{i}")),
            name: field("/function/name").unwrap_or_default().to_owned(),
            arguments: ToolCall::parse_arguments(field("/function/arguments").unwrap_or_default()),
        }));
    }
    let mut stop = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map_or(StopReason::EndTurn, stop_reason);
    if stop == StopReason::EndTurn && parts.iter().any(|p| matches!(p, Part::ToolCall(_))) {
        stop = StopReason::ToolUse;
    }
    Some(Answer {
        id: v.get("id").and_then(Value::as_str).map(str::to_owned),
        parts,
        stop,
        usage: v.get("usage").map(read_usage).unwrap_or_default(),
    })
}
