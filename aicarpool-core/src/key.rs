//! Member keys: `aicp_<groupId>_<userId>_<secret>`.
//!
//! The secret carries 192 bits from the operating system's CSPRNG, written in
//! base62. Only the SHA-256 of the whole key is ever stored; lookups go by
//! that hash and the final comparison is constant-time. The group and user
//! ids inside the key are checked against the stored record, so a key cannot
//! be replayed against another group even if hashes collided.

use std::fmt;

use chrono::{DateTime, Utc};
use rand::{rngs::OsRng, Rng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::id::{is_valid_id, MAX_ID_LEN};
use crate::limits::KeyLimits;

/// Every member key starts with this.
pub const KEY_PREFIX: &str = "aicp_";

/// Whether `s` reads as a member key (what an upstream credential must
/// never be): the prefix, ignoring case, surrounding space and a `Bearer`.
pub fn is_member_key_like(s: &str) -> bool {
    let s = s.trim();
    let s = s
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map_or(s, |_| s[7..].trim_start());
    s.get(..KEY_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(KEY_PREFIX))
}

/// Characters in a generated secret: 33 base62 characters ≈ 196 bits.
pub const SECRET_LEN: usize = 33;

/// Secrets shorter than this are refused when parsing (≥ 128 bits).
pub const MIN_SECRET_LEN: usize = 22;

const MAX_SECRET_LEN: usize = 128;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a member key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("a member key starts with `aicp_`")]
    MissingPrefix,
    #[error("a member key has the form aicp_<groupId>_<userId>_<secret>")]
    WrongShape,
    #[error("the group id inside the key is not a valid id")]
    BadGroupId,
    #[error("the user id inside the key is not a valid id")]
    BadUserId,
    #[error("the secret inside the key is malformed")]
    BadSecret,
}

/// A parsed member key. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct MemberKey {
    group_id: String,
    user_id: String,
    secret: String,
}

impl MemberKey {
    /// A new key for `user_id` in `group_id` with a fresh secret.
    ///
    /// # Panics
    /// Never on valid ids; ids that contain `_` are a programming error and
    /// are caught in debug builds.
    pub fn generate(group_id: &str, user_id: &str) -> Self {
        debug_assert!(is_valid_id(group_id) && is_valid_id(user_id));
        let mut rng = OsRng;
        let secret = (0..SECRET_LEN)
            .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
            .collect();
        Self {
            group_id: group_id.to_owned(),
            user_id: user_id.to_owned(),
            secret,
        }
    }

    /// Parses `aicp_<groupId>_<userId>_<secret>`.
    pub fn parse(s: &str) -> Result<Self, KeyParseError> {
        let rest = s
            .strip_prefix(KEY_PREFIX)
            .ok_or(KeyParseError::MissingPrefix)?;
        if rest.len() > 2 * MAX_ID_LEN + MAX_SECRET_LEN + 2 {
            return Err(KeyParseError::WrongShape);
        }
        let mut parts = rest.split('_');
        let (Some(group_id), Some(user_id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyParseError::WrongShape);
        };
        if !is_valid_id(group_id) {
            return Err(KeyParseError::BadGroupId);
        }
        if !is_valid_id(user_id) {
            return Err(KeyParseError::BadUserId);
        }
        if secret.len() < MIN_SECRET_LEN
            || secret.len() > MAX_SECRET_LEN
            || !secret.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(KeyParseError::BadSecret);
        }
        Ok(Self {
            group_id: group_id.to_owned(),
            user_id: user_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The SHA-256 of the whole key string: what the store keeps.
    pub fn hash(&self) -> KeyHash {
        let mut h = Sha256::new();
        h.update(KEY_PREFIX.as_bytes());
        h.update(self.group_id.as_bytes());
        h.update(b"_");
        h.update(self.user_id.as_bytes());
        h.update(b"_");
        h.update(self.secret.as_bytes());
        KeyHash(h.finalize().into())
    }

    /// The key as the member types it. Shown once, at creation.
    pub fn expose(&self) -> String {
        format!(
            "{KEY_PREFIX}{}_{}_{}",
            self.group_id, self.user_id, self.secret
        )
    }

    /// A non-secret hint for lists: `aicp_<group>_<user>_abcd…`.
    pub fn hint(&self) -> String {
        format!(
            "{KEY_PREFIX}{}_{}_{}…",
            self.group_id,
            self.user_id,
            &self.secret[..4]
        )
    }
}

impl fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberKey")
            .field("group_id", &self.group_id)
            .field("user_id", &self.user_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// SHA-256 of a member key, written as 64 lowercase hex digits when stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Constant-time equality, for the final check after a lookup.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// A service a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Claude,
    Gemini,
    Openai,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Claude, Service::Gemini, Service::Openai];
}

/// A stored member key: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub id: String,
    pub group_id: String,
    pub user_id: String,
    pub name: String,
    #[serde(skip)]
    pub key_hash: Option<KeyHash>,
    /// Non-secret hint such as `aicp_g1_u1_Ab3d…`.
    pub hint: String,
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub services: Vec<Service>,
    /// Model globs (`claude-sonnet-*`); empty = every model.
    pub models: Vec<String>,
    /// User-Agent globs (`claude-cli/*`); empty = every client.
    pub clients: Vec<String>,
    pub limits: KeyLimits,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a presented key is refused before any upstream is called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("member key is disabled")]
    Disabled,
    #[error("member key expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("this key may not use the {0:?} service")]
    ServiceNotAllowed(Service),
    #[error("this key may not use model `{0}`")]
    ModelNotAllowed(String),
    #[error("this key may not be used from client `{0}`")]
    ClientNotAllowed(String),
}

