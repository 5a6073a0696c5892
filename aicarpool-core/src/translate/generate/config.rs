//! A Gemini client's `tools`, `toolConfig` and `generationConfig` read
//! into a [`Conversation`] (see the module docs of [`super`]).

use serde_json::{Map, Value};

use super::schema::to_json_schema;
use crate::translate::neutral::{
    Conversation, Effort, JsonOutput, Reasoning, ToolChoice, ToolSpec,
};
use crate::translate::TranslateError;

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(super) fn tools(tools: Option<&Value>) -> Result<Vec<ToolSpec>, TranslateError> {
    let mut out = Vec::new();
    // Built-in tools (googleSearch, codeExecution, urlContext, …) have no
    // declaration: only Gemini runs them, so they are left out.
    let decls = tools
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten();
    for d in decls {
        let name = str_field(d, "name").ok_or_else(|| {
            TranslateError::Invalid("tools: functionDeclarations[].name is required".into())
        })?;
        let parameters = d
            .get("parametersJsonSchema")
            .or_else(|| d.get("parameters"))
            .filter(|p| !p.is_null())
            .map(to_json_schema)
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        out.push(ToolSpec {
            name: name.to_owned(),
            description: str_field(d, "description").map(str::to_owned),
            parameters,
        });
    }
    Ok(out)
}

pub(super) fn tool_choice(config: Option<&Value>) -> Option<ToolChoice> {
    let fc = config?.get("functionCallingConfig")?;
    let allowed: Vec<&str> = fc
        .get("allowedFunctionNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match str_field(fc, "mode")? {
        "AUTO" | "VALIDATED" => Some(ToolChoice::Auto),
        "NONE" => Some(ToolChoice::None),
        "ANY" => match allowed.as_slice() {
            [one] => Some(ToolChoice::Tool((*one).to_owned())),
            _ => Some(ToolChoice::Any),
        },
        _ => None,
    }
}

pub(super) fn generation_config(
    config: &Map<String, Value>,
    c: &mut Conversation,
) -> Result<(), TranslateError> {
    c.max_tokens = config.get("maxOutputTokens").and_then(Value::as_u64);
    c.temperature = config.get("temperature").and_then(Value::as_f64);
    c.top_p = config.get("topP").and_then(Value::as_f64);
    c.top_k = config.get("topK").and_then(Value::as_u64);
    c.stop = match config.get("stopSequences") {
        Some(Value::Array(s)) => s
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if config
        .get("candidateCount")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        > 1
    {
        return Err(TranslateError::Unsupported(
            "generationConfig.candidateCount > 1".into(),
        ));
    }
    if config.get("responseLogprobs") == Some(&Value::Bool(true)) {
        return Err(TranslateError::Unsupported(
            "generationConfig.responseLogprobs".into(),
        ));
    }
    let modalities = config.get("responseModalities").and_then(Value::as_array);
    if modalities
        .into_iter()
        .flatten()
        .any(|m| m.as_str() != Some("TEXT"))
    {
        return Err(TranslateError::Unsupported(
            "generationConfig.responseModalities other than TEXT".into(),
        ));
    }
    match config.get("responseMimeType").and_then(Value::as_str) {
        None | Some("text/plain") => {}
        Some("application/json") => {
            let schema = config
                .get("responseJsonSchema")
                .or_else(|| config.get("responseSchema"))
                .filter(|s| !s.is_null())
                .map(to_json_schema);
            c.json = Some(JsonOutput { schema });
        }
        Some(other) => {
            return Err(TranslateError::Unsupported(format!(
                "generationConfig.responseMimeType `{other}`"
            )))
        }
    }
    if let Some(Value::Object(thinking)) = config.get("thinkingConfig") {
        c.reasoning = reasoning(thinking);
    }
    Ok(())
}

/// `thinkingConfig`: a budget of 0 is no reasoning, -1 (dynamic) is
/// reasoning without a budget.
fn reasoning(t: &Map<String, Value>) -> Option<Reasoning> {
    let budget = t.get("thinkingBudget").and_then(Value::as_i64);
    if budget == Some(0) {
        return None;
    }
    Some(Reasoning {
        budget_tokens: budget.and_then(|b| u64::try_from(b).ok()),
        effort: t
            .get("thinkingLevel")
            .and_then(Value::as_str)
            .and_then(Effort::parse),
        show: t.get("includeThoughts") == Some(&Value::Bool(true)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value) -> Result<Conversation, TranslateError> {
        super::super::read_request(body.to_string().as_bytes(), "m", false)
    }

    #[test]
    fn generation_config_and_tools_translate() {
        let c = read(json!({
            "contents": [{"parts": [{"text": "hi"}]}],
            "tools": [
                {"googleSearch": {}},
                {"functionDeclarations": [
                    {"name": "f", "parameters": {"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}}},
                    {"name": "g"}
                ]},
                {"codeExecution": {}}
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}},
            "generationConfig": {"stopSequences": ["END"], "maxOutputTokens": 10,
                "responseMimeType": "application/json",
                "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}},
                "thinkingConfig": {"thinkingBudget": -1}},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        }))
        .unwrap();
        assert_eq!(c.tools.len(), 2);
        assert_eq!(c.tools[0].parameters["properties"]["n"]["type"], "number");
        assert_eq!(c.tools[1].parameters["type"], "object");
        assert_eq!(c.tool_choice, Some(ToolChoice::Tool("g".into())));
        assert_eq!(c.stop, vec!["END".to_owned()]);
        assert_eq!(
            c.json.unwrap().schema.unwrap(),
            json!({"type": "array", "items": {"type": "string"}})
        );
        assert_eq!(c.reasoning, Some(Reasoning::default()));
        let off = read(
            json!({"contents": [], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}),
        )
        .unwrap();
        assert_eq!(off.reasoning, None);
        let many = read(json!({"contents": [], "generationConfig": {"candidateCount": 2}}));
        assert!(
            matches!(many, Err(TranslateError::Unsupported(m)) if m.contains("candidateCount"))
        );
        assert!(matches!(read(json!([])), Err(TranslateError::Invalid(_))));
        assert!(matches!(read(json!({})), Err(TranslateError::Invalid(_))));
    }
}
