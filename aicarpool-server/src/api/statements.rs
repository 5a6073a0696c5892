//! Monthly statements: each member's share of a group's fees and the
//! list-price cost they pass through (see [`aicarpool_core::fare`]).
//!
//! A month's statement is built from the store on every read until the
//! month is closed: once it has ended in the server's time zone the first
//! read stores it (as does [`spawn_closer`] within the hour), and an
//! owner may close it early. A stored statement is answered as stored,
//! whatever prices, fees or members become later.
//!
//! Owners and admins of the group (system admins, enterprise staff and
//! department admins through [`require_group_role`]) see every member's
//! line; a plain member sees their own line and the totals.

use std::collections::{BTreeMap, BTreeSet};

use aicarpool_core::account::AccountOwner;
use aicarpool_core::fare::{
    prorated_fee, statement, Cents, FeeAccount, Month, Statement, StatementInput,
};
use aicarpool_core::org::{Group, GroupRole};
use aicarpool_core::store::FareUseScope;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::audit::{self, Scope};
use super::caller::{require_group_role, role_at_least, Caller};
use super::usage::export::field;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct MonthQuery {
    /// `YYYY-MM`; the current month when absent.
    month: Option<String>,
}

/// `GET /api/groups/{id}/statements?month=YYYY-MM`.
#[utoipa::path(get, path = "/api/groups/{id}/statements", tag = "statements",
    params(("id" = String, Path), ("month" = Option<String>, Query, description = "YYYY-MM; the current month when absent")),
    responses(
        (status = 200, description = "{month, closed, accounts: [{accountId, name, feeUsd, groupPartUsd, usageUsd}], members: [{userId, name, usageUsd, requests, inputTokens, outputTokens, feeShareUsd, passThroughUsd, totalUsd}], totalsUsd: {usageUsd, feeShareUsd, passThroughUsd, unassignedUsd, totalUsd}}; a plain member gets only their own member line"),
        (status = 400, description = "malformed month, or a month not begun yet")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Json<Statement>> {
    let now = Utc::now();
    let month = match q.month.as_deref() {
        Some(m) => parse_month(&state, m, now)?,
        None => Month::at(now, &state.config.timezone),
    };
    Ok(Json(read(&state, &caller, &group_id, month, now).await?))
}

/// `GET /api/groups/{id}/statements/{month}.csv`: one row per member line
/// the caller may see, an `unassigned` row when some fee has nobody to
/// bear it, and a totals row.
#[utoipa::path(get, path = "/api/groups/{id}/statements/{month}.csv", tag = "statements",
    params(("id" = String, Path), ("month" = String, Path, description = "YYYY-MM")),
    responses(
        (status = 200, description = "text/csv: userId, name, usageUsd, requests, inputTokens, outputTokens, feeShareUsd, passThroughUsd, totalUsd"),
        (status = 400, description = "malformed month, or a month not begun yet")))]