impl KeyRecord {
    /// Checks the key's own policy: enabled, expiry, service, model, client.
    pub fn check(
        &self,
        now: DateTime<Utc>,
        service: Service,
        model: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<(), KeyRefusal> {
        if !self.enabled {
            return Err(KeyRefusal::Disabled);
        }
        if let Some(exp) = self.expires_at {
            if exp <= now {
                return Err(KeyRefusal::Expired(exp));
            }
        }
        if !self.services.is_empty() && !self.services.contains(&service) {
            return Err(KeyRefusal::ServiceNotAllowed(service));
        }
        if let Some(model) = model {
            if !self.models.is_empty() && !self.models.iter().any(|g| glob_match(g, model)) {
                return Err(KeyRefusal::ModelNotAllowed(model.to_owned()));
            }
        }
        if !self.clients.is_empty() {
            let ua = user_agent.unwrap_or("");
            if !self.clients.iter().any(|g| glob_match(g, ua)) {
                return Err(KeyRefusal::ClientNotAllowed(ua.to_owned()));
            }
        }
        Ok(())
    }
}

/// Shell-style glob with `*` (any run) and `?` (one character), case-sensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_are_told_from_upstream_keys() {
        for k in [
            "aicp_g_u_secret",
            " AICP_x",
            "Bearer aicp_g_u_s",
            "bearer  aicp_",
        ] {
            assert!(is_member_key_like(k), "{k}");
        }
        for k in ["sk-ant-api03-x", "aic", "", "Bearer sk-x", "xaicp_"] {
            assert!(!is_member_key_like(k), "{k}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn generated_key_parses_back() {
        let k = MemberKey::generate("grp1", "usr1");
        let s = k.expose();
        assert!(s.starts_with("aicp_grp1_usr1_"));
        let p = MemberKey::parse(&s).unwrap();
        assert_eq!(p, k);
        assert!(p.hash().ct_eq(&k.hash()));
        assert!(!format!("{k:?}").contains(&s[15..]));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            MemberKey::parse("sk-ant-123"),
            Err(KeyParseError::MissingPrefix)
        );
        assert_eq!(MemberKey::parse("aicp_a_b"), Err(KeyParseError::WrongShape));
        assert_eq!(
            MemberKey::parse("aicp_a_b_c_d"),
            Err(KeyParseError::WrongShape)
        );
        let s = "x".repeat(30);
        assert_eq!(
            MemberKey::parse(&format!("aicp__b_{s}")),
            Err(KeyParseError::BadGroupId)
        );
        assert_eq!(
            MemberKey::parse(&format!("aicp_a_b!_{s}")),
            Err(KeyParseError::BadUserId)
        );
        assert_eq!(
            MemberKey::parse("aicp_a_b_short"),
            Err(KeyParseError::BadSecret)
        );
    }

    #[test]
    fn hash_hex_round_trip() {
        let h = MemberKey::generate("g", "u").hash();
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("claude-sonnet-*", "claude-sonnet-4-5"));
        assert!(!glob_match("claude-sonnet-*", "claude-opus-4-1"));
        assert!(glob_match(
            "claude-cli/*",
            "claude-cli/2.1.197 (external, cli)"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*x*y", "axbxy"));
    }

    proptest! {
        #[test]
        fn round_trip(g in "[A-Za-z0-9-]{1,64}", u in "[A-Za-z0-9-]{1,64}") {
            let k = MemberKey::generate(&g, &u);
            let parsed = MemberKey::parse(&k.expose()).unwrap();
            prop_assert_eq!(parsed.group_id(), g.as_str());
            prop_assert_eq!(parsed.user_id(), u.as_str());
            prop_assert!(parsed.hash().ct_eq(&k.hash()));
        }

        #[test]
        fn parser_never_panics(s in any::<String>()) {
            let _ = MemberKey::parse(&s);
        }

        #[test]
        fn parser_never_panics_near_shape(s in "aicp_[A-Za-z0-9_!-]{0,200}") {
            if let Ok(k) = MemberKey::parse(&s) {
                prop_assert_eq!(k.expose(), s);
            }
        }
    }
}
