//! Alert rules of a group or an enterprise:
//! `POST|GET /api/groups/{id}/alerts`, `DELETE /api/groups/{id}/alerts/{alertId}`,
//! and the same under `/api/enterprises/{id}`.
//!
//! Group owners and admins manage a group's rules, enterprise owners and
//! admins an enterprise's. A webhook's signing secret is shown once, when
//! the rule is made, and kept sealed.

use aicarpool_core::alert::{AlertKind, AlertOwner, AlertRule, AlertTarget};
use aicarpool_core::id::new_id;
use aicarpool_core::org::GroupRole;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Scope};
use super::caller::{authorize, random_token, require_group_role, Action, Caller, Resource};
use super::input::ValidJson;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most rules one group or enterprise may have.
const MAX_RULES: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAlert {
    kind: String,
    target: String,
    threshold: Option<f64>,
}

/// A rule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub id: String,
    /// `budget`, `account`, `window` or `key-expiry`.
    pub kind: &'static str,
    pub target: String,
    /// The threshold in force (a fraction, or days for `key-expiry`).
    pub threshold: Option<f64>,
    pub created_at: DateTime<Utc>,
    /// The webhook signing secret: only in the answer that made the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&AlertRule> for AlertView {
    fn from(r: &AlertRule) -> Self {
        AlertView {
            id: r.id.clone(),
            kind: r.kind.as_str(),
            target: r.target.as_string(),
            threshold: r.kind.threshold_bounds().map(|_| r.threshold()),
            created_at: r.created_at,
            secret: None,
        }
    }
}

/// Who owns the rules at this path, once the caller may manage them.
async fn owner(state: &AppState, caller: &Caller, owner: AlertOwner) -> ApiResult<AlertOwner> {
    match &owner {
        AlertOwner::Group(id) => {
            require_group_role(state, caller, id, GroupRole::Admin).await?;
        }
        AlertOwner::Enterprise(id) => {
            authorize(state, caller, Action::Manage, Resource::Enterprise(id)).await?;
        }
    }
    Ok(owner)
}

fn audit_scope(owner: &AlertOwner) -> Scope<'_> {
    match owner {
        AlertOwner::Group(id) => Scope::Group(id),
        AlertOwner::Enterprise(id) => Scope::Enterprise(id),
    }
}

async fn create(
    state: AppState,
    caller: Caller,
    owner: AlertOwner,
    body: CreateAlert,
) -> ApiResult<(StatusCode, Json<AlertView>)> {
    let owner = self::owner(&state, &caller, owner).await?;
    let kind = AlertKind::parse(&body.kind).ok_or_else(|| {
        ApiError::bad_request("kind must be one of budget, account, window, key-expiry")
    })?;
    let target = AlertTarget::parse(&body.target).ok_or_else(|| {
        ApiError::bad_request("target must be an https:// webhook URL or mailto:address")
    })?;
    match &target {
        AlertTarget::Webhook(url) => state
            .config
            .upstream_allow
            .check_url(url)
            .map_err(|e| ApiError::bad_request(format!("target is not allowed: {e}")))?,
        AlertTarget::Email(_) if state.mailer.is_none() => {
            return Err(ApiError::bad_request(
                "mailto targets need SMTP (AICARPOOL_SMTP_URL)",
            ))
        }
        AlertTarget::Email(_) => {}
    }
    let threshold = match (kind.threshold_bounds(), body.threshold) {
        (_, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "threshold does not apply to kind account",
            ))
        }
        (Some((_, range)), Some(t)) if range.contains(&t) => Some(t),
        (Some((_, range)), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "threshold for {} must be between {} and {}",
                kind.as_str(),
                range.start(),
                range.end()
            )))
        }
    };
    if state.store.alerts_of(&owner).await?.len() >= MAX_RULES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_RULES} alert rules per group or enterprise"
        )));
    }
    let id = new_id();
    let secret = format!("whsec_{}", random_token());
    let sealed = state
        .sealer
        .seal_bytes(&AlertRule::secret_aad(&id), secret.as_bytes())
        .map_err(|_| ApiError::internal("sealing the alert secret failed"))?;
    let rule = AlertRule {
        id,
        owner,
        kind,
        target,
        threshold,
        secret: sealed,
        created_by: caller.id().to_owned(),
        created_at: Utc::now(),
    };
    state.store.create_alert(&rule).await?;
    audit::record(
        &state,
        Some(caller.id()),
        "alert.created",
        ("alert", &rule.id),
        audit_scope(&rule.owner),
        json!({"kind": kind.as_str(), "target": rule.target.as_string()}),
    )
    .await;
    let mut view = AlertView::from(&rule);
    view.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list(
    state: AppState,
    caller: Caller,
    owner: AlertOwner,
) -> ApiResult<Json<Vec<AlertView>>> {
    let owner = self::owner(&state, &caller, owner).await?;
    let rules = state.store.alerts_of(&owner).await?;
    Ok(Json(rules.iter().map(AlertView::from).collect()))
}

