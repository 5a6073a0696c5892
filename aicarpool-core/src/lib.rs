//! # aicarpool-core
//!
//! The library behind AiCarpool, a gateway that lets a team share AI coding
//! subscriptions and API accounts. It holds the domain (groups, members,
//! upstream accounts, bindings), the member key format, the storage traits
//! with an in-memory implementation, the routing trait, the provider clients
//! and the [`gateway::Gateway`] that ties them into one request path:
//!
//! ```text
//! authenticate → admit → route → dispatch → stream → settle
//! ```
//!
//! The core has no database and no HTTP server: an application that only
//! wants carpool routing depends on this crate alone and gets in-memory
//! defaults. `aicarpool-store` adds durable backends, `aicarpool-server`
//! mounts the gateway behind axum.
//!
//! ## Keys
//!
//! ```
//! use aicarpool_core::key::MemberKey;
//!
//! let key = MemberKey::generate("grp1", "usr1");
//! let shown_once = key.expose();
//! let parsed = MemberKey::parse(&shown_once).unwrap();
//! assert_eq!(parsed.group_id(), "grp1");
//! // Only this hash is ever stored.
//! assert!(parsed.hash().ct_eq(&key.hash()));
//! ```

pub mod account;
pub mod alert;
pub mod binding;
pub mod bounds;
pub mod carpool;
pub mod enterprise;
pub mod fair;
pub mod fare;
#[cfg(test)]
mod fuzzing;
pub mod gateway;
pub mod id;
pub mod key;
pub mod limit;
pub mod limits;
pub mod oauth;
pub mod org;
pub mod outbound;
pub mod pricing;
pub mod provider;
pub mod router;
pub mod secret;
pub mod store;
pub mod stream;
pub mod translate;
pub mod usage;

#[cfg(feature = "testing")]
pub mod testing;
