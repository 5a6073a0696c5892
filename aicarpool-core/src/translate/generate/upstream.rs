//! A [`Conversation`] written as a Gemini `generateContent` body, for a
//! Gemini account (see the module docs of [`super`]).

use serde_json::{json, Map, Value};

use super::schema::for_gemini;
use super::signature::{split_call_id, PLACEHOLDER};
use crate::translate::neutral::{
    Conversation, Image, Part, Role, ToolCall, ToolChoice, ToolResult,
};
use crate::translate::TranslateError;

/// Gemini takes at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;
/// The largest thinking budget every Gemini 2.5 model takes (Flash's cap).
const MAX_THINKING_BUDGET: u64 = 24_576;
/// The smallest budget every thinking model takes (Pro's floor).
const MIN_THINKING_BUDGET: u64 = 128;

/// The body for `models/{model}:generateContent` (or
/// `:streamGenerateContent?alt=sse`); the model goes in the URL.
pub fn write_request(c: &Conversation) -> Result<Map<String, Value>, TranslateError> {
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for turn in &c.turns {
        let (role, parts) = match turn.role {
            Role::User => ("user", user_parts(c, &turn.parts)?),
            Role::Assistant => ("model", model_parts(&turn.parts)),
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants the roles to alternate.
        match contents.last_mut() {
            Some((last, p)) if *last == role => p.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::Invalid(
            "the conversation has no content".into(),
        ));
    }
    sign_foreign_calls(&mut contents);
    let mut body = Map::new();
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    if !c.system.is_empty() {
        let parts: Vec<Value> = c.system.iter().map(|s| json!({"text": s})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    if !c.tools.is_empty() {
        let decls: Vec<Value> = c
            .tools
            .iter()
            .map(|t| {
                let mut d =
                    json!({"name": t.name, "parametersJsonSchema": for_gemini(&t.parameters)});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        if let Some(choice) = &c.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Any => json!({"mode": "ANY"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            };
            body.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": config}),
            );
        }
    }
    let config = generation_config(c)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(body)
}

fn generation_config(c: &Conversation) -> Result<Map<String, Value>, TranslateError> {
    let mut config = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            config.insert(k.into(), v);
        }
    };
    put("maxOutputTokens", c.max_tokens.map(Value::from));
    put("temperature", c.temperature.map(Value::from));
    put("topP", c.top_p.map(Value::from));
    put("topK", c.top_k.map(Value::from));
    if c.stop.len() > MAX_STOP_SEQUENCES {
        return Err(TranslateError::Unsupported(format!(
            "more than {MAX_STOP_SEQUENCES} stop sequences"
        )));
    }
    put("stopSequences", (!c.stop.is_empty()).then(|| json!(c.stop)));
    if let Some(j) = &c.json {
        put("responseMimeType", Some(json!("application/json")));
        put("responseJsonSchema", j.schema.as_ref().map(for_gemini));
    }
    if let Some(r) = &c.reasoning {
        let budget = r.budget().clamp(MIN_THINKING_BUDGET, MAX_THINKING_BUDGET);
        put(
            "thinkingConfig",
            Some(json!({"thinkingBudget": budget, "includeThoughts": r.show})),
        );
    }
    Ok(config)
}

fn model_parts(parts: &[Part]) -> Vec<Value> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Part::Text(t) if !t.is_empty() => out.push(json!({"text": t})),
            Part::ToolCall(call) => out.push(call_part(call)),
            // Gemini takes back only its own thoughts, as signatures (which
            // ride in the call ids); foreign thinking is dropped.
            Part::Text(_) | Part::Thinking { .. } | Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    out
}

fn call_part(call: &ToolCall) -> Value {
    let (id, sig) = split_call_id(&call.id);
    let mut f = json!({"name": call.name, "args": Value::Object(call.arguments_object())});
    if let Some(id) = id {
        f["id"] = json!(id);
    }
    let mut part = json!({"functionCall": f});
    if let Some(sig) = sig {
        part["thoughtSignature"] = json!(sig);
    }
    part
}

/// Gemini 3 refuses a model turn whose first function call is unsigned;
/// calls from another upstream get Gemini's placeholder signature.
fn sign_foreign_calls(contents: &mut [(&'static str, Vec<Value>)]) {
    for (role, parts) in contents.iter_mut() {
        if *role != "model" {
            continue;
        }
        if let Some(Value::Object(first)) =
            parts.iter_mut().find(|p| p.get("functionCall").is_some())
        {
            first
                .entry("thoughtSignature")
                .or_insert_with(|| json!(PLACEHOLDER));
        }
    }
}

fn user_parts(c: &Conversation, parts: &[Part]) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Part::Text(t) if !t.is_empty() => out.push(json!({"text": t})),
            Part::Image(img) => out.push(image_part(img)?),
            Part::ToolResult(r) => {
                out.push(function_response(c, r)?);
                // Older Gemini models take no images inside a function
                // response: they follow it in the same turn.
                for inner in &r.content {
                    if let Part::Image(img) = inner {
                        out.push(image_part(img)?);
                    }
                }
            }
            Part::Text(_) | Part::Thinking { .. } | Part::ToolCall(_) => {}
        }
    }
    Ok(out)
}

