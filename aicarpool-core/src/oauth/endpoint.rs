//! The token endpoint: exchanging an authorization code, refreshing.
//!
//! Both calls send a JSON body, as Claude's endpoint expects, through the
//! account's outbound proxy when it has one.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{ClaudeOAuthConfig, OAuthError, OAuthIdentity};
use crate::account::Credentials;
use crate::provider::proxy::HttpClients;

/// Largest token endpoint answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the token endpoint granted. `Debug` redacts the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    /// A new refresh token; `None` keeps the one in use.
    pub refresh_token: Option<String>,
    /// Seconds the access token lives.
    pub expires_in: Option<u64>,
    pub scopes: Vec<String>,
    pub identity: Option<OAuthIdentity>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field("identity", &self.identity)
            .finish()
    }
}

impl TokenSet {
    /// The account's credentials after this grant: what the grant did not
    /// say (refresh token, scopes, identity) is kept from `previous`.
    pub fn into_credentials(
        self,
        previous: Option<&Credentials>,
        now: DateTime<Utc>,
    ) -> Credentials {
        let expires_at = self.expires_in.and_then(|s| {
            let secs = i64::try_from(s).ok()?;
            now.checked_add_signed(chrono::Duration::seconds(secs))
        });
        Credentials {
            api_key: None,
            access_token: Some(self.access_token),
            refresh_token: self
                .refresh_token
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at,
            scopes: if self.scopes.is_empty() {
                previous.map(|p| p.scopes.clone()).unwrap_or_default()
            } else {
                self.scopes
            },
            identity: self
                .identity
                .or_else(|| previous.and_then(|p| p.identity.clone())),
            proxy_password: previous.and_then(|p| p.proxy_password.clone()),
        }
    }
}

/// The wire form of a grant.
#[derive(Deserialize)]
struct Grant {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    organization: Option<Org>,
    #[serde(default)]
    account: Option<Acct>,
}

#[derive(Deserialize)]
struct Org {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Acct {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Parses a 2xx answer of the token endpoint.
pub fn parse_grant(body: &[u8]) -> Result<TokenSet, OAuthError> {
    let g: Grant = serde_json::from_slice(body)
        .map_err(|e| OAuthError::BadResponse(format!("not a token answer: {e}")))?;
    if g.access_token.trim().is_empty() {
        return Err(OAuthError::BadResponse("empty access_token".into()));
    }
    let identity = (g.organization.is_some() || g.account.is_some()).then(|| OAuthIdentity {
        organization_uuid: g.organization.as_ref().and_then(|o| o.uuid.clone()),
        organization_name: g.organization.as_ref().and_then(|o| o.name.clone()),
        account_uuid: g.account.as_ref().and_then(|a| a.uuid.clone()),
        email: g.account.as_ref().and_then(|a| a.email_address.clone()),
    });
    Ok(TokenSet {
        access_token: g.access_token,
        refresh_token: g.refresh_token.filter(|t| !t.trim().is_empty()),
        expires_in: g.expires_in,
        scopes: g
            .scope
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        identity,
    })
}

/// The error of a non-2xx answer (`{"error": …, "error_description": …}`,
/// where `error` may also be an object with `type`/`message`).
fn refusal(status: u16, body: &[u8]) -> OAuthError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (mut code, mut description) = (None, None);
    if let Some(b) = parsed {
        description = b.error_description;
        code = match b.error {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Object(o)) => {
                if description.is_none() {
                    description = o.get("message").and_then(|m| m.as_str()).map(str::to_owned);
                }
                o.get("type").and_then(|t| t.as_str()).map(str::to_owned)
            }
            _ => None,
        };
    }
    let code = code.unwrap_or_else(|| format!("http_{status}"));
    let description = description.map(|d| d.chars().take(200).collect());
    if status == 429 || status >= 500 {
        let detail = description.map(|d| format!(": {d}")).unwrap_or_default();
        return OAuthError::Unavailable(format!("{status} {code}{detail}"));
    }
    OAuthError::Refused {
        status,
        code,
        description,
    }
}

