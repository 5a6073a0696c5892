//! Who is calling: bearer-token extraction, opaque token helpers and the
//! permission check every handler goes through ([`authorize`]).

use std::fmt;

use aicarpool_core::id::is_valid_id;
use aicarpool_core::org::{Group, GroupRole, Session, User};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

mod authorize;

pub use authorize::{
    account_role, authorize, department_role, enterprise_role, group_role, Access, Action,
    Resource, Target,
};

/// Id of the built-in user the admin token acts as when no configured
/// administrator exists.
pub const SYSTEM_USER_ID: &str = "system";
pub const SYSTEM_USER_EMAIL: &str = "system@aicarpool.invalid";

/// An authenticated caller. `Debug` never shows the bearer token.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    /// Hash of the session token; `None` when the admin token was used.
    pub session_hash: Option<String>,
    /// The presented token (only handed back by invitation accept, to the
    /// caller who sent it).
    bearer: String,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("via_session", &self.session_hash.is_some())
            .finish_non_exhaustive()
    }
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.is_system_admin
    }

    pub fn id(&self) -> &str {
        &self.user.id
    }

    /// The session token the caller presented, if it was a session token.
    pub fn session_token(&self) -> Option<&str> {
        self.session_hash.as_ref().map(|_| self.bearer.as_str())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        authenticate(state, token).await
    }
}

/// A caller that may be anonymous (public endpoints that behave better
/// when logged in).
#[derive(Debug)]
pub struct MaybeCaller {
    pub caller: Option<Caller>,
    /// A token was sent but did not authenticate.
    pub bad_token: bool,
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Some(token) = bearer(parts) else {
            return Ok(Self {
                caller: None,
                bad_token: false,
            });
        };
        match authenticate(state, token).await {
            Ok(c) => Ok(Self {
                caller: Some(c),
                bad_token: false,
            }),
            Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => Ok(Self {
                caller: None,
                bad_token: true,
            }),
            Err(e) => Err(e),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn authenticate(state: &AppState, token: &str) -> ApiResult<Caller> {
    if let Some(admin) = state.config.admin_token.as_deref() {
        if !admin.is_empty() && ct_eq_digest(token, admin) {
            let user = admin_token_user(state)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            return Ok(Caller {
                user,
                session_hash: None,
                bearer: token.to_owned(),
            });
        }
    }
    let hash = sha256_hex(token);
    let session = state
        .store
        .session(&hash)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if session.expires_at <= Utc::now() {
        state.store.delete_session(&hash).await?;
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "session_expired",
            "the session has expired; log in again",
        ));
    }
    let user = state
        .store
        .user(&session.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller {
        user,
        session_hash: Some(hash),
        bearer: token.to_owned(),
    })
}

/// The user the admin token acts as: the configured administrator when it
/// exists, else the built-in system user.
pub async fn admin_token_user(state: &AppState) -> ApiResult<Option<User>> {
    if let Some(email) = state.config.admin_email.as_deref() {
        if let Some(u) = state.store.user_by_email(email.trim()).await? {
            if u.is_system_admin {
                return Ok(Some(u));
            }
        }
    }
    Ok(state
        .store
        .user(SYSTEM_USER_ID)
        .await?
        .filter(|u| u.is_system_admin))
}

/// Compares two secrets in time independent of where they differ, by
/// comparing fixed-length digests.
pub(crate) fn ct_eq_digest(a: &str, b: &str) -> bool {
    let (da, db) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Hex SHA-256: how session and invitation tokens are stored.
pub fn sha256_hex(s: &str) -> String {
    use std::fmt::Write;
    Sha256::digest(s.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// 32 random bytes from the OS, base64url without padding.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Opens a session for `user_id`; returns the token (shown once).
pub async fn new_session(state: &AppState, user_id: &str) -> ApiResult<String> {
    let token = random_token();
    let now = Utc::now();
    state
        .store
        .create_session(&Session {
            token_hash: sha256_hex(&token),
            user_id: user_id.to_owned(),
            created_at: now,
            expires_at: now + state.config.session_ttl(),
        })
        .await?;
    Ok(token)
}

/// A path id that cannot exist is answered like an absent one.
pub fn valid_id<'a>(id: &'a str, what: &str) -> ApiResult<&'a str> {
    if is_valid_id(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found(what))
    }
}

/// Whether `role` is at least as powerful as `needed` (owner > admin > member).
pub fn role_at_least(role: GroupRole, needed: GroupRole) -> bool {
    role <= needed
}

/// The group and the caller's effective role in it, if that role is at
/// least `needed` (see [`authorize`]).
///
/// No role at all → 404 (the group's existence is not revealed); a role
/// too low → 403. A system admin passes every check, as owner; enterprise
/// owners and admins act as owners of the enterprise's groups, department
/// admins as admins of the groups in their departments.
pub async fn require_group_role(
    state: &AppState,
    caller: &Caller,
    group_id: &str,
    needed: GroupRole,
) -> ApiResult<(Group, GroupRole)> {
    let action = match needed {
        GroupRole::Member => Action::View,
        GroupRole::Admin => Action::Manage,
        GroupRole::Owner => Action::Own,
    };
    let access = authorize(state, caller, action, Resource::Group(group_id)).await?;
    match access.target {
        Target::Group(g) => Ok((g, access.role)),
        _ => Err(ApiError::internal(
            "authorization loaded the wrong resource",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_by_power() {
        assert!(role_at_least(GroupRole::Owner, GroupRole::Admin));
        assert!(role_at_least(GroupRole::Admin, GroupRole::Admin));
        assert!(!role_at_least(GroupRole::Member, GroupRole::Admin));
        assert!(role_at_least(GroupRole::Member, GroupRole::Member));
    }

    #[test]
    fn tokens_are_random_and_hash_to_hex() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(sha256_hex(&a).len(), 64);
        assert!(ct_eq_digest("x", "x"));
        assert!(!ct_eq_digest("x", "y"));
    }
}
