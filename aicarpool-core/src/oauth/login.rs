//! Browser sign-in with paste-back: pending sign-ins and the pasted code.
//!
//! `start` keeps the PKCE verifier and the state on the server side (never
//! in the browser), sealed, under a random session id for a limited time;
//! `take` hands them out once, to the caller who started. What the owner pastes back may be `code#state`
//! (what Claude shows), a bare code, or the whole callback URL.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::login_store::{InMemoryLoginStore, LoginStore};
use super::pkce::{authorize_url, random_token, Pkce};
use super::{ClaudeOAuthConfig, OAuthError};
use crate::secret::Sealer;

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

/// What a pending sign-in keeps: serialized, then sealed, before it goes
/// to the store (the verifier and the context may be secrets).
#[derive(Serialize, Deserialize)]
struct Kept<T> {
    verifier: String,
    state: String,
    /// Unix milliseconds: instances share the wall clock, not an `Instant`.
    expires_at_ms: i64,
    context: T,
}

/// Sign-ins started and not yet finished, kept sealed in a [`LoginStore`]
/// (in memory, or shared by several instances). `T` is what the starter
/// attaches (for which group, under which name, …).
///
/// A session is bound to whoever started it: the store id is a hash of
/// the starter and the session id, so another caller's `take` looks under
/// another id, gets nothing and leaves the session alone — without a read
/// before the (atomic, single-use) take. The id is also sealed in as
/// associated data, so a blob moved to another id does not open.
pub struct PendingLogins<T> {
    store: Arc<dyn LoginStore>,
    sealer: Sealer,
    ttl: Duration,
    context: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for PendingLogins<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogins")
            .field("ttl", &self.ttl)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<T> PendingLogins<T> {
    /// Sign-ins that may be finished within `ttl` of their start, kept in
    /// `store` sealed by `sealer` (every instance sharing the store needs
    /// the same master key).
    pub fn new(store: Arc<dyn LoginStore>, sealer: Sealer, ttl: Duration) -> Self {
        Self {
            store,
            sealer,
            ttl,
            context: PhantomData,
        }
    }

    /// Sign-ins kept in this process only.
    pub fn in_memory(sealer: Sealer, ttl: Duration) -> Self {
        Self::new(Arc::new(InMemoryLoginStore::new()), sealer, ttl)
    }
}

impl<T: Serialize + DeserializeOwned> PendingLogins<T> {
    /// A new sign-in by `starter` (who alone may finish it): fresh PKCE
    /// pair, state and session id.
    pub async fn start(
        &self,
        config: &ClaudeOAuthConfig,
        starter: &str,
        context: T,
    ) -> Result<StartedLogin, OAuthError> {
        let pkce = Pkce::generate();
        let state = random_token();
        let session_id = random_token();
        let auth_url = authorize_url(config, &pkce, &state);
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let kept = Kept {
            verifier: pkce.verifier().to_owned(),
            state,
            expires_at_ms: now_ms().saturating_add(ttl_ms),
            context,
        };
        let plain = serde_json::to_vec(&kept).map_err(|_| OAuthError::Secret)?;
        let id = store_id(starter, &session_id);
        let sealed = self
            .sealer
            .seal_bytes(&aad(&id), &plain)
            .map_err(|_| OAuthError::Secret)?;
        // Kept past its expiry so that a late paste hears "expired".
        self.store
            .put(&id, sealed.0, self.ttl.saturating_add(KEEP_EXPIRED))
            .await?;
        Ok(StartedLogin {
            session_id,
            auth_url,
        })
    }

    /// Hands out the sign-in once, to its starter only (another caller's
    /// session is reported unknown and left alone). A pasted state must
    /// match; a mismatch or an expired session uses it up all the same.
    pub async fn take(
        &self,
        session_id: &str,
        starter: &str,
        pasted_state: Option<&str>,
    ) -> Result<Login<T>, OAuthError> {
        let id = store_id(starter, session_id);
        let sealed = self
            .store
            .take(&id)
            .await?
            .ok_or(OAuthError::UnknownSession)?;
        // Fails when instances do not share one master key.
        let plain = self
            .sealer
            .open_bytes(&aad(&id), &sealed)
            .map_err(|_| OAuthError::Secret)?;
        let kept: Kept<T> = serde_json::from_slice(&plain).map_err(|_| OAuthError::Secret)?;
        if kept.expires_at_ms <= now_ms() {
            return Err(OAuthError::SessionExpired);
        }
        if pasted_state.is_some_and(|s| !constant_eq(s, &kept.state)) {
            return Err(OAuthError::StateMismatch);
        }
        Ok(Login {
            pkce: Pkce::from_verifier(kept.verifier),
            state: kept.state,
            context: kept.context,
        })
    }
}

/// How long an expired sign-in is still kept, to be reported as expired.
const KEEP_EXPIRED: Duration = Duration::from_secs(600);

/// The store id of `starter`'s session: not the session id itself, so the
/// store never holds what a caller would need to finish.
fn store_id(starter: &str, session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"aicarpool oauth-login\0");
    h.update((starter.len() as u64).to_be_bytes());
    h.update(starter.as_bytes());
    h.update(session_id.as_bytes());
    B64URL.encode(h.finalize())
}

