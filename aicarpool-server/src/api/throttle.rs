//! Sign-in and registration throttles, kept in this process.
//!
//! Failed sign-ins are counted per email address and per client address.
//! Past a limit the email (or the client) is locked for a period that
//! doubles with each further failure, up to the window; while locked even
//! the right password is refused, so guessing gains nothing from a lucky
//! try. Unknown emails are counted like known ones, so a lockout says
//! nothing about whether an account exists.
//!
//! An attempt is counted before its password is checked: a burst of
//! concurrent guesses cannot all slip in before the first failure lands.
//! A successful sign-in forgets the email's failures and takes its own
//! attempt back from the client's count (and only its own, so signing in
//! to one's own account does not wipe out guesses at others').
//!
//! Memory is bounded: at most [`MAX_TRACKED`] emails and as many client
//! addresses are remembered, each for as long as it matters.

use std::convert::Infallible;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use moka::sync::Cache;

use crate::config::SignInArgs;
use crate::error::ApiError;

/// Most emails (and, separately, client addresses) remembered at once;
/// beyond that the least used are forgotten first.
pub const MAX_TRACKED: u64 = 100_000;

/// The longest email kept as a key; longer ones (never valid) are cut.
const MAX_EMAIL_KEY_BYTES: usize = 256;

/// Window of the registration quota.
const SIGNUP_WINDOW: Duration = Duration::from_secs(3600);

/// The address of the peer that opened the connection, when the server
/// was started with connection info (`None` for a router driven without
/// a socket, e.g. in-process).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// The key a client is counted under: an IPv4 address (also when it comes
/// IPv4-mapped), or the /64 of an IPv6 address, since one host usually
/// holds a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The key an email is counted under: trimmed, lower-cased, bounded.
fn email_key(email: &str) -> String {
    let mut key = email.trim().to_lowercase();
    if key.len() > MAX_EMAIL_KEY_BYTES {
        let mut cut = MAX_EMAIL_KEY_BYTES;
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
    }
    key
}

/// When failures lock, and for how long.
#[derive(Debug, Clone, Copy)]
struct LockoutPolicy {
    max_failures: u32,
    window: Duration,
    first_lockout: Duration,
}

impl LockoutPolicy {
    /// The lockout after `failures` failures: none below the limit, then
    /// the first lockout, doubling with each failure, never past the
    /// window.
    fn lockout(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.max_failures.max(1))?;
        let doubled = self.first_lockout.saturating_mul(1u32 << beyond.min(20));
        Some(doubled.min(self.window.max(self.first_lockout)))
    }

    /// How long a failure matters: the window, or the longest lockout.
    fn memory(&self) -> Duration {
        self.window.max(self.first_lockout)
    }
}

/// The failures counted for one key.
#[derive(Debug)]
struct Strikes {
    failures: u32,
    last_at: Instant,
}

impl Strikes {
    /// How much longer the key is locked, if it is.
    fn locked_for(&self, now: Instant, policy: &LockoutPolicy) -> Option<Duration> {
        let until = self.last_at + policy.lockout(self.failures)?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

/// Failures per key, with a lockout policy.
#[derive(Debug)]
struct FailureCounter<K: Hash + Eq + Send + Sync + 'static> {
    policy: LockoutPolicy,
    strikes: Cache<K, Arc<Mutex<Strikes>>>,
}

fn lock(m: &Mutex<Strikes>) -> MutexGuard<'_, Strikes> {
    // Plain counters: a panic elsewhere leaves nothing half-done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> FailureCounter<K> {
    fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            strikes: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(policy.memory())
                .build(),
        }
    }

    /// Whether `key` is locked now, without counting anything.
    fn locked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let entry = self.strikes.get(key)?;
        let strikes = lock(&entry);
        strikes.locked_for(now, &self.policy)
    }

    /// Counts an attempt for `key` as failed (until [`Self::forgive_one`]
    /// or [`Self::forget`]), unless the key is locked: then how long.
    fn attempt(&self, key: K, now: Instant) -> Result<(), Duration> {
        let entry = self.strikes.get_with(key, || {
            Arc::new(Mutex::new(Strikes {
                failures: 0,
                last_at: now,
            }))
        });
        let mut strikes = lock(&entry);
        if let Some(wait) = strikes.locked_for(now, &self.policy) {
            return Err(wait);
        }
        if now.saturating_duration_since(strikes.last_at) >= self.policy.memory() {
            strikes.failures = 0;
        }
        strikes.failures = strikes.failures.saturating_add(1);
        strikes.last_at = now;
        Ok(())
    }

    /// Takes one counted attempt back (it succeeded).
    fn forgive_one(&self, key: &K) {
        if let Some(entry) = self.strikes.get(key) {
            let mut strikes = lock(&entry);
            strikes.failures = strikes.failures.saturating_sub(1);
        }
    }

    /// Forgets every failure of `key`.
    fn forget(&self, key: &K) {
        self.strikes.invalidate(key);
    }
}