/// Calls the configured token endpoint. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    config: Arc<ClaudeOAuthConfig>,
    clients: Arc<HttpClients>,
}

impl TokenEndpoint {
    pub fn new(config: Arc<ClaudeOAuthConfig>, clients: Arc<HttpClients>) -> Self {
        Self { config, clients }
    }

    /// Exchanges the code the owner pasted back for a token pair.
    pub async fn exchange_code(
        &self,
        proxy: Option<&str>,
        code: &str,
        verifier: &str,
        state: &str,
    ) -> Result<TokenSet, OAuthError> {
        let body = json!({
            "grant_type": "authorization_code",
            "code": code,
            "state": state,
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        });
        self.post(proxy, &body).await
    }

    /// Trades a refresh token for a new pair. Claude rotates refresh
    /// tokens: the one sent is dead once this succeeds.
    pub async fn refresh(
        &self,
        proxy: Option<&str>,
        refresh_token: &str,
    ) -> Result<TokenSet, OAuthError> {
        let body = json!({
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.config.client_id,
        });
        self.post(proxy, &body).await
    }

    async fn post(
        &self,
        proxy: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<TokenSet, OAuthError> {
        let http = self
            .clients
            .client_for(proxy, &self.config.token_url)
            .map_err(|e| OAuthError::Proxy(e.to_string()))?;
        let sent = http
            .post(&self.config.token_url)
            .timeout(self.config.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send()
            .await
            .map_err(|e| {
                OAuthError::Unavailable(
                    crate::provider::ProviderError::from_reqwest(&e).to_string(),
                )
            })?;
        let status = sent.status().as_u16();
        let answer = read_capped(sent).await?;
        if (200..300).contains(&status) {
            parse_grant(&answer)
        } else {
            Err(refusal(status, &answer))
        }
    }
}

async fn read_capped(resp: reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    use futures::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| OAuthError::Unavailable(format!("reading the answer: {e}")))?;
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(OAuthError::BadResponse("answer too large".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn grant_with_identity_and_scopes() {
        let body = br#"{"token_type":"Bearer","access_token":"sk-ant-oat01-A","refresh_token":"sk-ant-ort01-B",
            "expires_in":28800,"scope":"user:inference user:profile",
            "organization":{"uuid":"org-1","name":"Acme"},"account":{"uuid":"acc-1","email_address":"a@b.c"}}"#;
        let t = parse_grant(body).unwrap();
        assert_eq!(t.scopes, ["user:inference", "user:profile"]);
        assert_eq!(t.identity.as_ref().unwrap().email.as_deref(), Some("a@b.c"));
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("oat01") && !dbg.contains("ort01"), "{dbg}");
        let now = Utc::now();
        let c = t.into_credentials(None, now);
        assert_eq!(c.expires_at, Some(now + chrono::Duration::seconds(28800)));
        assert_eq!(c.refresh_token.as_deref(), Some("sk-ant-ort01-B"));
    }

    #[test]
    fn a_grant_without_refresh_token_keeps_the_old_one() {
        let prev = Credentials {
            refresh_token: Some("old-r".into()),
            scopes: vec!["user:inference".into()],
            ..Default::default()
        };
        let t = parse_grant(br#"{"access_token":"new-a","expires_in":60}"#).unwrap();
        let c = t.into_credentials(Some(&prev), Utc::now());
        assert_eq!(c.refresh_token.as_deref(), Some("old-r"));
        assert_eq!(c.scopes, ["user:inference"]);
    }

    #[test]
    fn refusals_are_permanent_and_outages_are_not() {
        let e = refusal(400, br#"{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}"#);
        assert!(e.is_permanent(), "{e}");
        assert!(e.to_string().contains("invalid_grant"));
        let e = refusal(
            400,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
        );
        assert!(matches!(&e, OAuthError::Refused { code, .. } if code == "invalid_request_error"));
        assert!(!refusal(503, b"down").is_permanent());
        assert!(!refusal(429, b"{}").is_permanent());
        assert!(parse_grant(b"{}").is_err());
    }
}
