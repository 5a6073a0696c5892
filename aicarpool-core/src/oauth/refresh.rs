//! The refresh coordinator: fresh access tokens for OAuth accounts.
//!
//! Claude refresh tokens rotate: the first refresh that uses one kills it,
//! so two refreshes racing lose the account (`invalid_grant`), and writing
//! an old pair over a new one loses it later. Hence, per account:
//!
//! - one refresh in flight in this process; everyone else awaits its result
//!   (it runs in its own task, so a client that hangs up cannot cut a
//!   refresh off between trading the token and storing the new pair);
//! - one refresher across processes, by a lease kept in the store;
//! - the stored pair is read again under the lease (another instance may
//!   have refreshed already) and the new pair is written by compare-and-swap
//!   against what was read;
//! - a failed refresh writes nothing; the old tokens stay, and while the
//!   access token is still valid requests keep using it.
//!
//! A refusal by the token endpoint marks the account NeedsAttention with
//! the reason; a successful refresh clears that again.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};

use super::{OAuthError, TokenEndpoint};
use crate::account::Credentials;
use crate::id::new_id;
use crate::router::{HealthState, Outcome, Report, RoutableAccount, Router};
use crate::secret::{Sealed, Sealer};
use crate::store::CredentialStore;

/// Sealed blobs remembered as replaced, per account.
const REPLACED_KEPT: usize = 16;

/// Timing of the coordinator.
#[derive(Debug, Clone)]
pub struct TokenManagerConfig {
    /// Refresh when the access token expires within this.
    pub refresh_ahead: Duration,
    /// How long a refresher may hold an account's lease; also how long
    /// another instance waits for it.
    pub lease_ttl: Duration,
    /// After a failed refresh, the same token is not refreshed again for
    /// this long (the failure is answered instead).
    pub retry_backoff: Duration,
}

