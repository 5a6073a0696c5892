//! The OpenAI request paths under `/api/ai-proxy`: Chat Completions (also
//! the unified `/chat`) and Responses.
//!
//! Responses requests go to `openai_compatible` accounts byte for byte.
//! Chat requests go to the first kind of account, in an order the model
//! name suggests, that the group binds for the model and the key may use:
//! OpenAI-compatible accounts take them as they are (the gateway asks for
//! the final usage chunk and drops it again when the client did not);
//! Claude and Gemini accounts get them translated (see [`crate::translate`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::crossing::{ClientSide, Crossing};
use super::exchange::{
    self, service_of, translated_headers, Inbound, Leg, PathKind, RequestContext, SendFuture, Wire,
};
use super::messages::model_field;
use super::{GatewayBody, GatewayError, Inner};
use crate::account::Protocol;
use crate::key::KeyRecord;
use crate::provider::anthropic::{MessagesEndpoint, MessagesRequest};
use crate::provider::gemini::{GeminiMethod, GeminiRequest};
use crate::provider::openai::{OpenAiEndpoint, OpenAiRequest};
use crate::router::session;
use crate::router::RoutableAccount;
use crate::stream::openai::ChatStreamUsage;
use crate::stream::openai::{usage_from_body, ChatUsageStrip, ResponsesStreamUsage};
use crate::stream::tap::{ClientStream, Passthrough, StreamTap};
use crate::translate::chat::ChatRequest;
use crate::translate::{self, TranslateError};
use crate::usage::Usage;

/// The fields of a chat or Responses body the gateway reads; the rest
/// passes through (or is translated).
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(default)]
    max_tokens: Option<Value>,
    #[serde(default)]
    max_completion_tokens: Option<Value>,
    /// Responses.
    #[serde(default)]
    max_output_tokens: Option<Value>,
    #[serde(borrow, default)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: session::FirstUserMessage<'a>,
}

fn peek(body: &[u8]) -> Result<Peek<'_>, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::InvalidRequest(format!("request body is not valid JSON: {e}")))
}

fn session_of(headers: &HeaderMap, p: &Peek<'_>) -> Option<session::SessionId> {
    let hints = session::SessionHints {
        prompt_cache_key: p.prompt_cache_key,
        first_user_content: p.messages.0,
        ..Default::default()
    };
    session::extract(headers, &hints)
}

/// Account protocols to try for a chat `model`: the one its name belongs
/// to first, OpenAI-compatible (no translation) before the other.
fn order_for(model: &str) -> [Protocol; 3] {
    let m = model.to_ascii_lowercase();
    if m.starts_with("claude") {
        [Protocol::Anthropic, Protocol::Openai, Protocol::Gemini]
    } else if m.starts_with("gemini") || m.starts_with("gemma") {
        [Protocol::Gemini, Protocol::Openai, Protocol::Anthropic]
    } else {
        [Protocol::Openai, Protocol::Anthropic, Protocol::Gemini]
    }
}

/// Whether the key may use the accounts of `protocol`.
fn allows(key: &KeyRecord, protocol: Protocol) -> bool {
    key.services.is_empty() || key.services.contains(&service_of(protocol))
}

pub(super) async fn serve_chat(
    inner: &Arc<Inner>,
    req: http::Request<Bytes>,
    started: Instant,
) -> Result<Response<GatewayBody>, GatewayError> {
    let path = PathKind {
        client: Protocol::Openai,
        metered: true,
    };
    exchange::serve(inner, path, req, started, |key, headers, body| {
        let p = peek(body)?;
        let (model, span) = model_field(p.model, body)?;
        let upstreams: Vec<Protocol> = order_for(&model)
            .into_iter()
            .filter(|proto| allows(key, *proto))
            .collect();
        let first = upstreams.first().copied().ok_or_else(|| {
            GatewayError::Permission(
                "this key may not use the openai, claude or gemini service".into(),
            )
        })?;
        let stream = p.stream.as_ref().and_then(Value::as_bool) == Some(true);
        let include_usage = p
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        let max_tokens = p
            .max_completion_tokens
            .as_ref()
            .or(p.max_tokens.as_ref())
            .and_then(Value::as_u64);
        Ok(Inbound {
            session: session_of(headers, &p),
            model,
            model_span: Some(span),
            max_tokens,
            streamed: stream,
            service: service_of(first),
            wire: Box::new(Chat {
                upstreams,
                stream,
                include_usage,
            }),
        })
    })
    .await
}

pub(super) async fn serve_responses(
    inner: &Arc<Inner>,
    req: http::Request<Bytes>,
    started: Instant,
) -> Result<Response<GatewayBody>, GatewayError> {
    let path = PathKind {
        client: Protocol::Openai,
        metered: true,
    };
    exchange::serve(inner, path, req, started, |_key, headers, body| {
        let p = peek(body)?;
        let (model, span) = model_field(p.model, body)?;
        Ok(Inbound {
            session: session_of(headers, &p),
            model,
            model_span: Some(span),
            max_tokens: p.max_output_tokens.as_ref().and_then(Value::as_u64),
            streamed: p.stream.as_ref().and_then(Value::as_bool) == Some(true),
            service: crate::key::Service::Openai,
            wire: Box::new(Responses),
        })
    })
    .await
}

