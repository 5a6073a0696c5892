//! The shape of limits on a key or a group (`limits` in the API).
//!
//! Zero or absent means "no limit". Enforcement lives in
//! [`crate::limit`]; this module only describes what was configured.

use serde::{Deserialize, Serialize};

/// Amounts per calendar window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WindowAmounts<T> {
    pub daily: T,
    pub weekly: T,
    pub monthly: T,
    pub total: T,
}

/// Limits of a member key, or of a group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyLimits {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u64,
    pub concurrency: u32,
    pub tokens: WindowAmounts<u64>,
    pub cost_usd: WindowAmounts<f64>,
    /// Group limits only: what each member may use across all their keys
    /// in the group (the group's own fields cap the group as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_member: Option<Box<KeyLimits>>,
    /// Waiting instead of refusing: a request that finds every
    /// concurrency slot taken (this scope's, or every account's) waits in
    /// line for one, in arrival order, rather than getting a 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueLimits>,
}

/// How many requests may wait for a concurrency slot, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueLimits {
    /// Requests waiting at once; one more is refused at once.
    pub max_waiting: u32,
    /// Longest a request waits before it is refused.
    pub max_wait_ms: u64,
}

impl QueueLimits {
    /// Most requests one line may hold.
    pub const MAX_WAITING: u32 = 10_000;
    /// Longest wait accepted: ten minutes, a client's usual timeout.
    pub const MAX_WAIT_MS: u64 = 600_000;

    pub fn max_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.max_wait_ms)
    }

    fn validate(&self, path: &str) -> Result<(), String> {
        if !(1..=Self::MAX_WAITING).contains(&self.max_waiting) {
            return Err(format!(
                "{path}.queue.maxWaiting must be between 1 and {}",
                Self::MAX_WAITING
            ));
        }
        if !(1..=Self::MAX_WAIT_MS).contains(&self.max_wait_ms) {
            return Err(format!(
                "{path}.queue.maxWaitMs must be between 1 and {}",
                Self::MAX_WAIT_MS
            ));
        }
        Ok(())
    }
}

impl KeyLimits {
    /// Checks a key's limits: money in range, no `perMember`.
    pub fn validate(&self) -> Result<(), String> {
        if self.per_member.is_some() {
            return Err("limits.perMember applies to group limits only".into());
        }
        self.validate_amounts("limits")
    }

    /// Checks a group's limits, including `perMember` (one level deep).
    pub fn validate_group(&self) -> Result<(), String> {
        self.validate_amounts("limits")?;
        if let Some(member) = &self.per_member {
            if member.per_member.is_some() {
                return Err("limits.perMember.perMember is not allowed".into());
            }
            member.validate_amounts("limits.perMember")?;
        }
        Ok(())
    }

    /// No negative or non-finite money, and no amount too large to count
    /// in integer micro-USD.
    fn validate_amounts(&self, path: &str) -> Result<(), String> {
        if let Some(q) = &self.queue {
            q.validate(path)?;
        }
        let c = &self.cost_usd;
        for (name, v) in [
            ("daily", c.daily),
            ("weekly", c.weekly),
            ("monthly", c.monthly),
            ("total", c.total),
        ] {
            if !v.is_finite() || !(0.0..=MAX_COST_USD).contains(&v) {
                return Err(format!(
                    "{path}.costUsd.{name} must be a number between 0 and {MAX_COST_USD}"
                ));
            }
        }
        Ok(())
    }

    /// Whether any limit is set (a zero everywhere means "unlimited").
    pub fn is_unlimited(&self) -> bool {
        let t = &self.tokens;
        let c = &self.cost_usd;
        self.requests_per_minute == 0
            && self.tokens_per_minute == 0
            && self.concurrency == 0
            && [t.daily, t.weekly, t.monthly, t.total] == [0; 4]
            && [c.daily, c.weekly, c.monthly, c.total] == [0.0; 4]
    }

    /// A cost amount in micro-USD (what the limiter compares against).
    pub fn micro_usd(usd: f64) -> i64 {
        // `validate` keeps amounts far below i64::MAX micro-USD.
        (usd * 1_000_000.0).round() as i64
    }
}

/// Largest cost limit accepted, in USD (a billion dollars).
pub const MAX_COST_USD: f64 = 1e9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_member_only_on_groups() {
        let mut l = KeyLimits {
            per_member: Some(Box::default()),
            ..Default::default()
        };
        assert!(l.validate().is_err());
        assert!(l.validate_group().is_ok());
        l.per_member = Some(Box::new(KeyLimits {
            per_member: Some(Box::default()),
            ..Default::default()
        }));
        assert!(l.validate_group().is_err());
    }

    #[test]
    fn json_shape_is_unchanged_without_per_member() {
        let v = serde_json::to_value(KeyLimits::default()).unwrap_or_default();
        assert!(v.get("perMember").is_none());
        let l: KeyLimits =
            serde_json::from_str(r#"{"perMember":{"costUsd":{"daily":2}}}"#).unwrap_or_default();
        assert_eq!(l.per_member.map(|m| m.cost_usd.daily), Some(2.0));
    }

    #[test]
    fn queue_bounds() {
        let l: KeyLimits = serde_json::from_str(
            r#"{"concurrency":2,"queue":{"maxWaiting":20,"maxWaitMs":30000}}"#,
        )
        .unwrap_or_default();
        assert_eq!(l.queue.map(|q| q.max_wait().as_secs()), Some(30));
        assert!(l.validate().is_ok());
        for (waiting, ms) in [(0, 10), (10_001, 10), (5, 0), (5, 600_001)] {
            let mut bad = l.clone();
            bad.queue = Some(QueueLimits {
                max_waiting: waiting,
                max_wait_ms: ms,
            });
            assert!(bad.validate().is_err(), "{waiting} {ms}");
        }
        let v = serde_json::to_value(KeyLimits::default()).unwrap_or_default();
        assert!(v.get("queue").is_none());
    }

    #[test]
    fn money_bounds() {
        let mut l = KeyLimits::default();
        l.cost_usd.monthly = -1.0;
        assert!(l.validate().is_err());
        l.cost_usd.monthly = f64::INFINITY;
        assert!(l.validate().is_err());
        l.cost_usd.monthly = 2e9;
        assert!(l.validate().is_err());
        l.cost_usd.monthly = 50.0;
        assert!(l.validate().is_ok());
        assert!(!l.is_unlimited());
        assert_eq!(KeyLimits::micro_usd(0.1 + 0.2), 300_000);
    }
}