fn aad(id: &str) -> Vec<u8> {
    format!("oauth-login:{id}").into_bytes()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::super::LoginStoreError;
    use super::*;
    use crate::secret::MasterKey;

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

    /// Remembers what went into the store, to look at it.
    #[derive(Debug, Default)]
    struct Spy {
        inner: InMemoryLoginStore,
        puts: Mutex<Vec<(String, Vec<u8>)>>,
    }

    #[async_trait::async_trait]
    impl LoginStore for Spy {
        async fn put(
            &self,
            id: &str,
            sealed: Vec<u8>,
            ttl: Duration,
        ) -> Result<(), LoginStoreError> {
            self.puts
                .lock()
                .unwrap()
                .push((id.to_owned(), sealed.clone()));
            self.inner.put(id, sealed, ttl).await
        }

        async fn take(&self, id: &str) -> Result<Option<Vec<u8>>, LoginStoreError> {
            self.inner.take(id).await
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ctx {
        proxy: String,
    }

    fn sealer() -> Sealer {
        Sealer::new(&MasterKey::generate())
    }

    fn state_of(started: &StartedLogin) -> String {
        reqwest::Url::parse(&started.auth_url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned()
    }

    #[tokio::test]
    async fn single_use_starter_bound_and_state_checked() {
        let logins = PendingLogins::in_memory(sealer(), Duration::from_secs(60));
        let config = ClaudeOAuthConfig::default();
        let s = logins.start(&config, "alice", 1u8).await.unwrap();
        // Another caller: unknown, and the session is left alone.
        assert!(matches!(
            logins.take(&s.session_id, "bob", None).await,
            Err(OAuthError::UnknownSession)
        ));
        let state = state_of(&s);
        let got = logins
            .take(&s.session_id, "alice", Some(&state))
            .await
            .unwrap();
        assert_eq!((got.state.as_str(), got.context), (state.as_str(), 1));
        assert!(matches!(
            logins.take(&s.session_id, "alice", None).await,
            Err(OAuthError::UnknownSession)
        ));
        let s = logins.start(&config, "alice", 2).await.unwrap();
        assert!(matches!(
            logins.take(&s.session_id, "alice", Some("forged")).await,
            Err(OAuthError::StateMismatch)
        ));
        assert!(matches!(
            logins.take(&s.session_id, "alice", None).await,
            Err(OAuthError::UnknownSession)
        ));
    }

    #[tokio::test]
    async fn expired_sessions_are_refused() {
        let logins = PendingLogins::in_memory(sealer(), Duration::ZERO);
        let s = logins
            .start(&ClaudeOAuthConfig::default(), "alice", ())
            .await
            .unwrap();
        assert!(matches!(
            logins.take(&s.session_id, "alice", None).await,
            Err(OAuthError::SessionExpired)
        ));
        assert!(matches!(
            logins.take(&s.session_id, "alice", None).await,
            Err(OAuthError::UnknownSession)
        ));
    }

    #[tokio::test]
    async fn what_is_stored_is_sealed_and_bound_to_its_id() {
        let spy = Arc::new(Spy::default());
        let key = MasterKey::generate();
        let logins = PendingLogins::new(spy.clone(), Sealer::new(&key), Duration::from_secs(60));
        let proxy = "socks5://user:hunter2@proxy.test:1080".to_owned();
        let s = logins
            .start(
                &ClaudeOAuthConfig::default(),
                "alice",
                Ctx {
                    proxy: proxy.clone(),
                },
            )
            .await
            .unwrap();
        let (id, blob) = spy.puts.lock().unwrap()[0].clone();
        assert!(!id.contains(&s.session_id) && !id.contains("alice"), "{id}");

        // The same blob: another instance with the same key opens it.
        let other =
            PendingLogins::<Ctx>::new(spy.clone(), Sealer::new(&key), Duration::from_secs(60));
        let login = other.take(&s.session_id, "alice", None).await.unwrap();
        assert_eq!(login.context.proxy, proxy);
        let verifier = login.pkce.verifier().to_owned();
        let text = String::from_utf8_lossy(&blob);
        for secret in [verifier.as_str(), proxy.as_str(), "hunter2", &state_of(&s)] {
            assert!(!text.contains(secret), "{secret} in the clear");
        }

        // Moved under bob's id, or opened under another key: refused.
        let bob =
            PendingLogins::<Ctx>::new(spy.clone(), Sealer::new(&key), Duration::from_secs(60));
        let s2 = bob
            .start(
                &ClaudeOAuthConfig::default(),
                "bob",
                Ctx { proxy: "x".into() },
            )
            .await
            .unwrap();
        let bob_id = spy.puts.lock().unwrap()[1].0.clone();
        spy.inner
            .put(&bob_id, blob.clone(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            bob.take(&s2.session_id, "bob", None).await,
            Err(OAuthError::Secret)
        ));
        spy.inner
            .put(&id, blob, Duration::from_secs(60))
            .await
            .unwrap();
        let stranger = PendingLogins::<Ctx>::new(spy.clone(), sealer(), Duration::from_secs(60));
        assert!(matches!(
            stranger.take(&s.session_id, "alice", None).await,
            Err(OAuthError::Secret)
        ));
        assert!(!format!("{logins:?}").contains("hunter2"));
    }
}
