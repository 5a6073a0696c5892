//! The outbound guard: which addresses upstream calls may reach.
//!
//! Anyone who may add an account chooses where the gateway connects: the
//! account's base URL and its proxy. Without a guard that is a way into
//! the gateway's own network (its loopback services, the cloud's metadata
//! endpoint, private hosts), with the gateway's answers as the read-out.
//! So every upstream connection is checked twice:
//!
//! - **before it is sent**, on the URL: an IP literal in any spelling the
//!   URL parser accepts (`127.1`, `2130706433`, `[::ffff:127.0.0.1]`),
//!   `localhost`, and the well-known metadata host names;
//! - **when it connects**, on every address a host name resolves to (a
//!   resolver hook in the HTTP client, see [`GuardedResolver`]), so a name
//!   that resolves to a public address when the account is saved and to a
//!   private one later (DNS rebinding) is refused all the same.
//!
//! Denied unless allowed: loopback, private (RFC 1918), link-local,
//! carrier-grade NAT, unique-local, multicast, unspecified and reserved
//! ranges, and the IPv4-mapped, -compatible and NAT64 forms of those. An
//! operator allows ranges or host names explicitly:
//!
//! ```
//! use aicarpool_core::outbound::OutboundGuard;
//!
//! let guard = OutboundGuard::default();
//! assert!(guard.check_url("http://169.254.169.254/latest/meta-data").is_err());
//! assert!(guard.check_url("https://api.anthropic.com").is_ok());
//!
//! // What `AICARPOOL_UPSTREAM_ALLOW` holds: CIDRs, addresses and host names.
//! let relaxed = OutboundGuard::parse("127.0.0.0/8,::1,relay.internal").unwrap();
//! assert!(relaxed.check_url("http://127.0.0.1:8080").is_ok());
//! assert!(relaxed.check_url("http://relay.internal").is_ok());
//! assert!(relaxed.check_url("http://10.0.0.5").is_err());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

mod resolve;

pub use resolve::GuardedResolver;

/// The environment variable an operator sets to allow denied addresses.
pub const ALLOW_VAR: &str = "AICARPOOL_UPSTREAM_ALLOW";

/// Host names that reach a cloud's instance metadata service. They are
/// refused by name, whatever they resolve to.
const METADATA_HOSTS: [&str; 6] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Why an address or host is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    UniqueLocal,
    Multicast,
    Unspecified,
    Reserved,
    MetadataHost,
}

impl DenyReason {
    /// The rule's name, as refusals show it.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Loopback => "a loopback address",
            DenyReason::Private => "a private address",
            DenyReason::LinkLocal => "a link-local address",
            DenyReason::SharedAddressSpace => "a carrier-grade NAT address",
            DenyReason::UniqueLocal => "a unique-local address",
            DenyReason::Multicast => "a multicast address",
            DenyReason::Unspecified => "an unspecified address",
            DenyReason::Reserved => "a reserved address",
            DenyReason::MetadataHost => "a cloud metadata host",
        }
    }
}

/// An upstream destination the guard refuses. The message names the host
/// as configured (never a credential) and the variable that allows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is {} and upstream calls may not reach it; allow it with {ALLOW_VAR}", reason.as_str())]
pub struct Denied {
    pub host: String,
    pub reason: DenyReason,
}

/// A URL the guard cannot judge, or an allow list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not a URL with a host")]
    NoHost,
    #[error("{ALLOW_VAR}: `{0}` is neither a CIDR, an address nor a host name")]
    BadAllowEntry(String),
}

/// The allow list over the default denials. Cheap to clone.
#[derive(Clone, Default)]
pub struct OutboundGuard {
    allow: Arc<AllowList>,
}

#[derive(Default)]
struct AllowList {
    nets: Vec<IpNet>,
    /// Exact host names, lowercase, without a trailing dot.
    hosts: Vec<String>,
    /// Suffixes from `*.example.com` entries, kept as `.example.com`.
    suffixes: Vec<String>,
}

impl fmt::Debug for OutboundGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundGuard")
            .field("allowed_nets", &self.allow.nets)
            .field("allowed_hosts", &self.allow.hosts)
            .field("allowed_suffixes", &self.allow.suffixes)
            .finish()
    }
}