pub async fn csv(
    State(state): State<AppState>,
    caller: Caller,
    Path((group_id, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    // The router cannot match a suffix inside a segment; the handler does.
    let month = file
        .strip_suffix(".csv")
        .ok_or_else(|| ApiError::not_found("statement"))?;
    let now = Utc::now();
    let month = parse_month(&state, month, now)?;
    let s = read(&state, &caller, &group_id, month, now).await?;
    let mut resp = to_csv(&s).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let filename = format!("attachment; filename=\"aicarpool-statement-{group_id}-{month}.csv\"");
    if let Ok(v) = HeaderValue::from_str(&filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `POST /api/groups/{id}/statements/{month}/close`: stores the month's
/// statement now (owners only). Closing a closed month answers it as stored.
#[utoipa::path(post, path = "/api/groups/{id}/statements/{month}/close", tag = "statements",
    params(("id" = String, Path), ("month" = String, Path, description = "YYYY-MM")),
    responses(
        (status = 200, description = "the closed statement"),
        (status = 400, description = "malformed month, or a month not begun yet")))]
pub async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path((group_id, month)): Path<(String, String)>,
) -> ApiResult<Json<Statement>> {
    let (group, _) = require_group_role(&state, &caller, &group_id, GroupRole::Owner).await?;
    let now = Utc::now();
    let month = parse_month(&state, &month, now)?;
    let stored = match state.store.closed_statement(&group.id, month).await? {
        Some(s) => s,
        None => {
            let s = store_closed(&state, &group, month, now).await?;
            audit::record(
                &state,
                Some(caller.id()),
                "statement.closed",
                ("group", &group.id),
                Scope::Group(&group.id),
                json!({"month": month, "totalUsd": s.totals_usd.total_usd}),
            )
            .await;
            s
        }
    };
    Ok(Json(stored))
}

/// A `YYYY-MM` that has begun in the server's time zone.
fn parse_month(state: &AppState, s: &str, now: DateTime<Utc>) -> ApiResult<Month> {
    let month = Month::parse(s).map_err(|e| ApiError::bad_request(format!("month: {e}")))?;
    if month > Month::at(now, &state.config.timezone) {
        return Err(ApiError::bad_request(
            "month has not begun; statements exist for this month and earlier ones",
        ));
    }
    Ok(month)
}

/// The month's statement as the caller may see it: the stored one, else
/// one built now, stored first when the month has ended.
async fn read(
    state: &AppState,
    caller: &Caller,
    group_id: &str,
    month: Month,
    now: DateTime<Utc>,
) -> ApiResult<Statement> {
    let (group, role) = require_group_role(state, caller, group_id, GroupRole::Member).await?;
    let s = match state.store.closed_statement(&group.id, month).await? {
        Some(s) => s,
        None if month < Month::at(now, &state.config.timezone) => {
            store_closed(state, &group, month, now).await?
        }
        None => build(state, &group, month).await?,
    };
    Ok(match role_at_least(role, GroupRole::Admin) {
        true => s,
        false => s.for_member(caller.id()),
    })
}

/// Builds the statement closed and stores it unless another instance did
/// first; answers the one stored.
pub async fn store_closed(
    state: &AppState,
    group: &Group,
    month: Month,
    now: DateTime<Utc>,
) -> ApiResult<Statement> {
    let mut s = build(state, group, month).await?;
    s.closed = true;
    Ok(state.store.close_statement(&group.id, &s, now).await?)
}

/// Closes every group's statement of the month before `now`'s that is not
/// stored yet; returns how many it stored. Run by the operations loop, so
/// a month's statement is frozen soon after it ends even if nobody reads it.
pub async fn close_ended_months(state: &AppState, now: DateTime<Utc>) -> ApiResult<usize> {
    let last = previous(Month::at(now, &state.config.timezone));
    let mut closed = 0;
    for group in state.store.groups().await? {
        if state
            .store
            .closed_statement(&group.id, last)
            .await?
            .is_none()
        {
            store_closed(state, &group, last, now).await?;
            closed += 1;
        }
    }
    Ok(closed)
}

/// How often the closer looks for ended months.
const CLOSER_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs [`close_ended_months`] every hour, first an hour after start (a
/// read closes a month as well, so nothing waits on it), until aborted.
pub fn spawn_closer(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + CLOSER_EVERY;
        let mut tick = tokio::time::interval_at(first, CLOSER_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match close_ended_months(&state, Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(groups = n, "statements of the month just ended stored"),
                Err(e) => {
                    tracing::warn!(error = %e.message, "closing ended months failed; retrying in an hour")
                }
            }
        }
    })
}

fn previous(m: Month) -> Month {
    let first = m.first_day();
    first.pred_opt().map(Month::of).unwrap_or(m)
}

