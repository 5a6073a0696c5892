//! Outbound proxies per account: one pooled HTTP client per proxy URL.
//!
//! An account may reach its upstream through `http://`, `https://`,
//! `socks5://` or `socks5h://` (remote DNS), with `user:password@` in the
//! URL for proxies that ask. API calls, code exchange and token refresh
//! of the account all go the same way, so the upstream sees one address.
//! Clients are built once per URL and shared, keeping connection pools warm.
//!
//! Every client resolves through the [`OutboundGuard`] and follows no
//! redirect (a redirect would carry the account's key to another origin);
//! [`HttpClients::client_for`] checks the destination URL and the proxy
//! URL before a request is built.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use crate::outbound::{Denied, GuardedResolver, OutboundError, OutboundGuard};
use crate::provider::ProviderError;

/// Distinct proxy URLs kept at most; past that the cache starts over.
const MAX_PROXIES: usize = 256;

/// Schemes an account's proxy URL may use.
pub const PROXY_SCHEMES: [&str; 4] = ["http", "https", "socks5", "socks5h"];

/// A proxy URL that cannot be used. The message never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid proxy URL ({0})")]
    Invalid(String),
    #[error("proxy: {0}")]
    Denied(Denied),
}

/// The direct client and one client per proxy URL. `Debug` shows no URL
/// (they may hold a password).
pub struct HttpClients {
    guard: OutboundGuard,
    direct: reqwest::Client,
    connect_timeout: Duration,
    proxied: Mutex<HashMap<String, reqwest::Client>>,
}

impl fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.proxied.lock().map_or(0, |m| m.len());
        f.debug_struct("HttpClients")
            .field("guard", &self.guard)
            .field("connect_timeout", &self.connect_timeout)
            .field("proxies", &n)
            .finish()
    }
}

impl HttpClients {
    /// Pooled clients that connect only where `guard` allows.
    pub fn new(guard: OutboundGuard, connect_timeout: Duration) -> Self {
        let direct = builder(&guard, connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .unwrap_or_default();
        Self::with_direct(direct, guard, connect_timeout)
    }

    /// `direct` serves accounts without a proxy. It should resolve through
    /// a [`GuardedResolver`] of the same guard and follow no redirects (as
    /// [`new`](Self::new)'s does): URLs are checked here in any case, the
    /// addresses a name resolves to only by such a resolver.
    pub fn with_direct(
        direct: reqwest::Client,
        guard: OutboundGuard,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            guard,
            direct,
            connect_timeout,
            proxied: Mutex::default(),
        }
    }

    /// The guard every upstream call passes.
    pub fn guard(&self) -> &OutboundGuard {
        &self.guard
    }

    /// The client for a call to `url` through `proxy`, once both passed
    /// the guard.
    pub fn client_for(
        &self,
        proxy: Option<&str>,
        url: &str,
    ) -> Result<reqwest::Client, ProviderError> {
        match self.guard.check_url(url) {
            Ok(()) => {}
            Err(OutboundError::Denied(d)) => return Err(ProviderError::Blocked(d)),
            Err(_) => return Err(ProviderError::BadUrl("no host".into())),
        }
        self.client(proxy).map_err(|e| match e {
            ProxyError::Denied(d) => ProviderError::Blocked(d),
            e @ ProxyError::Invalid(_) => {
                ProviderError::Connect(format!("through the account's proxy: {e}"))
            }
        })
    }

    pub fn direct(&self) -> &reqwest::Client {
        &self.direct
    }

    /// The client for an account with `proxy` (`None`: direct).
    pub fn client(&self, proxy: Option<&str>) -> Result<reqwest::Client, ProxyError> {
        let Some(url) = proxy.map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(self.direct.clone());
        };
        let mut map = self.proxied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(url) {
            return Ok(c.clone());
        }
        let client = build(url, &self.guard, self.connect_timeout)?;
        if map.len() >= MAX_PROXIES {
            map.clear();
        }
        map.insert(url.to_owned(), client.clone());
        Ok(client)
    }
}

/// What stands for a sealed proxy password in a stored proxy URL.
pub const SEALED_PASSWORD: &str = "***";

