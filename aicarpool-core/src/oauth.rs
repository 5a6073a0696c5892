//! Claude subscription accounts: OAuth sign-in and safe token refresh.
//!
//! An owner signs in once in a browser ([`login`]: a PKCE S256 authorize
//! URL, the pasted `code#state` exchanged at the token endpoint) or pastes
//! a long-lived setup token. From then on the gateway keeps the account's
//! access token fresh ([`refresh`]): ahead of expiry and after an upstream
//! 401, one refresh at a time per account, the new pair written with a
//! compare-and-swap, because Claude refresh tokens rotate and a refresh
//! token sent twice loses the account.
//!
//! Every endpoint is configurable ([`ClaudeOAuthConfig`]) so that tests and
//! moved endpoints need no new build.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::provider::proxy::HttpClients;

pub mod endpoint;
pub mod lease;
pub mod login;
pub mod login_store;
pub mod pkce;
pub mod refresh;

pub use endpoint::{TokenEndpoint, TokenSet};
pub use lease::CredentialLease;
pub use login::{Login, PastedCode, PendingLogins, StartedLogin};
pub use login_store::{InMemoryLoginStore, LoginStore, LoginStoreError};
pub use pkce::Pkce;
pub use refresh::{TokenManager, TokenManagerConfig};

/// The `anthropic-beta` flag an OAuth access token needs on the Messages API.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

/// The scope a long-lived setup token carries.
pub const SETUP_TOKEN_SCOPE: &str = "user:inference";

/// Where Claude's OAuth lives and what the gateway asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaudeOAuthConfig {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    /// How long a started sign-in may be finished.
    pub login_ttl: Duration,
    /// Longest wait for the token endpoint.
    pub timeout: Duration,
}

impl Default for ClaudeOAuthConfig {
    fn default() -> Self {
        Self {
            authorize_url: "https://claude.ai/oauth/authorize".into(),
            token_url: "https://platform.claude.com/v1/oauth/token".into(),
            client_id: "9d1c250a-e61b-44d9-88ed-5944d1962f5e".into(),
            redirect_uri: "https://platform.claude.com/oauth/code/callback".into(),
            scopes: [
                "org:create_api_key",
                "user:profile",
                "user:inference",
                "user:sessions:claude_code",
            ]
            .map(String::from)
            .to_vec(),
            login_ttl: Duration::from_secs(600),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Whose subscription an account's tokens belong to, as the token endpoint
/// reported it. Not secret; kept sealed with the tokens all the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// What can go wrong signing in or refreshing. Messages never hold a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The token endpoint refused (4xx other than 429): the grant is dead
    /// (`invalid_grant`) or the request was wrong; retrying will not help.
    #[error("the token endpoint refused ({status}): {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        status: u16,
        code: String,
        description: Option<String>,
    },
    /// Connect error, timeout, 429 or 5xx: worth another try later.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error("the token endpoint's answer is unreadable: {0}")]
    BadResponse(String),
    #[error("the account has no refresh token; sign in again or paste a new token")]
    NoRefreshToken,
    #[error("the account has no access token")]
    NoAccessToken,
    #[error("the proxy is unusable: {0}")]
    Proxy(String),
    #[error("the sign-in session is unknown or was already used; start again")]
    UnknownSession,
    #[error("the sign-in session expired; start again")]
    SessionExpired,
    #[error("the pasted state does not match the sign-in session; start again")]
    StateMismatch,
    #[error("no authorization code found in the pasted value")]
    NoCode,
    #[error("the account is gone")]
    AccountGone,
    #[error("storage: {0}")]
    Store(String),
    #[error("the credentials could not be sealed or opened")]
    Secret,
}

impl OAuthError {
    /// Whether the account needs an owner (a new sign-in) rather than time.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            OAuthError::Refused { .. }
                | OAuthError::NoRefreshToken
                | OAuthError::NoAccessToken
                | OAuthError::Proxy(_)
                | OAuthError::Secret
        )
    }

    /// The HTTP status the token endpoint answered, if it did.
    pub fn status(&self) -> Option<u16> {
        match self {
            OAuthError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<LoginStoreError> for OAuthError {
    fn from(e: LoginStoreError) -> Self {
        OAuthError::Store(e.to_string())
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        OAuthError::Store(e.to_string())
    }
}

/// The Claude OAuth side of a gateway: configuration, the token endpoint
/// and the refresh coordinator. Cheap to clone.
#[derive(Clone)]
pub struct ClaudeOAuth {
    config: Arc<ClaudeOAuthConfig>,
    endpoint: TokenEndpoint,
    tokens: Arc<TokenManager>,
}

impl fmt::Debug for ClaudeOAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaudeOAuth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClaudeOAuth {
    pub fn new(
        config: Arc<ClaudeOAuthConfig>,
        clients: Arc<HttpClients>,
        tokens: Arc<TokenManager>,
    ) -> Self {
        Self {
            endpoint: TokenEndpoint::new(config.clone(), clients),
            config,
            tokens,
        }
    }

    pub fn config(&self) -> &ClaudeOAuthConfig {
        &self.config
    }

    /// The token endpoint, for exchanging a pasted code.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// The refresh coordinator the data plane uses.
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }
}
