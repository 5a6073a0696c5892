//! The fair share on the request path (see [`crate::fair`]).
//!
//! Each answer's `anthropic-ratelimit-unified-*` headers tell this
//! instance where the account's windows stand; while a window is below
//! the group's `engageAt` nothing more happens, so the ledger is read
//! only when a window is tight. Settled use is charged to the account's
//! windows before the answer ends, as the limits are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;

use super::exchange::RequestContext;
use super::{GatewayError, Inner};
use crate::carpool::{FairShare, DEFAULT_SHARE_WEIGHT};
use crate::fair::share::{self, Split};
use crate::fair::{MemberId, WindowCharge, WindowId, WindowKind, WindowLedger, WindowUse};
use crate::fare::Cents;
use crate::router::window::{RateSignals, UnifiedWindow, WindowInfo};
use crate::router::{Candidate, Clock};
use crate::usage::{RefusalReason, Usage};

/// The ledger, the clock it is read by, and each account's windows as
/// this instance last saw them.
#[derive(Debug)]
pub(super) struct FairShareState {
    ledger: Arc<dyn WindowLedger>,
    clock: Arc<dyn Clock>,
    seen: Mutex<HashMap<String, UnifiedWindow>>,
}

/// A group's fair-share settings and its members' weights, loaded with
/// its routes.
#[derive(Debug, Default)]
pub(super) struct GroupFairness {
    pub settings: FairShare,
    pub members: Vec<(MemberId, u32)>,
}

impl GroupFairness {
    fn weight(&self, user_id: &str) -> u32 {
        self.members
            .iter()
            .find(|(m, _)| m.user_id == user_id)
            .map_or(DEFAULT_SHARE_WEIGHT, |(_, w)| *w)
    }
}

/// What to charge an account's windows once the answer is settled.
#[derive(Debug)]
pub(super) struct PendingCharge {
    account_id: String,
    windows: UnifiedWindow,
    member: MemberId,
    weight: u32,
}

/// One window of an account, for the windows report.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReport {
    pub account_id: String,
    pub name: String,
    pub window: WindowKind,
    pub utilization: Option<f64>,
    pub resets_at: DateTime<Utc>,
    pub capacity_estimate_micro_usd: Option<i64>,
    /// This group's members: used and share in micro-USD, whether over.
    pub members: Vec<MemberWindow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberWindow {
    pub user_id: String,
    pub used_micro_usd: i64,
    pub share_micro_usd: Option<i64>,
    pub over: bool,
}

fn window_info(w: &UnifiedWindow, kind: WindowKind) -> WindowInfo {
    match kind {
        WindowKind::FiveHour => w.five_hour,
        WindowKind::SevenDay => w.seven_day,
    }
}

impl FairShareState {
    pub(super) fn new(ledger: Arc<dyn WindowLedger>, clock: Arc<dyn Clock>) -> Self {
        Self {
            ledger,
            clock,
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, UnifiedWindow>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers the windows an answer of `account_id` reported, and
    /// returns them.
    pub(super) fn observe(&self, account_id: &str, headers: &HeaderMap) -> Option<UnifiedWindow> {
        let unified = RateSignals::from_headers(headers, self.clock.now_ms()).unified?;
        self.seen().insert(account_id.to_owned(), unified);
        Some(unified)
    }

    /// The account's windows that have not reset yet, with the
    /// utilization last reported; with `tight_from`, only those reported
    /// at least that full (the request path's question: nothing is built
    /// for an account whose windows have room).
    fn open_windows(
        &self,
        account_id: &str,
        tight_from: Option<f64>,
    ) -> Vec<(WindowId, Option<f64>)> {
        let Some(seen) = self.seen().get(account_id).copied() else {
            return Vec::new();
        };
        let now_s = self.clock.now_ms() / 1000;
        WindowKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let info = window_info(&seen, kind);
                if let Some(from) = tight_from {
                    info.utilization.filter(|u| *u >= from)?;
                }
                let resets_at = info.reset.filter(|r| *r > now_s)?;
                let id = WindowId {
                    account_id: account_id.to_owned(),
                    kind,
                    resets_at,
                };
                Some((id, info.utilization))
            })
            .collect()
    }
}

impl Inner {
    /// Why the member must not use `candidate` now, if their share of one
    /// of its windows is used while the window is tight: the refusal to
    /// answer when no other account serves them.
    pub(super) async fn over_share(
        &self,
        ctx: &RequestContext,
        fairness: &GroupFairness,
        candidate: &Candidate,
    ) -> Option<GatewayError> {
        let settings = fairness.settings;
        if !settings.enabled || !ctx.metered {
            return None;
        }
        let account = &candidate.account.account;
        let tight = self
            .fair
            .open_windows(&account.id, Some(settings.engage_at));
        if tight.is_empty() {
            return None;
        }
        let member = MemberId::new(&ctx.key.group_id, &ctx.key.user_id);
        for (window, _) in tight {
            let usage = match self.fair.ledger.window(&window).await {
                Ok(u) => u,
                Err(e) => {
                    // Fails open: a ledger outage must not stop the carpool.
                    tracing::warn!(error = %e, "fair share skipped");
                    return None;
                }
            };
            let now_ms = self.fair.clock.now_ms();
            let verdict = share::verdict(
                &window,
                &usage,
                &fairness.members,
                &member,
                settings.engage_at,
                now_ms,
            );
            if let share::Verdict::Over {
                used_micro_usd,
                share_micro_usd,
                retry_after,
            } = verdict
            {
                let message = refusal_message(
                    &account.name,
                    &window,
                    used_micro_usd,
                    share_micro_usd,
                    retry_after,
                );
                return Some(GatewayError::RateLimited {
                    message,
                    retry_after: Some(retry_after),
                    refusal: Some(RefusalReason::FairShare),
                });
            }
        }
        None
    }

