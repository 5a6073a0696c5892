//! The leg to an account of another protocol: the request is read into
//! the neutral form ([`crate::translate::neutral`]) and written in the
//! account's protocol; the answer comes back the same way, a stream event
//! by event.
//!
//! A client protocol's path builds a [`Crossing`] when the router picked
//! an account that serves its API only through translation (the account's
//! `serves` lists it). Chat Completions clients keep their own direct
//! translators (`openai.rs`).

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::exchange::{translated_headers, Leg, RequestContext, SendFuture};
use super::{GatewayError, Inner};
use crate::account::Protocol;
use crate::provider::anthropic::{MessagesEndpoint, MessagesRequest};
use crate::provider::gemini::{GeminiMethod, GeminiRequest};
use crate::provider::openai::{OpenAiEndpoint, OpenAiRequest};
use crate::router::RoutableAccount;
use crate::stream::frames::SseEvent;
use crate::stream::tap::{StreamSummary, StreamTap};
use crate::translate::neutral::{Answer, Conversation, Event};
use crate::translate::responses::ResponsesRequest;
use crate::translate::tap::{
    Adapt, JsonFromTool, ReadUpstream, Translated, Unchanged, WriteClient,
};
use crate::translate::{self, completions, generate, messages, responses, TranslateError};
use crate::usage::Usage;

/// The client's side of a crossing: how its answers are written.
#[derive(Debug, Clone)]
pub(super) enum ClientSide {
    Messages,
    /// `sse`: the client asked for `alt=sse` (else a JSON array stream).
    Gemini {
        sse: bool,
    },
    Responses(Box<ResponsesRequest>),
}

/// A request carried to an account of another protocol.
#[derive(Debug)]
pub(super) struct Crossing {
    upstream: Protocol,
    client: ClientSide,
    /// The request in the account's protocol, without its model.
    body: Map<String, Value>,
    stream: bool,
    /// The client wants JSON, which a Claude account gives as a forced
    /// tool call: its arguments are the answer.
    json_by_tool: bool,
}

impl Crossing {
    /// Writes `conversation` for accounts of `upstream`.
    pub(super) fn new(
        conversation: &Conversation,
        upstream: Protocol,
        client: ClientSide,
    ) -> Result<Self, GatewayError> {
        let body = match upstream {
            Protocol::Anthropic => messages::write_request(conversation),
            Protocol::Openai => completions::write_request(conversation),
            Protocol::Gemini => generate::write_request(conversation),
        }
        .map_err(invalid)?;
        Ok(Self {
            upstream,
            client,
            body,
            stream: conversation.stream,
            json_by_tool: upstream == Protocol::Anthropic && conversation.json.is_some(),
        })
    }

    fn with_model(&self, model: &str) -> Bytes {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        Bytes::from(Value::Object(body).to_string())
    }

    fn reader(&self) -> AccountReader {
        match self.upstream {
            Protocol::Anthropic => AccountReader::Messages(messages::MessagesReader::new()),
            Protocol::Openai => AccountReader::Completions(completions::CompletionsReader::new()),
            Protocol::Gemini => AccountReader::Gemini(generate::GeminiReader::new()),
        }
    }

    fn writer(&self, model: &str) -> ClientWriter {
        match &self.client {
            ClientSide::Messages => ClientWriter::Messages(messages::MessagesWriter::new(model)),
            ClientSide::Gemini { sse } => {
                ClientWriter::Gemini(generate::GeminiWriter::new(model, *sse))
            }
            ClientSide::Responses(request) => {
                ClientWriter::Responses(Box::new(responses::ResponsesWriter::new(model, request)))
            }
        }
    }

    fn read_answer(&self, body: &[u8]) -> Option<Answer> {
        let mut answer = match self.upstream {
            Protocol::Anthropic => messages::read_answer(body),
            Protocol::Openai => completions::read_answer(body),
            Protocol::Gemini => generate::read_answer(body),
        }?;
        if self.json_by_tool {
            let mut events = translate::neutral::unfold(&answer);
            JsonFromTool::new(messages::JSON_TOOL).adapt(&mut events);
            answer = translate::neutral::fold(events).ok()?;
        }
        Some(answer)
    }

    fn write_answer(&self, answer: &Answer, model: &str) -> Bytes {
        match &self.client {
            ClientSide::Messages => messages::write_answer(answer, model),
            ClientSide::Gemini { .. } => generate::write_answer(answer, model),
            ClientSide::Responses(request) => responses::write_answer(answer, model, request),
        }
    }

    fn error_body(&self, status: u16, message: &str) -> Bytes {
        match &self.client {
            ClientSide::Messages => messages::error_body(status, message),
            ClientSide::Gemini { .. } => generate::error_body(status, message),
            ClientSide::Responses(_) => responses::error_body(status, message),
        }
    }

