//! Upstream accounts: who the gateway calls on a member's behalf.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::Sealed;

/// The kind of upstream an account talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Claude subscription through OAuth tokens.
    ClaudeOauth,
    /// Anthropic API key.
    ClaudeApi,
    /// A relay that speaks the Anthropic Messages API (Kimi, Qwen, GLM, …).
    AnthropicCompatible,
    Gemini,
    OpenaiCompatible,
}

/// The wire protocol a client or an account speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Anthropic,
    Gemini,
    Openai,
}

/// The API a client's request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientApi {
    /// Anthropic Messages (Claude Code, the Anthropic SDKs).
    Messages,
    /// OpenAI Chat Completions.
    ChatCompletions,
    /// OpenAI Responses (Codex).
    Responses,
    /// Gemini `generateContent` (Gemini CLI, google-genai).
    Gemini,
}

impl ClientApi {
    /// The protocol family, as `serves` lists it.
    pub fn protocol(self) -> Protocol {
        match self {
            ClientApi::Messages => Protocol::Anthropic,
            ClientApi::ChatCompletions | ClientApi::Responses => Protocol::Openai,
            ClientApi::Gemini => Protocol::Gemini,
        }
    }

    /// The client API native to accounts of `protocol`.
    pub fn native(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Anthropic => ClientApi::Messages,
            Protocol::Openai => ClientApi::Responses,
            Protocol::Gemini => ClientApi::Gemini,
        }
    }
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::ClaudeOauth => "claude_oauth",
            Platform::ClaudeApi => "claude_api",
            Platform::AnthropicCompatible => "anthropic_compatible",
            Platform::Gemini => "gemini",
            Platform::OpenaiCompatible => "openai_compatible",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Platform::ClaudeOauth | Platform::ClaudeApi | Platform::AnthropicCompatible => {
                Protocol::Anthropic
            }
            Platform::Gemini => Protocol::Gemini,
            Platform::OpenaiCompatible => Protocol::Openai,
        }
    }

    /// Platforms whose accounts this build can create and call.
    pub fn is_supported(self) -> bool {
        // Gemini and OpenAI-compatible accounts serve the `/api/ai-proxy`
        // paths (and translated chat requests).
        matches!(
            self,
            Platform::ClaudeApi
                | Platform::AnthropicCompatible
                | Platform::ClaudeOauth
                | Platform::Gemini
                | Platform::OpenaiCompatible
        )
    }
}

/// Known Anthropic-compatible relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Kimi,
    Qwen,
    Glm,
    Deepseek,
    Custom,
}

/// How the account's key is presented upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthStyle {
    /// `x-api-key: <key>`
    XApiKey,
    /// `Authorization: Bearer <key>`
    Bearer,
}

/// Default base URL of the Anthropic API.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

impl Preset {
    /// The relay's documented base URL (the client appends `/v1/messages`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Preset::Kimi => Some("https://api.moonshot.cn/anthropic"),
            Preset::Qwen => Some("https://dashscope.aliyuncs.com/apps/anthropic"),
            Preset::Glm => Some("https://open.bigmodel.cn/api/anthropic"),
            Preset::Deepseek => Some("https://api.deepseek.com/anthropic"),
            Preset::Custom => None,
        }
    }

    /// The header style each relay documents.
    pub fn auth_style(self) -> AuthStyle {
        match self {
            Preset::Kimi | Preset::Glm => AuthStyle::Bearer,
            Preset::Qwen | Preset::Deepseek | Preset::Custom => AuthStyle::XApiKey,
        }
    }
}

/// Plain upstream credentials. Only ever held in memory; `Debug` redacts.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// OAuth scopes the tokens were granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Whose subscription the OAuth tokens belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::oauth::OAuthIdentity>,
    /// The password of the account's proxy URL, kept here so it is sealed
    /// like the rest; the stored URL has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = |o: &Option<String>| if o.is_some() { "<redacted>" } else { "-" };
        f.debug_struct("Credentials")
            .field("api_key", &mark(&self.api_key))
            .field("access_token", &mark(&self.access_token))
            .field("refresh_token", &mark(&self.refresh_token))
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("identity", &self.identity.is_some())
            .field("proxy_password", &mark(&self.proxy_password))
            .finish()
    }
}

impl Credentials {
    /// The secret sent upstream for API-key style accounts.
    pub fn bearer_or_key(&self) -> Option<&str> {
        self.api_key.as_deref().or(self.access_token.as_deref())
    }
}

/// Who owns an account: a carpool group, or an enterprise pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountOwner {
    Group(String),
    Enterprise(String),
}