/// Reads what the month's statement is built from and builds it (open).
async fn build(state: &AppState, group: &Group, month: Month) -> ApiResult<Statement> {
    let store = &state.store;
    let (from, to) = month.bounds_in(&state.config.timezone);
    let usage = store
        .fare_use(&FareUseScope::Group(group.id.clone()), from, to)
        .await?;

    // The accounts that may bill the group: those it used, and its own
    // (owned, or dedicated to it in its binding) even if unused.
    let mut candidates: BTreeSet<String> =
        usage.iter().filter_map(|u| u.account_id.clone()).collect();
    for a in store.accounts_of_group(&group.id).await? {
        candidates.insert(a.id);
    }
    if let Some(b) = store.binding(&group.id).await? {
        candidates.extend(
            b.accounts
                .into_iter()
                .filter(|e| e.dedicated)
                .map(|e| e.account_id),
        );
    }

    let mut fee_accounts = Vec::new();
    let mut account_names = BTreeMap::new();
    for id in candidates {
        let account = store.account(&id).await?;
        // A deleted account is named by its id.
        let name = account
            .as_ref()
            .map_or_else(|| id.clone(), |a| a.name.clone());
        let fees = store.fee_history(&id).await?;
        if prorated_fee(&fees, month).is_none() {
            account_names.insert(id, name);
            continue;
        }
        let bound = store.bindings_of_account(&id).await?;
        let owner = account.as_ref().and_then(|a| match &a.owner {
            AccountOwner::Group(g) => Some(g.clone()),
            AccountOwner::Enterprise(_) => None,
        });
        let dedicated_to = bound
            .iter()
            .find(|(_, dedicated)| *dedicated)
            .map(|(g, _)| g.clone())
            .or_else(|| {
                // Owned by a group and bound by no other: wholly its own.
                owner.clone().filter(|o| bound.iter().all(|(g, _)| g == o))
            });
        fee_accounts.push(FeeAccount {
            account_id: id,
            name,
            fees,
            home_group: dedicated_to.clone().or(owner),
            dedicated_to,
            use_by_group: BTreeMap::new(),
        });
    }
    let ids: Vec<String> = fee_accounts.iter().map(|a| a.account_id.clone()).collect();
    for row in store
        .fare_use(&FareUseScope::Accounts(ids), from, to)
        .await?
    {
        let Some(fa) = fee_accounts
            .iter_mut()
            .find(|fa| Some(&fa.account_id) == row.account_id.as_ref())
        else {
            continue;
        };
        *fa.use_by_group.entry(row.group_id).or_default() += row.cost_micro_usd;
    }

    let mut members: BTreeMap<String, String> = store
        .members(&group.id)
        .await?
        .into_iter()
        .map(|(_, u)| (u.id, u.name))
        .collect();
    // Who used the group this month and has left keeps a named line.
    let former: BTreeSet<&String> = usage
        .iter()
        .map(|u| &u.user_id)
        .filter(|id| !members.contains_key(*id))
        .collect();
    for id in former {
        if let Some(u) = store.user(id).await? {
            members.insert(u.id, u.name);
        }
    }

    Ok(statement(&StatementInput {
        month,
        group_id: group.id.clone(),
        split: group.fare_split,
        fee_accounts,
        account_names,
        usage,
        members,
    }))
}

/// The statement as CSV: a header, one row per member line, an
/// `unassigned` row when a fee has nobody to bear it, and a totals row
/// summing the money columns above it.
fn to_csv(s: &Statement) -> String {
    let mut out = String::from(
        "userId,name,usageUsd,requests,inputTokens,outputTokens,feeShareUsd,passThroughUsd,totalUsd\n",
    );
    let mut row = |cells: [String; 9]| {
        out.push_str(&cells.join(","));
        out.push('\n');
    };
    let usd = |c: Cents| c.to_decimal();
    for m in &s.members {
        row([
            field(&m.user_id),
            field(&m.name),
            usd(m.usage_usd),
            m.requests.to_string(),
            m.input_tokens.to_string(),
            m.output_tokens.to_string(),
            usd(m.fee_share_usd),
            usd(m.pass_through_usd),
            usd(m.total_usd),
        ]);
    }
    let t = &s.totals_usd;
    if t.unassigned_usd != Cents(0) {
        row([
            String::new(),
            "unassigned".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            usd(t.unassigned_usd),
            usd(Cents(0)),
            usd(t.unassigned_usd),
        ]);
    }
    row([
        String::new(),
        "total".into(),
        usd(t.usage_usd),
        String::new(),
        String::new(),
        String::new(),
        usd(t.fee_share_usd + t.unassigned_usd),
        usd(t.pass_through_usd),
        usd(t.total_usd),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicarpool_core::fare::{MemberLine, Totals};

    #[test]
    fn csv_has_a_header_a_row_per_member_and_totals() {
        let s = Statement {
            month: Month::parse("2026-06").unwrap_or_else(|_| unreachable!()),
            closed: true,
            accounts: Vec::new(),
            members: vec![MemberLine {
                user_id: "u1".into(),
                name: "Doe, Jane".into(),
                usage_usd: Cents(1234),
                requests: 3,
                input_tokens: 10,
                output_tokens: 5,
                fee_share_usd: Cents(5000),
                pass_through_usd: Cents(7),
                total_usd: Cents(5007),
            }],
            totals_usd: Totals {
                usage_usd: Cents(1234),
                fee_share_usd: Cents(5000),
                pass_through_usd: Cents(7),
                unassigned_usd: Cents(100),
                total_usd: Cents(5107),
            },
        };
        let csv = to_csv(&s);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "u1,\"Doe, Jane\",12.34,3,10,5,50.00,0.07,50.07");
        assert_eq!(lines[2], ",unassigned,,,,,1.00,0.00,1.00");
        assert_eq!(lines[3], ",total,12.34,,,,51.00,0.07,51.07");
        assert_eq!(
            previous(Month::parse("2026-01").unwrap_or_else(|_| unreachable!())).to_string(),
            "2025-12"
        );
    }
}
