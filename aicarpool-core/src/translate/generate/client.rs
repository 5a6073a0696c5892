//! A Gemini client's request read into a [`Conversation`] (see the
//! module docs of [`super`] for what is kept, dropped and refused).

use serde_json::{Map, Value};

use super::config::{generation_config, tool_choice, tools};
use super::signature;
use crate::translate::neutral::{Conversation, Image, Part, Role, ToolCall, ToolResult, Turn};
use crate::translate::TranslateError;

/// The id given to a `functionCall` that came without one: the turn's
/// index in `contents` and the part's index in that turn, so the same
/// history always gives the same ids.
pub fn synthesized_call_id(turn: usize, part: usize) -> String {
    format!("call_{turn}_{part}")
}

/// A `generateContent` / `streamGenerateContent` body as a conversation.
/// `model` and `stream` come from the URL (`models/{model}:{method}`).
pub fn read_request(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<Conversation, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Invalid(format!("request body: {e}")))?;
    let Value::Object(req) = v else {
        return Err(invalid("the request body must be a JSON object"));
    };
    let mut c = Conversation {
        model: model.to_owned(),
        stream,
        ..Conversation::default()
    };
    if let Some(sys) = req.get("systemInstruction") {
        c.system = system(sys)?;
    }
    c.turns = turns(req.get("contents"))?;
    c.tools = tools(req.get("tools"))?;
    c.tool_choice = tool_choice(req.get("toolConfig"));
    if let Some(Value::Object(config)) = req.get("generationConfig") {
        generation_config(config, &mut c)?;
    }
    Ok(c)
}

fn invalid(msg: &str) -> TranslateError {
    TranslateError::Invalid(msg.to_owned())
}