/// A stored upstream account. Credentials stay sealed here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub name: String,
    pub platform: Platform,
    pub preset: Option<Preset>,
    /// Explicit base URL; `None` uses the platform or preset default.
    pub base_url: Option<String>,
    pub owner: AccountOwner,
    /// Models this account serves; empty = any.
    pub models: Vec<String>,
    /// Client model → upstream model. A key may be a glob (`claude-*`):
    /// an exact key wins, then the longest matching glob.
    pub model_map: BTreeMap<String, String>,
    /// Client protocols this account may serve besides its own, through
    /// translation (empty: its own only; see [`Account::serves_client`]).
    #[serde(default)]
    pub serves: Vec<Protocol>,
    /// Lower is tried first.
    pub priority: i32,
    pub weight: u32,
    pub max_concurrency: Option<u32>,
    /// Outbound proxy URL (`http://`, `https://`, `socks5://`).
    pub proxy: Option<String>,
    pub enabled: bool,
    #[serde(skip)]
    pub credentials: Sealed,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// The base URL requests go to, without a trailing slash.
    pub fn effective_base_url(&self) -> Option<String> {
        let url = match (&self.base_url, self.platform, self.preset) {
            (Some(u), _, _) => u.as_str(),
            (None, Platform::ClaudeApi | Platform::ClaudeOauth, _) => ANTHROPIC_BASE_URL,
            (None, Platform::AnthropicCompatible, Some(p)) => p.default_base_url()?,
            (None, Platform::Gemini, _) => crate::provider::gemini::GEMINI_BASE_URL,
            _ => return None,
        };
        Some(url.trim_end_matches('/').to_owned())
    }

    /// How this account authenticates upstream.
    pub fn auth_style(&self) -> AuthStyle {
        match self.platform {
            Platform::ClaudeApi => AuthStyle::XApiKey,
            Platform::AnthropicCompatible => {
                self.preset.map_or(AuthStyle::XApiKey, Preset::auth_style)
            }
            Platform::ClaudeOauth | Platform::Gemini | Platform::OpenaiCompatible => {
                AuthStyle::Bearer
            }
        }
    }

    /// Whether this account serves `model` (before mapping).
    pub fn serves_model(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.mapped(model).is_some()
            || self.models.iter().any(|m| crate::key::glob_match(m, model))
    }

    /// The model name to send upstream.
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.mapped(model).unwrap_or(model)
    }

    /// The model map's entry for `model`: the exact key, else the longest
    /// glob that matches.
    fn mapped(&self, model: &str) -> Option<&str> {
        if let Some(m) = self.model_map.get(model) {
            return Some(m);
        }
        self.model_map
            .iter()
            .filter(|(pattern, _)| pattern.contains('*') && crate::key::glob_match(pattern, model))
            .max_by_key(|(pattern, _)| pattern.len())
            .map(|(_, m)| m.as_str())
    }

    /// Whether this account may serve a client speaking `client`: its own
    /// protocol always, another when the owner listed it in `serves`.
    /// OpenAI Chat Completions every account served before `serves`
    /// existed: an account whose `serves` is empty still serves it.
    pub fn serves_client(&self, client: ClientApi) -> bool {
        let wanted = client.protocol();
        wanted == self.platform.protocol()
            || self.serves.contains(&wanted)
            || (client == ClientApi::ChatCompletions && self.serves.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(platform: Platform) -> Account {
        let now = Utc::now();
        Account {
            id: "a1".into(),
            name: "relay".into(),
            platform,
            preset: None,
            base_url: None,
            owner: AccountOwner::Group("g1".into()),
            models: Vec::new(),
            model_map: BTreeMap::new(),
            serves: Vec::new(),
            priority: 0,
            weight: 1,
            max_concurrency: None,
            proxy: None,
            enabled: true,
            credentials: Sealed::default(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn an_exact_model_map_key_wins_then_the_longest_glob() {
        let mut a = relay(Platform::OpenaiCompatible);
        a.models = vec!["deepseek-*".into()];
        a.model_map = BTreeMap::from([
            ("claude-*".into(), "deepseek-chat".into()),
            ("claude-opus-*".into(), "deepseek-reasoner".into()),
            ("claude-opus-4-1".into(), "kimi-k2".into()),
        ]);
        assert_eq!(a.upstream_model("claude-sonnet-4-5"), "deepseek-chat");
        assert_eq!(a.upstream_model("claude-opus-4-5"), "deepseek-reasoner");
        assert_eq!(a.upstream_model("claude-opus-4-1"), "kimi-k2");
        assert_eq!(a.upstream_model("deepseek-chat"), "deepseek-chat");
        assert!(a.serves_model("claude-haiku-4-5"));
        assert!(a.serves_model("deepseek-coder"));
        assert!(!a.serves_model("gpt-5"));
    }

    #[test]
    fn another_protocol_is_served_only_when_listed() {
        let mut a = relay(Platform::OpenaiCompatible);
        assert!(a.serves_client(ClientApi::Responses));
        assert!(a.serves_client(ClientApi::ChatCompletions));
        assert!(!a.serves_client(ClientApi::Messages));
        assert!(!a.serves_client(ClientApi::Gemini));
        a.serves = vec![Protocol::Anthropic];
        assert!(a.serves_client(ClientApi::Messages));
        assert!(!a.serves_client(ClientApi::Gemini));

        // Chat Completions, as before `serves`: unless the list leaves it out.
        let mut c = relay(Platform::ClaudeApi);
        assert!(c.serves_client(ClientApi::Messages));
        assert!(c.serves_client(ClientApi::ChatCompletions));
        assert!(!c.serves_client(ClientApi::Responses));
        c.serves = vec![Protocol::Gemini];
        assert!(!c.serves_client(ClientApi::ChatCompletions));
        c.serves = vec![Protocol::Openai];
        assert!(c.serves_client(ClientApi::ChatCompletions));
        assert!(c.serves_client(ClientApi::Responses));
    }

    #[test]
    fn credentials_debug_redacts() {
        let c = Credentials {
            api_key: Some("sk-ant-very-secret".into()),
            ..Default::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("very-secret"));
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn presets_have_documented_urls() {
        assert_eq!(
            Preset::Kimi.default_base_url(),
            Some("https://api.moonshot.cn/anthropic")
        );
        assert_eq!(Preset::Deepseek.auth_style(), AuthStyle::XApiKey);
        assert_eq!(Preset::Custom.default_base_url(), None);
    }
}
