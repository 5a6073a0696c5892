//! Enterprise mode: enterprises, their department tree, the people who run
//! them, the audit log and enterprise events.
//!
//! A carpool group stands alone; an enterprise group belongs to an
//! enterprise and optionally to one of its departments
//! ([`Group::enterprise_id`](crate::org::Group::enterprise_id),
//! [`Group::department_id`](crate::org::Group::department_id)). Roles are
//! layered: an enterprise owner or admin manages everything in the
//! enterprise, a department admin manages their department's subtree and
//! the groups in it, and group roles work as in carpool mode.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Deepest department tree accepted (a root department is at depth 1), so
/// walks up the tree stay short and a cycle can never be stored.
pub const MAX_DEPARTMENT_DEPTH: usize = 8;

/// Most departments one enterprise may hold.
pub const MAX_DEPARTMENTS: usize = 500;

/// Spending and token ceilings of a department or an enterprise. `None`
/// means no ceiling. Enforced by the limiter's department and enterprise
/// scopes; stored here because they are part of the organization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Budget {
    /// Cost ceiling per calendar month (UTC), in USD.
    pub monthly_usd: Option<f64>,
    /// Token ceiling per calendar day (UTC).
    pub daily_tokens: Option<u64>,
}

impl Budget {
    /// Whether any ceiling is set.
    pub fn is_set(&self) -> bool {
        self.monthly_usd.is_some() || self.daily_tokens.is_some()
    }

    /// Checks the amounts: money finite and ≥ 0. The message names the field.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        if let Some(v) = self.monthly_usd {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{field}.monthlyUsd must be a number ≥ 0"));
            }
        }
        Ok(())
    }
}

/// An organization that owns departments, groups and an account pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enterprise {
    pub id: String,
    pub name: String,
    pub budget: Budget,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A node of an enterprise's department tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Department {
    pub id: String,
    pub enterprise_id: String,
    /// `None` for a top-level department.
    pub parent_id: Option<String>,
    pub name: String,
    pub budget: Budget,
    pub created_at: DateTime<Utc>,
}

/// A role held in an enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnterpriseRole {
    /// Everything, including deleting the enterprise and naming admins.
    Owner,
    /// Everything in the enterprise except deleting it and changing owners.
    Admin,
}

impl EnterpriseRole {
    pub fn as_str(self) -> &'static str {
        match self {
            EnterpriseRole::Owner => "owner",
            EnterpriseRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(EnterpriseRole::Owner),
            "admin" => Some(EnterpriseRole::Admin),
            _ => None,
        }
    }
}

/// A user's role in an enterprise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseMember {
    pub enterprise_id: String,
    pub user_id: String,
    pub role: EnterpriseRole,
    pub added_at: DateTime<Utc>,
}

/// A user who administers a department and everything below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentAdmin {
    pub department_id: String,
    pub user_id: String,
    pub added_at: DateTime<Utc>,
}

/// One line of the audit log: who did what to which resource. `detail`
/// holds names and ids only, never a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The user who acted; `None` for anonymous attempts (failed logins).
    pub actor_id: Option<String>,
    /// `<resource>.<verb>`, e.g. `account.created`, `key.revoked`.
    pub action: String,
    /// `enterprise`, `department`, `group`, `member`, `account`, `binding`,
    /// `key`, `invitation`, `user`.
    pub target_type: String,
    pub target_id: String,
    /// The enterprise the target belongs to, so enterprise admins see it.
    pub enterprise_id: Option<String>,
    /// The group the target belongs to, so group admins see it.
    pub group_id: Option<String>,
    pub detail: serde_json::Value,
}

/// Which audit entries to read. Entries come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub enterprise_id: Option<String>,
    pub group_id: Option<String>,
    /// Only entries strictly older than this (paging).
    pub before: Option<DateTime<Utc>>,
    pub limit: u32,
}

impl AuditQuery {
    /// Whether `e` is selected (ignoring `limit`).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.enterprise_id
            .as_ref()
            .is_none_or(|id| e.enterprise_id.as_ref() == Some(id))
            && self
                .group_id
                .as_ref()
                .is_none_or(|id| e.group_id.as_ref() == Some(id))
            && self.before.is_none_or(|b| e.at < b)
    }
}

