//! A mock OpenAI-compatible upstream (axum, 127.0.0.1).
//!
//! Under any path prefix it answers `POST …/chat/completions` (JSON, or
//! `data:` chunks ended by `[DONE]`, with the final usage chunk only when
//! `stream_options.include_usage` asks for it), `POST …/responses` (JSON,
//! or the named event stream ending in `response.completed`) and
//! `GET …/models`; checks `Authorization: Bearer`; and behaves as
//! scripted with [`Behavior`]s.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use crate::mock::{Behavior, MockUsage};
use crate::upstream::{add_headers, json_response, sse, words, MockCore, MockHandle};

/// The text every normal answer carries.
pub const OPENAI_ANSWER: &str = "Hello from the mock OpenAI upstream.";

/// A running mock OpenAI-compatible upstream.
#[derive(Debug, Clone)]
pub struct MockOpenAi(MockHandle);

impl Deref for MockOpenAi {
    type Target = MockHandle;

    fn deref(&self) -> &MockHandle {
        &self.0
    }
}

impl MockOpenAi {
    /// Starts a mock that accepts `api_key`, on 127.0.0.1 port 0.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        Self::start_with_usage(api_key, MockUsage::default()).await
    }

    pub async fn start_on(addr: SocketAddr, api_key: &str) -> std::io::Result<Self> {
        let core = MockCore::new(api_key, MockUsage::default());
        Ok(Self(MockHandle::start(addr, core, handle).await?))
    }

    /// Starts a mock reporting `usage`: prompt tokens are input plus cache
    /// reads (`cached_tokens`); a quarter of the output is reasoning.
    /// Cache writes are not reported.
    pub async fn start_with_usage(api_key: &str, usage: MockUsage) -> std::io::Result<Self> {
        let addr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
        let core = MockCore::new(api_key, usage);
        Ok(Self(MockHandle::start(addr, core, handle).await?))
    }
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

async fn handle(core: Arc<MockCore>, req: Request) -> Response {
    let Some((parts, body)) = core.receive(req).await else {
        return error(
            413,
            "invalid_request_error",
            "too_large",
            "request too large",
        );
    };
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(core.api_key.as_str()) {
        return error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
        );
    }
    let path = parts.uri.path();
    if parts.method == Method::GET && path.ends_with("/models") {
        return json_response(
            200,
            &json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "mock"}]}),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "invalid_request_error",
            "invalid_json",
            "body is not JSON",
        );
    };
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    let stream = request["stream"] == true;
    let kind = if path.ends_with("/chat/completions") {
        Kind::Chat {
            include_usage: request["stream_options"]["include_usage"] == true,
        }
    } else if path.ends_with("/responses") {
        Kind::Responses
    } else {
        return error(404, "invalid_request_error", "unknown_url", "unknown path");
    };
    let behavior = core.next_behavior();
    let call = match &behavior {
        Behavior::ResourceExhausted { .. } => {
            return error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests",
            )
        }
        Behavior::RateLimited { retry_after, .. } => {
            let mut resp = error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests",
            );
            if let Some(s) = retry_after {
                resp.headers_mut().insert("retry-after", (*s).into());
            }
            return resp;
        }
        Behavior::Overloaded => {
            return error(
                503,
                "server_error",
                "server_is_overloaded",
                "The server is overloaded",
            )
        }
        Behavior::ServerError => {
            return error(
                500,
                "server_error",
                "server_error",
                "The server had an error",
            )
        }
        Behavior::Error { status, kind } => return error(*status, kind, kind, "mock error"),
        Behavior::ToolCall { name, arguments } => Some((name.clone(), arguments.to_string())),
        _ => None,
    };
    let answer = Answer {
        usage: core.usage,
        model,
        call,
    };
    let mut resp = match (kind, stream) {
        (Kind::Chat { .. }, false) => json_response(200, &answer.chat()),
        (Kind::Responses, false) => json_response(200, &answer.response("completed")),
        (Kind::Chat { include_usage }, true) => {
            let err = json!({"error": {"message": "The server had an error", "type": "server_error", "code": "server_error"}});
            let err = Bytes::from(format!("data: {err}\n\n"));
            sse(
                core.clone(),
                answer.chat_chunks(include_usage),
                behavior.clone(),
                err,
            )
        }
        (Kind::Responses, true) => {
            let mut failed = answer.response("failed");
            failed["error"] = json!({"code": "server_error", "message": "The server had an error"});
            let err = event(
                "response.failed",
                json!({"type": "response.failed", "response": failed}),
            );
            sse(
                core.clone(),
                answer.response_events(),
                behavior.clone(),
                err,
            )
        }
    };
    if let Behavior::AnswerWithHeaders(h) = &behavior {
        add_headers(&mut resp, h);
    }
    resp
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Chat { include_usage: bool },
    Responses,
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

struct Answer {
    usage: MockUsage,
    model: String,
    /// A function call (name, arguments JSON) instead of text.
    call: Option<(String, String)>,
}

