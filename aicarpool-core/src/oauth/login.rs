//! Browser sign-in with paste-back: pending sign-ins and the pasted code.
//!
//! `start` keeps the PKCE verifier and the state on the server (never in
//! the browser) under a random session id for a limited time; `take`
//! hands them out once. What the owner pastes back may be `code#state`
//! (what Claude shows), a bare code, or the whole callback URL.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pkce::{authorize_url, random_token, Pkce};
use super::{ClaudeOAuthConfig, OAuthError};

/// Pending sign-ins kept at most; the oldest go first.
const MAX_PENDING: usize = 1000;

/// Longest pasted value accepted.
const MAX_PASTE: usize = 4096;

/// A code as pasted back, with the state when it came along.
#[derive(Clone, PartialEq, Eq)]
pub struct PastedCode {
    pub code: String,
    pub state: Option<String>,
}

impl fmt::Debug for PastedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PastedCode")
            .field("code", &"<redacted>")
            .field("state", &self.state.is_some())
            .finish()
    }
}

impl PastedCode {
    /// Reads `code#state`, a bare code, or a callback URL with `code` (and
    /// `state`) in its query or fragment.
    pub fn parse(pasted: &str) -> Result<Self, OAuthError> {
        let s = pasted.trim();
        if s.is_empty() || s.len() > MAX_PASTE || s.chars().any(char::is_control) {
            return Err(OAuthError::NoCode);
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let url = reqwest::Url::parse(s).map_err(|_| OAuthError::NoCode)?;
            let mut pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
            if !pairs.contains_key("code") {
                if let Some(fragment) = url.fragment() {
                    pairs = reqwest::Url::parse(&format!("http://x/?{fragment}"))
                        .map(|u| u.query_pairs().into_owned().collect())
                        .unwrap_or_default();
                }
            }
            let code = pairs.remove("code").filter(|c| !c.is_empty());
            // A callback URL may carry `code#state` as its code.
            return match code {
                Some(c) if c.contains('#') => Self::parse(&c),
                Some(code) => Ok(Self {
                    code,
                    state: pairs.remove("state").filter(|s| !s.is_empty()),
                }),
                None => Err(OAuthError::NoCode),
            };
        }
        let (code, state) = match s.split_once('#') {
            Some((c, st)) => (c, Some(st)),
            None => (s, None),
        };
        let code = code.trim();
        if code.is_empty() || code.chars().any(char::is_whitespace) {
            return Err(OAuthError::NoCode);
        }
        Ok(Self {
            code: code.to_owned(),
            state: state
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }
}

/// What `start` gives the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedLogin {
    pub session_id: String,
    pub auth_url: String,
}

/// A sign-in handed out by `take`, with what its starter attached.
pub struct Login<T> {
    pub pkce: Pkce,
    pub state: String,
    pub context: T,
}

impl<T: fmt::Debug> fmt::Debug for Login<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("pkce", &self.pkce)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

struct Pending<T> {
    login: Login<T>,
    expires: Instant,
    seq: u64,
}

struct Table<T> {
    by_id: HashMap<String, Pending<T>>,
    seq: u64,
}

/// Sign-ins started and not yet finished, in memory. `T` is what the
/// starter attaches (who, for which group, …).
pub struct PendingLogins<T> {
    ttl: Duration,
    table: Mutex<Table<T>>,
}

impl<T> fmt::Debug for PendingLogins<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.lock().by_id.len();
        f.debug_struct("PendingLogins")
            .field("ttl", &self.ttl)
            .field("pending", &n)
            .finish()
    }
}

