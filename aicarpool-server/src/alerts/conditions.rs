//! What fires now for a rule: each condition as events with a key that
//! names the occurrence and its window, so the same occurrence is never
//! told twice and the next one (a new month, a new cooling) is.

use aicarpool_core::account::Account;
use aicarpool_core::alert::{AlertKind, AlertOwner, AlertRule};
use aicarpool_core::enterprise::Budget;
use aicarpool_core::limit::{Calendar, Window};
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::store::StoreResult;
use aicarpool_core::usage::{UsageQuery, UsageScope};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::state::AppState;

/// One occurrence to tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Names the occurrence and its window; told once.
    pub key: String,
    /// One line for people (a mail's subject, a chat message).
    pub summary: String,
    pub detail: Value,
}

/// The events `rule` fires at `now`.
pub async fn firing(
    state: &AppState,
    rule: &AlertRule,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Event>> {
    match rule.kind {
        AlertKind::Budget => budgets(state, rule, now).await,
        AlertKind::Account => Ok(accounts(state, &rule.owner)
            .await?
            .iter()
            .filter_map(|a| account_event(state, a))
            .collect()),
        AlertKind::Window => Ok(accounts(state, &rule.owner)
            .await?
            .iter()
            .flat_map(|a| window_events(state, a, rule.threshold()))
            .collect()),
        AlertKind::KeyExpiry => key_expiry(state, rule, now).await,
    }
}

/// A scope with limits to watch, and what to call it.
struct Watched {
    scope: UsageScope,
    /// `group`, `member`, `department` or `enterprise`.
    what: &'static str,
    id: String,
    name: String,
    limits: KeyLimits,
}

/// A department's or an enterprise's budget as limits.
fn budget_limits(b: &Budget) -> KeyLimits {
    let mut l = KeyLimits::default();
    l.tokens.daily = b.daily_tokens.unwrap_or(0);
    l.cost_usd.monthly = b.monthly_usd.unwrap_or(0.0);
    l
}

async fn watched(state: &AppState, owner: &AlertOwner) -> StoreResult<Vec<Watched>> {
    let mut out = Vec::new();
    match owner {
        AlertOwner::Group(gid) => {
            let Some(group) = state.store.group(gid).await? else {
                return Ok(out);
            };
            let mut limits = group.limits.clone();
            let per_member = limits.per_member.take().map(|m| *m);
            if let Some(member_limits) = per_member.filter(|m| !m.is_unlimited()) {
                for (m, user) in state.store.members(gid).await? {
                    out.push(Watched {
                        scope: UsageScope::Member {
                            group_id: gid.clone(),
                            user_id: m.user_id.clone(),
                        },
                        what: "member",
                        id: m.user_id,
                        name: user.name,
                        limits: member_limits.clone(),
                    });
                }
            }
            out.push(Watched {
                scope: UsageScope::Group(gid.clone()),
                what: "group",
                id: gid.clone(),
                name: group.name,
                limits,
            });
        }
        AlertOwner::Enterprise(eid) => {
            let Some(ent) = state.store.enterprise(eid).await? else {
                return Ok(out);
            };
            for d in state.store.departments(eid).await? {
                out.push(Watched {
                    scope: UsageScope::Department(d.id.clone()),
                    what: "department",
                    id: d.id,
                    name: d.name,
                    limits: budget_limits(&d.budget),
                });
            }
            out.push(Watched {
                scope: UsageScope::Enterprise(eid.clone()),
                what: "enterprise",
                id: eid.clone(),
                name: ent.name,
                limits: budget_limits(&ent.budget),
            });
        }
    }
    Ok(out)
}

/// Every limit of a scope at or above `threshold` of what it allows.
async fn budgets(
    state: &AppState,
    rule: &AlertRule,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Event>> {
    let threshold = rule.threshold();
    let bounds = Calendar::new(state.config.timezone).bounds(now);
    let mut out = Vec::new();
    for w in watched(state, &rule.owner).await? {
        for window in Window::ALL {
            let (tokens, cost) = match window {
                Window::Daily => (w.limits.tokens.daily, w.limits.cost_usd.daily),
                Window::Weekly => (w.limits.tokens.weekly, w.limits.cost_usd.weekly),
                Window::Monthly => (w.limits.tokens.monthly, w.limits.cost_usd.monthly),
                Window::Total => (w.limits.tokens.total, w.limits.cost_usd.total),
            };
            if tokens == 0 && cost <= 0.0 {
                continue;
            }
            let start = bounds.start(window);
            let report = state
                .store
                .usage_report(&UsageQuery {
                    scope: w.scope.clone(),
                    from: Some(start),
                    to: None,
                    group_by: None,
                })
                .await?;
            let t = report.totals;
            // Counted as limits count them: cache reads are free of token limits.
            let used_tokens = t.input_tokens + t.output_tokens + t.cache_write_tokens;
            let used_usd = t.cost_usd();
            let checks = [
                ("tokens", tokens as f64, used_tokens as f64, tokens > 0),
                ("costUsd", cost, used_usd, cost > 0.0),
            ];
            for (measure, limit, used, set) in checks {
                if !set || used < threshold * limit {
                    continue;
                }
                let percent = (used / limit * 100.0).floor();
                let amount = |v: f64| {
                    if measure == "costUsd" {
                        format!("${v:.2}")
                    } else {
                        format!("{v:.0} tokens")
                    }
                };
                out.push(Event {
                    key: format!(
                        "budget:{}:{}:{measure}.{}:{}:{threshold}",
                        w.what,
                        w.id,
                        window.as_str(),
                        start.timestamp()
                    ),
                    summary: format!(
                        "{} {:?} used {percent}% of its {} {} limit ({} of {})",
                        w.what,
                        w.name,
                        window.as_str(),
                        if measure == "costUsd" { "cost" } else { "token" },
                        amount(used),
                        amount(limit),
                    ),
                    detail: json!({"scope": w.what, "id": w.id, "field": format!("{measure}.{}", window.as_str()),
                                   "limit": limit, "used": used, "threshold": threshold,
                                   "windowStart": start}),
                });
            }
        }
    }
    Ok(out)
}

/// The accounts an owner's rule watches: the group's own, or the
/// enterprise's pool.
async fn accounts(state: &AppState, owner: &AlertOwner) -> StoreResult<Vec<Account>> {
    match owner {
        AlertOwner::Group(g) => state.store.accounts_of_group(g).await,
        AlertOwner::Enterprise(e) => state.store.accounts_of_enterprise(e).await,
    }
}

/// Disabled, cooling or needing attention: one event per occurrence.
fn account_event(state: &AppState, a: &Account) -> Option<Event> {
    let health = state.gateway.account_health(&a.id);
    let (state_name, occurrence, why) = if !a.enabled {
        (
            "disabled",
            a.updated_at.timestamp().to_string(),
            "was disabled".to_owned(),
        )
    } else {
        match health.state {
            "cooling" => (
                "cooling",
                health
                    .cooling_until
                    .map(|t| t.timestamp().to_string())
                    .unwrap_or_default(),
                format!(
                    "is cooling until {}",
                    health
                        .cooling_until
                        .map(|t| t.format("%H:%M UTC").to_string())
                        .unwrap_or_default()
                ),
            ),
            // Credentials refused, or a token refresh refused.
            "needs_attention" => (
                "needs_attention",
                health
                    .last_error
                    .as_ref()
                    .and_then(|e| e.at)
                    .map(|t| t.timestamp().to_string())
                    .unwrap_or_default(),
                format!(
                    "needs attention: {}",
                    health
                        .last_error
                        .as_ref()
                        .map(|e| e.message.as_str())
                        .unwrap_or("its credentials were refused")
                ),
            ),
            _ => return None,
        }
    };
    Some(Event {
        key: format!("account:{}:{state_name}:{occurrence}", a.id),
        summary: format!("account {:?} {why}", a.name),
        detail: json!({"accountId": a.id, "state": state_name, "reason": health.reason,
                       "coolingUntil": health.cooling_until}),
    })
}

/// Each subscription window of `a` at or above `threshold`.
fn window_events(state: &AppState, a: &Account, threshold: f64) -> Vec<Event> {
    let Some(w) = state.gateway.account_health(&a.id).unified_window else {
        return Vec::new();
    };
    [("5h", &w.five_hour), ("7d", &w.seven_day)]
        .into_iter()
        .filter_map(|(name, v)| {
            let u = v.utilization.filter(|u| *u >= threshold)?;
            let resets = v.reset_at.map(|t| t.timestamp()).unwrap_or_default();
            Some(Event {
                key: format!("window:{}:{name}:{resets}:{threshold}", a.id),
                summary: format!(
                    "account {:?} has used {:.0}% of its {name} window",
                    a.name,
                    u * 100.0
                ),
                detail: json!({"accountId": a.id, "window": name, "utilization": u,
                               "resetsAt": v.reset_at}),
            })
        })
        .collect()
}

/// Keys expiring within `threshold` days.
async fn key_expiry(
    state: &AppState,
    rule: &AlertRule,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Event>> {
    let groups = match &rule.owner {
        AlertOwner::Group(g) => vec![g.clone()],
        AlertOwner::Enterprise(e) => state
            .store
            .groups_of_enterprise(e)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect(),
    };
    let horizon = now + chrono::Duration::seconds((rule.threshold() * 86_400.0) as i64);
    let mut out = Vec::new();
    for g in groups {
        for k in state.store.keys_of_group(&g, None).await? {
            let Some(at) = k.expires_at.filter(|t| *t > now && *t <= horizon) else {
                continue;
            };
            if !k.enabled {
                continue;
            }
            out.push(Event {
                key: format!("key-expiry:{}:{}", k.id, at.timestamp()),
                summary: format!(
                    "key {:?} expires {}",
                    k.name,
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
                detail: json!({"keyId": k.id, "groupId": g, "userId": k.user_id, "expiresAt": at}),
            });
        }
    }
    Ok(out)
}
