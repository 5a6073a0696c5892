//! PKCE (RFC 7636, method S256) and the authorize URL.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::ClaudeOAuthConfig;

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

/// A code verifier and its S256 challenge. `Debug` hides the verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"<redacted>")
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Pkce {
    pub fn generate() -> Self {
        Self::from_verifier(random_token())
    }

    /// The pair for a known verifier (tests and the RFC's example).
    pub fn from_verifier(verifier: String) -> Self {
        let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }

    /// The secret half, sent only to the token endpoint.
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// The URL the owner opens to sign in. `code=true` makes Claude show the
/// code for pasting back instead of redirecting to a local server.
pub fn authorize_url(config: &ClaudeOAuthConfig, pkce: &Pkce, state: &str) -> String {
    let params = [
        ("code", "true"),
        ("client_id", config.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", config.redirect_uri.as_str()),
        ("scope", &config.scopes.join(" ")),
        ("code_challenge", pkce.challenge()),
        ("code_challenge_method", "S256"),
        ("state", state),
    ];
    match reqwest::Url::parse_with_params(&config.authorize_url, params) {
        Ok(url) => url.into(),
        // A malformed configured URL still yields something the owner can
        // see is wrong, rather than a panic.
        Err(_) => {
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            format!("{}?{}", config.authorize_url, query.join("&"))
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc7636_example() {
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(!format!("{p:?}").contains("dBjft"));
    }

    #[test]
    fn fresh_verifiers_differ_and_fit_the_rfc() {
        let (a, b) = (Pkce::generate(), Pkce::generate());
        assert_ne!(a.verifier(), b.verifier());
        assert!((43..=128).contains(&a.verifier().len()));
    }

    #[test]
    fn authorize_url_carries_everything() {
        let config = ClaudeOAuthConfig::default();
        let p = Pkce::generate();
        let url = reqwest::Url::parse(&authorize_url(&config, &p, "st4te")).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(url.host_str(), Some("claude.ai"));
        assert_eq!(q["code"], "true");
        assert_eq!(q["client_id"], config.client_id);
        assert_eq!(q["redirect_uri"], config.redirect_uri);
        assert_eq!(q["scope"], config.scopes.join(" "));
        assert_eq!(q["code_challenge"], p.challenge());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], "st4te");
        assert_eq!(q["response_type"], "code");
    }
}
