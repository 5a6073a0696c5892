//! The Anthropic Messages request path: read the request, then the shared
//! pipeline (see [`super::exchange`]) admits, routes and relays it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::crossing::{ClientSide, Crossing};
use super::exchange::{self, Inbound, Leg, PathKind, RequestContext, SendFuture, Wire};
use super::{GatewayBody, GatewayError, Inner};
use crate::account::Protocol;
use crate::key::Service;
use crate::provider::anthropic::{MessagesEndpoint, MessagesRequest};
use crate::router::session;
use crate::router::RoutableAccount;
use crate::stream::anthropic::{usage_from_body, AnthropicStreamUsage};
use crate::stream::tap::{ClientStream, Passthrough, StreamTap};
use crate::translate;
use crate::usage::Usage;

/// The top-level fields the gateway reads; everything else passes
/// through untouched.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    /// Read leniently: a malformed value is the upstream's to refuse.
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    /// What sticky sessions read (see `router::session`), borrowed in the
    /// same pass.
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: session::FirstUserMessage<'a>,
}

pub(super) async fn serve(
    inner: &Arc<Inner>,
    endpoint: MessagesEndpoint,
    req: http::Request<Bytes>,
    started: Instant,
) -> Result<Response<GatewayBody>, GatewayError> {
    let path = PathKind {
        client: Protocol::Anthropic,
        // Member limits and records apply to Messages; `count_tokens` is free.
        metered: endpoint == MessagesEndpoint::Messages,
    };
    exchange::serve(inner, path, req, started, |_key, headers, body| {
        read(endpoint, headers, body)
    })
    .await
}

/// Parses what routing and limits need.
fn read(
    endpoint: MessagesEndpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Inbound, GatewayError> {
    let peek: Peek<'_> = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("request body is not valid JSON: {e}"))
    })?;
    let (model, model_span) = model_field(peek.model, body)?;
    let max_tokens = peek
        .max_tokens
        .and_then(|v| serde_json::from_str::<u64>(v.get()).ok());
    let hints = session::SessionHints {
        metadata: peek.metadata,
        prompt_cache_key: peek.prompt_cache_key,
        system: peek.system,
        first_user_content: peek.messages.0,
    };
    Ok(Inbound {
        model,
        model_span: Some(model_span),
        max_tokens,
        streamed: peek.stream.is_some_and(|v| v.get() == "true"),
        session: session::extract(headers, &hints),
        service: Service::Claude,
        wire: Box::new(Anthropic { endpoint }),
    })
}

/// The `model` string and where its JSON value sits in `body`.
pub(super) fn model_field(
    raw: Option<&RawValue>,
    body: &[u8],
) -> Result<(String, std::ops::Range<usize>), GatewayError> {
    let raw = raw.ok_or_else(|| GatewayError::InvalidRequest("model: field required".into()))?;
    let model: String = serde_json::from_str(raw.get())
        .map_err(|_| GatewayError::InvalidRequest("model: must be a string".into()))?;
    // The raw value borrows from `body`; its offset is where `model` sits.
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    Ok((model, start..start + raw.get().len()))
}

/// Anthropic clients on Anthropic accounts: byte for byte.
#[derive(Debug, Clone, Copy)]
struct Anthropic {
    endpoint: MessagesEndpoint,
}

impl Wire for Anthropic {
    fn client_stream(&self) -> ClientStream {
        ClientStream::Anthropic
    }

    fn upstreams(&self) -> &[Protocol] {
        // Token counts are Anthropic's own: no other protocol answers them.
        match self.endpoint {
            MessagesEndpoint::Messages => {
                &[Protocol::Anthropic, Protocol::Openai, Protocol::Gemini]
            }
            _ => &[Protocol::Anthropic],
        }
    }

    fn leg(&self, upstream: Protocol, ctx: &RequestContext) -> Result<Box<dyn Leg>, GatewayError> {
        if upstream == Protocol::Anthropic {
            return Ok(Box::new(*self));
        }
        let conversation = translate::messages::read_request(&ctx.body)
            .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
        Ok(Box::new(Crossing::new(
            &conversation,
            upstream,
            ClientSide::Messages,
        )?))
    }
}

impl Leg for Anthropic {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let req = MessagesRequest {
            account: account.clone(),
            endpoint: self.endpoint,
            query: ctx.query.clone(),
            client_headers: ctx.headers.clone(),
            body: ctx.body_for(account),
        };
        Box::pin(tower::ServiceExt::oneshot(inner.anthropic.clone(), req))
    }

    fn tap(&self, _ctx: &RequestContext) -> Box<dyn StreamTap> {
        Box::new(Passthrough::new(
            AnthropicStreamUsage::default(),
            ClientStream::Anthropic,
        ))
    }

    fn whole(
        &self,
        _ctx: &RequestContext,
        _status: StatusCode,
        body: Bytes,
    ) -> (Option<Usage>, Bytes) {
        (usage_from_body(&body), body)
    }
}
