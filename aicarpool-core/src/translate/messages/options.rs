//! The settings of a client's Messages request: tools, tool choice,
//! reasoning and the answer's format (see [`super::request`] for what is
//! carried, dropped and refused).

use serde_json::{Map, Value};

use super::request::invalid;
use crate::translate::neutral::{
    Conversation, Effort, JsonOutput, Reasoning, ToolChoice, ToolSpec,
};
use crate::translate::TranslateError;

pub(super) fn read_tool(t: &Value) -> Result<ToolSpec, TranslateError> {
    match t.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(server) => {
            return Err(TranslateError::Unsupported(format!(
                "the server tool `{server}`"
            )))
        }
    }
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("tools: every tool needs a name"))?;
    Ok(ToolSpec {
        name: name.to_owned(),
        description: t
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters: t
            .get("input_schema")
            .cloned()
            .unwrap_or_else(super::empty_object_schema),
    })
}

pub(super) fn read_tool_choice(choice: &Value, c: &mut Conversation) -> Result<(), TranslateError> {
    c.tool_choice = Some(match choice.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Any,
        Some("none") => ToolChoice::None,
        Some("tool") => ToolChoice::Tool(
            choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice: `tool` needs a name"))?
                .to_owned(),
        ),
        _ => return Err(invalid("tool_choice: type must be auto, any, tool or none")),
    });
    if let Some(disable) = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
    {
        c.parallel_tool_calls = Some(!disable);
    }
    Ok(())
}

pub(super) fn read_reasoning(req: &Map<String, Value>) -> Option<Reasoning> {
    let effort = req
        .get("output_config")
        .and_then(|o| o.get("effort"))
        .and_then(Value::as_str)
        .and_then(Effort::parse);
    let thinking = req.get("thinking");
    let show = thinking
        .and_then(|t| t.get("display"))
        .and_then(Value::as_str)
        != Some("omitted");
    match thinking.and_then(|t| t.get("type")).and_then(Value::as_str) {
        Some("enabled") => Some(Reasoning {
            budget_tokens: thinking
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64),
            effort,
            show,
        }),
        Some("adaptive") => Some(Reasoning {
            budget_tokens: None,
            effort,
            show,
        }),
        // Effort without thinking still says how much to spend.
        _ => effort.map(|effort| Reasoning {
            budget_tokens: None,
            effort: Some(effort),
            show: false,
        }),
    }
}

pub(super) fn read_json_output(
    req: &Map<String, Value>,
) -> Result<Option<JsonOutput>, TranslateError> {
    let format = req
        .get("output_config")
        .and_then(|o| o.get("format"))
        .or_else(|| req.get("output_format"))
        .filter(|f| !f.is_null());
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => Ok(Some(JsonOutput {
            schema: format.get("schema").cloned(),
        })),
        other => Err(TranslateError::Unsupported(format!(
            "output format `{}`",
            other.unwrap_or("untyped")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::translate::messages::read_request;

    fn read(v: Value) -> Result<Conversation, TranslateError> {
        read_request(v.to_string().as_bytes())
    }

    #[test]
    fn server_tools_and_documents_are_refused_by_name() {
        let err = read(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
        )
        .unwrap_err();
        assert!(
            matches!(&err, TranslateError::Unsupported(m) if m.contains("web_search_20250305")),
            "{err:?}"
        );
        let err = read(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]}))
        .unwrap_err();
        assert!(matches!(&err, TranslateError::Unsupported(m) if m.contains("document")));
    }

    #[test]
    fn thinking_budget_effort_and_json_schema() {
        let c = read(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            "top_k": 5, "stop_sequences": ["END"], "temperature": 0.5}),
        )
        .unwrap();
        assert_eq!(c.reasoning.unwrap().budget_tokens, Some(2048));
        assert_eq!(c.json.unwrap().schema, Some(json!({"type": "object"})));
        assert_eq!((c.top_k, c.temperature), (Some(5), Some(0.5)));
        assert_eq!(c.stop, vec!["END".to_owned()]);
        let off = read(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "disabled"}}),
        )
        .unwrap();
        assert_eq!(off.reasoning, None);
    }
}