/// Registrations per client address in a fixed hourly window.
#[derive(Debug)]
struct SignupQuota {
    per_window: u32,
    used: Cache<IpAddr, Arc<Mutex<(Instant, u32)>>>,
}

impl SignupQuota {
    fn take(&self, key: IpAddr, now: Instant) -> Result<(), Duration> {
        let entry = self.used.get_with(key, || Arc::new(Mutex::new((now, 0))));
        let mut quota = entry.lock().unwrap_or_else(|e| e.into_inner());
        let (started, used) = &mut *quota;
        if now.saturating_duration_since(*started) >= SIGNUP_WINDOW {
            (*started, *used) = (now, 0);
        }
        if *used >= self.per_window {
            return Err((*started + SIGNUP_WINDOW).saturating_duration_since(now));
        }
        *used += 1;
        Ok(())
    }
}

/// A sign-in attempt that was let through and counted; hand it back to
/// [`SignInGuard::succeeded`] when the password was right.
#[derive(Debug)]
#[must_use]
pub struct LoginAttempt {
    email: String,
    client: Option<IpAddr>,
}

/// The throttles of sign-in and registration.
#[derive(Debug)]
pub struct SignInGuard {
    by_email: FailureCounter<String>,
    by_client: FailureCounter<IpAddr>,
    signups: SignupQuota,
}

impl SignInGuard {
    pub fn new(args: &SignInArgs) -> Self {
        let policy = |max_failures| LockoutPolicy {
            max_failures,
            window: args.window(),
            first_lockout: args.first_lockout(),
        };
        Self {
            by_email: FailureCounter::new(policy(args.login_max_failures)),
            by_client: FailureCounter::new(policy(args.login_max_failures_per_address)),
            signups: SignupQuota {
                per_window: args.signups_per_address_per_hour,
                used: Cache::builder()
                    .max_capacity(MAX_TRACKED)
                    .time_to_idle(SIGNUP_WINDOW)
                    .build(),
            },
        }
    }

    /// Before a password is checked: counts the attempt against the email
    /// and the client, or refuses with 429 while either is locked.
    pub fn begin(&self, email: &str, client: Option<IpAddr>) -> Result<LoginAttempt, ApiError> {
        let now = Instant::now();
        let email = email_key(email);
        let client = client.map(client_key);
        // Look before counting, so a locked email does not also use up
        // the client's allowance, nor a locked client the email's.
        let locked = self
            .by_email
            .locked_for(&email, now)
            .or_else(|| client.and_then(|c| self.by_client.locked_for(&c, now)));
        if let Some(wait) = locked {
            return Err(refused(wait));
        }
        if let Some(c) = client {
            self.by_client.attempt(c, now).map_err(refused)?;
        }
        if let Err(wait) = self.by_email.attempt(email.clone(), now) {
            if let Some(c) = client {
                self.by_client.forgive_one(&c);
            }
            return Err(refused(wait));
        }
        Ok(LoginAttempt { email, client })
    }

    /// The password was right: the email's failures are forgotten and the
    /// client's count loses this attempt.
    pub fn succeeded(&self, attempt: LoginAttempt) {
        self.by_email.forget(&attempt.email);
        if let Some(c) = attempt.client {
            self.by_client.forgive_one(&c);
        }
    }

    /// Counts a registration from `client`, or refuses with 429 past the
    /// hourly quota.
    pub fn begin_signup(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(c) = client else { return Ok(()) };
        self.signups
            .take(client_key(c), Instant::now())
            .map_err(|wait| {
                ApiError::too_many_attempts(
                    "too many registrations from this address; try again later",
                    wait,
                )
            })
    }
}

