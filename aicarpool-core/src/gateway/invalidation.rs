//! Cache invalidation across gateway instances.
//!
//! Each gateway caches keys and routing tables, and a management write
//! drops the stale entries at once — in its own process. When several
//! instances serve one database, the others would go on serving a revoked
//! key or an old binding until their cache entries expire. An
//! [`InvalidationBus`] carries each [`Invalidation`] to them; each
//! instance hands what it receives to [`Gateway::apply_invalidation`].
//!
//! The same bus carries one piece of router state: a rate limit whose end
//! the upstream named ([`Invalidation::AccountCooling`]), so the other
//! instances do not each spend a request to learn it.
//!
//! Delivery is best effort: a bus that lost messages (a reconnect) should
//! deliver [`Invalidation::All`] once it is back, so nothing stale
//! outlives the outage.
//!
//! [`Gateway::apply_invalidation`]: super::Gateway::apply_invalidation

use std::fmt;

use crate::key::KeyHash;

/// What a write made stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One member key (revoked, changed, its group deleted).
    Key(KeyHash),
    /// A group's binding, accounts and limits.
    Group(String),
    /// Every routing table (an account changed).
    Routes,
    /// Everything cached: keys, routes and group limits.
    All,
    /// Not a cache: an upstream rate-limited an account until `until_ms`
    /// (epoch ms), so the other instances need not each hit the 429.
    AccountCooling { account_id: String, until_ms: u64 },
}

impl Invalidation {
    /// The wire form: `key:<hex>`, `group:<id>`, `routes`, `all` or
    /// `cool:<account id>:<until ms>`.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Key(hash) => format!("key:{}", hash.to_hex()),
            Invalidation::Group(id) => format!("group:{id}"),
            Invalidation::Routes => "routes".into(),
            Invalidation::All => "all".into(),
            Invalidation::AccountCooling {
                account_id,
                until_ms,
            } => format!("cool:{account_id}:{until_ms}"),
        }
    }

    /// Reads the wire form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        match s.split_once(':') {
            Some(("key", hex)) => KeyHash::from_hex(hex).map(Invalidation::Key),
            Some(("group", id)) if !id.is_empty() => Some(Invalidation::Group(id.to_owned())),
            Some(("cool", rest)) => {
                // The time is last, so an id holding a colon still reads.
                let (id, until) = rest.rsplit_once(':')?;
                let digits = !until.is_empty() && until.bytes().all(|b| b.is_ascii_digit());
                if id.is_empty() || !digits {
                    return None;
                }
                Some(Invalidation::AccountCooling {
                    account_id: id.to_owned(),
                    until_ms: until.parse().ok()?,
                })
            }
            None if s == "routes" => Some(Invalidation::Routes),
            None if s == "all" => Some(Invalidation::All),
            _ => None,
        }
    }
}

/// Carries invalidations to the other instances (e.g. Redis pub/sub).
///
/// `publish` must not block the request path: implementations queue the
/// message and send it in the background.
pub trait InvalidationBus: Send + Sync + fmt::Debug {
    fn publish(&self, event: &Invalidation);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        let events = [
            Invalidation::Key(KeyHash([0xab; 32])),
            Invalidation::Group("G1abc".into()),
            Invalidation::Routes,
            Invalidation::All,
            Invalidation::AccountCooling {
                account_id: "A1xyz".into(),
                until_ms: 1_700_000_060_000,
            },
            Invalidation::AccountCooling {
                account_id: "odd:id".into(),
                until_ms: 0,
            },
        ];
        for event in events {
            assert_eq!(Invalidation::decode(&event.encode()), Some(event));
        }
    }

    #[test]
    fn garbage_is_ignored() {
        let garbage = [
            "",
            "key:zz",
            "key:",
            "group:",
            "routes:x",
            "other",
            "all:1",
            "cool:",
            "cool:A1",
            "cool::5",
            "cool:A1:",
            "cool:A1:+5",
            "cool:A1:-5",
            "cool:A1:5s",
            "cool:A1:99999999999999999999999",
        ];
        for s in garbage {
            assert_eq!(Invalidation::decode(s), None, "{s}");
        }
    }
}
