//! The minimal real call `POST /api/accounts/{id}/test` makes, in the
//! account's own protocol.

use std::sync::Arc;

use bytes::Bytes;

use super::Inner;
use crate::account::{Account, Protocol};
use crate::provider::anthropic::{probe_model, MessagesEndpoint, MessagesRequest};
use crate::provider::gemini::{GeminiMethod, GeminiRequest};
use crate::provider::ProviderError;
use crate::router::RoutableAccount;

/// Sends the probe: a one-token Messages or `generateContent` call, or for
/// OpenAI-compatible accounts `GET /models` (no tokens spent).
pub(super) async fn call(
    inner: &Inner,
    account: Arc<RoutableAccount>,
) -> Result<reqwest::Response, ProviderError> {
    match account.account.platform.protocol() {
        Protocol::Anthropic => {
            let body = serde_json::json!({
                "model": probe_model(&account.account),
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "ping"}],
            });
            let req = MessagesRequest {
                account,
                endpoint: MessagesEndpoint::Messages,
                query: None,
                client_headers: http::HeaderMap::new(),
                body: Bytes::from(body.to_string()),
            };
            tower::ServiceExt::oneshot(inner.anthropic.clone(), req).await
        }
        Protocol::Gemini => {
            let body = serde_json::json!({
                "contents": [{"role": "user", "parts": [{"text": "ping"}]}],
                "generationConfig": {"maxOutputTokens": 1},
            });
            let req = GeminiRequest {
                model: gemini_probe_model(&account.account),
                account,
                version: "v1beta",
                method: GeminiMethod::GenerateContent,
                query: None,
                client_headers: http::HeaderMap::new(),
                body: Bytes::from(body.to_string()),
            };
            tower::ServiceExt::oneshot(inner.gemini.clone(), req).await
        }
        Protocol::Openai => inner.openai.list_models(&account).await,
    }
}

/// A model the Gemini account serves, cheapest by default.
fn gemini_probe_model(a: &Account) -> String {
    a.model_map
        .values()
        .chain(a.models.iter().filter(|m| !m.contains(['*', '?', '['])))
        .next()
        .cloned()
        .unwrap_or_else(|| "gemini-2.5-flash-lite".into())
}
