//! Outbound proxies per account: one pooled HTTP client per proxy URL.
//!
//! An account may reach its upstream through `http://`, `https://`,
//! `socks5://` or `socks5h://` (remote DNS), with `user:password@` in the
//! URL for proxies that ask. API calls, code exchange and token refresh
//! of the account all go the same way, so the upstream sees one address.
//! Clients are built once per URL and shared, keeping connection pools warm.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// Distinct proxy URLs kept at most; past that the cache starts over.
const MAX_PROXIES: usize = 256;

/// Schemes an account's proxy URL may use.
pub const PROXY_SCHEMES: [&str; 4] = ["http", "https", "socks5", "socks5h"];

/// A proxy URL that cannot be used. The message never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy URL ({0})")]
pub struct ProxyError(String);

/// The direct client and one client per proxy URL. `Debug` shows no URL
/// (they may hold a password).
pub struct HttpClients {
    direct: reqwest::Client,
    connect_timeout: Duration,
    proxied: Mutex<HashMap<String, reqwest::Client>>,
}

impl fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.proxied.lock().map_or(0, |m| m.len());
        f.debug_struct("HttpClients")
            .field("connect_timeout", &self.connect_timeout)
            .field("proxies", &n)
            .finish()
    }
}

impl HttpClients {
    /// `direct` serves accounts without a proxy; proxied clients get the
    /// same connect timeout.
    pub fn new(direct: reqwest::Client, connect_timeout: Duration) -> Self {
        Self {
            direct,
            connect_timeout,
            proxied: Mutex::default(),
        }
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
        let client = build(url, self.connect_timeout)?;
        if map.len() >= MAX_PROXIES {
            map.clear();
        }
        map.insert(url.to_owned(), client.clone());
        Ok(client)
    }
}

/// Checks a proxy URL without building a client.
pub fn validate(url: &str) -> Result<(), ProxyError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| ProxyError("not a URL".into()))?;
    if !PROXY_SCHEMES.contains(&parsed.scheme()) {
        return Err(ProxyError(format!(
            "scheme `{}`; use http, https, socks5 or socks5h",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ProxyError("no host".into()));
    }
    Ok(())
}

fn build(url: &str, connect_timeout: Duration) -> Result<reqwest::Client, ProxyError> {
    validate(url)?;
    let proxy =
        reqwest::Proxy::all(url).map_err(|_| ProxyError("rejected by the HTTP client".into()))?;
    reqwest::Client::builder()
        .proxy(proxy)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .map_err(|_| ProxyError("the HTTP client could not be built".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schemes_and_caching() {
        let clients = HttpClients::new(reqwest::Client::new(), Duration::from_secs(5));
        assert!(clients.client(None).is_ok());
        assert!(clients.client(Some("socks5://u:p@127.0.0.1:1080")).is_ok());
        assert!(clients.client(Some("http://127.0.0.1:3128")).is_ok());
        assert!(clients.client(Some("https://proxy.example:443")).is_ok());
        let e = clients.client(Some("ftp://u:secret@h")).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(validate("socks5h://").is_err());
        assert!(!format!("{clients:?}").contains("u:p"));
    }
}
