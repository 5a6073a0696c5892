//! The shape of limits on a key or a group (`limits` in the API).
//!
//! Zero or absent means "no limit". Enforcement lives in the limiter; this
//! module only describes what was configured.

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
}

impl KeyLimits {
    /// Checks the values are within range: no negative or non-finite money.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.cost_usd;
        for (name, v) in [
            ("daily", c.daily),
            ("weekly", c.weekly),
            ("monthly", c.monthly),
            ("total", c.total),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("limits.costUsd.{name} must be a number ≥ 0"));
            }
        }
        Ok(())
    }
}
