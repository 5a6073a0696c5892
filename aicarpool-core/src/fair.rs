//! A fair share of a subscription's usage windows.
//!
//! A Claude subscription allows so much use per 5-hour and per 7-day
//! window, and tells how much of each is used in its
//! `anthropic-ratelimit-unified-*` headers. Left alone, one member running
//! an agent in a loop drains the 5-hour window in an hour and the others
//! are shut out until it resets. The gateway prevents that:
//!
//! 1. It keeps, per account and window, each member's use in that window:
//!    list-price cost, from the usage it settles ([`WindowLedger`]; in
//!    memory, or in Redis so several instances agree).
//! 2. From the utilization the upstream reports and the use the gateway
//!    sent, it estimates the window's capacity ([`WindowUse::capacity`]).
//! 3. It splits that capacity by weighted max-min fairness over the
//!    members: each member's demand is their pace so far carried to the
//!    window's end, light members get what they will need, and the rest is
//!    shared among the heavier ones by weight ([`share::shares`]).
//! 4. Below the group's `engageAt` utilization nobody is held back, so a
//!    member alone may use the whole window. Above it, a member over their
//!    share is routed to another account or refused with a 429 that names
//!    the window and when the member may go on ([`Verdict`]).
//!
//! ```
//! use aicarpool_core::fair::{share, Demand};
//!
//! // $10 of capacity: two light members need $1 each, the heavy one
//! // wants $50 and gets the $8 they leave.
//! let demands = [
//!     Demand { weight: 1, micro_usd: 1_000_000 },
//!     Demand { weight: 1, micro_usd: 1_000_000 },
//!     Demand { weight: 1, micro_usd: 50_000_000 },
//! ];
//! let shares = share::max_min(&demands, 10_000_000);
//! assert_eq!(shares, vec![1_000_000, 1_000_000, 8_000_000]);
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

mod memory;
pub mod share;

pub use memory::MemoryLedger;
pub use share::{Demand, Verdict};

/// One of a subscription's usage windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WindowKind {
    #[serde(rename = "5h")]
    FiveHour,
    #[serde(rename = "7d")]
    SevenDay,
}

impl WindowKind {
    pub const ALL: [WindowKind; 2] = [WindowKind::FiveHour, WindowKind::SevenDay];

    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::FiveHour => "5h",
            WindowKind::SevenDay => "7d",
        }
    }

    /// How long the window runs.
    pub fn length(self) -> Duration {
        match self {
            WindowKind::FiveHour => Duration::from_secs(5 * 3600),
            WindowKind::SevenDay => Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One window of one account, named by when it resets (epoch seconds), so
/// use from an earlier window never counts in the next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowId {
    pub account_id: String,
    pub kind: WindowKind,
    pub resets_at: u64,
}

impl WindowId {
    /// Epoch seconds at which the window began.
    pub fn starts_at(&self) -> u64 {
        self.resets_at.saturating_sub(self.kind.length().as_secs())
    }
}

/// A member of a group: use is kept per membership.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId {
    pub group_id: String,
    pub user_id: String,
}

impl MemberId {
    pub fn new(group_id: &str, user_id: &str) -> Self {
        Self {
            group_id: group_id.to_owned(),
            user_id: user_id.to_owned(),
        }
    }
}

/// A utilization the upstream reported, with the use the gateway had sent
/// through the account in that window when it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// 0–1.
    pub utilization: f64,
    pub sent_micro_usd: i64,
}

/// A member's use of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberUse {
    pub member: MemberId,
    pub weight: u32,
    pub used_micro_usd: i64,
    /// Requests charged: their average cost is the room the member's next
    /// one needs.
    pub requests: u64,
}

/// What the ledger holds about one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowUse {
    pub members: Vec<MemberUse>,
    /// All use the gateway sent in the window.
    pub sent_micro_usd: i64,
    /// The window's first and latest observations.
    pub first: Option<Observation>,
    pub last: Option<Observation>,
}

/// Utilization must have moved this much between two observations before
/// a capacity is estimated from them: the upstream rounds what it reports.
const MIN_OBSERVED_RISE: f64 = 0.05;

/// Part of the capacity never shared out: the estimate rests on rounded
/// utilizations, and a window that runs dry refuses everyone.
const HEADROOM: f64 = 0.02;

impl WindowUse {
    /// The window's capacity in list-price micro-USD: what the gateway sent
    /// between the first and the latest observation, over how far the
    /// reported utilization rose meanwhile. Use from before the gateway
    /// kept count, or from outside it, does not skew the estimate.
    pub fn capacity(&self) -> Option<i64> {
        let (first, last) = (self.first?, self.last?);
        let rise = last.utilization - first.utilization;
        let sent = last.sent_micro_usd - first.sent_micro_usd;
        if rise < MIN_OBSERVED_RISE || sent <= 0 {
            return None;
        }
        Some((sent as f64 / rise).round() as i64)
    }

    /// The latest reported utilization.
    pub fn utilization(&self) -> Option<f64> {
        self.last.map(|o| o.utilization)
    }

    /// What the members may share: the capacity less a little headroom
    /// and less what the upstream counted that the gateway did not send.
    pub fn shareable(&self) -> Option<i64> {
        let capacity = self.capacity()? as f64;
        let last = self.last?;
        let untracked = (last.utilization * capacity - last.sent_micro_usd as f64).max(0.0);
        Some((capacity * (1.0 - HEADROOM) - untracked).max(0.0).round() as i64)
    }

    pub fn member(&self, member: &MemberId) -> Option<&MemberUse> {
        self.members.iter().find(|m| &m.member == member)
    }
}

/// One settled request's use of an account's window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCharge {
    pub member: MemberId,
    pub weight: u32,
    pub micro_usd: i64,
    /// The utilization the upstream reported with this answer: it counts
    /// what came before the request, so it is recorded before the charge.
    pub utilization: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the window ledger is unreachable: {0}")]
    Unavailable(String),
    #[error("the window ledger answered something unexpected: {0}")]
    Corrupt(String),
}

/// Where members' use of subscription windows is kept.
#[async_trait]
pub trait WindowLedger: Send + Sync + fmt::Debug {
    /// Records the observation, then adds the charge, as one step.
    async fn charge(&self, window: &WindowId, charge: &WindowCharge) -> Result<(), LedgerError>;

    /// The window's use so far (empty when nothing was charged).
    async fn window(&self, window: &WindowId) -> Result<WindowUse, LedgerError>;
}
