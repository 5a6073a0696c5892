//! Gemini's schemas as JSON Schema and back.
//!
//! Gemini's `parameters` and `responseSchema` are an OpenAPI 3.0 subset
//! with upper-case types (`"OBJECT"`, `"STRING"`) and `nullable`; Gemini
//! CLI even sends upper-case types in `responseJsonSchema`. The other
//! protocols take JSON Schema, so types are lower-cased and `nullable`
//! becomes a `"null"` type, walking only the keywords that hold schemas
//! (an `enum` value or a property *named* `type` is left alone).

use serde_json::{Map, Value};

/// Keywords whose value is one schema.
const ONE: [&str; 5] = [
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
];
/// Keywords whose value is a list of schemas.
const LIST: [&str; 4] = ["anyOf", "oneOf", "allOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const MAP: [&str; 4] = ["properties", "$defs", "definitions", "patternProperties"];

/// `schema` as JSON Schema: lower-case types, `nullable` as a `"null"`
/// type, Gemini's `propertyOrdering` dropped.
pub fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    let nullable = map.get("nullable") == Some(&Value::Bool(true));
    for (key, value) in map {
        let converted = match key.as_str() {
            "type" => lower_type(value, nullable),
            "nullable" | "propertyOrdering" => continue,
            k if ONE.contains(&k) => to_json_schema(value),
            k if LIST.contains(&k) => match value {
                Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
                other => other.clone(),
            },
            k if MAP.contains(&k) => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), to_json_schema(s)))
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn lower_type(value: &Value, nullable: bool) -> Value {
    match value {
        Value::String(t) => {
            let t = Value::String(t.to_ascii_lowercase());
            if nullable && t != "null" {
                Value::Array(vec![t, Value::String("null".into())])
            } else {
                t
            }
        }
        Value::Array(ts) => Value::Array(
            ts.iter()
                .map(|t| match t {
                    Value::String(s) => Value::String(s.to_ascii_lowercase()),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A JSON Schema as Gemini's `parametersJsonSchema` takes it: without
/// `$schema`, which Gemini rejects.
pub fn for_gemini(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut map = map.clone();
            map.remove("$schema");
            Value::Object(map)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_are_lowered_only_where_schemas_are() {
        let gemini = json!({
            "type": "OBJECT",
            "propertyOrdering": ["type", "tags"],
            "properties": {
                "type": {"type": "STRING", "enum": ["OBJECT", "STRING"]},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "nullable": true},
                "either": {"anyOf": [{"type": "INTEGER"}, {"type": "BOOLEAN"}]}
            },
            "required": ["type"]
        });
        assert_eq!(
            to_json_schema(&gemini),
            json!({
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["OBJECT", "STRING"]},
                    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
                    "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}
                },
                "required": ["type"]
            })
        );
        let already = json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}}});
        assert_eq!(to_json_schema(&already), already);
        assert_eq!(to_json_schema(&json!(true)), json!(true));
    }

    #[test]
    fn dollar_schema_is_stripped_for_gemini() {
        let s = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"});
        assert_eq!(for_gemini(&s), json!({"type": "object"}));
    }
}
