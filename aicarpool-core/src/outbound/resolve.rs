//! The resolver hook: the HTTP client connects only to addresses the
//! guard allows, checked after resolution and so immune to rebinding.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::OutboundGuard;

/// Resolves with the system resolver, then keeps only the addresses the
/// guard allows. A name left with none fails the connection with
/// [`Denied`](super::Denied) as the cause.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: OutboundGuard,
}

impl GuardedResolver {
    pub fn new(guard: OutboundGuard) -> Self {
        Self { guard }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // A SOCKS proxy with local resolution hands literals here too.
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
                guard.check_ip(ip)?;
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::new(ip, 0)));
                return Ok(addrs);
            }
            guard.check_name(&host)?;
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_denial = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match guard.check_resolved(&host, *a) {
                    Ok(()) => true,
                    Err(d) => {
                        first_denial.get_or_insert(d);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), first_denial) {
                (true, Some(denied)) => Err(denied.into()),
                _ => {
                    let addrs: Addrs = Box::new(allowed.into_iter());
                    Ok(addrs)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use super::*;
    use crate::outbound::{Denied, DenyReason};

    async fn resolve(guard: OutboundGuard, host: &str) -> Result<Vec<SocketAddr>, String> {
        let r = GuardedResolver::new(guard);
        match r.resolve(Name::from_str(host).unwrap()).await {
            Ok(a) => Ok(a.collect()),
            Err(e) => {
                let d = e.downcast_ref::<Denied>().map(|d| d.reason);
                assert_eq!(d, Some(DenyReason::Loopback), "{e}");
                Err(e.to_string())
            }
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_inside_is_refused_at_connect_time() {
        // `localhost` is refused by name; the rebinding case is a public-
        // looking name resolving to loopback, which needs /etc/hosts.
        let e = resolve(OutboundGuard::default(), "localhost")
            .await
            .unwrap_err();
        assert!(e.contains(super::super::ALLOW_VAR), "{e}");
        assert!(resolve(OutboundGuard::default(), "127.0.0.1")
            .await
            .is_err());
        let open = OutboundGuard::parse("127.0.0.0/8,::1").unwrap();
        let addrs = resolve(open.clone(), "localhost").await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(resolve(open, "127.0.0.1").await.unwrap().len(), 1);
    }
}