fn system(sys: &Value) -> Result<Vec<String>, TranslateError> {
    let parts = match sys {
        Value::String(s) => return Ok(vec![s.clone()]),
        Value::Object(o) => o.get("parts").and_then(Value::as_array),
        _ => None,
    };
    let parts = parts.ok_or_else(|| invalid("systemInstruction: `parts` is required"))?;
    let mut out = Vec::new();
    for p in parts {
        match p.get("text") {
            Some(Value::String(t)) => out.push(t.clone()),
            _ => {
                return Err(TranslateError::Unsupported(
                    "a systemInstruction part other than text".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// The calls of the last model turn not answered yet, for matching
/// `functionResponse`s that carry no id.
#[derive(Default)]
struct OpenCalls {
    calls: Vec<(String, String)>,
}

impl OpenCalls {
    /// The id the response names, or the first open call of that name.
    fn answer(&mut self, name: &str, id: Option<&str>) -> Option<String> {
        let pos = match id {
            Some(id) => {
                if let Some(pos) = self.calls.iter().position(|(_, i)| i == id) {
                    self.calls.remove(pos);
                }
                return Some(id.to_owned());
            }
            None => self.calls.iter().position(|(n, _)| n == name)?,
        };
        Some(self.calls.remove(pos).1)
    }
}

fn turns(contents: Option<&Value>) -> Result<Vec<Turn>, TranslateError> {
    let contents = match contents {
        Some(Value::Array(c)) => c,
        _ => return Err(invalid("contents: an array of turns is required")),
    };
    let mut out: Vec<Turn> = Vec::new();
    let mut open = OpenCalls::default();
    for (t, content) in contents.iter().enumerate() {
        let role = match content.get("role").and_then(Value::as_str) {
            None | Some("user") | Some("function") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(TranslateError::Invalid(format!(
                    "contents[{t}]: unknown role `{other}`"
                )))
            }
        };
        let Some(parts) = content.get("parts").and_then(Value::as_array) else {
            continue;
        };
        if role == Role::Assistant {
            open = OpenCalls::default();
        }
        let mut read = Vec::with_capacity(parts.len());
        for (p, part) in parts.iter().enumerate() {
            read_part(part, role, (t, p), &mut open, &mut read)?;
        }
        if read.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.parts.extend(read),
            _ => out.push(Turn { role, parts: read }),
        }
    }
    Ok(out)
}

fn read_part(
    part: &Value,
    role: Role,
    (t, p): (usize, usize),
    open: &mut OpenCalls,
    out: &mut Vec<Part>,
) -> Result<(), TranslateError> {
    let at = |what: &str| format!("contents[{t}].parts[{p}]: {what}");
    let Value::Object(part) = part else {
        return Err(TranslateError::Invalid(at("a part must be an object")));
    };
    let thought = part.get("thought") == Some(&Value::Bool(true));
    let sig = part.get("thoughtSignature").and_then(Value::as_str);
    if let Some(text) = part.get("text") {
        let text = text
            .as_str()
            .ok_or_else(|| TranslateError::Invalid(at("`text` must be a string")))?;
        if thought {
            if !text.is_empty() || sig.is_some() {
                out.push(Part::Thinking {
                    text: text.to_owned(),
                    signature: sig.map(str::to_owned),
                });
            }
        } else if !text.is_empty() {
            out.push(Part::Text(text.to_owned()));
        }
    } else if let Some(data) = part.get("inlineData") {
        out.push(Part::Image(
            inline_image(data).map_err(|e| TranslateError::Unsupported(at(&e)))?,
        ));
    } else if let Some(file) = part.get("fileData") {
        out.push(Part::Image(
            file_image(file).map_err(|e| TranslateError::Unsupported(at(&e)))?,
        ));
    } else if let Some(call) = part.get("functionCall") {
        if role != Role::Assistant {
            return Err(TranslateError::Invalid(at(
                "a functionCall outside a model turn",
            )));
        }
        let name = str_field(call, "name")
            .ok_or_else(|| TranslateError::Invalid(at("functionCall.name is required")))?;
        let id = str_field(call, "id")
            .filter(|i| !i.is_empty())
            .map_or_else(|| synthesized_call_id(t, p), str::to_owned);
        // A thinking block the writer carried in the signature comes back
        // before the call it preceded.
        if let Some(thinking) = sig.and_then(signature::unpack_thinking) {
            out.push(thinking);
        }
        open.calls.push((name.to_owned(), id.clone()));
        out.push(Part::ToolCall(ToolCall {
            id,
            name: name.to_owned(),
            arguments: match call.get("args") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(a) => a.clone(),
            },
        }));
    } else if let Some(resp) = part.get("functionResponse") {
        if role != Role::User {
            return Err(TranslateError::Invalid(at(
                "a functionResponse inside a model turn",
            )));
        }
        out.push(Part::ToolResult(
            function_response(resp, open).map_err(|e| TranslateError::Invalid(at(&e)))?,
        ));
    } else if part.contains_key("executableCode") || part.contains_key("codeExecutionResult") {
        return Err(TranslateError::Unsupported(at("code execution parts")));
    }
    // Anything else (a lone thoughtSignature, videoMetadata) carries no
    // content.
    Ok(())
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn inline_image(data: &Value) -> Result<Image, String> {
    let mime = str_field(data, "mimeType").unwrap_or("");
    if !mime.starts_with("image/") {
        return Err(format!("inlineData of type `{mime}` (only images)"));
    }
    let bytes = str_field(data, "data").ok_or("inlineData.data is required")?;
    Ok(Image::Inline {
        media_type: mime.to_owned(),
        data: bytes.to_owned(),
    })
}

fn file_image(file: &Value) -> Result<Image, String> {
    let mime = str_field(file, "mimeType").unwrap_or("");
    let uri = str_field(file, "fileUri").unwrap_or("");
    if !mime.is_empty() && !mime.starts_with("image/") {
        return Err(format!("fileData of type `{mime}` (only images)"));
    }
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err(format!("fileData `{uri}` (only http(s) image URLs)"));
    }
    // Files API uploads need the Gemini key to be read.
    if uri.contains("generativelanguage.googleapis.com/") {
        return Err("fileData from the Gemini Files API".into());
    }
    Ok(Image::Url(uri.to_owned()))
}

fn function_response(resp: &Value, open: &mut OpenCalls) -> Result<ToolResult, String> {
    let name = str_field(resp, "name").ok_or("functionResponse.name is required")?;
    let id = str_field(resp, "id").filter(|i| !i.is_empty());
    let call_id = open.answer(name, id).ok_or_else(|| {
        format!("functionResponse `{name}` answers no functionCall of the model turn before it")
    })?;
    let (text, is_error) = response_text(resp.get("response"));
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(Part::Text(text));
    }
    // Gemini 3 multimodal results: images in `functionResponse.parts`.
    for p in resp
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(data) = p.get("inlineData") {
            content.push(Part::Image(inline_image(data)?));
        }
    }
    Ok(ToolResult {
        call_id,
        name: Some(name.to_owned()),
        content,
        is_error,
    })
}

/// A function's `response` object as text: `output` / `content` /
/// `error` when it is the only key, else the JSON.
fn response_text(response: Option<&Value>) -> (String, bool) {
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match response {
        None | Some(Value::Null) => (String::new(), false),
        Some(Value::Object(o)) if o.len() == 1 => match o.iter().next() {
            Some((k, v)) if k == "output" || k == "content" => (as_text(v), false),
            Some((k, v)) if k == "error" => (as_text(v), true),
            _ => (Value::Object(o.clone()).to_string(), false),
        },
        Some(other) => (as_text(other), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::neutral::Effort;
    use aicarpool_testkit::fixtures;
    use serde_json::json;

    fn read(body: Value) -> Result<Conversation, TranslateError> {
        read_request(body.to_string().as_bytes(), "gemini-2.5-pro", false)
    }

    #[test]
    fn gemini_clis_streamed_turn_translates() {
        let f = fixtures::gemini_cli_stream();
        let c = read_request(&f.body, "gemini-3.1-pro-preview", true).unwrap();
        assert_eq!(c.model, "gemini-3.1-pro-preview");
        assert!(c.stream);
        assert_eq!(c.system.len(), 1);
        assert!(c.system[0].starts_with("You are Gemini CLI"));
        let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 8, "{names:?}");
        assert!(names.contains(&"google_web_search") && names.contains(&"read_file"));
        let read_file = c.tools.iter().find(|t| t.name == "read_file").unwrap();
        assert_eq!(read_file.parameters["type"], "object");
        assert!(read_file.parameters["properties"]["file_path"].is_object());
        assert!(read_file.description.is_some());
        assert_eq!(c.turns.len(), 1);
        assert_eq!(c.turns[0].role, Role::User);
        assert_eq!(c.turns[0].parts.len(), 2);
        assert_eq!(c.turns[0].parts[1], Part::Text("say pong".into()));
        let r = c.reasoning.unwrap();
        assert_eq!(
            (r.effort, r.budget_tokens, r.show),
            (Some(Effort::High), None, true)
        );
        assert_eq!(
            (c.temperature, c.top_p, c.top_k),
            (Some(1.0), Some(0.95), Some(64))
        );
    }

    #[test]
    fn gemini_clis_routing_call_translates_to_a_json_answer() {
        let f = fixtures::gemini_cli_routing();
        let c = read_request(&f.body, "gemini-3.5-flash-lite", false).unwrap();
        assert!(!c.stream);
        assert!(c.system[0].contains("Task Routing AI"));
        // Two user turns in a row are one.
        assert_eq!(c.turns.len(), 1);
        assert_eq!(c.turns[0].parts.len(), 2);
        let schema = c.json.unwrap().schema.unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["complexity_score"]["type"], "integer");
        assert_eq!(
            schema["required"],
            json!(["complexity_reasoning", "complexity_score"])
        );
    }

    #[test]
    fn the_other_captured_clients_translate() {
        let c = read_request(&fixtures::gemini_cli_model_flag().body, "m", true).unwrap();
        assert_eq!(c.reasoning.unwrap().budget_tokens, Some(8192));
        let c = read_request(&fixtures::py_genai_generate().body, "m", false).unwrap();
        assert_eq!(c.system, vec!["Be terse.".to_owned()]);
        assert_eq!(c.max_tokens, Some(64));
        for f in [fixtures::py_genai_stream(), fixtures::pyold_genai_stream()] {
            let c = read_request(&f.body, "m", true).unwrap();
            assert_eq!(c.turns[0].parts, vec![Part::Text("say pong".into())]);
        }
    }

    #[test]
    fn calls_without_ids_get_stable_ids_and_responses_find_them() {
        let body = json!({"contents": [
            {"role": "user", "parts": [{"text": "read a and b"}]},
            {"role": "model", "parts": [
                {"text": "Reading."},
                {"functionCall": {"name": "read_file", "args": {"file_path": "a"}}},
                {"functionCall": {"name": "read_file", "args": {"file_path": "b"}}},
                {"functionCall": {"name": "glob", "args": {"pattern": "*"}, "id": "g-1"}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "glob", "response": {"output": "x"}}},
                {"functionResponse": {"name": "read_file", "response": {"output": "A"}}},
                {"functionResponse": {"name": "read_file", "response": {"output": "B"}}}
            ]}
        ]});
        let c = read(body.clone()).unwrap();
        assert_eq!(synthesized_call_id(1, 1), "call_1_1");
        let calls: Vec<(&str, &str)> = c.turns[1]
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall(call) => Some((
                    call.id.as_str(),
                    call.arguments["file_path"].as_str().unwrap_or("-"),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            vec![("call_1_1", "a"), ("call_1_2", "b"), ("g-1", "-")]
        );
        let results: Vec<(&str, String)> = c.turns[2]
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolResult(r) => Some((r.call_id.as_str(), r.text())),
                _ => None,
            })
            .collect();
        assert_eq!(
            results,
            vec![
                ("g-1", "x".into()),
                ("call_1_1", "A".into()),
                ("call_1_2", "B".into())
            ]
        );
        // The same history read again gives the same ids.
        assert_eq!(read(body).unwrap(), c);
    }

    #[test]
    fn a_response_that_answers_nothing_is_invalid() {
        let body = json!({"contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "a"}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "a", "response": {}}},
                {"functionResponse": {"name": "a", "response": {}}}
            ]}
        ]});
        assert!(
            matches!(read(body), Err(TranslateError::Invalid(m)) if m.contains("answers no functionCall"))
        );
        let misplaced =
            json!({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "a"}}]}]});
        assert!(matches!(read(misplaced), Err(TranslateError::Invalid(_))));
    }

    #[test]
    fn response_objects_become_text() {
        let cases = [
            (json!({"output": "done"}), "done", false),
            (json!({"content": {"a": 1}}), "{\"a\":1}", false),
            (json!({"error": "no such file"}), "no such file", true),
            (json!({"a": 1, "b": 2}), "{\"a\":1,\"b\":2}", false),
        ];
        for (response, text, is_error) in cases {
            assert_eq!(response_text(Some(&response)), (text.to_owned(), is_error));
        }
    }

    #[test]
    fn images_are_read_and_other_media_refused() {
        let body = |part: Value| json!({"contents": [{"role": "user", "parts": [part]}]});
        let c = read(body(
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}),
        ))
        .unwrap();
        assert_eq!(
            c.turns[0].parts[0],
            Part::Image(Image::Inline {
                media_type: "image/png".into(),
                data: "iVBOR".into()
            })
        );
        let c = read(body(
            json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}}),
        ))
        .unwrap();
        assert_eq!(
            c.turns[0].parts[0],
            Part::Image(Image::Url("https://x.test/a.jpg".into()))
        );
        for refused in [
            json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBER"}}),
            json!({"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/a.png"}}),
            json!({"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}),
            json!({"executableCode": {"language": "PYTHON", "code": "1"}}),
        ] {
            assert!(matches!(
                read(body(refused)),
                Err(TranslateError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn thoughts_and_packed_thinking_come_back() {
        let packed = signature::pack_thinking("plan", "claude-sig");
        let c = read(json!({"contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [
                {"text": "hmm", "thought": true, "thoughtSignature": "g-sig"},
                {"text": "ok", "thoughtSignature": "ignored"},
                {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": packed},
                {"thoughtSignature": "lone"}
            ]}
        ]}))
        .unwrap();
        assert_eq!(
            c.turns[1].parts,
            vec![
                Part::Thinking {
                    text: "hmm".into(),
                    signature: Some("g-sig".into())
                },
                Part::Text("ok".into()),
                Part::Thinking {
                    text: "plan".into(),
                    signature: Some("claude-sig".into())
                },
                Part::ToolCall(ToolCall {
                    id: "call_1_2".into(),
                    name: "f".into(),
                    arguments: json!({})
                }),
            ]
        );
    }
}
