//! What the router knows, for the management API: an account's health and
//! why each account of a group can or cannot take a request now.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Gateway, GatewayError};
use crate::account::Protocol;
use crate::router::health::LastError;
use crate::router::window::{UnifiedWindow, WindowInfo, WindowStatus};
use crate::router::{CoolReason, Eligibility, HealthState, RouteRequest};

/// An account's routing health (`GET /api/accounts/{id}/health`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountHealthReport {
    pub account_id: String,
    /// `healthy`, `cooling`, `half_open` or `needs_attention`.
    pub state: &'static str,
    pub cooling_until: Option<DateTime<Utc>>,
    pub reason: Option<CoolReason>,
    pub in_flight: u32,
    pub last_error: Option<LastErrorView>,
    /// Successes among the last (up to 64) outcomes that count; `None`
    /// before the first.
    pub recent_success_rate: Option<f64>,
    pub recent_outcomes: u32,
    /// Cooling periods in a row (each doubles the next).
    pub consecutive_cooldowns: u32,
    pub sticky_sessions: u64,
    /// The upstream's `anthropic-ratelimit-unified-*` picture, if it sent one.
    pub unified_window: Option<UnifiedWindowView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastErrorView {
    pub at: Option<DateTime<Utc>>,
    pub status: Option<u16>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnifiedWindowView {
    pub status: Option<WindowStatus>,
    pub reset_at: Option<DateTime<Utc>>,
    pub five_hour: WindowView,
    pub seven_day: WindowView,
    pub seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    pub status: Option<WindowStatus>,
    pub reset_at: Option<DateTime<Utc>>,
    pub utilization: Option<f64>,
}

fn at_ms(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

pub(super) fn at_s(s: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i64::try_from(s).ok()?, 0)
}

impl From<&WindowInfo> for WindowView {
    fn from(w: &WindowInfo) -> Self {
        Self {
            status: w.status,
            reset_at: w.reset.and_then(at_s),
            utilization: w.utilization,
        }
    }
}

impl From<&UnifiedWindow> for UnifiedWindowView {
    fn from(u: &UnifiedWindow) -> Self {
        Self {
            status: u.status,
            reset_at: u.reset.and_then(at_s),
            five_hour: (&u.five_hour).into(),
            seven_day: (&u.seven_day).into(),
            seen_at: at_ms(u.seen_at_ms),
        }
    }
}

impl From<&LastError> for LastErrorView {
    fn from(e: &LastError) -> Self {
        Self {
            at: at_ms(e.at_ms),
            status: e.status,
            message: e.message.clone(),
        }
    }
}

impl Gateway {
    /// Forgets an account's failures: an admin changed it, so one that
    /// needed attention is chosen again.
    pub fn reset_account_health(&self, account_id: &str) {
        self.inner.router.reset(account_id);
    }

    /// The account's routing health now (healthy when the router keeps no
    /// record of it).
    pub fn account_health(&self, account_id: &str) -> AccountHealthReport {
        let in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account_id)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let snap = self.inner.router.health(account_id);
        let state = snap.as_ref().map_or(HealthState::Healthy, |s| s.state);
        AccountHealthReport {
            account_id: account_id.to_owned(),
            state: state.as_str(),
            cooling_until: snap
                .as_ref()
                .and_then(|s| s.cooling_until_ms)
                .and_then(at_ms),
            reason: snap.as_ref().and_then(|s| s.reason),
            in_flight,
            last_error: snap
                .as_ref()
                .and_then(|s| s.last_error.as_ref())
                .map(Into::into),
            recent_success_rate: snap.as_ref().and_then(|s| s.recent_success_rate),
            recent_outcomes: snap.as_ref().map_or(0, |s| s.recent_outcomes),
            consecutive_cooldowns: snap.as_ref().map_or(0, |s| s.consecutive_cooldowns),
            sticky_sessions: snap.as_ref().map_or(0, |s| s.sticky_sessions),
            unified_window: snap
                .as_ref()
                .and_then(|s| s.unified.as_ref())
                .map(Into::into),
        }
    }

    /// Each account of the group, in binding order, with whether it can
    /// take a request of `protocol` for `model` now, and why. Without a
    /// protocol each account is judged for requests of its own protocol
    /// (tiers and standby among the accounts of that protocol); without a
    /// model, for any model.
    pub async fn routing(
        &self,
        group_id: &str,
        model: Option<&str>,
        protocol: Option<Protocol>,
    ) -> Result<Vec<Eligibility>, GatewayError> {
        let table = self.inner.route_table(group_id).await?;
        let candidates = &table.candidates;
        let explain = |p| {
            let request = RouteRequest::new(group_id, "", p, model.unwrap_or(""));
            self.inner.router.explain(&request, candidates)
        };
        if let Some(p) = protocol {
            return Ok(explain(p));
        }
        let mut judged: Vec<(Protocol, Vec<Eligibility>)> = Vec::new();
        let mut out = Vec::with_capacity(candidates.len());
        for (i, c) in candidates.iter().enumerate() {
            let own = c.account.account.platform.protocol();
            let by_own = match judged.iter().position(|(p, _)| *p == own) {
                Some(at) => &judged[at].1,
                None => {
                    judged.push((own, explain(own)));
                    &judged[judged.len() - 1].1
                }
            };
            if let Some(e) = by_own.get(i) {
                out.push(e.clone());
            }
        }
        Ok(out)
    }
}
