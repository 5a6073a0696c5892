//! Department and enterprise budgets on the request path.
//!
//! A request of an enterprise group is also admitted under the budget of
//! its department, of every department above it, and of its enterprise —
//! the same [`Limiter`](crate::limit::Limiter) scopes as key, member and
//! group limits, so every scope must allow the request. After admission
//! the spend of each budget is compared with [`THRESHOLDS`]; the first
//! request that sees a threshold crossed in a window records one
//! enterprise event (deduplicated per scope, window, period and level).

use std::sync::Arc;

use chrono::Utc;
use moka::sync::Cache;
use serde_json::json;

use super::Inner;
use crate::enterprise::{self, Budget, EnterpriseEvent};
use crate::id::new_id;
use crate::limit::{Scope, Window};
use crate::limits::{KeyLimits, WindowAmounts};
use crate::org::Group;
use crate::store::StoreResult;

/// Percent of a budget at which an event is recorded.
pub const THRESHOLDS: [u64; 2] = [80, 100];

/// One budget above a group.
#[derive(Debug, Clone)]
pub(super) struct OrgBudget {
    pub scope: Scope,
    pub limits: KeyLimits,
    enterprise_id: String,
    department_id: Option<String>,
    name: String,
    budget: Budget,
}

/// Which thresholds have been recorded already, so the store is asked
/// once per crossing, not on every request.
#[derive(Debug)]
pub(super) struct BudgetEvents {
    seen: Cache<String, ()>,
}

impl Default for BudgetEvents {
    fn default() -> Self {
        Self {
            seen: Cache::builder().max_capacity(100_000).build(),
        }
    }
}

/// A budget as limiter limits: monthly cost, daily tokens.
fn limits_of(b: &Budget) -> KeyLimits {
    KeyLimits {
        tokens: WindowAmounts {
            daily: b.daily_tokens.unwrap_or(0),
            ..WindowAmounts::default()
        },
        cost_usd: WindowAmounts {
            monthly: b.monthly_usd.unwrap_or(0.0),
            ..WindowAmounts::default()
        },
        ..KeyLimits::default()
    }
}

/// The budgets above `group` that set a ceiling: its department and every
/// department above it, then its enterprise.
pub(super) async fn org_budgets(inner: &Inner, group: &Group) -> StoreResult<Vec<OrgBudget>> {
    let Some(eid) = &group.enterprise_id else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some(did) = &group.department_id {
        let tree = inner.store.departments(eid).await?;
        for id in enterprise::ancestry(&tree, did) {
            if let Some(d) = tree.iter().find(|d| d.id == id) {
                out.push(OrgBudget {
                    scope: Scope::Department(d.id.clone()),
                    limits: limits_of(&d.budget),
                    enterprise_id: eid.clone(),
                    department_id: Some(d.id.clone()),
                    name: d.name.clone(),
                    budget: d.budget,
                });
            }
        }
    }
    if let Some(e) = inner.store.enterprise(eid).await? {
        out.push(OrgBudget {
            scope: Scope::Enterprise(e.id.clone()),
            limits: limits_of(&e.budget),
            enterprise_id: e.id,
            department_id: None,
            name: e.name,
            budget: e.budget,
        });
    }
    out.retain(|b| b.budget.is_set());
    Ok(out)
}

impl Inner {
    /// Records an event for each budget threshold newly crossed. Never
    /// fails the request: a problem is logged.
    pub(super) async fn watch_budgets(&self, budgets: &Arc<Vec<OrgBudget>>) {
        for b in budgets.iter() {
            let usage = match self.admission.limiter().usage(&b.scope).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "budget usage unavailable");
                    continue;
                }
            };
            let checks = [
                (
                    Window::Monthly,
                    "costUsd.monthly",
                    b.budget.monthly_usd.map(|usd| (usd * 1e6) as u64),
                    usage.settled(Window::Monthly).cost_micro_usd.max(0) as u64,
                ),
                (
                    Window::Daily,
                    "tokens.daily",
                    b.budget.daily_tokens,
                    usage.settled(Window::Daily).tokens,
                ),
            ];
            for (window, field, limit, used) in checks {
                let Some(limit) = limit.filter(|l| *l > 0) else {
                    continue;
                };
                let percent = used.saturating_mul(100) / limit;
                let Some(level) = THRESHOLDS.iter().rev().find(|t| percent >= **t) else {
                    continue;
                };
                self.record_threshold(b, window, field, *level, used, limit)
                    .await;
            }
        }
    }

    async fn record_threshold(
        &self,
        b: &OrgBudget,
        window: Window,
        field: &str,
        level: u64,
        used: u64,
        limit: u64,
    ) {
        let now = Utc::now();
        let period = match window {
            Window::Daily => now.format("%Y-%m-%d").to_string(),
            _ => now.format("%Y-%m").to_string(),
        };
        let target = match &b.scope {
            Scope::Department(id) => format!("department:{id}"),
            _ => format!("enterprise:{}", b.enterprise_id),
        };
        let dedupe_key = format!("budget:{target}:{field}:{period}:{level}");
        if self.budget_events.seen.get(&dedupe_key).is_some() {
            return;
        }
        let (used_json, limit_json) = if field.starts_with("cost") {
            (json!(used as f64 / 1e6), json!(limit as f64 / 1e6))
        } else {
            (json!(used), json!(limit))
        };
        let event = EnterpriseEvent {
            id: new_id(),
            enterprise_id: b.enterprise_id.clone(),
            department_id: b.department_id.clone(),
            at: now,
            kind: "budget.threshold".into(),
            dedupe_key: dedupe_key.clone(),
            detail: json!({
                "scope": b.scope.kind(),
                "name": b.name,
                "budget": field,
                "window": window.as_str(),
                "period": period,
                "thresholdPercent": level,
                "used": used_json,
                "limit": limit_json,
            }),
        };
        match self.store.record_event(&event).await {
            Ok(recorded) => {
                self.budget_events.seen.insert(dedupe_key, ());
                if recorded {
                    tracing::info!(enterprise_id = %b.enterprise_id, scope = b.scope.kind(), budget = field, level, "budget threshold crossed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not record a budget event"),
        }
    }
}
