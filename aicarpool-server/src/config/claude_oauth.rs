//! `AICARPOOL_CLAUDE_OAUTH_*`: where Claude's OAuth lives.
//!
//! Claude has moved these endpoints before; each can be changed without a
//! new build (and tests point them at a mock). Unset values take Claude's
//! own: authorize `https://claude.ai/oauth/authorize`, token
//! `https://platform.claude.com/v1/oauth/token`, redirect
//! `https://platform.claude.com/oauth/code/callback`, Claude Code's client
//! id, scopes `org:create_api_key user:profile user:inference
//! user:sessions:claude_code`.

use std::time::Duration;

use aicarpool_core::oauth::{ClaudeOAuthConfig, TokenManagerConfig};
use clap::Args;

/// Claude OAuth endpoints and timing.
#[derive(Debug, Clone, Default, Args)]
pub struct ClaudeOAuthArgs {
    /// Authorize URL the owner opens to sign in.
    #[arg(
        long = "claude-oauth-authorize-url",
        env = "AICARPOOL_CLAUDE_OAUTH_AUTHORIZE_URL"
    )]
    pub authorize_url: Option<String>,

    /// Token endpoint (code exchange and refresh).
    #[arg(
        long = "claude-oauth-token-url",
        env = "AICARPOOL_CLAUDE_OAUTH_TOKEN_URL"
    )]
    pub token_url: Option<String>,

    /// OAuth client id.
    #[arg(
        long = "claude-oauth-client-id",
        env = "AICARPOOL_CLAUDE_OAUTH_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// Redirect URI registered for the client (shows the code to paste).
    #[arg(
        long = "claude-oauth-redirect-uri",
        env = "AICARPOOL_CLAUDE_OAUTH_REDIRECT_URI"
    )]
    pub redirect_uri: Option<String>,

    /// Scopes asked for, separated by spaces or commas.
    #[arg(long = "claude-oauth-scopes", env = "AICARPOOL_CLAUDE_OAUTH_SCOPES")]
    pub scopes: Option<String>,

    /// How long a started sign-in may be finished, in seconds (default 600).
    #[arg(
        long = "claude-oauth-session-ttl-secs",
        env = "AICARPOOL_CLAUDE_OAUTH_SESSION_TTL_SECS"
    )]
    pub session_ttl_secs: Option<u64>,

    /// Refresh access tokens this many seconds before they expire (default 300).
    #[arg(
        long = "claude-oauth-refresh-ahead-secs",
        env = "AICARPOOL_CLAUDE_OAUTH_REFRESH_AHEAD_SECS"
    )]
    pub refresh_ahead_secs: Option<u64>,
}

impl ClaudeOAuthArgs {
    /// The endpoints, with Claude's own where unset.
    pub fn config(&self) -> ClaudeOAuthConfig {
        let d = ClaudeOAuthConfig::default();
        let pick = |v: &Option<String>, default: String| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map_or(default, str::to_owned)
        };
        let scopes = self
            .scopes
            .as_deref()
            .map(|s| {
                s.split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .unwrap_or(d.scopes);
        ClaudeOAuthConfig {
            authorize_url: pick(&self.authorize_url, d.authorize_url),
            token_url: pick(&self.token_url, d.token_url),
            client_id: pick(&self.client_id, d.client_id),
            redirect_uri: pick(&self.redirect_uri, d.redirect_uri),
            scopes,
            login_ttl: self
                .session_ttl_secs
                .map_or(d.login_ttl, Duration::from_secs),
            timeout: d.timeout,
        }
    }

    /// When tokens are refreshed.
    pub fn token_refresh(&self) -> TokenManagerConfig {
        let d = TokenManagerConfig::default();
        TokenManagerConfig {
            refresh_ahead: self
                .refresh_ahead_secs
                .map_or(d.refresh_ahead, Duration::from_secs),
            ..d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_claude_and_set_overrides() {
        let c = ClaudeOAuthArgs::default().config();
        assert_eq!(c, ClaudeOAuthConfig::default());
        let c = ClaudeOAuthArgs {
            token_url: Some("http://127.0.0.1:9/v1/oauth/token".into()),
            scopes: Some("user:inference, user:profile".into()),
            session_ttl_secs: Some(5),
            ..Default::default()
        }
        .config();
        assert_eq!(c.token_url, "http://127.0.0.1:9/v1/oauth/token");
        assert_eq!(c.scopes, ["user:inference", "user:profile"]);
        assert_eq!(c.login_ttl, Duration::from_secs(5));
        assert_eq!(c.authorize_url, ClaudeOAuthConfig::default().authorize_url);
    }
}