fn refused(wait: Duration) -> ApiError {
    ApiError::too_many_attempts("too many failed sign-ins; wait before trying again", wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max: u32, per_client: u32) -> SignInArgs {
        SignInArgs {
            login_max_failures: max,
            login_max_failures_per_address: per_client,
            login_window_secs: 900,
            login_lockout_secs: 30,
            signups_per_address_per_hour: 2,
        }
    }

    #[test]
    fn lockouts_double_up_to_the_window() {
        let p = LockoutPolicy {
            max_failures: 5,
            window: Duration::from_secs(900),
            first_lockout: Duration::from_secs(30),
        };
        assert_eq!(p.lockout(4), None);
        assert_eq!(p.lockout(5), Some(Duration::from_secs(30)));
        assert_eq!(p.lockout(6), Some(Duration::from_secs(60)));
        assert_eq!(p.lockout(9), Some(Duration::from_secs(480)));
        assert_eq!(p.lockout(10), Some(Duration::from_secs(900)));
        assert_eq!(p.lockout(u32::MAX), Some(Duration::from_secs(900)));
    }

    #[test]
    fn an_email_locks_after_its_failures_and_a_success_forgets_them() {
        let guard = SignInGuard::new(&args(3, 1000));
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let first = guard.begin(" Alice@Example.com", ip).unwrap();
        guard.succeeded(first);
        for _ in 0..3 {
            drop(guard.begin("alice@example.com", ip).unwrap());
        }
        let refused = guard.begin("ALICE@example.com ", ip).unwrap_err();
        assert_eq!(refused.code, "too_many_attempts");
        assert_eq!(refused.retry_after_secs, Some(30));
        // Another email from the same client is not locked.
        drop(guard.begin("bob@example.com", ip).unwrap());
        guard.by_email.forget(&"alice@example.com".to_owned());
        let again = guard.begin("alice@example.com", ip).unwrap();
        guard.succeeded(again);
    }

    #[test]
    fn a_client_locks_whatever_emails_it_tries() {
        let guard = SignInGuard::new(&args(1000, 4));
        let ip = IpAddr::from([192, 0, 2, 7]);
        for i in 0..4 {
            drop(
                guard
                    .begin(&format!("nobody{i}@example.com"), Some(ip))
                    .unwrap(),
            );
        }
        assert!(guard.begin("fresh@example.com", Some(ip)).is_err());
        // Another client is not affected; the same /64 is.
        assert!(guard
            .begin("fresh@example.com", Some(IpAddr::from([192, 0, 2, 8])))
            .is_ok());
        let guard = SignInGuard::new(&args(1000, 1));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        drop(guard.begin("x@example.com", Some(a)).unwrap());
        assert!(guard.begin("y@example.com", Some(b)).is_err());
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt_from_the_client() {
        let guard = SignInGuard::new(&args(1000, 3));
        let ip = Some(IpAddr::from([192, 0, 2, 9]));
        drop(guard.begin("victim@example.com", ip).unwrap());
        drop(guard.begin("victim@example.com", ip).unwrap());
        for _ in 0..5 {
            let mine = guard.begin("me@example.com", ip).unwrap();
            guard.succeeded(mine);
        }
        drop(guard.begin("victim@example.com", ip).unwrap());
        assert!(guard.begin("victim@example.com", ip).is_err());
    }

    #[test]
    fn signups_have_an_hourly_quota_per_client() {
        let guard = SignInGuard::new(&args(5, 50));
        let ip = Some(IpAddr::from([198, 51, 100, 1]));
        assert!(guard.begin_signup(ip).is_ok());
        assert!(guard.begin_signup(ip).is_ok());
        let refused = guard.begin_signup(ip).unwrap_err();
        assert_eq!(refused.code, "too_many_attempts");
        assert!(refused.retry_after_secs.is_some_and(|s| s > 3500));
        assert!(guard.begin_signup(None).is_ok());
    }

    #[test]
    fn keys_are_normalised_and_bounded() {
        assert_eq!(email_key("  A@B.io "), "a@b.io");
        assert_eq!(email_key(&"é".repeat(400)).len(), 256);
        assert_eq!(
            client_key("::ffff:203.0.113.5".parse().unwrap()),
            IpAddr::from([203, 0, 113, 5])
        );
        assert_eq!(
            client_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
    }
}
