//! What the API answers: the JSON shapes of records. Secrets (credentials,
//! key hashes, password hashes, token hashes) have no field here.

use std::collections::BTreeMap;

use aicarpool_core::account::{Account, AccountOwner, Platform, Preset};
use aicarpool_core::binding::{Binding, BindingMode, BoundAccount};
use aicarpool_core::fare::Fee;
use aicarpool_core::key::{KeyRecord, Service};
use aicarpool_core::org::{Group, GroupRole, Membership, User};
use aicarpool_core::usage::{RefusalCounts, UsageReport, UsageTotals};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

/// A group, with the caller's role when they are a member.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    #[serde(flatten)]
    pub group: Group,
    pub role: Option<GroupRole>,
}

/// A row of `GET /api/groups/{id}/members`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: GroupRole,
    pub share_weight: u32,
    pub joined_at: DateTime<Utc>,
}

impl MemberView {
    pub fn new(m: &Membership, u: &User) -> Self {
        Self {
            user_id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: m.role,
            share_weight: m.share_weight,
            joined_at: m.joined_at,
        }
    }
}

/// An upstream account without its credentials.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub platform: Platform,
    pub preset: Option<Preset>,
    /// The effective base URL (explicit, else the preset's or platform's).
    pub base_url: Option<String>,
    pub group_id: Option<String>,
    pub enterprise_id: Option<String>,
    pub models: Vec<String>,
    pub model_map: BTreeMap<String, String>,
    pub priority: i32,
    pub weight: u32,
    pub max_concurrency: Option<u32>,
    /// With any password in the URL masked.
    pub proxy: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub has_credentials: bool,
    /// The fee in effect now (`{amountUsd, period}`), `null` when none.
    pub fee: Option<Fee>,
}

impl AccountView {
    /// The view with the account's current fee (see
    /// [`crate::api::accounts::account_view`], which reads it).
    pub fn with_fee(mut self, fee: Option<Fee>) -> Self {
        self.fee = fee;
        self
    }
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        let (group_id, enterprise_id) = match &a.owner {
            AccountOwner::Group(g) => (Some(g.clone()), None),
            AccountOwner::Enterprise(e) => (None, Some(e.clone())),
        };
        Self {
            id: a.id.clone(),
            name: a.name.clone(),
            platform: a.platform,
            preset: a.preset,
            // Masked for accounts stored before userinfo was refused.
            base_url: a.effective_base_url().as_deref().map(mask_url_password),
            group_id,
            enterprise_id,
            models: a.models.clone(),
            model_map: a.model_map.clone(),
            priority: a.priority,
            weight: a.weight,
            max_concurrency: a.max_concurrency,
            proxy: a.proxy.as_deref().map(mask_url_password),
            enabled: a.enabled,
            created_at: a.created_at,
            updated_at: a.updated_at,
            has_credentials: !a.credentials.0.is_empty(),
            fee: None,
        }
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

/// A group's binding. `implicit` is true when none was set and the group
/// is served by the accounts it owns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingView {
    pub group_id: String,
    pub mode: BindingMode,
    pub accounts: Vec<BoundAccount>,
    pub implicit: bool,
}

impl BindingView {
    pub fn explicit(b: Binding) -> Self {
        Self {
            group_id: b.group_id,
            mode: b.mode,
            accounts: b.accounts,
            implicit: false,
        }
    }
}

/// The answer to key creation and rotation: the only time `key` is shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKeyView {
    #[serde(flatten)]
    pub record: KeyRecord,
    pub key: String,
    pub guide: Value,
}

