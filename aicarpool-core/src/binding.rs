//! A group's binding: which accounts serve it, and how.

use serde::{Deserialize, Serialize};

/// How a group uses its bound accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingMode {
    /// The listed accounts serve only this group.
    Dedicated,
    /// Pool accounts, usable by several groups.
    Shared,
    /// Dedicated entries first; the shared ones when those cannot serve.
    Hybrid,
}

/// One account in a binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundAccount {
    pub account_id: String,
    /// Overrides the account's own priority for this group (lower first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Overrides the account's own weight for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Whether this entry is exclusive to the group. Always true in
    /// dedicated mode, false in shared mode; chosen per entry in hybrid mode.
    #[serde(default)]
    pub dedicated: bool,
}

/// The accounts that serve a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    pub group_id: String,
    pub mode: BindingMode,
    pub accounts: Vec<BoundAccount>,
}

impl Binding {
    /// Sets each entry's `dedicated` flag from the mode. In hybrid mode an
    /// entry that does not say is dedicated when it comes before the first
    /// entry marked shared ("the first entries are dedicated").
    pub fn normalize(&mut self, hybrid_explicit: &[Option<bool>]) {
        match self.mode {
            BindingMode::Dedicated => self.accounts.iter_mut().for_each(|a| a.dedicated = true),
            BindingMode::Shared => self.accounts.iter_mut().for_each(|a| a.dedicated = false),
            BindingMode::Hybrid => {
                let mut still_dedicated = true;
                for (i, a) in self.accounts.iter_mut().enumerate() {
                    match hybrid_explicit.get(i).copied().flatten() {
                        Some(d) => {
                            a.dedicated = d;
                            if !d {
                                still_dedicated = false;
                            }
                        }
                        None => a.dedicated = still_dedicated,
                    }
                }
            }
        }
    }
}
