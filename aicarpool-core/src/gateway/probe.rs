//! The minimal real call `POST /api/accounts/{id}/test` makes, in the
//! account's own protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{AccountTestReport, Inner};
use crate::account::{Account, Protocol};
use crate::provider::anthropic::{probe_model, MessagesEndpoint, MessagesRequest};
use crate::provider::gemini::{GeminiMethod, GeminiRequest};
use crate::provider::{ProviderError, ResponseClass};
use crate::router::RoutableAccount;

/// Sends the probe: a one-token Messages or `generateContent` call, or for
/// OpenAI-compatible accounts `GET /models` (no tokens spent).
async fn call(
    inner: &Inner,
    account: Arc<RoutableAccount>,
) -> Result<reqwest::Response, ProviderError> {
    // A test that leads back to this gateway is refused there at once.
    let mark = super::hops::own_mark(&inner.deployment);
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
                client_headers: mark,
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
                client_headers: mark,
                body: Bytes::from(body.to_string()),
            };
            tower::ServiceExt::oneshot(inner.gemini.clone(), req).await
        }
        Protocol::Openai => inner.openai.list_models(&account, &mark).await,
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

/// Runs the probe and reports it. The report is read by whoever may edit
/// the account, who also chooses where it points: it carries a status,
/// a latency and a short class, and an upstream body only when it is a
/// well-formed provider error (cut short, anything like a key masked), so
/// an account aimed at some internal service does not read that service
/// out, and connect errors do not tell open, closed and filtered ports
/// apart.
pub(super) async fn test(inner: &Inner, account: &Account) -> AccountTestReport {
    let started = Instant::now();
    let report = |status: Option<u16>, class: Option<&'static str>, error: Option<String>| {
        AccountTestReport {
            ok: class.is_none(),
            status,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error_class: class,
            error,
        }
    };
    let routable = match super::routes::routable(inner, account.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) => return report(None, Some("config"), Some(e.to_string())),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, call(inner, routable)).await {
        Err(_) => report(
            None,
            Some("timeout"),
            Some("the upstream did not answer in 30 s".into()),
        ),
        Ok(Err(e)) => {
            tracing::info!(account_id = %account.id, error = %e, "account test failed");
            let (class, message) = failure(&e);
            report(None, Some(class), Some(message))
        }
        Ok(Ok(resp)) => {
            let status = resp.status();
            if status.is_success() {
                return report(Some(status.as_u16()), None, None);
            }
            let class = match ResponseClass::of(status) {
                ResponseClass::CredentialsRejected => "credentials_rejected",
                ResponseClass::RateLimited => "rate_limited",
                _ => "upstream_error",
            };
            let body = super::relay::read_bounded(resp, 4096).await;
            let message = provider_error_message(&body)
                .map(|m| mask_secrets(&cut(&m, MAX_ERROR_CHARS)))
                .unwrap_or_else(|| format!("the upstream answered {}", status.as_u16()));
            report(Some(status.as_u16()), Some(class), Some(message))
        }
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a provider's error message a report shows.
const MAX_ERROR_CHARS: usize = 200;

fn failure(e: &ProviderError) -> (&'static str, String) {
    match e {
        // The guard's refusal names only what the admin configured.
        ProviderError::Blocked(d) => (e.kind(), d.to_string()),
        _ => (e.kind(), e.public_message().to_owned()),
    }
}

/// The message of an Anthropic, OpenAI or Gemini error body
/// (`{"error": {"message": "…"}}`, Anthropic's with `"type": "error"`);
/// `None` for anything else.
fn provider_error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?.as_object()?;
    let message = error.get("message")?.as_str()?.trim();
    let typed = error.get("type").or_else(|| error.get("status"));
    (!message.is_empty() && typed.is_some_and(serde_json::Value::is_string)
        || error.get("code").is_some())
    .then(|| message.to_owned())
}

fn cut(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Masks every run that looks like a credential: a known key prefix, or
/// a long run of key characters with letters and digits mixed.
pub(crate) fn mask_secrets(s: &str) -> String {
    const PREFIXES: [&str; 5] = ["sk-", "aicp_", "AIza", "ya29.", "Bearer "];
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(is_key_char) {
        out.push_str(&rest[..start]);
        let run_len = rest[start..]
            .find(|c: char| !is_key_char(c))
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + run_len];
        let mixed =
            run.chars().any(|c| c.is_ascii_digit()) && run.chars().any(|c| c.is_ascii_alphabetic());
        if PREFIXES.iter().any(|p| run.starts_with(p)) || (run.len() >= 24 && mixed) {
            out.push_str(&run[..run.len().min(4)]);
            out.push('…');
        } else {
            out.push_str(run);
        }
        rest = &rest[start + run_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_provider_errors_are_shown_and_keys_are_masked() {
        let anthropic = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-api03-AAAABBBBCCCC"}}"#;
        let m = provider_error_message(anthropic).map(|m| mask_secrets(&m));
        assert_eq!(m.as_deref(), Some("invalid x-api-key sk-a…"));
        let gemini = br#"{"error":{"code":400,"message":"API key not valid. AIzaSyD-123456789012345678901234","status":"INVALID_ARGUMENT"}}"#;
        let m = mask_secrets(&provider_error_message(gemini).unwrap_or_default());
        assert_eq!(m, "API key not valid. AIza…");
        for other in [
            &br#"{"error":"INTERNAL-SECRET-XYZ from /secret403"}"#[..],
            br#"<html>admin panel</html>"#,
            br#"{"message":"internal"}"#,
            br#"{"error":{"detail":"x"}}"#,
        ] {
            assert_eq!(provider_error_message(other), None);
        }
        let long = cut(&"é".repeat(300), MAX_ERROR_CHARS);
        assert_eq!(long.chars().count(), MAX_ERROR_CHARS + 1);
        assert_eq!(mask_secrets("plain words, 42 ok"), "plain words, 42 ok");
        assert_eq!(
            mask_secrets("token 0123456789abcdefghij0123456789 used"),
            "token 0123… used"
        );
    }
}