/// Set-up for each client the key may be used with, for this server.
pub fn key_guide(public_url: &str, key: &str, services: &[Service]) -> Value {
    let mut guide = serde_json::Map::new();
    let allows = |s: Service| services.is_empty() || services.contains(&s);
    let proxy = format!("{public_url}/api/ai-proxy");
    if allows(Service::Gemini) {
        guide.insert("geminiCli".into(), gemini_cli_guide(&proxy, key));
    }
    if allows(Service::Openai) {
        guide.insert("codex".into(), codex_guide(&proxy, key));
    }
    // The chat endpoint serves every bound service, so any key can use it.
    guide.insert(
        "openai".into(),
        json!({
            "OPENAI_BASE_URL": format!("{proxy}/v1"),
            "OPENAI_API_KEY": key,
            "env": format!("export OPENAI_BASE_URL={proxy}/v1\nexport OPENAI_API_KEY={key}"),
        }),
    );
    if allows(Service::Claude) {
        let base = format!("{public_url}/api");
        guide.insert(
            "claudeCode".into(),
            json!({"ANTHROPIC_BASE_URL": base, "ANTHROPIC_AUTH_TOKEN": key}),
        );
        guide.insert(
            "env".into(),
            Value::String(format!(
                "export ANTHROPIC_BASE_URL={base}\nexport ANTHROPIC_AUTH_TOKEN={key}"
            )),
        );
    }
    Value::Object(guide)
}

/// Gemini CLI: the environment and `~/.gemini/settings.json` (API-key
/// auth, so it never asks to sign in with Google).
fn gemini_cli_guide(proxy: &str, key: &str) -> Value {
    json!({
        "GOOGLE_GEMINI_BASE_URL": proxy,
        "GEMINI_API_KEY": key,
        "settingsPath": "~/.gemini/settings.json",
        "settingsJson": {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": false},
        },
        "env": format!("export GOOGLE_GEMINI_BASE_URL={proxy}\nexport GEMINI_API_KEY={key}"),
    })
}

/// Codex: a custom provider speaking the Responses API, its key read from
/// `AICARPOOL_API_KEY`.
fn codex_guide(proxy: &str, key: &str) -> Value {
    let config = format!(
        "model_provider = \"aicarpool\"\n\n\
         [model_providers.aicarpool]\n\
         name = \"AiCarpool\"\n\
         base_url = \"{proxy}/v1\"\n\
         env_key = \"AICARPOOL_API_KEY\"\n\
         wire_api = \"responses\"\n"
    );
    json!({
        "configPath": "~/.codex/config.toml",
        "configToml": config,
        "AICARPOOL_API_KEY": key,
        "env": format!("export AICARPOOL_API_KEY={key}"),
    })
}

/// Usage sums with cost in USD.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalsView {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_write_tokens: u64,
    /// Of `cacheWriteTokens`: written for 5 minutes, and for 1 hour.
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_usd: f64,
    pub errors: u64,
    /// Requests whose usage was estimated (none reported), or partial (the
    /// answer broke off): their tokens and cost are a lower bound.
    pub estimated: u64,
    pub partial: u64,
    /// Of `errors`: the gateway's own refusals, every reason a key.
    pub refusals: RefusalCounts,
}

impl From<&UsageTotals> for TotalsView {
    fn from(t: &UsageTotals) -> Self {
        Self {
            requests: t.requests,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cache_write_tokens: t.cache_write_tokens,
            cache_write_5m_tokens: t.cache_write_5m_tokens,
            cache_write_1h_tokens: t.cache_write_1h_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cost_usd: t.cost_usd(),
            errors: t.errors,
            estimated: t.estimated,
            partial: t.partial,
            refusals: t.refusals,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct UsageRowView {
    pub bucket: String,
    #[serde(flatten)]
    pub totals: TotalsView,
}

#[derive(Debug, Serialize)]
pub struct UsageView {
    pub rows: Vec<UsageRowView>,
    pub totals: TotalsView,
}

impl From<&UsageReport> for UsageView {
    fn from(r: &UsageReport) -> Self {
        Self {
            rows: r
                .rows
                .iter()
                .map(|row| UsageRowView {
                    bucket: row.bucket.clone(),
                    totals: TotalsView::from(&row.totals),
                })
                .collect(),
            totals: TotalsView::from(&r.totals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_passwords_are_masked() {
        assert_eq!(
            mask_url_password("socks5://bob:hunter2@proxy:1080"),
            "socks5://bob:***@proxy:1080"
        );
        assert_eq!(
            mask_url_password("http://proxy:8080/x@y"),
            "http://proxy:8080/x@y"
        );
        assert_eq!(mask_url_password("http://bob@proxy"), "http://bob@proxy");
    }
}