impl Answer {
    fn prompt(&self) -> u64 {
        self.usage.input_tokens + self.usage.cache_read_tokens
    }

    fn chat_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt(),
            "completion_tokens": self.usage.output_tokens,
            "total_tokens": self.prompt() + self.usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.usage.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.usage.output_tokens / 4},
        })
    }

    fn responses_usage(&self) -> Value {
        json!({
            "input_tokens": self.prompt(),
            "input_tokens_details": {"cached_tokens": self.usage.cache_read_tokens},
            "output_tokens": self.usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.usage.output_tokens / 4},
            "total_tokens": self.prompt() + self.usage.output_tokens,
        })
    }

    fn chat(&self) -> Value {
        let (message, finish) = match &self.call {
            Some((name, args)) => (
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "call_mock_1", "type": "function", "function": {"name": name, "arguments": args}}]}),
                "tool_calls",
            ),
            None => (
                json!({"role": "assistant", "content": OPENAI_ANSWER, "refusal": null}),
                "stop",
            ),
        };
        json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000,
               "model": self.model, "system_fingerprint": "fp_mock",
               "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
               "usage": self.chat_usage()})
    }

    fn chat_chunks(&self, include_usage: bool) -> Vec<Bytes> {
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut c = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                               "created": 1_700_000_000, "model": self.model, "system_fingerprint": "fp_mock",
                               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
            if include_usage {
                c["usage"] = Value::Null;
            }
            Bytes::from(format!("data: {c}\n\n"))
        };
        let mut out = vec![chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        let finish = match &self.call {
            Some((name, args)) => {
                out.push(chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
                out.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": args}}]}),
                    None,
                ));
                "tool_calls"
            }
            None => {
                for w in words(OPENAI_ANSWER) {
                    out.push(chunk(json!({"content": w}), None));
                }
                "stop"
            }
        };
        out.push(chunk(json!({}), Some(finish)));
        if include_usage {
            let u = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                           "created": 1_700_000_000, "model": self.model, "system_fingerprint": "fp_mock",
                           "choices": [], "usage": self.chat_usage()});
            out.push(Bytes::from(format!("data: {u}\n\n")));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }

    fn output_item(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match &self.call {
            Some((name, args)) => {
                json!({"id": "fc_mock_1", "type": "function_call", "status": status,
                                         "call_id": "call_mock_1", "name": name,
                                         "arguments": if done { args.as_str() } else { "" }})
            }
            None => {
                let content = if done {
                    json!([{"type": "output_text", "text": OPENAI_ANSWER, "annotations": []}])
                } else {
                    json!([])
                };
                json!({"id": "msg_mock_1", "type": "message", "status": status, "role": "assistant",
                       "content": content})
            }
        }
    }

    fn response(&self, status: &str) -> Value {
        let done = status != "in_progress";
        let output = if done {
            json!([self.output_item(true)])
        } else {
            json!([])
        };
        json!({"id": "resp_mock_1", "object": "response", "created_at": 1_700_000_000,
               "status": status, "model": self.model, "output": output,
               "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
               "error": null, "incomplete_details": null,
               "usage": if done { self.responses_usage() } else { Value::Null }})
    }

    fn response_events(&self) -> Vec<Bytes> {
        let mut seq = 0u64;
        let mut ev = |name: &str, mut data: Value| {
            data["type"] = json!(name);
            data["sequence_number"] = json!(seq);
            seq += 1;
            event(name, data)
        };
        let mut out = vec![
            ev(
                "response.created",
                json!({"response": self.response("in_progress")}),
            ),
            ev(
                "response.in_progress",
                json!({"response": self.response("in_progress")}),
            ),
            ev(
                "response.output_item.added",
                json!({"output_index": 0, "item": self.output_item(false)}),
            ),
        ];
        match &self.call {
            Some((_, args)) => out.push(ev(
                "response.function_call_arguments.delta",
                json!({"item_id": "fc_mock_1", "output_index": 0, "delta": args}),
            )),
            None => {
                let part =
                    |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
                let at = json!({"item_id": "msg_mock_1", "output_index": 0, "content_index": 0});
                let with = |extra: Value| {
                    let mut v = at.clone();
                    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                        m.extend(e.clone());
                    }
                    v
                };
                out.push(ev(
                    "response.content_part.added",
                    with(json!({"part": part("")})),
                ));
                for w in words(OPENAI_ANSWER) {
                    out.push(ev("response.output_text.delta", with(json!({"delta": w}))));
                }
                out.push(ev(
                    "response.output_text.done",
                    with(json!({"text": OPENAI_ANSWER})),
                ));
                out.push(ev(
                    "response.content_part.done",
                    with(json!({"part": part(OPENAI_ANSWER)})),
                ));
            }
        }
        out.push(ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": self.output_item(true)}),
        ));
        out.push(ev(
            "response.completed",
            json!({"response": self.response("completed")}),
        ));
        out
    }
}