/// The answer to a WebSocket attempt on `/v1/responses`: at once, not
/// 101, so the client falls back to HTTP.
pub(super) fn refuse_socket() -> Response<GatewayBody> {
    let mut resp = GatewayError::InvalidRequest(
        "this gateway serves the Responses API over HTTP POST, not WebSocket".into(),
    )
    .into_response(Protocol::Openai);
    *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
    resp
}

/// A chat request.
#[derive(Debug)]
struct Chat {
    upstreams: Vec<Protocol>,
    stream: bool,
    include_usage: bool,
}

fn invalid(e: TranslateError) -> GatewayError {
    GatewayError::InvalidRequest(e.to_string())
}

impl Wire for Chat {
    fn client_stream(&self) -> ClientStream {
        ClientStream::OpenAiChat
    }

    fn upstreams(&self) -> &[Protocol] {
        &self.upstreams
    }

    fn leg(&self, upstream: Protocol, ctx: &RequestContext) -> Result<Box<dyn Leg>, GatewayError> {
        if upstream == Protocol::Openai {
            return Ok(Box::new(NativeChat {
                add_usage: self.stream && !self.include_usage,
            }));
        }
        let chat = ChatRequest::parse(&ctx.body).map_err(invalid)?;
        Ok(match upstream {
            Protocol::Anthropic => Box::new(ClaudeChat {
                body: translate::anthropic::request(&chat).map_err(invalid)?,
                include_usage: self.include_usage,
            }),
            _ => Box::new(GeminiChat {
                body: translate::gemini::request(&chat).map_err(invalid)?,
                stream: self.stream,
                include_usage: self.include_usage,
            }),
        })
    }
}

/// Chat on OpenAI-compatible accounts.
#[derive(Debug)]
struct NativeChat {
    /// The client streams without asking for usage: ask for it anyway,
    /// and drop that chunk on the way back.
    add_usage: bool,
}

impl Leg for NativeChat {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let mut body = ctx.body_for(account);
        if self.add_usage {
            body = request_usage(&body);
        }
        let req = OpenAiRequest {
            account: account.clone(),
            endpoint: OpenAiEndpoint::ChatCompletions,
            client_headers: ctx.headers.clone(),
            body,
        };
        Box::pin(tower::ServiceExt::oneshot(inner.openai.clone(), req))
    }

    fn tap(&self, _ctx: &RequestContext) -> Box<dyn StreamTap> {
        if self.add_usage {
            Box::new(ChatUsageStrip::default())
        } else {
            Box::new(Passthrough::new(
                ChatStreamUsage::default(),
                ClientStream::OpenAiChat,
            ))
        }
    }

    fn whole(&self, _: &RequestContext, _: StatusCode, body: Bytes) -> (Option<Usage>, Bytes) {
        (usage_from_body(&body), body)
    }
}

/// The body with `stream_options.include_usage` set. Without a
/// `stream_options` field it is inserted and every other byte kept.
fn request_usage(body: &Bytes) -> Bytes {
    let needle: &[u8] = b"\"stream_options\"";
    let mentioned = body.windows(needle.len()).any(|w| w == needle);
    let open = body.iter().position(|b| !b.is_ascii_whitespace());
    if let (false, Some(at)) = (mentioned, open.filter(|&i| body[i] == b'{')) {
        let empty = body[at + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
        let insert: &[u8] = if empty {
            br#""stream_options":{"include_usage":true}"#
        } else {
            br#""stream_options":{"include_usage":true},"#
        };
        let mut out = Vec::with_capacity(body.len() + insert.len());
        out.extend_from_slice(&body[..=at]);
        out.extend_from_slice(insert);
        out.extend_from_slice(&body[at + 1..]);
        return Bytes::from(out);
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Map<String, Value>>(body) else {
        return body.clone();
    };
    let options = v
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Default::default()));
    if !options.is_object() {
        *options = Value::Object(Default::default());
    }
    options["include_usage"] = Value::Bool(true);
    Bytes::from(Value::Object(v).to_string())
}

/// Chat translated for Claude (and Anthropic-compatible) accounts.
#[derive(Debug)]
struct ClaudeChat {
    body: serde_json::Map<String, Value>,
    include_usage: bool,
}