    /// What to charge once this answer of `candidate` is settled: `None`
    /// when the answer reported no windows.
    pub(super) fn pending_charge(
        &self,
        ctx: &RequestContext,
        fairness: &GroupFairness,
        candidate: &Candidate,
        headers: &HeaderMap,
    ) -> Option<PendingCharge> {
        if !ctx.metered {
            return None;
        }
        let account_id = &candidate.account.account.id;
        let windows = self.fair.observe(account_id, headers)?;
        Some(PendingCharge {
            account_id: account_id.clone(),
            windows,
            member: MemberId::new(&ctx.key.group_id, &ctx.key.user_id),
            weight: fairness.weight(&ctx.key.user_id),
        })
    }

    /// Charges the settled use at list price to the windows the answer
    /// reported. Waits up to `wait` for the ledger, so the member's next
    /// request sees it; a slower ledger is written in the background.
    pub(super) async fn charge_windows(
        self: &Arc<Self>,
        pending: PendingCharge,
        model: &str,
        usage: &Usage,
        wait: Duration,
    ) {
        let micro_usd = self.pricing.cost_micro_usd(model, usage);
        if micro_usd <= 0 {
            return;
        }
        let inner = self.clone();
        let charged = self.streams.spawn(async move {
            for kind in WindowKind::ALL {
                let info = window_info(&pending.windows, kind);
                let Some(resets_at) = info.reset else {
                    continue;
                };
                let window = WindowId {
                    account_id: pending.account_id.clone(),
                    kind,
                    resets_at,
                };
                let charge = WindowCharge {
                    member: pending.member.clone(),
                    weight: pending.weight,
                    micro_usd,
                    utilization: info.utilization,
                };
                if let Err(e) = inner.fair.ledger.charge(&window, &charge).await {
                    tracing::warn!(error = %e, account_id = %window.account_id, "window use not recorded");
                }
            }
        });
        let _ = tokio::time::timeout(wait, charged).await;
    }

    /// The windows of the group's accounts as this instance last saw them,
    /// each split among the group's members.
    pub(super) async fn window_reports(
        &self,
        group_id: &str,
    ) -> Result<Vec<WindowReport>, GatewayError> {
        let table = self.route_table(group_id).await?;
        let now_ms = self.fair.clock.now_ms();
        let mut out = Vec::new();
        for candidate in &table.candidates {
            let account = &candidate.account.account;
            for (window, utilization) in self.fair.open_windows(&account.id, None) {
                let usage = self
                    .fair
                    .ledger
                    .window(&window)
                    .await
                    .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
                out.push(report(
                    account,
                    &window,
                    utilization,
                    &usage,
                    &table.fairness.members,
                    now_ms,
                ));
            }
        }
        Ok(out)
    }
}

fn report(
    account: &crate::account::Account,
    window: &WindowId,
    utilization: Option<f64>,
    usage: &WindowUse,
    group: &[(MemberId, u32)],
    now_ms: u64,
) -> WindowReport {
    let split = Split::at(window, usage, group, now_ms);
    let members = group
        .iter()
        .map(|(id, _)| {
            let used = usage.member(id).map_or(0, |m| m.used_micro_usd);
            let share = split
                .as_ref()
                .and_then(|s| s.member(id))
                .map(|m| m.share_micro_usd);
            MemberWindow {
                user_id: id.user_id.clone(),
                used_micro_usd: used,
                share_micro_usd: share,
                over: share.is_some_and(|s| used >= s),
            }
        })
        .collect();
    WindowReport {
        account_id: account.id.clone(),
        name: account.name.clone(),
        window: window.kind,
        utilization: usage.utilization().or(utilization),
        resets_at: epoch(window.resets_at),
        capacity_estimate_micro_usd: usage.capacity(),
        members,
    }
}

fn epoch(secs: u64) -> DateTime<Utc> {
    super::routing::at_s(secs).unwrap_or_default()
}

/// Whose window it is, where the member stands, when it resets, and that
/// the others keep their share.
fn refusal_message(
    account: &str,
    window: &WindowId,
    used: i64,
    share: i64,
    retry_after: Duration,
) -> String {
    let length = match window.kind {
        WindowKind::FiveHour => "5-hour",
        WindowKind::SevenDay => "7-day",
    };
    let resets = epoch(window.resets_at).format("%Y-%m-%d %H:%M UTC");
    let minutes = retry_after.as_secs().div_ceil(60);
    format!(
        "fair share: you have used ${} of your ${} share of the {length} window of \
         account `{account}`, which resets at {resets}; the other members still have \
         their share. You may go on in about {minutes} min, or sooner on another account.",
        Cents::from_micro_usd(used).to_decimal(),
        Cents::from_micro_usd(share).to_decimal(),
    )
}
