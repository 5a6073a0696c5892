//! A mock Gemini API upstream (axum, 127.0.0.1).
//!
//! It answers `POST …/{v1beta|v1}/models/{model}:generateContent`,
//! `:streamGenerateContent` (`alt=sse`: `data:` frames separated by
//! `\r\n\r\n`, no `[DONE]`, the whole `usageMetadata` in the last frame)
//! and `:countTokens`, checks the key (`x-goog-api-key` or `?key=`; a wrong
//! key gets Gemini's 400 `API_KEY_INVALID`, details and all), and behaves as
//! scripted with [`Behavior`]s ([`Behavior::ResourceExhausted`]: Gemini's
//! 429 with the wait in a `RetryInfo` detail). A request asking for JSON (`responseMimeType`) gets a
//! JSON answer that fits its schema, as Gemini CLI's routing call needs.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::mock::{Behavior, MockUsage};
use crate::upstream::{add_headers, json_response, sample_of, sse, words, MockCore, MockHandle};

/// The text every normal answer carries.
pub const GEMINI_ANSWER: &str = "Hello from the mock Gemini upstream.";

/// A running mock Gemini upstream.
#[derive(Debug, Clone)]
pub struct MockGemini(MockHandle);

impl Deref for MockGemini {
    type Target = MockHandle;

    fn deref(&self) -> &MockHandle {
        &self.0
    }
}

impl MockGemini {
    /// Starts a mock that accepts `api_key`, on 127.0.0.1 port 0.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        Self::start_with_usage(api_key, MockUsage::default()).await
    }

    /// Starts a mock on `addr`.
    pub async fn start_on(addr: SocketAddr, api_key: &str) -> std::io::Result<Self> {
        let core = MockCore::new(api_key, MockUsage::default());
        Ok(Self(MockHandle::start(addr, core, handle).await?))
    }

    /// Starts a mock reporting `usage`: the prompt is input plus cache
    /// reads (`cachedContentTokenCount`), the output splits into a quarter
    /// thoughts and the rest candidates. Cache writes are not reported.
    pub async fn start_with_usage(api_key: &str, usage: MockUsage) -> std::io::Result<Self> {
        let addr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
        let core = MockCore::new(api_key, usage);
        Ok(Self(MockHandle::start(addr, core, handle).await?))
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": status, "message": message, "status": kind}}),
    )
}

/// Google's answer to a wrong API key, byte for byte: a 400 whose
/// `ErrorInfo` detail says it is the key, not the request.
const INVALID_KEY: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

fn invalid_key() -> Response {
    raw_json(400, INVALID_KEY.to_owned())
}

/// Google's 429 for an exhausted quota: the wait in a `RetryInfo` detail,
/// no `retry-after` header.
fn resource_exhausted(retry_delay: &str) -> Response {
    let delay = Value::from(retry_delay);
    raw_json(
        429,
        format!(
            r#"{{"error":{{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{delay}}}]}}}}"#
        ),
    )
}

/// A JSON answer written as given (`json!` would reorder the keys).
fn raw_json(status: u16, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}

fn authorized(headers: &HeaderMap, query: Option<&str>, key: &str) -> bool {
    let header = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    let param = query
        .unwrap_or("")
        .split('&')
        .any(|p| p.strip_prefix("key=") == Some(key));
    header == Some(key) || param
}