impl Leg for ClaudeChat {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let model = account.account.upstream_model(&ctx.model);
        let req = MessagesRequest {
            account: account.clone(),
            endpoint: MessagesEndpoint::Messages,
            query: None,
            client_headers: translated_headers(&ctx.headers),
            body: translate::anthropic::with_model(&self.body, model),
        };
        Box::pin(tower::ServiceExt::oneshot(inner.anthropic.clone(), req))
    }

    fn tap(&self, ctx: &RequestContext) -> Box<dyn StreamTap> {
        Box::new(translate::anthropic::ChatFromMessages::new(
            &ctx.model,
            self.include_usage,
        ))
    }

    fn whole(
        &self,
        ctx: &RequestContext,
        status: StatusCode,
        body: Bytes,
    ) -> (Option<Usage>, Bytes) {
        let usage = crate::stream::anthropic::usage_from_body(&body);
        let out = if status.is_success() {
            translate::anthropic::response(&body, &ctx.model)
        } else {
            None
        };
        (
            usage,
            out.unwrap_or_else(|| translate::error_body(status.as_u16(), &body)),
        )
    }
}

/// Chat translated for Gemini accounts.
#[derive(Debug)]
struct GeminiChat {
    body: Bytes,
    stream: bool,
    include_usage: bool,
}

impl Leg for GeminiChat {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let method = if self.stream {
            GeminiMethod::StreamGenerateContent
        } else {
            GeminiMethod::GenerateContent
        };
        let req = GeminiRequest {
            account: account.clone(),
            version: "v1beta",
            model: account.account.upstream_model(&ctx.model).to_owned(),
            method,
            query: None,
            client_headers: translated_headers(&ctx.headers),
            body: self.body.clone(),
        };
        Box::pin(tower::ServiceExt::oneshot(inner.gemini.clone(), req))
    }

    fn tap(&self, ctx: &RequestContext) -> Box<dyn StreamTap> {
        Box::new(translate::gemini::ChatFromGemini::new(
            &ctx.model,
            self.include_usage,
        ))
    }

    fn whole(
        &self,
        ctx: &RequestContext,
        status: StatusCode,
        body: Bytes,
    ) -> (Option<Usage>, Bytes) {
        let usage = crate::stream::gemini::usage_from_body(&body);
        let out = if status.is_success() {
            translate::gemini::response(&body, &ctx.model)
        } else {
            None
        };
        (
            usage,
            out.unwrap_or_else(|| translate::error_body(status.as_u16(), &body)),
        )
    }
}

/// Responses on OpenAI-compatible accounts, byte for byte.
#[derive(Debug, Clone, Copy)]
struct Responses;

impl Wire for Responses {
    fn client_stream(&self) -> ClientStream {
        ClientStream::OpenAiResponses
    }

    fn upstreams(&self) -> &[Protocol] {
        &[Protocol::Openai, Protocol::Anthropic, Protocol::Gemini]
    }

    fn leg(&self, upstream: Protocol, ctx: &RequestContext) -> Result<Box<dyn Leg>, GatewayError> {
        if upstream == Protocol::Openai {
            return Ok(Box::new(Responses));
        }
        let request = translate::responses::read_request(&ctx.body).map_err(invalid)?;
        let conversation = request.conversation.clone();
        Ok(Box::new(Crossing::new(
            &conversation,
            upstream,
            ClientSide::Responses(Box::new(request)),
        )?))
    }
}

impl Leg for Responses {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let req = OpenAiRequest {
            account: account.clone(),
            endpoint: OpenAiEndpoint::Responses,
            client_headers: ctx.headers.clone(),
            body: ctx.body_for(account),
        };
        Box::pin(tower::ServiceExt::oneshot(inner.openai.clone(), req))
    }

    fn tap(&self, _ctx: &RequestContext) -> Box<dyn StreamTap> {
        Box::new(Passthrough::new(
            ResponsesStreamUsage::default(),
            ClientStream::OpenAiResponses,
        ))
    }

    fn whole(&self, _: &RequestContext, _: StatusCode, body: Bytes) -> (Option<Usage>, Bytes) {
        (usage_from_body(&body), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_asked_for_without_touching_other_bytes() {
        let body = Bytes::from_static(br#" {"model":"m","stream":true}"#);
        assert_eq!(
            &request_usage(&body)[..],
            br#" {"stream_options":{"include_usage":true},"model":"m","stream":true}"#
        );
        let v: Value = serde_json::from_slice(&request_usage(&Bytes::from_static(
            br#"{"stream_options":{"include_usage":false},"model":"m"}"#,
        )))
        .unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "m");
        assert_eq!(
            &request_usage(&Bytes::from_static(b"{ }"))[..],
            br#"{"stream_options":{"include_usage":true} }"#
        );
    }

    #[test]
    fn the_model_name_orders_the_upstreams() {
        assert_eq!(order_for("claude-sonnet-4-5")[0], Protocol::Anthropic);
        assert_eq!(order_for("gemini-2.5-flash")[0], Protocol::Gemini);
        assert_eq!(order_for("gpt-4o-mini")[0], Protocol::Openai);
        assert_eq!(order_for("kimi-k2-0905-preview")[1], Protocol::Anthropic);
    }
}