impl OutboundGuard {
    /// A guard that allows, over the defaults, the comma-separated CIDRs,
    /// addresses and host names (`*.example.com` for a whole domain) of
    /// `list`. An empty list is the default guard.
    pub fn parse(list: &str) -> Result<Self, OutboundError> {
        let mut allow = AllowList::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allow.nets.push(net);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                allow.nets.push(IpNet::from(ip));
            } else if let Some(suffix) = entry.strip_prefix("*.") {
                allow.suffixes.push(format!(".{}", host_name(suffix)?));
            } else {
                allow.hosts.push(host_name(entry)?);
            }
        }
        Ok(Self {
            allow: Arc::new(allow),
        })
    }

    /// Whether this guard allows anything beyond the defaults.
    pub fn is_default(&self) -> bool {
        let a = &self.allow;
        a.nets.is_empty() && a.hosts.is_empty() && a.suffixes.is_empty()
    }

    /// Checks a URL before anything is sent to it: its host as written.
    /// Host names that are not IP literals are checked again, address by
    /// address, when they resolve.
    pub fn check_url(&self, url: &str) -> Result<(), OutboundError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| OutboundError::NoHost)?;
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => match special_host(name) {
                Some(ip) => self.check_ip(ip)?,
                None => self.check_name(name)?,
            },
            None => return Err(OutboundError::NoHost),
        }
        Ok(())
    }

    /// Checks a host name as written (not what it resolves to).
    pub fn check_name(&self, name: &str) -> Result<(), Denied> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.allows_name(&name) {
            return Ok(());
        }
        let denied = |reason| Denied {
            host: name.clone(),
            reason,
        };
        if METADATA_HOSTS.contains(&name.as_str()) {
            return Err(denied(DenyReason::MetadataHost));
        }
        // RFC 6761: these names are loopback whatever a resolver says.
        if name == "localhost" || name.ends_with(".localhost") {
            return self
                .check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .map_err(|_| denied(DenyReason::Loopback));
        }
        Ok(())
    }

    /// Checks one address: allowed explicitly, or in no denied range.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = canonical(ip);
        if self.allow.nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match deny_reason(ip) {
            Some(reason) => Err(Denied {
                host: ip.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Checks an address a host name resolved to: a name allowed by name
    /// may resolve anywhere.
    pub fn check_resolved(&self, name: &str, addr: SocketAddr) -> Result<(), Denied> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.allows_name(&name) {
            return Ok(());
        }
        self.check_ip(addr.ip()).map_err(|d| Denied {
            host: format!("{name} ({})", d.host),
            reason: d.reason,
        })
    }

    fn allows_name(&self, name: &str) -> bool {
        self.allow.hosts.iter().any(|h| h == name)
            || self
                .allow
                .suffixes
                .iter()
                .any(|s| name.ends_with(s.as_str()))
    }
}

/// The address a host of a non-special URL (`socks5://…`, kept opaque by
/// the URL parser) stands for, read as an `http` URL's host would be, so
/// `socks5://2130706433` is judged as 127.0.0.1.
fn special_host(name: &str) -> Option<IpAddr> {
    let parsed = reqwest::Url::parse(&format!("http://{name}/")).ok()?;
    match parsed.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn host_name(entry: &str) -> Result<String, OutboundError> {
    let name = entry.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(name)
    } else {
        Err(OutboundError::BadAllowEntry(entry.to_owned()))
    }
}

/// An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64)
/// is judged as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // ::a.b.c.d (compatible, deprecated), but not :: and ::1 themselves
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        _ => None,
    }
}