/// Something an enterprise's admins should know about, e.g. a budget
/// threshold crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseEvent {
    pub id: String,
    pub enterprise_id: String,
    pub department_id: Option<String>,
    pub at: DateTime<Utc>,
    /// e.g. `budget.threshold`.
    pub kind: String,
    /// Unique per enterprise: an event with a key already recorded is not
    /// recorded again (one threshold event per scope, window and level).
    pub dedupe_key: String,
    pub detail: serde_json::Value,
}

/// The ids from `id` up to its root, `id` first. Stops at a missing parent
/// and after [`MAX_DEPARTMENT_DEPTH`] steps, so a corrupt tree cannot loop.
pub fn ancestry<'a>(departments: &'a [Department], id: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut cur = Some(id);
    while let Some(c) = cur {
        if out.len() >= MAX_DEPARTMENT_DEPTH * 2 || out.contains(&c) {
            break;
        }
        let Some(d) = departments.iter().find(|d| d.id == c) else {
            break;
        };
        out.push(d.id.as_str());
        cur = d.parent_id.as_deref();
    }
    out
}

/// Whether `id` is `ancestor` or lies below it.
pub fn is_within(departments: &[Department], id: &str, ancestor: &str) -> bool {
    ancestry(departments, id).contains(&ancestor)
}

/// Depth of the subtree rooted at `id` (1 for a leaf).
pub fn subtree_height(departments: &[Department], id: &str) -> usize {
    fn go(ds: &[Department], id: &str, guard: usize) -> usize {
        if guard == 0 {
            return 1;
        }
        1 + ds
            .iter()
            .filter(|d| d.parent_id.as_deref() == Some(id))
            .map(|d| go(ds, &d.id, guard - 1))
            .max()
            .unwrap_or(0)
    }
    go(departments, id, MAX_DEPARTMENT_DEPTH * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(id: &str, parent: Option<&str>) -> Department {
        Department {
            id: id.into(),
            enterprise_id: "e".into(),
            parent_id: parent.map(Into::into),
            name: id.into(),
            budget: Budget::default(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn ancestry_walks_to_the_root() {
        let ds = vec![
            dept("a", None),
            dept("b", Some("a")),
            dept("c", Some("b")),
            dept("x", None),
        ];
        assert_eq!(ancestry(&ds, "c"), vec!["c", "b", "a"]);
        assert!(is_within(&ds, "c", "a"));
        assert!(is_within(&ds, "a", "a"));
        assert!(!is_within(&ds, "a", "c"));
        assert!(!is_within(&ds, "c", "x"));
        assert_eq!(subtree_height(&ds, "a"), 3);
        assert_eq!(subtree_height(&ds, "c"), 1);
    }

    #[test]
    fn a_corrupt_cycle_does_not_loop() {
        let ds = vec![dept("a", Some("b")), dept("b", Some("a"))];
        assert_eq!(ancestry(&ds, "a"), vec!["a", "b"]);
        assert!(subtree_height(&ds, "a") >= 1);
    }

    #[test]
    fn budgets_validate_money() {
        let ok = Budget {
            monthly_usd: Some(10.0),
            daily_tokens: Some(5),
        };
        assert!(ok.validate("budget").is_ok());
        let bad = Budget {
            monthly_usd: Some(-1.0),
            daily_tokens: None,
        };
        assert_eq!(
            bad.validate("budget").err().as_deref(),
            Some("budget.monthlyUsd must be a number ≥ 0")
        );
        assert!(!Budget::default().is_set());
    }

    #[test]
    fn audit_query_filters() {
        let e = AuditEntry {
            id: "1".into(),
            at: Utc::now(),
            actor_id: None,
            action: "key.issued".into(),
            target_type: "key".into(),
            target_id: "k".into(),
            enterprise_id: Some("e".into()),
            group_id: Some("g".into()),
            detail: serde_json::Value::Null,
        };
        let q = |e: Option<&str>, g: Option<&str>| AuditQuery {
            enterprise_id: e.map(Into::into),
            group_id: g.map(Into::into),
            before: None,
            limit: 10,
        };
        assert!(q(Some("e"), None).matches(&e));
        assert!(q(None, Some("g")).matches(&e));
        assert!(!q(Some("x"), None).matches(&e));
        assert!(q(None, None).matches(&e));
    }
}
