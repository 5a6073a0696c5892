//! Alerts: rules that tell a group's or an enterprise's owners, by webhook
//! or by mail, when something needs them — a budget or quota nearly used
//! up, an account cooling, disabled or failing its token refresh, a
//! subscription window nearly full, a key about to expire.
//!
//! A rule says what to watch ([`AlertKind`]), whom to tell
//! ([`AlertTarget`]) and, for the kinds that have one, the threshold. Each
//! occurrence is told once: its event key is claimed in the store
//! ([`AlertStore::claim_alert_event`](crate::store::AlertStore::claim_alert_event))
//! before delivery, so instances sharing a database never tell it twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::Sealed;

/// Who a rule belongs to (and who may manage it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AlertOwner {
    Group(String),
    Enterprise(String),
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// A budget or quota (member, group, department, enterprise) crossed
    /// `threshold` (a fraction, default 0.8) of its limit.
    Budget,
    /// An account started cooling, was disabled, or needs attention (its
    /// credentials or token refresh refused).
    Account,
    /// A subscription window's utilization above `threshold` (default 0.8).
    Window,
    /// A key expiring within `threshold` days (default 7).
    KeyExpiry,
}

impl AlertKind {
    pub const ALL: [AlertKind; 4] = [
        AlertKind::Budget,
        AlertKind::Account,
        AlertKind::Window,
        AlertKind::KeyExpiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Budget => "budget",
            AlertKind::Account => "account",
            AlertKind::Window => "window",
            AlertKind::KeyExpiry => "key-expiry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The threshold when none is given, and the range one must be in.
    pub fn threshold_bounds(self) -> Option<(f64, std::ops::RangeInclusive<f64>)> {
        match self {
            AlertKind::Budget | AlertKind::Window => Some((0.8, 0.01..=1.0)),
            AlertKind::KeyExpiry => Some((7.0, 1.0..=365.0)),
            AlertKind::Account => None,
        }
    }
}

/// Whom a rule tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertTarget {
    /// A JSON POST, signed (`x-aicarpool-signature: sha256=<hex>`).
    Webhook(String),
    /// A mail, when SMTP is configured.
    Email(String),
}

impl AlertTarget {
    /// `https://…` or `http://…` (a webhook) or `mailto:addr`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(addr) = s.strip_prefix("mailto:") {
            let ok = addr.len() <= crate::bounds::MAX_EMAIL_LEN
                && addr
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            return ok.then(|| AlertTarget::Email(addr.to_owned()));
        }
        let url = url::Url::parse(s).ok()?;
        (matches!(url.scheme(), "https" | "http") && url.host().is_some())
            .then(|| AlertTarget::Webhook(s.to_owned()))
    }

    /// As given: the URL, or `mailto:` and the address.
    pub fn as_string(&self) -> String {
        match self {
            AlertTarget::Webhook(url) => url.clone(),
            AlertTarget::Email(addr) => format!("mailto:{addr}"),
        }
    }
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub id: String,
    pub owner: AlertOwner,
    pub kind: AlertKind,
    pub target: AlertTarget,
    /// The kind's threshold, as given (see [`AlertKind::threshold_bounds`]).
    pub threshold: Option<f64>,
    /// The webhook signing secret, sealed (bound to the rule's id).
    pub secret: Sealed,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl AlertRule {
    /// The threshold in force: the rule's, else the kind's default.
    pub fn threshold(&self) -> f64 {
        self.threshold
            .or(self.kind.threshold_bounds().map(|(d, _)| d))
            .unwrap_or(0.0)
    }

    /// What the secret is sealed to.
    pub fn secret_aad(id: &str) -> Vec<u8> {
        format!("alert-secret:{id}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_kinds_parse() {
        assert_eq!(
            AlertTarget::parse("https://hooks.example.com/x"),
            Some(AlertTarget::Webhook("https://hooks.example.com/x".into()))
        );
        assert_eq!(
            AlertTarget::parse("mailto:ops@example.com").map(|t| t.as_string()),
            Some("mailto:ops@example.com".into())
        );
        for bad in ["ftp://x", "mailto:nobody", "hooks.example.com", "https://"] {
            assert_eq!(AlertTarget::parse(bad), None, "{bad}");
        }
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(
            serde_json::to_value(AlertKind::KeyExpiry).ok(),
            Some(serde_json::json!("key-expiry"))
        );
    }
}
