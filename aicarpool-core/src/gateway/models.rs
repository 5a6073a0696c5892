//! `GET /api/ai-proxy/v1/models`: the models a key may use, in OpenAI's
//! list shape, from the accounts its group binds.
//!
//! An account's explicit `models` and `modelMap` names are listed; an
//! account that serves any model (or globs) lists the priced models of its
//! kind that it serves (Claude models for Anthropic accounts, a relay
//! preset's own models, Gemini or OpenAI models).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::json;

use super::error::full;
use super::exchange::service_of;
use super::{GatewayBody, GatewayError, Inner};
use crate::account::{Account, Platform, Preset};
use crate::key::{glob_match, KeyRecord, KeyRefusal, Service};

/// Lists the key's models, or one of them (`id`).
pub(super) async fn serve(
    inner: &Arc<Inner>,
    req: &http::Request<Bytes>,
    id: Option<&str>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let key = inner.authenticate(req.headers(), req.uri()).await?;
    let user_agent = super::exchange::client_name(req.headers());
    // The key's own state and client; services and models filter the list.
    let service = key.services.first().copied().unwrap_or(Service::Openai);
    key.check(chrono::Utc::now(), service, None, user_agent.as_deref())
        .map_err(|r| match r {
            KeyRefusal::Disabled | KeyRefusal::Expired(_) => {
                GatewayError::Authentication(r.to_string())
            }
            _ => GatewayError::Permission(r.to_string()),
        })?;
    let table = inner.route_table(&key.group_id).await?;
    let mut models: BTreeMap<String, &'static str> = BTreeMap::new();
    for c in &table.candidates {
        let a = &c.account.account;
        if !a.enabled || !allowed(&key, a) {
            continue;
        }
        for name in names(inner, a) {
            if key.models.is_empty() || key.models.iter().any(|g| glob_match(g, &name)) {
                models.entry(name).or_insert(owner(a.platform));
            }
        }
    }
    let entry = |id: &str, owner: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": owner});
    let body = match id {
        Some(id) => {
            let owner = models.get(id).ok_or_else(|| {
                GatewayError::NotFound(format!("model `{id}` is not available to this key"))
            })?;
            entry(id, owner)
        }
        None => {
            let data: Vec<_> = models.iter().map(|(id, o)| entry(id, o)).collect();
            json!({"object": "list", "data": data})
        }
    };
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn allowed(key: &KeyRecord, a: &Account) -> bool {
    key.services.is_empty() || key.services.contains(&service_of(a.platform.protocol()))
}

fn owner(p: Platform) -> &'static str {
    match p {
        Platform::ClaudeApi | Platform::ClaudeOauth => "anthropic",
        Platform::AnthropicCompatible => "anthropic-compatible",
        Platform::Gemini => "google",
        Platform::OpenaiCompatible => "openai",
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The model names an account answers to.
fn names(inner: &Inner, a: &Account) -> Vec<String> {
    let mut out: Vec<String> = a
        .models
        .iter()
        .filter(|m| !is_glob(m))
        .cloned()
        .chain(a.model_map.keys().cloned())
        .collect();
    if a.models.is_empty() || a.models.iter().any(|m| is_glob(m)) {
        let family: &[&str] = match (a.platform, a.preset) {
            (Platform::ClaudeApi | Platform::ClaudeOauth, _) => &["claude-"],
            (Platform::AnthropicCompatible, Some(Preset::Kimi)) => &["kimi-"],
            (Platform::AnthropicCompatible, Some(Preset::Qwen)) => &["qwen"],
            (Platform::AnthropicCompatible, Some(Preset::Glm)) => &["glm-"],
            (Platform::AnthropicCompatible, Some(Preset::Deepseek)) => &["deepseek-"],
            (Platform::AnthropicCompatible, _) => &[],
            (Platform::Gemini, _) => &["gemini-"],
            (Platform::OpenaiCompatible, _) => &["gpt-", "o1", "o3", "o4", "codex-"],
        };
        out.extend(
            inner
                .pricing
                .model_names()
                .filter(|n| family.iter().any(|f| n.starts_with(f)) && a.serves_model(n))
                .map(str::to_owned),
        );
    }
    out
}