fn deny_reason(ip: IpAddr) -> Option<DenyReason> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Some(DenyReason::Loopback)
            } else if v4.is_private() {
                Some(DenyReason::Private)
            } else if v4.is_link_local() {
                Some(DenyReason::LinkLocal)
            } else if a == 100 && (64..128).contains(&b) {
                Some(DenyReason::SharedAddressSpace)
            } else if v4.is_multicast() {
                Some(DenyReason::Multicast)
            } else if a == 0 {
                Some(DenyReason::Unspecified)
            } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b & 0xfe) == 18) {
                // 240/4 and broadcast, IETF protocol assignments, benchmarking
                Some(DenyReason::Reserved)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some(DenyReason::Loopback)
            } else if v6.is_unspecified() {
                Some(DenyReason::Unspecified)
            } else if first & 0xfe00 == 0xfc00 {
                Some(DenyReason::UniqueLocal)
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                // link-local, and the deprecated site-local
                Some(DenyReason::LinkLocal)
            } else if v6.is_multicast() {
                Some(DenyReason::Multicast)
            } else if first == 0 {
                // What is left of ::/16 that embeds nothing (e.g. ::ffff:0:x)
                Some(DenyReason::Reserved)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn denied(url: &str) -> DenyReason {
        match OutboundGuard::default().check_url(url) {
            Err(OutboundError::Denied(d)) => d.reason,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_denied() {
        use DenyReason::*;
        for (url, reason) in [
            ("http://127.0.0.1:8080/x", Loopback),
            ("http://[::1]:9/", Loopback),
            ("http://localhost", Loopback),
            ("http://api.localhost", Loopback),
            ("http://0.0.0.0", Unspecified),
            ("http://2130706433", Loopback),
            ("http://127.1", Loopback),
            ("http://0x7f.1", Loopback),
            ("http://[::ffff:127.0.0.1]", Loopback),
            ("http://[::ffff:169.254.169.254]", LinkLocal),
            ("http://[64:ff9b::a00:1]", Private),
            ("http://169.254.169.254/latest/meta-data", LinkLocal),
            (
                "http://metadata.google.internal/computeMetadata/v1",
                MetadataHost,
            ),
            ("http://METADATA.google.internal./", MetadataHost),
            ("http://10.1.2.3", Private),
            ("http://172.16.0.1", Private),
            ("http://192.168.1.1", Private),
            ("http://100.100.100.200", SharedAddressSpace),
            ("http://[fd00:ec2::254]", UniqueLocal),
            ("http://[fe80::1]", LinkLocal),
            ("http://224.0.0.1", Multicast),
            ("http://[ff02::1]", Multicast),
            ("http://255.255.255.255", Reserved),
            ("http://[::]", Unspecified),
            ("socks5://169.254.0.9:1080", LinkLocal),
            ("socks5h://2130706433:1080", Loopback),
            ("socks5://[::1]:1080", Loopback),
        ] {
            assert_eq!(denied(url), reason, "{url}");
        }
    }

    #[test]
    fn public_destinations_pass() {
        let g = OutboundGuard::default();
        for url in [
            "https://api.anthropic.com",
            "https://api.moonshot.cn/anthropic",
            "http://8.8.8.8",
            "http://[2606:4700::1111]",
            "http://100.63.0.1",
            "http://172.32.0.1",
        ] {
            assert!(g.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn the_allow_list_opens_ranges_and_names_only() {
        let g = OutboundGuard::parse(" 127.0.0.0/8, ::1 ,relay.internal,*.corp.example,10.0.0.7")
            .unwrap();
        assert!(!g.is_default());
        assert!(g.check_url("http://127.0.0.1:1").is_ok());
        assert!(g.check_url("http://127.1").is_ok());
        assert!(g.check_url("http://[::ffff:127.0.0.1]").is_ok());
        assert!(g.check_url("http://localhost:3000").is_ok());
        assert!(g.check_url("http://[::1]").is_ok());
        assert!(g.check_url("http://10.0.0.7").is_ok());
        assert!(g.check_url("http://10.0.0.8").is_err());
        assert!(g.check_url("http://relay.internal").is_ok());
        assert!(g.check_url("http://a.corp.example").is_ok());
        assert!(g.check_url("http://169.254.169.254").is_err());
        let addr: SocketAddr = "10.9.9.9:443".parse().unwrap();
        assert!(g.check_resolved("relay.internal", addr).is_ok());
        assert!(g.check_resolved("other.example", addr).is_err());
        assert!(OutboundGuard::parse("").unwrap().is_default());
        assert!(matches!(
            OutboundGuard::parse("10.0.0.0/33"),
            Err(OutboundError::BadAllowEntry(_))
        ));
        assert!(OutboundGuard::parse("bad host!").is_err());
    }

    #[test]
    fn the_refusal_names_the_rule_and_the_variable() {
        let e = OutboundGuard::default()
            .check_url("http://192.168.0.1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("private address"), "{e}");
        assert!(e.contains(ALLOW_VAR), "{e}");
    }
}