impl Default for TokenManagerConfig {
    fn default() -> Self {
        Self {
            refresh_ahead: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(60),
            retry_backoff: Duration::from_secs(10),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<String, OAuthError>>>;

/// The newest credentials this process knows for an account.
struct Current {
    sealed: Sealed,
    creds: Credentials,
}

struct Failure {
    at: Instant,
    /// The access token the failed refresh was to replace.
    token: String,
    error: OAuthError,
}

#[derive(Default)]
struct Slot {
    current: Option<Arc<Current>>,
    /// Blobs replaced by newer ones: a route table still holding one of
    /// them is stale, and a store holding one lost a write.
    replaced: VecDeque<Sealed>,
    flight: Option<(u64, Flight)>,
    failure: Option<Failure>,
}

type SlotRef = Arc<Mutex<Slot>>;

fn lock(slot: &SlotRef) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    fn adopt(&mut self, sealed: Sealed, creds: Credentials, also_replaced: Option<Sealed>) {
        let old = self.current.take().map(|c| c.sealed.clone());
        for r in [old, also_replaced].into_iter().flatten() {
            if r != sealed && !self.replaced.contains(&r) {
                if self.replaced.len() >= REPLACED_KEPT {
                    self.replaced.pop_front();
                }
                self.replaced.push_back(r);
            }
        }
        self.current = Some(Arc::new(Current { sealed, creds }));
    }
}

/// Keeps OAuth access tokens fresh. Share it as `Arc`.
pub struct TokenManager {
    store: Arc<dyn CredentialStore>,
    sealer: Sealer,
    endpoint: TokenEndpoint,
    router: Arc<dyn Router>,
    config: TokenManagerConfig,
    /// This instance's name on store leases.
    holder: String,
    slots: Mutex<HashMap<String, SlotRef>>,
    refresh_calls: AtomicU64,
    flights: AtomicU64,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("config", &self.config)
            .field("holder", &self.holder)
            .field("refresh_calls", &self.refresh_calls())
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    pub fn new(
        store: Arc<dyn CredentialStore>,
        sealer: Sealer,
        endpoint: TokenEndpoint,
        router: Arc<dyn Router>,
        config: TokenManagerConfig,
    ) -> Self {
        Self {
            store,
            sealer,
            endpoint,
            router,
            config,
            holder: format!("refresh-{}", new_id()),
            slots: Mutex::default(),
            refresh_calls: AtomicU64::new(0),
            flights: AtomicU64::new(0),
        }
    }

    /// Refresh requests this instance sent to the token endpoint.
    pub fn refresh_calls(&self) -> u64 {
        self.refresh_calls.load(Ordering::Relaxed)
    }

    /// The access token to send for `account` now, refreshed first when
    /// it expires within `refresh_ahead`. When that refresh fails but the
    /// token has not expired yet, the token is still returned.
    pub async fn access_token(
        self: &Arc<Self>,
        account: &RoutableAccount,
    ) -> Result<String, OAuthError> {
        let slot = self.slot(&account.account.id);
        let current = Self::resolve(&slot, account);
        let now = Utc::now();
        let token = current.creds.access_token.clone();
        if token.is_none() && current.creds.refresh_token.is_none() {
            return Err(OAuthError::NoAccessToken);
        }
        if token.is_some() && !self.due(&current.creds, now) {
            return Ok(token.unwrap_or_default());
        }
        let stale = token.clone().unwrap_or_default();
        match self.refresh(&slot, account, stale).await {
            Ok(t) => Ok(t),
            Err(e) => match token {
                Some(t) if !expired(&current.creds, Utc::now()) => {
                    tracing::warn!(account_id = %account.account.id, error = %e,
                        "token refresh failed; the current access token is still valid");
                    Ok(t)
                }
                _ => Err(e),
            },
        }
    }

    /// A new access token after the upstream refused `rejected` (401).
    pub async fn after_rejection(
        self: &Arc<Self>,
        account: &RoutableAccount,
        rejected: &str,
    ) -> Result<String, OAuthError> {
        let slot = self.slot(&account.account.id);
        // Joining a flight started for an older token may hand back the
        // rejected one; then one more round.
        for _ in 0..2 {
            let token = self.refresh(&slot, account, rejected.to_owned()).await?;
            if token != rejected {
                return Ok(token);
            }
        }
        Err(OAuthError::Unavailable(
            "the refresh handed back the refused token".into(),
        ))
    }

    fn slot(&self, account_id: &str) -> SlotRef {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(account_id.to_owned()).or_default().clone()
    }

    /// The newest credentials: the route table's, unless this process has
    /// since replaced them.
    fn resolve(slot: &SlotRef, account: &RoutableAccount) -> Arc<Current> {
        let sealed = &account.account.credentials;
        let mut s = lock(slot);
        match &s.current {
            Some(c) if c.sealed == *sealed || s.replaced.contains(sealed) => c.clone(),
            // Unknown to this process: written since (an owner pasted new
            // credentials, or another instance refreshed).
            _ => {
                s.adopt(sealed.clone(), account.credentials.clone(), None);
                s.current.clone().unwrap_or_else(|| {
                    Arc::new(Current {
                        sealed: sealed.clone(),
                        creds: account.credentials.clone(),
                    })
                })
            }
        }
    }

    /// Whether `creds` should be refreshed at `now`.
    fn due(&self, creds: &Credentials, now: DateTime<Utc>) -> bool {
        let ahead = chrono::Duration::from_std(self.config.refresh_ahead).unwrap_or_default();
        creds.refresh_token.is_some()
            && (creds.access_token.is_none()
                || creds.expires_at.is_some_and(|at| at - now <= ahead))
    }

    /// A usable token other than `stale` in `creds`, if there is one.
    fn other_fresh(&self, creds: &Credentials, stale: &str, now: DateTime<Utc>) -> Option<String> {
        creds
            .access_token
            .clone()
            .filter(|t| t != stale && !self.due(creds, now) && !expired(creds, now))
    }

    /// Joins the account's refresh in flight, or starts one.
    async fn refresh(
        self: &Arc<Self>,
        slot: &SlotRef,
        account: &RoutableAccount,
        stale: String,
    ) -> Result<String, OAuthError> {
        let flight = {
            let mut s = lock(slot);
            if let Some(t) = s
                .current
                .as_ref()
                .and_then(|c| self.other_fresh(&c.creds, &stale, Utc::now()))
            {
                return Ok(t);
            }
            if let Some(f) = s
                .failure
                .as_ref()
                .filter(|f| f.token == stale && f.at.elapsed() < self.config.retry_backoff)
            {
                return Err(f.error.clone());
            }
            match &s.flight {
                Some((_, f)) => f.clone(),
                None => {
                    let id = self.flights.fetch_add(1, Ordering::Relaxed);
                    let task = tokio::spawn(self.clone().run(
                        slot.clone(),
                        account.account.id.clone(),
                        account.proxy_url(),
                        stale,
                        id,
                    ));
                    let f: Flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(OAuthError::Unavailable(format!(
                                "the refresh task failed: {e}"
                            )))
                        })
                    }
                    .boxed()
                    .shared();
                    s.flight = Some((id, f.clone()));
                    f
                }
            }
        };
        flight.await
    }

    /// One refresh, start to end, in its own task.
    async fn run(
        self: Arc<Self>,
        slot: SlotRef,
        account_id: String,
        proxy: Option<String>,
        stale: String,
        id: u64,
    ) -> Result<String, OAuthError> {
        let result = self
            .refresh_leased(&slot, &account_id, proxy.as_deref(), &stale)
            .await;
        {
            let mut s = lock(&slot);
            s.failure = match &result {
                Ok(_) => None,
                Err(e) => Some(Failure {
                    at: Instant::now(),
                    token: stale,
                    error: e.clone(),
                }),
            };
            if s.flight.as_ref().is_some_and(|(i, _)| *i == id) {
                s.flight = None;
            }
        }
        if let Err(e) = &result {
            self.report_failure(&account_id, e);
        }
        result
    }

    /// Takes the store lease (waiting for another instance's refresh),
    /// refreshes, gives the lease back.
    async fn refresh_leased(
        &self,
        slot: &SlotRef,
        account_id: &str,
        proxy: Option<&str>,
        stale: &str,
    ) -> Result<String, OAuthError> {
        let ttl = chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
        let deadline = Instant::now() + self.config.lease_ttl;
        loop {
            let now = Utc::now();
            if self
                .store
                .try_lock_credentials(account_id, &self.holder, now, now + ttl)
                .await?
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(OAuthError::Unavailable(
                    "another gateway instance kept the refresh lease".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = self.refresh_locked(slot, account_id, proxy, stale).await;
        if let Err(e) = self
            .store
            .unlock_credentials(account_id, &self.holder)
            .await
        {
            tracing::warn!(account_id, error = %e, "could not release the refresh lease; it expires by itself");
        }
        result
    }

    async fn refresh_locked(
        &self,
        slot: &SlotRef,
        account_id: &str,
        proxy: Option<&str>,
        stale: &str,
    ) -> Result<String, OAuthError> {
        let stored = self
            .store
            .sealed_credentials(account_id)
            .await?
            .ok_or(OAuthError::AccountGone)?;
        let opened = self
            .sealer
            .open(account_id, &stored)
            .map_err(|_| OAuthError::Secret)?;
        // Another instance (or an owner) may have put fresh tokens there.
        if let Some(t) = self.other_fresh(&opened, stale, Utc::now()) {
            lock(slot).adopt(stored, opened, None);
            return Ok(t);
        }
        // A store holding a blob this process already replaced lost a write
        // (or never got it): the newer pair in memory is the live one.
        let creds = {
            let s = lock(slot);
            match &s.current {
                Some(c) if s.replaced.contains(&stored) => c.creds.clone(),
                _ => opened,
            }
        };
        let refresh_token = creds
            .refresh_token
            .clone()
            .ok_or(OAuthError::NoRefreshToken)?;
        self.refresh_calls.fetch_add(1, Ordering::Relaxed);
        let granted = self.endpoint.refresh(proxy, &refresh_token).await?;
        let now = Utc::now();
        let fresh = granted.into_credentials(Some(&creds), now);
        let token = fresh
            .access_token
            .clone()
            .ok_or(OAuthError::NoAccessToken)?;
        let sealed = self
            .sealer
            .seal(account_id, &fresh)
            .map_err(|_| OAuthError::Secret)?;
        let mut tries = 0u64;
        loop {
            match self
                .store
                .update_credentials_if(account_id, &stored, &sealed, now)
                .await
            {
                Ok(true) => break,
                Ok(false) => {
                    // Changed under the lease: only an owner's edit does
                    // that, and it wins.
                    tracing::warn!(
                        account_id,
                        "credentials were replaced during the refresh; keeping the replacement"
                    );
                    let now_stored = self
                        .store
                        .sealed_credentials(account_id)
                        .await?
                        .ok_or(OAuthError::AccountGone)?;
                    let creds = self
                        .sealer
                        .open(account_id, &now_stored)
                        .map_err(|_| OAuthError::Secret)?;
                    let t = creds
                        .access_token
                        .clone()
                        .ok_or(OAuthError::NoAccessToken)?;
                    lock(slot).adopt(now_stored, creds, Some(stored));
                    return Ok(t);
                }
                Err(e) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(account_id, error = %e, "storing the refreshed tokens failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => {
                    // The old refresh token is spent: keep serving the new
                    // pair from memory; the next refresh writes it.
                    tracing::error!(account_id, error = %e, "the refreshed tokens could not be stored; serving them from memory");
                    break;
                }
            }
        }
        let expires_at = fresh.expires_at;
        lock(slot).adopt(sealed, fresh, Some(stored));
        self.recovered(account_id);
        tracing::info!(account_id, ?expires_at, "access token refreshed");
        Ok(token)
    }

    /// A refused refresh needs an owner: NeedsAttention, with the reason as
    /// the account's last error. An outage is left to the request path.
    fn report_failure(&self, account_id: &str, e: &OAuthError) {
        if !e.is_permanent() {
            tracing::warn!(account_id, error = %e, "token refresh failed; will try again");
            return;
        }
        tracing::warn!(account_id, error = %e, "token refresh failed; the account needs attention");
        self.router.report(&Report::new(
            account_id,
            Outcome::CredentialsRejected {
                status: 401,
                reason: format!("token refresh failed: {e}"),
            },
        ));
        self.router.report(&Report::new(
            account_id,
            Outcome::Failed {
                status: e.status(),
                reason: format!("token refresh failed: {e}"),
            },
        ));
    }

    fn recovered(&self, account_id: &str) {
        let needs = self
            .router
            .health(account_id)
            .is_some_and(|h| h.state == HealthState::NeedsAttention);
        if needs {
            self.router.reset(account_id);
        }
    }
}

fn expired(creds: &Credentials, now: DateTime<Utc>) -> bool {
    creds.expires_at.is_some_and(|at| at <= now)
}
