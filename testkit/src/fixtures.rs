//! Requests captured from released clients, stored in `testkit/fixtures/`.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One captured request.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    pub method: String,
    /// Path with query, as the client sent it (e.g. `/v1/messages?beta=true`).
    pub path: String,
    /// Headers in wire order.
    pub headers: Vec<(String, String)>,
    /// The body exactly as stored.
    pub body: Vec<u8>,
}

impl CapturedRequest {
    /// Headers a test may replay: everything but the connection-level ones
    /// and the captured credentials.
    pub fn replayable_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .filter(|(n, _)| {
                !matches!(
                    n.to_ascii_lowercase().as_str(),
                    "host"
                        | "content-length"
                        | "connection"
                        | "authorization"
                        | "x-api-key"
                        | "x-goog-api-key"
                        | "accept-encoding"
                )
            })
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    #[serde(borrow)]
    body_json: Option<&'a RawValue>,
}

fn parse(jsonl: &str) -> Vec<CapturedRequest> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<Line<'_>>(l).ok())
        .map(|l| CapturedRequest {
            method: l.method,
            path: l.path,
            headers: l.headers,
            body: l
                .body_json
                .map(|b| b.get().as_bytes().to_vec())
                .unwrap_or_default(),
        })
        .collect()
}

/// Claude Code 2.1.197 with `ANTHROPIC_AUTH_TOKEN`: the ~76 KB streaming
/// request with tools, system blocks and `role: "system"` messages.
pub fn claude_code_authtoken() -> CapturedRequest {
    first(include_str!("../fixtures/claude_authtoken.jsonl"))
}

/// Claude Code 2.1.197 with `ANTHROPIC_API_KEY` (`x-api-key`).
pub fn claude_code_apikey() -> CapturedRequest {
    first(include_str!("../fixtures/claude_apikey.jsonl"))
}

/// Python `anthropic` 2.x, non-streaming.
pub fn py_anthropic_nonstream() -> CapturedRequest {
    first(include_str!("../fixtures/py_anthropic_nonstream.jsonl"))
}

/// Python `anthropic` 2.x, `count_tokens`.
pub fn py_anthropic_count_tokens() -> CapturedRequest {
    first(include_str!("../fixtures/py_anthropic_count_tokens.jsonl"))
}

/// Gemini CLI 0.61 (`GEMINI_API_KEY`): its non-streaming routing call
/// (`generateContent` asking for JSON by `responseJsonSchema`).
pub fn gemini_cli_routing() -> CapturedRequest {
    first(include_str!("../fixtures/gemini_apikey.jsonl"))
}

/// Gemini CLI 0.61: the ~39 KB `streamGenerateContent?alt=sse` turn with
/// tools and thinking.
pub fn gemini_cli_stream() -> CapturedRequest {
    nth(include_str!("../fixtures/gemini_apikey.jsonl"), 1)
}

/// Gemini CLI 0.61 with `-m gemini-2.5-flash` (no routing call).
pub fn gemini_cli_model_flag() -> CapturedRequest {
    first(include_str!("../fixtures/gemini_model_flag.jsonl"))
}

/// Codex CLI 0.169 through a custom provider (`wire_api = "responses"`).
pub fn codex_responses() -> CapturedRequest {
    first(include_str!("../fixtures/codex_custom_provider.jsonl"))
}

/// Python `google-genai` 3.x (`/v1/models/…`).
pub fn py_genai_generate() -> CapturedRequest {
    first(include_str!("../fixtures/py_genai_generate.jsonl"))
}

pub fn py_genai_stream() -> CapturedRequest {
    first(include_str!("../fixtures/py_genai_stream.jsonl"))
}

pub fn py_genai_count_tokens() -> CapturedRequest {
    first(include_str!("../fixtures/py_genai_count_tokens.jsonl"))
}

/// Python `google-genai` 1.x (`/v1beta/models/…`), streaming.
pub fn pyold_genai_stream() -> CapturedRequest {
    first(include_str!("../fixtures/pyold_genai_stream.jsonl"))
}

/// Python `openai`: chat, non-streaming.
pub fn py_openai_chat_nonstream() -> CapturedRequest {
    first(include_str!("../fixtures/py_openai_chat_nonstream.jsonl"))
}

/// Python `openai`: chat, streaming with `stream_options.include_usage`.
pub fn py_openai_chat_stream() -> CapturedRequest {
    first(include_str!("../fixtures/py_openai_chat_stream.jsonl"))
}

/// Python `openai`: Responses, streaming.
pub fn py_openai_responses_stream() -> CapturedRequest {
    first(include_str!("../fixtures/py_openai_responses_stream.jsonl"))
}

/// Python `openai`: `GET /v1/models`.
pub fn py_openai_models_list() -> CapturedRequest {
    first(include_str!("../fixtures/py_openai_models_list.jsonl"))
}

fn nth(jsonl: &str, n: usize) -> CapturedRequest {
    parse(jsonl).into_iter().nth(n).unwrap_or_else(|| first(""))
}

fn first(jsonl: &str) -> CapturedRequest {
    parse(jsonl).into_iter().next().unwrap_or(CapturedRequest {
        method: "POST".into(),
        path: "/v1/messages".into(),
        headers: Vec::new(),
        body: b"{}".to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_fixture_parses() {
        let all = [
            gemini_cli_routing(),
            gemini_cli_stream(),
            gemini_cli_model_flag(),
            codex_responses(),
            py_genai_generate(),
            py_genai_stream(),
            py_genai_count_tokens(),
            pyold_genai_stream(),
            py_openai_chat_nonstream(),
            py_openai_chat_stream(),
            py_openai_responses_stream(),
        ];
        for r in all {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert!(v.is_object(), "{}", r.path);
        }
        assert!(gemini_cli_stream()
            .path
            .ends_with(":streamGenerateContent?alt=sse"));
        assert_eq!(py_openai_models_list().method, "GET");
        assert!(codex_responses()
            .replayable_headers()
            .all(|(n, _)| n != "authorization"));
    }

    #[test]
    fn claude_code_fixture_is_the_big_streaming_request() {
        let r = claude_code_authtoken();
        assert_eq!(r.path, "/v1/messages?beta=true");
        assert!(r.body.len() > 60_000, "{}", r.body.len());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["stream"], true);
        assert!(v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "system"));
    }
}
