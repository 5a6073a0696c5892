//! Which data-plane path a request is on, and so which protocol it speaks.
//!
//! Anthropic clients call `…/messages`; everything else lives under
//! `/api/ai-proxy`: Gemini's `/{v1beta|v1}/models/{model}:{method}` and
//! OpenAI's `/v1/chat/completions`, `/v1/responses`, `/v1/models`, and the
//! unified `/chat` (OpenAI chat shape, any bound service).

use http::{Method, Response, StatusCode};

use super::{GatewayBody, GatewayError};
use crate::account::Protocol;
use crate::provider::anthropic::MessagesEndpoint;
use crate::provider::gemini::GeminiMethod;

/// Where the Gemini and OpenAI-compatible APIs are served.
pub const AI_PROXY_PREFIX: &str = "/api/ai-proxy";

/// A Gemini call, as its path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GeminiCall {
    pub version: &'static str,
    pub model: String,
    pub method: GeminiMethod,
}

/// A data-plane route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DataRoute {
    Messages(MessagesEndpoint),
    Gemini(GeminiCall),
    Chat,
    Responses,
    /// `GET /v1/responses`: a client trying a WebSocket first.
    ResponsesSocket,
    Models,
    Model(String),
}

/// Why a path cannot be served, in the path's protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NoRoute {
    NotFound(String),
    MethodNotAllowed(String),
    BadModel(String),
}

/// The answer for a path that cannot be served, in its protocol.
pub(super) fn refusal(no: NoRoute, protocol: Protocol) -> Response<GatewayBody> {
    match no {
        NoRoute::NotFound(m) => GatewayError::NotFound(m).into_response(protocol),
        NoRoute::BadModel(m) => GatewayError::InvalidRequest(m).into_response(protocol),
        NoRoute::MethodNotAllowed(m) => {
            let mut resp = GatewayError::InvalidRequest(m).into_response(protocol);
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp
        }
    }
}

/// The protocol errors on `path` are written in.
pub fn protocol_of(path: &str) -> Protocol {
    match path.strip_prefix(AI_PROXY_PREFIX) {
        None => Protocol::Anthropic,
        Some(rest) if rest.starts_with("/v1beta/") || rest.contains(':') => Protocol::Gemini,
        Some(_) => Protocol::Openai,
    }
}

/// The route of a request.
pub(super) fn route(method: &Method, path: &str) -> Result<DataRoute, NoRoute> {
    let Some(rest) = path.strip_prefix(AI_PROXY_PREFIX) else {
        return messages(path);
    };
    let post = |route: DataRoute| {
        if method == Method::POST {
            Ok(route)
        } else {
            Err(NoRoute::MethodNotAllowed(format!("{rest} takes POST")))
        }
    };
    let gemini = rest
        .strip_prefix("/v1beta/models/")
        .map(|m| ("v1beta", m))
        .or_else(|| rest.strip_prefix("/v1/models/").map(|m| ("v1", m)))
        .filter(|(_, m)| m.contains(':'));
    if let Some((version, target)) = gemini {
        return post(DataRoute::Gemini(gemini_call(version, target)?));
    }
    match rest {
        "/v1/chat/completions" | "/chat/completions" | "/chat" => post(DataRoute::Chat),
        "/v1/responses" | "/responses" if method == Method::GET => Ok(DataRoute::ResponsesSocket),
        "/v1/responses" | "/responses" => post(DataRoute::Responses),
        "/v1/models" | "/models" if method == Method::GET => Ok(DataRoute::Models),
        _ => {
            let id = rest
                .strip_prefix("/v1/models/")
                .filter(|id| !id.is_empty() && !id.contains('/'));
            match id {
                Some(id) if method == Method::GET => Ok(DataRoute::Model(id.to_owned())),
                _ => Err(NoRoute::NotFound(format!("no data-plane route for {path}"))),
            }
        }
    }
}

fn messages(path: &str) -> Result<DataRoute, NoRoute> {
    if path.ends_with("/messages/count_tokens") {
        Ok(DataRoute::Messages(MessagesEndpoint::CountTokens))
    } else if path.ends_with("/messages") {
        Ok(DataRoute::Messages(MessagesEndpoint::Messages))
    } else {
        Err(NoRoute::NotFound(format!("no data-plane route for {path}")))
    }
}

/// `gemini-2.5-flash:streamGenerateContent` → the model and the method.
fn gemini_call(version: &'static str, target: &str) -> Result<GeminiCall, NoRoute> {
    let (model, method) = target.rsplit_once(':').unwrap_or((target, ""));
    let method = GeminiMethod::parse(method).ok_or_else(|| {
        NoRoute::NotFound(format!(
            "method `{method}` is not served (generateContent, streamGenerateContent, countTokens are)"
        ))
    })?;
    let valid = !model.is_empty()
        && model.len() <= 200
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !valid {
        return Err(NoRoute::BadModel(format!("invalid model name `{model}`")));
    }
    Ok(GeminiCall {
        version,
        model: model.to_owned(),
        method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_paths() {
        let r = route(
            &Method::POST,
            "/api/ai-proxy/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        )
        .unwrap();
        assert_eq!(
            r,
            DataRoute::Gemini(GeminiCall {
                version: "v1beta",
                model: "gemini-2.5-flash".into(),
                method: GeminiMethod::StreamGenerateContent
            })
        );
        let r = route(&Method::POST, "/api/ai-proxy/v1/models/m-1:countTokens").unwrap();
        assert!(matches!(
            r,
            DataRoute::Gemini(GeminiCall { version: "v1", .. })
        ));
        assert!(matches!(
            route(&Method::POST, "/api/ai-proxy/v1/models/m:embedContent"),
            Err(NoRoute::NotFound(_))
        ));
        assert!(matches!(
            route(
                &Method::POST,
                "/api/ai-proxy/v1/models/a%2Fb:generateContent"
            ),
            Err(NoRoute::BadModel(_))
        ));
        assert_eq!(
            protocol_of("/api/ai-proxy/v1/models/m:generateContent"),
            Protocol::Gemini
        );
    }

    #[test]
    fn openai_and_anthropic_paths() {
        let r = |m: &Method, p: &str| route(m, p);
        assert_eq!(
            r(&Method::POST, "/api/ai-proxy/v1/chat/completions"),
            Ok(DataRoute::Chat)
        );
        assert_eq!(r(&Method::POST, "/api/ai-proxy/chat"), Ok(DataRoute::Chat));
        assert_eq!(
            r(&Method::POST, "/api/ai-proxy/v1/responses"),
            Ok(DataRoute::Responses)
        );
        assert_eq!(
            r(&Method::GET, "/api/ai-proxy/v1/responses"),
            Ok(DataRoute::ResponsesSocket)
        );
        assert_eq!(
            r(&Method::GET, "/api/ai-proxy/v1/models"),
            Ok(DataRoute::Models)
        );
        assert_eq!(
            r(&Method::GET, "/api/ai-proxy/v1/models/gpt-4o"),
            Ok(DataRoute::Model("gpt-4o".into()))
        );
        assert!(matches!(
            r(&Method::GET, "/api/ai-proxy/v1/chat/completions"),
            Err(NoRoute::MethodNotAllowed(_))
        ));
        assert_eq!(
            r(&Method::POST, "/api/v1/messages"),
            Ok(DataRoute::Messages(MessagesEndpoint::Messages))
        );
        assert_eq!(protocol_of("/api/ai-proxy/v1/responses"), Protocol::Openai);
        assert_eq!(protocol_of("/v1/messages"), Protocol::Anthropic);
    }
}
