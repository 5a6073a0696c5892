//! Usage reports: `GET /api/usage` and `GET /api/usage/export.csv`.

use aicarpool_core::id::is_valid_id;
use aicarpool_core::org::GroupRole;
use aicarpool_core::usage::{UsageGroupBy, UsageQuery, UsageScope};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use serde::Deserialize;

use super::caller::{authorize, require_group_role, role_at_least, Action, Caller, Resource};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub mod export;

pub use export::{export_csv, ReportView};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageParams {
    scope: Option<String>,
    id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

/// `scope` defaults to the caller's own usage. `from` is inclusive, `to`
/// exclusive; a bare date `to=YYYY-MM-DD` includes that whole day.
#[utoipa::path(get, path = "/api/usage", tag = "usage",
    responses((status = 200, description = "{rows, totals}")))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> ApiResult<Json<ReportView>> {
    let query = usage_query(&state, &caller, params).await?;
    Ok(Json(export::report_view(&state, &query).await?))
}

/// The query asked for, if the caller may see its scope.
async fn usage_query(
    state: &AppState,
    caller: &Caller,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> ApiResult<UsageQuery> {
    let Query(p) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let scope = scope(state, caller, p.scope.as_deref(), p.id).await?;
    let (from, to) = time_range(p.from.as_deref(), p.to.as_deref(), state.config.timezone)?;
    Ok(UsageQuery {
        scope,
        from,
        to,
        group_by: p.group_by.as_deref().map(group_by).transpose()?,
    })
}

/// The scope asked for, if the caller may see it (reports and the
/// request log alike).
pub(super) async fn scope(
    state: &AppState,
    caller: &Caller,
    scope: Option<&str>,
    id: Option<String>,
) -> ApiResult<UsageScope> {
    let kind = scope.unwrap_or("user");
    let id = match (id, kind) {
        (Some(id), _) if !id.is_empty() => id,
        (_, "user") => caller.id().to_owned(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "id is required for scope={kind}"
            )))
        }
    };
    let not_found = |what: &str| ApiError::not_found(what);
    if !is_valid_id(&id) {
        return Err(not_found(kind));
    }
    match kind {
        "user" => {
            if id != caller.id() && !caller.is_admin() {
                return Err(ApiError::forbidden("you may only see your own usage"));
            }
            Ok(UsageScope::User(id))
        }
        "group" => {
            require_group_role(state, caller, &id, GroupRole::Admin).await?;
            Ok(UsageScope::Group(id))
        }
        "key" => {
            let key = state
                .store
                .key(&id)
                .await?
                .ok_or_else(|| not_found("key"))?;
            if !caller.is_admin() && key.user_id != caller.id() {
                match state.store.membership(&key.group_id, caller.id()).await? {
                    Some(m) if role_at_least(m.role, GroupRole::Admin) => {}
                    _ => return Err(not_found("key")),
                }
            }
            Ok(UsageScope::Key(id))
        }
        "account" => {
            // Group accounts: the group's admins; pool accounts: the
            // enterprise's owners and admins.
            authorize(state, caller, Action::Manage, Resource::Account(&id)).await?;
            Ok(UsageScope::Account(id))
        }
        // Department and enterprise usage: for whoever manages them.
        "department" => {
            authorize(state, caller, Action::Manage, Resource::Department(&id)).await?;
            Ok(UsageScope::Department(id))
        }
        "enterprise" => {
            authorize(state, caller, Action::Manage, Resource::Enterprise(&id)).await?;
            Ok(UsageScope::Enterprise(id))
        }
        other => Err(ApiError::bad_request(format!(
            "scope must be one of key, user, group, department, enterprise, account (got `{other}`)"
        ))),
    }
}

/// A query's `from` (inclusive) and `to` (exclusive), each optional.
type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The `from` and `to` query values as instants (see [`time`]).
pub(super) fn time_range(
    from: Option<&str>,
    to: Option<&str>,
    tz: chrono_tz::Tz,
) -> ApiResult<TimeRange> {
    Ok((
        from.map(|v| time("from", v, false, tz)).transpose()?,
        to.map(|v| time("to", v, true, tz)).transpose()?,
    ))
}

/// RFC 3339, or a date: midnight in the server's time zone
/// (`AICARPOOL_TIMEZONE`, the zone of daily limits); for an end bound, the
/// next midnight.
fn time(field: &str, v: &str, end: bool, tz: chrono_tz::Tz) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        ApiError::bad_request(format!(
            "{field} must be an RFC 3339 time or a date YYYY-MM-DD"
        ))
    };
    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad())?;
    let date = if end {
        date.checked_add_days(Days::new(1)).ok_or_else(bad)?
    } else {
        date
    };
    let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    // A zone that skips midnight starts that day an hour later.
    [midnight, midnight + chrono::Duration::hours(1)]
        .iter()
        .find_map(|local| tz.from_local_datetime(local).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(bad)
}

fn group_by(v: &str) -> ApiResult<UsageGroupBy> {
    Ok(match v {
        "day" => UsageGroupBy::Day,
        "hour" => UsageGroupBy::Hour,
        "model" => UsageGroupBy::Model,
        "user" => UsageGroupBy::User,
        "key" => UsageGroupBy::Key,
        "account" => UsageGroupBy::Account,
        _ => {
            return Err(ApiError::bad_request(
                "groupBy must be one of day, hour, model, user, key, account",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates() {
        let utc = chrono_tz::Tz::UTC;
        let t = time("from", "2026-01-02", false, utc).ok();
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-01-02T00:00:00+00:00".into())
        );
        let t = time("to", "2026-01-02", true, utc).ok();
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-01-03T00:00:00+00:00".into())
        );
        assert!(time("from", "2026-01-02T03:04:05Z", false, utc).is_ok());
        let e = time("from", "yesterday", false, utc)
            .err()
            .map(|e| e.message);
        assert!(e.is_some_and(|m| m.starts_with("from ")));
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap_or(utc);
        let t = time("from", "2026-07-01", false, berlin).ok();
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-06-30T22:00:00+00:00".into())
        );
    }
}