    fn usage_of(&self, body: &[u8]) -> Option<Usage> {
        match self.upstream {
            Protocol::Anthropic => crate::stream::anthropic::usage_from_body(body),
            Protocol::Openai => crate::stream::openai::usage_from_body(body),
            Protocol::Gemini => crate::stream::gemini::usage_from_body(body),
        }
    }
}

fn invalid(e: TranslateError) -> GatewayError {
    GatewayError::InvalidRequest(e.to_string())
}

impl Leg for Crossing {
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a> {
        let model = account.account.upstream_model(&ctx.model);
        let client_headers = translated_headers(&ctx.headers);
        match self.upstream {
            Protocol::Anthropic => {
                let req = MessagesRequest {
                    account: account.clone(),
                    endpoint: MessagesEndpoint::Messages,
                    query: None,
                    client_headers,
                    body: self.with_model(model),
                };
                Box::pin(tower::ServiceExt::oneshot(inner.anthropic.clone(), req))
            }
            Protocol::Openai => {
                let req = OpenAiRequest {
                    account: account.clone(),
                    endpoint: OpenAiEndpoint::ChatCompletions,
                    client_headers,
                    body: self.with_model(model),
                };
                Box::pin(tower::ServiceExt::oneshot(inner.openai.clone(), req))
            }
            Protocol::Gemini => {
                let method = if self.stream {
                    GeminiMethod::StreamGenerateContent
                } else {
                    GeminiMethod::GenerateContent
                };
                let req = GeminiRequest {
                    account: account.clone(),
                    version: "v1beta",
                    model: model.to_owned(),
                    method,
                    query: None,
                    client_headers,
                    body: Bytes::from(Value::Object(self.body.clone()).to_string()),
                };
                Box::pin(tower::ServiceExt::oneshot(inner.gemini.clone(), req))
            }
        }
    }

    fn tap(&self, ctx: &RequestContext) -> Box<dyn StreamTap> {
        let reader = self.reader();
        let writer = self.writer(&ctx.model);
        if self.json_by_tool {
            Box::new(Translated::adapted(
                reader,
                writer,
                JsonFromTool::new(messages::JSON_TOOL),
            ))
        } else {
            Box::new(Translated::adapted(reader, writer, Unchanged))
        }
    }

    fn whole(
        &self,
        ctx: &RequestContext,
        status: StatusCode,
        body: Bytes,
    ) -> (Option<Usage>, Bytes) {
        let usage = self.usage_of(&body);
        let out = status
            .is_success()
            .then(|| self.read_answer(&body))
            .flatten()
            .map(|answer| self.write_answer(&answer, &ctx.model));
        let out = out.unwrap_or_else(|| {
            let status = if status.is_success() {
                // A 2xx whose body is not an answer: the upstream broke
                // its protocol.
                502
            } else {
                status.as_u16()
            };
            self.error_body(status, &translate::upstream_message(&body))
        });
        (usage, out)
    }
}

/// The reader of the account's protocol.
#[derive(Debug)]
enum AccountReader {
    Messages(messages::MessagesReader),
    Completions(completions::CompletionsReader),
    Gemini(generate::GeminiReader),
}

impl ReadUpstream for AccountReader {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        match self {
            AccountReader::Messages(r) => r.event(event, out),
            AccountReader::Completions(r) => r.event(event, out),
            AccountReader::Gemini(r) => r.event(event, out),
        }
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        match self {
            AccountReader::Messages(r) => r.end(out),
            AccountReader::Completions(r) => r.end(out),
            AccountReader::Gemini(r) => r.end(out),
        }
    }

    fn summary(self) -> StreamSummary {
        match self {
            AccountReader::Messages(r) => r.summary(),
            AccountReader::Completions(r) => r.summary(),
            AccountReader::Gemini(r) => r.summary(),
        }
    }
}

/// The writer of the client's protocol.
#[derive(Debug)]
enum ClientWriter {
    Messages(messages::MessagesWriter),
    Gemini(generate::GeminiWriter),
    Responses(Box<responses::ResponsesWriter>),
}

impl WriteClient for ClientWriter {
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        match self {
            ClientWriter::Messages(w) => w.event(event, out),
            ClientWriter::Gemini(w) => w.event(event, out),
            ClientWriter::Responses(w) => w.event(event, out),
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        match self {
            ClientWriter::Messages(w) => w.end(out),
            ClientWriter::Gemini(w) => w.end(out),
            ClientWriter::Responses(w) => w.end(out),
        }
    }

    fn broken(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        match self {
            ClientWriter::Messages(w) => w.broken(status, message, out),
            ClientWriter::Gemini(w) => w.broken(status, message, out),
            ClientWriter::Responses(w) => w.broken(status, message, out),
        }
    }
}
