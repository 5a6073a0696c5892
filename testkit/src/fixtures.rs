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