async fn handle(core: Arc<MockCore>, req: Request) -> Response {
    let Some((parts, body)) = core.receive(req).await else {
        return error(413, "INVALID_ARGUMENT", "request too large");
    };
    let query = parts.uri.query();
    if !authorized(&parts.headers, query, &core.api_key) {
        return invalid_key();
    }
    let path = parts.uri.path();
    let Some((model, method)) = path
        .split_once("/models/")
        .and_then(|(_, rest)| rest.rsplit_once(':'))
    else {
        return error(404, "NOT_FOUND", "unknown path");
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    if request.get("contents").and_then(Value::as_array).is_none() {
        return error(400, "INVALID_ARGUMENT", "contents is not specified");
    }
    let answer = Answer::new(&core.usage, model, &request);
    match method {
        "countTokens" => json_response(200, &answer.count()),
        "generateContent" | "streamGenerateContent" => {
            let stream = method == "streamGenerateContent";
            let sse_wanted = query.unwrap_or("").split('&').any(|p| p == "alt=sse");
            respond(core.clone(), answer, stream, sse_wanted)
        }
        _ => error(404, "NOT_FOUND", "unknown method"),
    }
}

fn respond(core: Arc<MockCore>, mut answer: Answer, stream: bool, sse_wanted: bool) -> Response {
    let behavior = core.next_behavior();
    match &behavior {
        Behavior::RateLimited { retry_after, .. } => {
            let mut resp = error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            );
            if let Some(s) = retry_after {
                resp.headers_mut().insert("retry-after", (*s).into());
            }
            return resp;
        }
        Behavior::ResourceExhausted { retry_delay } => return resource_exhausted(retry_delay),
        Behavior::Overloaded => {
            return error(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            )
        }
        Behavior::ServerError => return error(500, "INTERNAL", "An internal error has occurred."),
        Behavior::Error { status, kind } => return error(*status, kind, "mock error"),
        Behavior::ToolCall { name, arguments } => {
            answer.call = Some((name.clone(), arguments.clone()))
        }
        _ => {}
    }
    let extra = match &behavior {
        Behavior::AnswerWithHeaders(h) => h.clone(),
        _ => Vec::new(),
    };
    let mut resp = if !stream {
        json_response(200, &answer.whole())
    } else if sse_wanted {
        let frames = answer
            .frames()
            .iter()
            .map(|f| Bytes::from(format!("data: {f}\r\n\r\n")))
            .collect();
        let err = json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}});
        sse(
            core,
            frames,
            behavior,
            Bytes::from(format!("data: {err}\r\n\r\n")),
        )
    } else {
        // Without `alt=sse` Gemini streams one JSON array.
        json_response(200, &Value::Array(answer.frames()))
    };
    add_headers(&mut resp, &extra);
    resp
}

/// One answer of the mock.
struct Answer {
    usage: MockUsage,
    model: String,
    text: String,
    /// A function call instead of text.
    call: Option<(String, Value)>,
}

impl Answer {
    fn new(usage: &MockUsage, model: &str, request: &Value) -> Self {
        let config = &request["generationConfig"];
        let text = if config["responseMimeType"] == "application/json" {
            let schema = config
                .get("responseJsonSchema")
                .or_else(|| config.get("responseSchema"))
                .cloned()
                .unwrap_or(json!({"type": "object"}));
            sample_of(&schema).to_string()
        } else {
            GEMINI_ANSWER.to_owned()
        };
        Self {
            usage: *usage,
            model: model.to_owned(),
            text,
            call: None,
        }
    }

    fn prompt(&self) -> u64 {
        self.usage.input_tokens + self.usage.cache_read_tokens
    }

    fn count(&self) -> Value {
        json!({"totalTokens": self.prompt(),
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt()}]})
    }

    /// The whole `usageMetadata`.
    fn usage_metadata(&self) -> Value {
        let thoughts = self.usage.output_tokens / 4;
        let mut u = json!({
            "promptTokenCount": self.prompt(),
            "candidatesTokenCount": self.usage.output_tokens - thoughts,
            "totalTokenCount": self.prompt() + self.usage.output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt()}],
        });
        if thoughts > 0 {
            u["thoughtsTokenCount"] = json!(thoughts);
        }
        if self.usage.cache_read_tokens > 0 {
            u["cachedContentTokenCount"] = json!(self.usage.cache_read_tokens);
        }
        u
    }

    fn response(&self, parts: Value, last: bool) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let usage = if last {
            candidate["finishReason"] = json!("STOP");
            self.usage_metadata()
        } else {
            json!({"promptTokenCount": self.prompt(), "totalTokenCount": self.prompt()})
        };
        json!({"candidates": [candidate], "usageMetadata": usage,
               "modelVersion": self.model, "responseId": "mock-gemini-response"})
    }

    fn whole(&self) -> Value {
        self.response(self.parts(&self.text), true)
    }

    fn parts(&self, text: &str) -> Value {
        match &self.call {
            Some((name, args)) => json!([{"functionCall": {"name": name, "args": args},
                                          "thoughtSignature": "c2lnbmF0dXJl"}]),
            None => json!([{"text": text}]),
        }
    }

    /// The frames of a streamed answer: one per word (or the function
    /// call), the last with the finish reason and the whole usage.
    fn frames(&self) -> Vec<Value> {
        let pieces = if self.call.is_some() || self.text.starts_with('{') {
            vec![self.text.clone()]
        } else {
            words(&self.text)
        };
        let n = pieces.len();
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| self.response(self.parts(p), i + 1 == n))
            .collect()
    }
}