/// Splits a proxy URL into the URL with its password replaced by
/// [`SEALED_PASSWORD`] (safe to store and show) and the password (to seal).
/// A URL that holds only the mark gives no password.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    let password = parsed.password().map(decode);
    match password {
        Some(p) if p != SEALED_PASSWORD => {
            let _ = parsed.set_password(Some(SEALED_PASSWORD));
            (parsed.as_str().trim_end_matches('/').to_owned(), Some(p))
        }
        _ => (url.to_owned(), None),
    }
}

/// The proxy URL with `password` put back, as the HTTP client needs it.
pub fn with_password(url: &str, password: Option<&str>) -> String {
    let Some(password) = password else {
        return url.to_owned();
    };
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_owned();
    };
    match parsed.set_password(Some(password)) {
        Ok(()) => parsed.as_str().trim_end_matches('/').to_owned(),
        Err(()) => url.to_owned(),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Checks a proxy URL without building a client: its scheme, its host,
/// and that the guard lets upstream calls reach it.
pub fn validate(url: &str, guard: &OutboundGuard) -> Result<(), ProxyError> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|_| ProxyError::Invalid("not a URL".into()))?;
    if !PROXY_SCHEMES.contains(&parsed.scheme()) {
        return Err(ProxyError::Invalid(format!(
            "scheme `{}`; use http, https, socks5 or socks5h",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ProxyError::Invalid("no host".into()));
    }
    match guard.check_url(url.trim()) {
        Ok(()) => Ok(()),
        Err(OutboundError::Denied(d)) => Err(ProxyError::Denied(d)),
        Err(_) => Err(ProxyError::Invalid("no host".into())),
    }
}

/// What every upstream client shares: guarded resolution, no redirects,
/// Nagle off.
pub fn builder(guard: &OutboundGuard, connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(GuardedResolver::new(guard.clone())))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
}

fn build(
    url: &str,
    guard: &OutboundGuard,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ProxyError> {
    validate(url, guard)?;
    let proxy = reqwest::Proxy::all(url)
        .map_err(|_| ProxyError::Invalid("rejected by the HTTP client".into()))?;
    builder(guard, connect_timeout)
        .proxy(proxy)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|_| ProxyError::Invalid("the HTTP client could not be built".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schemes_and_caching() {
        let guard = OutboundGuard::parse("127.0.0.0/8").unwrap();
        let clients = HttpClients::new(guard.clone(), Duration::from_secs(5));
        assert!(clients.client(None).is_ok());
        assert!(clients.client(Some("socks5://u:p@127.0.0.1:1080")).is_ok());
        assert!(clients.client(Some("http://127.0.0.1:3128")).is_ok());
        assert!(clients.client(Some("https://proxy.example:443")).is_ok());
        let e = clients.client(Some("ftp://u:secret@h")).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(validate("socks5h://", &guard).is_err());
        assert!(!format!("{clients:?}").contains("u:p"));
    }

    #[test]
    fn the_password_comes_out_and_goes_back() {
        let (url, pw) = split_password("socks5://user:p%40ss@proxy.example:1080");
        assert_eq!(url, "socks5://user:***@proxy.example:1080");
        assert_eq!(split_password(&url), (url.clone(), None));
        assert_eq!(pw.as_deref(), Some("p@ss"));
        let back = with_password(&url, pw.as_deref());
        let parsed = reqwest::Url::parse(&back).unwrap();
        assert_eq!(parsed.password(), Some("p%40ss"));
        assert_eq!(parsed.username(), "user");
        assert_eq!(
            split_password("http://h:3128"),
            ("http://h:3128".into(), None)
        );
        assert_eq!(with_password("http://h:3128", None), "http://h:3128");
    }

    #[test]
    fn proxies_and_destinations_pass_the_guard() {
        let clients = HttpClients::new(OutboundGuard::default(), Duration::from_secs(5));
        let e = clients
            .client(Some("socks5://u:secret@169.254.1.1:1080"))
            .unwrap_err();
        assert!(matches!(e, ProxyError::Denied(_)), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        for url in ["http://127.0.0.1:9/v1/messages", "http://[::1]/x"] {
            let e = clients.client_for(None, url).unwrap_err();
            assert!(matches!(e, ProviderError::Blocked(_)), "{e}");
        }
        let e = clients
            .client_for(Some("http://10.0.0.1:3128"), "https://api.anthropic.com")
            .unwrap_err();
        assert!(matches!(e, ProviderError::Blocked(_)), "{e}");
        assert!(clients
            .client_for(None, "https://api.anthropic.com/v1/messages")
            .is_ok());
    }
}