fn function_response(c: &Conversation, r: &ToolResult) -> Result<Value, TranslateError> {
    let name = r
        .name
        .as_deref()
        .or_else(|| c.tool_name(&r.call_id))
        .ok_or_else(|| {
            TranslateError::Invalid(format!(
                "the tool result for `{}` answers no tool call of the history",
                r.call_id
            ))
        })?;
    let key = if r.is_error { "error" } else { "output" };
    let mut f = json!({"name": name, "response": {key: r.text()}});
    if let (Some(id), _) = split_call_id(&r.call_id) {
        f["id"] = json!(id);
    }
    Ok(json!({"functionResponse": f}))
}

fn image_part(img: &Image) -> Result<Value, TranslateError> {
    match img {
        Image::Inline { media_type, data } => {
            Ok(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        Image::Url(url) => {
            let mime = image_mime(url).ok_or_else(|| {
                TranslateError::Unsupported(format!(
                    "an image URL without a known image extension (`{url}`)"
                ))
            })?;
            Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
        }
    }
}

/// The image type an `http(s)` URL's extension names.
fn image_mime(url: &str) -> Option<&'static str> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let path = url.split(['?', '#']).next()?;
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::generate::signature::call_id;
    use crate::translate::neutral::{JsonOutput, Reasoning, ToolSpec, Turn};

    fn call(id: &str, name: &str) -> Part {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: json!({"p": id}),
        })
    }

    fn result(id: &str, text: &str, is_error: bool) -> Part {
        Part::ToolResult(ToolResult {
            call_id: id.into(),
            name: None,
            content: vec![Part::Text(text.into())],
            is_error,
        })
    }

    fn tool_conversation() -> Conversation {
        Conversation {
            system: vec!["Be brief.".into(), "Use tools.".into()],
            turns: vec![
                Turn {
                    role: Role::User,
                    parts: vec![Part::Text("read both".into())],
                },
                Turn {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Thinking {
                            text: "plan".into(),
                            signature: Some("claude".into()),
                        },
                        call("toolu_a", "Read"),
                        call("toolu_b", "Read"),
                    ],
                },
                Turn {
                    role: Role::User,
                    parts: vec![result("toolu_a", "A", false)],
                },
                Turn {
                    role: Role::User,
                    parts: vec![
                        result("toolu_b", "missing", true),
                        Part::Text("go on".into()),
                    ],
                },
            ],
            tools: vec![ToolSpec {
                name: "Read".into(),
                description: Some("Reads a file".into()),
                parameters: json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                    "properties": {"p": {"type": "string"}}, "additionalProperties": false}),
            }],
            tool_choice: Some(ToolChoice::Tool("Read".into())),
            ..Conversation::default()
        }
    }

    #[test]
    fn a_tool_history_is_written_with_names_ids_and_alternating_roles() {
        let body = Value::Object(write_request(&tool_conversation()).unwrap());
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[1]["role"], "model");
        // The foreign thinking is dropped; the first call gets the placeholder.
        assert_eq!(
            contents[1]["parts"],
            json!([
                {"functionCall": {"name": "Read", "args": {"p": "toolu_a"}, "id": "toolu_a"}, "thoughtSignature": PLACEHOLDER},
                {"functionCall": {"name": "Read", "args": {"p": "toolu_b"}, "id": "toolu_b"}}
            ])
        );
        assert_eq!(
            contents[2]["parts"],
            json!([
                {"functionResponse": {"name": "Read", "id": "toolu_a", "response": {"output": "A"}}},
                {"functionResponse": {"name": "Read", "id": "toolu_b", "response": {"error": "missing"}}},
                {"text": "go on"}
            ])
        );
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}, {"text": "Use tools."}]})
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0],
            json!({"name": "Read", "description": "Reads a file", "parametersJsonSchema":
                {"type": "object", "properties": {"p": {"type": "string"}}, "additionalProperties": false}})
        );
        assert_eq!(
            body["toolConfig"]["functionCallingConfig"],
            json!({"mode": "ANY", "allowedFunctionNames": ["Read"]})
        );
        assert!(body.get("generationConfig").is_none());
    }

    #[test]
    fn geminis_own_signatures_go_back_on_the_call() {
        let signed = call_id(Some("R2VtaW5p"), None, String::new);
        let c = Conversation {
            turns: vec![
                Turn {
                    role: Role::Assistant,
                    parts: vec![call(&signed, "f")],
                },
                Turn {
                    role: Role::User,
                    parts: vec![result(&signed, "ok", false)],
                },
            ],
            ..Conversation::default()
        };
        let body = Value::Object(write_request(&c).unwrap());
        assert_eq!(
            body["contents"][0]["parts"][0],
            json!({"functionCall": {"name": "f", "args": {"p": signed}}, "thoughtSignature": "R2VtaW5p"})
        );
        assert_eq!(
            body["contents"][1]["parts"][0],
            json!({"functionResponse": {"name": "f", "response": {"output": "ok"}}})
        );
    }

    #[test]
    fn generation_config_is_written_and_limits_refused() {
        let mut c = Conversation {
            turns: vec![Turn {
                role: Role::User,
                parts: vec![Part::Text("hi".into())],
            }],
            max_tokens: Some(100),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            stop: vec!["END".into()],
            json: Some(JsonOutput {
                schema: Some(json!({"$schema": "x", "type": "object"})),
            }),
            reasoning: Some(Reasoning {
                budget_tokens: Some(31_999),
                effort: None,
                show: true,
            }),
            ..Conversation::default()
        };
        let body = Value::Object(write_request(&c).unwrap());
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens": 100, "temperature": 0.5, "topP": 0.9, "topK": 40,
                "stopSequences": ["END"], "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"},
                "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": true}})
        );
        c.stop = (0..6).map(|i| i.to_string()).collect();
        assert!(
            matches!(write_request(&c), Err(TranslateError::Unsupported(m)) if m.contains("stop sequences"))
        );
    }

    #[test]
    fn images_and_unanswerable_results() {
        let with = |parts: Vec<Part>| Conversation {
            turns: vec![Turn {
                role: Role::User,
                parts,
            }],
            ..Conversation::default()
        };
        let body = Value::Object(
            write_request(&with(vec![
                Part::Image(Image::Inline {
                    media_type: "image/png".into(),
                    data: "iVBOR".into(),
                }),
                Part::Image(Image::Url("https://x.test/a.JPG?size=2".into())),
            ]))
            .unwrap(),
        );
        assert_eq!(
            body["contents"][0]["parts"],
            json!([{"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                   {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.JPG?size=2"}}])
        );
        let unknown = with(vec![Part::Image(Image::Url("https://x.test/image".into()))]);
        assert!(matches!(
            write_request(&unknown),
            Err(TranslateError::Unsupported(_))
        ));
        let orphan = with(vec![result("nowhere", "x", false)]);
        assert!(matches!(
            write_request(&orphan),
            Err(TranslateError::Invalid(_))
        ));
        assert!(matches!(
            write_request(&Conversation::default()),
            Err(TranslateError::Invalid(_))
        ));
        let image_result = with(vec![
            Part::ToolCall(ToolCall {
                id: "c".into(),
                name: "shot".into(),
                arguments: json!({}),
            }),
            Part::ToolResult(ToolResult {
                call_id: "c".into(),
                name: Some("shot".into()),
                content: vec![Part::Image(Image::Inline {
                    media_type: "image/png".into(),
                    data: "AA".into(),
                })],
                is_error: false,
            }),
        ]);
        let body = Value::Object(write_request(&image_result).unwrap());
        assert_eq!(body["contents"][0]["parts"][1]["inlineData"]["data"], "AA");
    }
}