impl<T> PendingLogins<T> {
    /// Sign-ins that may be finished within `ttl` of their start.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            table: Mutex::new(Table {
                by_id: HashMap::new(),
                seq: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new sign-in: fresh PKCE pair, state and session id.
    pub fn start(&self, config: &ClaudeOAuthConfig, context: T) -> StartedLogin {
        let pkce = Pkce::generate();
        let state = random_token();
        let session_id = random_token();
        let auth_url = authorize_url(config, &pkce, &state);
        let now = Instant::now();
        let mut t = self.lock();
        t.by_id.retain(|_, p| p.expires > now);
        if t.by_id.len() >= MAX_PENDING {
            if let Some(oldest) = t
                .by_id
                .iter()
                .min_by_key(|(_, p)| p.seq)
                .map(|(k, _)| k.clone())
            {
                t.by_id.remove(&oldest);
            }
        }
        t.seq += 1;
        let seq = t.seq;
        t.by_id.insert(
            session_id.clone(),
            Pending {
                login: Login {
                    pkce,
                    state,
                    context,
                },
                expires: now + self.ttl,
                seq,
            },
        );
        StartedLogin {
            session_id,
            auth_url,
        }
    }

    /// Hands out the sign-in once, if `owns` accepts its context (another
    /// caller's session is reported unknown and left alone). A pasted state
    /// must match; a mismatch uses the session up all the same.
    pub fn take(
        &self,
        session_id: &str,
        pasted_state: Option<&str>,
        owns: impl FnOnce(&T) -> bool,
    ) -> Result<Login<T>, OAuthError> {
        let mut t = self.lock();
        let owned = t
            .by_id
            .get(session_id)
            .is_some_and(|p| owns(&p.login.context));
        if !owned {
            return Err(OAuthError::UnknownSession);
        }
        let pending = t
            .by_id
            .remove(session_id)
            .ok_or(OAuthError::UnknownSession)?;
        drop(t);
        if pending.expires <= Instant::now() {
            return Err(OAuthError::SessionExpired);
        }
        if pasted_state.is_some_and(|s| !constant_eq(s, &pending.login.state)) {
            return Err(OAuthError::StateMismatch);
        }
        Ok(pending.login)
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pasted_forms() {
        let p = PastedCode::parse("  abc123#st  ").unwrap();
        assert_eq!(
            (p.code.as_str(), p.state.as_deref()),
            ("abc123", Some("st"))
        );
        let p = PastedCode::parse("abc123").unwrap();
        assert_eq!((p.code.as_str(), p.state), ("abc123", None));
        let p =
            PastedCode::parse("https://platform.claude.com/oauth/code/callback?code=c1&state=s1")
                .unwrap();
        assert_eq!((p.code.as_str(), p.state.as_deref()), ("c1", Some("s1")));
        let p = PastedCode::parse("https://x.test/cb?code=c2%23s2").unwrap();
        assert_eq!((p.code.as_str(), p.state.as_deref()), ("c2", Some("s2")));
        let p = PastedCode::parse("https://x.test/cb#code=c3&state=s3").unwrap();
        assert_eq!((p.code.as_str(), p.state.as_deref()), ("c3", Some("s3")));
        for bad in ["", "   ", "#state", "https://x.test/cb?state=s", "a b"] {
            assert!(PastedCode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{:?}", PastedCode::parse("secret").unwrap()).contains("secret"));
    }

    #[test]
    fn single_use_owner_bound_and_state_checked() {
        let logins = PendingLogins::new(Duration::from_secs(60));
        let config = ClaudeOAuthConfig::default();
        let s = logins.start(&config, "alice");
        assert!(matches!(
            logins.take(&s.session_id, None, |c| *c == "bob"),
            Err(OAuthError::UnknownSession)
        ));
        let state = reqwest::Url::parse(&s.auth_url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let got = logins
            .take(&s.session_id, Some(&state), |c| *c == "alice")
            .unwrap();
        assert_eq!(got.state, state);
        assert!(matches!(
            logins.take(&s.session_id, None, |_| true),
            Err(OAuthError::UnknownSession)
        ));
        let s = logins.start(&config, "alice");
        assert!(matches!(
            logins.take(&s.session_id, Some("forged"), |_| true),
            Err(OAuthError::StateMismatch)
        ));
        assert!(logins.take(&s.session_id, None, |_| true).is_err());
    }

    #[test]
    fn expired_sessions_are_refused() {
        let logins = PendingLogins::new(Duration::ZERO);
        let s = logins.start(&ClaudeOAuthConfig::default(), ());
        assert!(matches!(
            logins.take(&s.session_id, None, |_| true),
            Err(OAuthError::SessionExpired)
        ));
    }
}
