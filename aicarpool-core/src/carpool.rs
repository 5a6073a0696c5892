//! What a carpool group promises its members: a fair share of a shared
//! subscription's window, and a fair split of its fee.
//!
//! These are a group's settings: the gateway holds members to their fair
//! share, and monthly statements split the fare.

use serde::{Deserialize, Serialize};

/// Members' share weights lie in `1..=MAX_SHARE_WEIGHT`.
pub const MAX_SHARE_WEIGHT: u32 = 100;

/// The weight a member has until an admin sets another.
pub const DEFAULT_SHARE_WEIGHT: u32 = 1;

/// Fair share of a subscription window among a group's members.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FairShare {
    pub enabled: bool,
    /// Window utilization (0–1) from which members over their share are
    /// held back; below it nobody is, so a member alone may use it all.
    pub engage_at: f64,
}

impl Default for FairShare {
    fn default() -> Self {
        Self {
            enabled: true,
            engage_at: 0.6,
        }
    }
}

impl FairShare {
    pub fn validate(&self) -> Result<(), String> {
        fraction("fairShare.engageAt", self.engage_at)
    }
}

/// How a group splits the fee of the accounts it used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FareSplit {
    /// The fraction split equally among the month's active members; the
    /// rest is split by each member's use of the account.
    pub equal_part: f64,
}

impl FareSplit {
    pub fn validate(&self) -> Result<(), String> {
        fraction("fareSplit.equalPart", self.equal_part)
    }
}

/// Checks a member's share weight.
pub fn validate_share_weight(weight: u32) -> Result<(), String> {
    if (1..=MAX_SHARE_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(format!(
            "shareWeight must be between 1 and {MAX_SHARE_WEIGHT}"
        ))
    }
}

fn fraction(field: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{field} must be between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_engage_at_sixty_percent_and_split_by_use() {
        let fair: FairShare = serde_json::from_str("{}").unwrap();
        assert_eq!(
            fair,
            FairShare {
                enabled: true,
                engage_at: 0.6
            }
        );
        let split: FareSplit = serde_json::from_str("{}").unwrap();
        assert_eq!(split.equal_part, 0.0);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(FairShare {
            enabled: true,
            engage_at: 1.5
        }
        .validate()
        .is_err());
        assert!(FareSplit { equal_part: -0.1 }.validate().is_err());
        assert!(FareSplit {
            equal_part: f64::NAN
        }
        .validate()
        .is_err());
        assert!(validate_share_weight(0).is_err());
        assert!(validate_share_weight(101).is_err());
        assert!(validate_share_weight(100).is_ok());
        assert!(serde_json::from_str::<FairShare>(r#"{"engage":1}"#).is_err());
    }
}