async fn delete(
    state: AppState,
    caller: Caller,
    owner: AlertOwner,
    alert_id: String,
) -> ApiResult<StatusCode> {
    let owner = self::owner(&state, &caller, owner).await?;
    match state.store.alert(&alert_id).await? {
        Some(rule) if rule.owner == owner => {}
        _ => return Err(ApiError::not_found("alert")),
    }
    state.store.delete_alert(&alert_id).await?;
    audit::record(
        &state,
        Some(caller.id()),
        "alert.deleted",
        ("alert", &alert_id),
        audit_scope(&owner),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `kind`: budget, account, window or key-expiry; `target`: `https://…`
/// or `mailto:…`; `threshold`: a fraction (budget, window) or days
/// (key-expiry). The answer carries the webhook secret, once.
#[utoipa::path(post, path = "/api/groups/{id}/alerts", tag = "alerts",
    params(("id" = String, Path)), responses((status = 201, body = AlertView)))]
pub async fn create_for_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<CreateAlert>,
) -> ApiResult<(StatusCode, Json<AlertView>)> {
    create(state, caller, AlertOwner::Group(id), body).await
}

#[utoipa::path(get, path = "/api/groups/{id}/alerts", tag = "alerts",
    params(("id" = String, Path)), responses((status = 200, body = [AlertView])))]
pub async fn list_for_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AlertView>>> {
    list(state, caller, AlertOwner::Group(id)).await
}

#[utoipa::path(delete, path = "/api/groups/{id}/alerts/{alertId}", tag = "alerts",
    params(("id" = String, Path), ("alertId" = String, Path)),
    responses((status = 204, description = "deleted")))]
pub async fn delete_for_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, alert_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    delete(state, caller, AlertOwner::Group(id), alert_id).await
}

#[utoipa::path(post, path = "/api/enterprises/{id}/alerts", tag = "alerts",
    params(("id" = String, Path)), responses((status = 201, body = AlertView)))]
pub async fn create_for_enterprise(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<CreateAlert>,
) -> ApiResult<(StatusCode, Json<AlertView>)> {
    create(state, caller, AlertOwner::Enterprise(id), body).await
}

#[utoipa::path(get, path = "/api/enterprises/{id}/alerts", tag = "alerts",
    params(("id" = String, Path)), responses((status = 200, body = [AlertView])))]
pub async fn list_for_enterprise(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AlertView>>> {
    list(state, caller, AlertOwner::Enterprise(id)).await
}

#[utoipa::path(delete, path = "/api/enterprises/{id}/alerts/{alertId}", tag = "alerts",
    params(("id" = String, Path), ("alertId" = String, Path)),
    responses((status = 204, description = "deleted")))]
pub async fn delete_for_enterprise(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, alert_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    delete(state, caller, AlertOwner::Enterprise(id), alert_id).await
}
