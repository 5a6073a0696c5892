//! The Gemini request path (`/api/ai-proxy/{v1beta|v1}/models/{model}:…`):
//! Gemini CLI and the google-genai SDKs on Gemini accounts, byte for byte.
//! The model is in the path; an account's `modelMap` renames it there.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Deserialize;

use super::crossing::{ClientSide, Crossing};
use super::exchange::{self, Inbound, Leg, PathKind, RequestContext, SendFuture, Wire};
use super::paths::GeminiCall;
use super::{GatewayBody, GatewayError, Inner};
use crate::account::Protocol;
use crate::key::Service;
use crate::provider::gemini::{GeminiMethod, GeminiRequest};
use crate::router::RoutableAccount;
use crate::stream::gemini::{usage_from_body, GeminiStreamUsage};
use crate::stream::tap::{ClientStream, Passthrough, StreamTap};
use crate::translate;
use crate::usage::Usage;

/// What the gateway reads of a Gemini body: the output bound.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    #[serde(default)]
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    /// Read leniently: a malformed value is the upstream's to refuse.
    #[serde(default)]
    max_output_tokens: Option<serde_json::Value>,
}

pub(super) async fn serve(
    inner: &Arc<Inner>,
    call: GeminiCall,
    req: http::Request<Bytes>,
    started: Instant,
) -> Result<Response<GatewayBody>, GatewayError> {
    let path = PathKind {
        client: Protocol::Gemini,
        metered: call.method != GeminiMethod::CountTokens,
    };
    exchange::serve(inner, path, req, started, |_key, _headers, body| {
        let peek: Peek = serde_json::from_slice(body).map_err(|e| {
            GatewayError::InvalidRequest(format!("request body is not valid JSON: {e}"))
        })?;
        let max_tokens = peek
            .generation_config
            .and_then(|g| g.max_output_tokens)
            .and_then(|v| v.as_u64());
        Ok(Inbound {
            model: call.model.clone(),
            model_span: None,
            max_tokens,
            streamed: call.method == GeminiMethod::StreamGenerateContent,
            session: None,
            service: Service::Gemini,
            wire: Box::new(Gemini { call: call.clone() }),
        })
    })
    .await
}

/// Gemini clients on Gemini accounts.
#[derive(Debug, Clone)]
struct Gemini {
    call: GeminiCall,
}

impl Wire for Gemini {
    fn client_stream(&self) -> ClientStream {
        ClientStream::Gemini
    }

    fn upstreams(&self) -> &[Protocol] {
        // Token counts are Gemini's own: no other protocol answers them.
        match self.call.method {
            GeminiMethod::CountTokens => &[Protocol::Gemini],
            _ => &[Protocol::Gemini, Protocol::Anthropic, Protocol::Openai],
        }
    }

    fn leg(&self, upstream: Protocol, ctx: &RequestContext) -> Result<Box<dyn Leg>, GatewayError> {
        if upstream == Protocol::Gemini {
            return Ok(Box::new(self.clone()));
        }
        let stream = self.call.method == GeminiMethod::StreamGenerateContent;
        let conversation = translate::generate::read_request(&ctx.body, &ctx.model, stream)
            .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
        let sse = ctx
            .query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
        Ok(Box::new(Crossing::new(
            &conversation,
            upstream,
            ClientSide::Gemini { sse },
        )?))
    }
}

impl Leg for Gemini {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let req = GeminiRequest {
            account: account.clone(),
            version: self.call.version,
            model: account.account.upstream_model(&ctx.model).to_owned(),
            method: self.call.method,
            query: ctx.query.clone(),
            client_headers: ctx.headers.clone(),
            body: ctx.body.clone(),
        };
        Box::pin(tower::ServiceExt::oneshot(inner.gemini.clone(), req))
    }

    fn tap(&self, _ctx: &RequestContext) -> Box<dyn StreamTap> {
        Box::new(Passthrough::new(
            GeminiStreamUsage::default(),
            ClientStream::Gemini,
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
