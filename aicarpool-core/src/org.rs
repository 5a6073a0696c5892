//! People and carpool groups: users, sessions, groups, memberships and
//! invitations.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::carpool::{FairShare, FareSplit, DEFAULT_SHARE_WEIGHT};
use crate::enterprise::EnterpriseRole;
use crate::limits::KeyLimits;

/// A person who can log in.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    /// Lower-cased on the way in; unique.
    pub email: String,
    pub name: String,
    /// Argon2id PHC string. Never serialized.
    #[serde(skip)]
    pub password_hash: String,
    pub is_system_admin: bool,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("is_system_admin", &self.is_system_admin)
            .finish_non_exhaustive()
    }
}

/// A login session; the store keys it by the SHA-256 of its opaque token.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Hex SHA-256 of the bearer token.
    pub token_hash: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A carpool group (standalone) or an enterprise group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub name: String,
    pub enterprise_id: Option<String>,
    pub department_id: Option<String>,
    pub max_members: Option<u32>,
    pub limits: KeyLimits,
    #[serde(default)]
    pub fair_share: FairShare,
    #[serde(default)]
    pub fare_split: FareSplit,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A member's role inside a group, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    Owner,
    Admin,
    Member,
}

impl GroupRole {
    /// Owner and admin manage accounts, binding, members and others' keys.
    pub fn can_manage(self) -> bool {
        matches!(self, GroupRole::Owner | GroupRole::Admin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Owner => "owner",
            GroupRole::Admin => "admin",
            GroupRole::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(GroupRole::Owner),
            "admin" => Some(GroupRole::Admin),
            "member" => Some(GroupRole::Member),
            _ => None,
        }
    }
}

/// A user's place in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub group_id: String,
    pub user_id: String,
    pub role: GroupRole,
    /// The member's weight in the fair share of a window (1–100).
    #[serde(default = "default_share_weight")]
    pub share_weight: u32,
    pub joined_at: DateTime<Utc>,
}

fn default_share_weight() -> u32 {
    DEFAULT_SHARE_WEIGHT
}

/// What accepting an invitation grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum InvitationTarget {
    /// Membership of a group, with this role.
    Group { group_id: String, role: GroupRole },
    /// A role in an enterprise.
    Enterprise {
        enterprise_id: String,
        role: EnterpriseRole,
    },
    /// Administration of a department (and everything below it).
    Department { department_id: String },
}

impl InvitationTarget {
    /// The group, for a group invitation.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Self::Group { group_id, .. } => Some(group_id),
            _ => None,
        }
    }

    /// `group`, `enterprise` or `department`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Group { .. } => "group",
            Self::Enterprise { .. } => "enterprise",
            Self::Department { .. } => "department",
        }
    }

    /// The role granted, as a word (`admin` for a department).
    pub fn role_str(&self) -> &'static str {
        match self {
            Self::Group { role, .. } => role.as_str(),
            Self::Enterprise { role, .. } => role.as_str(),
            Self::Department { .. } => "admin",
        }
    }
}

/// A link that lets people join a group, or take a role in an enterprise
/// or a department. Nobody gets a place without accepting one. The token
/// itself is shown once; the store keeps its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: String,
    pub target: InvitationTarget,
    #[serde(skip)]
    pub token_hash: String,
    /// When set, only this address may accept.
    pub email: Option<String>,
    /// `None` = unlimited uses until expiry.
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub expires_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Invitation {
    /// Whether the invitation can still be accepted at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now && self.max_uses.is_none_or(|m| self.uses < m)
    }
}
