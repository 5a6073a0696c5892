//! Upstream accounts of carpool groups. Credentials go in sealed and never
//! come back out.

use std::collections::BTreeMap;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform, Preset};
use aicarpool_core::id::new_id;
use aicarpool_core::org::GroupRole;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::caller::{require_group_role, valid_id, Caller};
use super::input::{self, double_option, ValidJson};
use super::views::AccountView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DEFAULT_PRIORITY: i32 = 50;
const MAX_PRIORITY: i32 = 10_000;
const MAX_WEIGHT: u32 = 1_000;
const MAX_MODELS: usize = 200;
const PROXY_SCHEMES: [&str; 4] = ["http", "https", "socks5", "socks5h"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccount {
    name: String,
    platform: Platform,
    preset: Option<Preset>,
    base_url: Option<String>,
    credentials: Option<Credentials>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    model_map: BTreeMap<String, String>,
    priority: Option<i32>,
    weight: Option<u32>,
    max_concurrency: Option<u32>,
    proxy: Option<String>,
    enabled: Option<bool>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
    ValidJson(body): ValidJson<CreateAccount>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let (group, _) = require_group_role(&state, &caller, &group_id, GroupRole::Admin).await?;
    let now = Utc::now();
    let mut account = Account {
        id: new_id(),
        name: body.name,
        platform: body.platform,
        preset: body.preset,
        base_url: body.base_url,
        owner: AccountOwner::Group(group.id.clone()),
        models: body.models,
        model_map: body.model_map,
        priority: body.priority.unwrap_or(DEFAULT_PRIORITY),
        weight: body.weight.unwrap_or(1),
        max_concurrency: body.max_concurrency,
        proxy: body.proxy,
        enabled: body.enabled.unwrap_or(true),
        credentials: Default::default(),
        created_at: now,
        updated_at: now,
    };
    check(&mut account)?;
    let creds = credentials(body.credentials)?;
    account.credentials = seal(&state, &account.id, &creds)?;
    state.store.create_account(&account).await?;
    // A group without an explicit binding is served by its own accounts.
    state.gateway.invalidate_group(&group.id);
    state.gateway.invalidate_routes();
    tracing::info!(account_id = %account.id, group_id = %group.id, platform = account.platform.as_str(), "account created");
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Vec<AccountView>>> {
    let (group, _) = require_group_role(&state, &caller, &group_id, GroupRole::Admin).await?;
    let accounts = state.store.accounts_of_group(&group.id).await?;
    Ok(Json(accounts.iter().map(AccountView::from).collect()))
}

/// An account the caller manages: owner/admin of its group (404 for
/// outsiders, 403 for plain members), or a system admin.
pub async fn managed_account(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Account> {
    let not_found = || ApiError::not_found("account");
    valid_id(id, "account")?;
    let account = state.store.account(id).await?.ok_or_else(not_found)?;
    match &account.owner {
        AccountOwner::Group(g) => {
            require_group_role(state, caller, g, GroupRole::Admin)
                .await
                .map_err(|e| {
                    if e.status == StatusCode::NOT_FOUND {
                        not_found()
                    } else {
                        e
                    }
                })?;
        }
        AccountOwner::Enterprise(_) if caller.is_admin() => {}
        AccountOwner::Enterprise(_) => return Err(not_found()),
    }
    Ok(account)
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    let account = managed_account(&state, &caller, &id).await?;
    Ok(Json(AccountView::from(&account)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchAccount {
    name: Option<String>,
    platform: Option<Platform>,
    #[serde(default, deserialize_with = "double_option")]
    preset: Option<Option<Preset>>,
    #[serde(default, deserialize_with = "double_option")]
    base_url: Option<Option<String>>,
    credentials: Option<Credentials>,
    models: Option<Vec<String>>,
    model_map: Option<BTreeMap<String, String>>,
    priority: Option<i32>,
    weight: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    max_concurrency: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    proxy: Option<Option<String>>,
    enabled: Option<bool>,
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PatchAccount>,
) -> ApiResult<Json<AccountView>> {
    let mut account = managed_account(&state, &caller, &id).await?;
    if body.platform.is_some_and(|p| p != account.platform) {
        return Err(ApiError::bad_request(
            "platform cannot be changed; create a new account instead",
        ));
    }
    let creds = body.credentials.map(|c| credentials(Some(c))).transpose()?;
    if let Some(v) = body.name {
        account.name = v;
    }
    if let Some(v) = body.preset {
        account.preset = v;
    }
    if let Some(v) = body.base_url {
        account.base_url = v;
    }
    if let Some(v) = body.models {
        account.models = v;
    }
    if let Some(v) = body.model_map {
        account.model_map = v;
    }
    if let Some(v) = body.priority {
        account.priority = v;
    }
    if let Some(v) = body.weight {
        account.weight = v;
    }
    if let Some(v) = body.max_concurrency {
        account.max_concurrency = v;
    }
    if let Some(v) = body.proxy {
        account.proxy = v;
    }
    if let Some(v) = body.enabled {
        account.enabled = v;
    }
    check(&mut account)?;
    if let Some(c) = creds {
        account.credentials = seal(&state, &account.id, &c)?;
    }
    account.updated_at = Utc::now();
    state.store.update_account(&account).await?;
    state.gateway.invalidate_routes();
    tracing::info!(account_id = %account.id, "account updated");
    Ok(Json(AccountView::from(&account)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let account = managed_account(&state, &caller, &id).await?;
    state.store.delete_account(&account.id).await?;
    state.gateway.invalidate_routes();
    tracing::info!(account_id = %account.id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A minimal real upstream call with the account's credentials.
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = managed_account(&state, &caller, &id).await?;
    let report = state.gateway.test_account(&account).await;
    tracing::info!(account_id = %account.id, ok = report.ok, "account tested");
    Ok(Json(json!(report)))
}

pub async fn health(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = managed_account(&state, &caller, &id).await?;
    Ok(Json(health_view(&account)))
}

/// The account's routing health. Until the router keeps health state this
/// reflects only whether the account is enabled.
fn health_view(account: &Account) -> Value {
    json!({
        "state": if account.enabled { "healthy" } else { "disabled" },
        "coolingUntil": null,
        "lastError": null,
        "inFlight": 0,
    })
}

/// The credentials this build uses: an API key.
fn credentials(c: Option<Credentials>) -> ApiResult<Credentials> {
    let key = c
        .and_then(|c| c.api_key)
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("credentials.apiKey is required"))?;
    if key.len() > 4096 || key.chars().any(char::is_control) {
        return Err(ApiError::bad_request("credentials.apiKey is malformed"));
    }
    Ok(Credentials {
        api_key: Some(key),
        ..Default::default()
    })
}

fn seal(
    state: &AppState,
    account_id: &str,
    creds: &Credentials,
) -> ApiResult<aicarpool_core::secret::Sealed> {
    state.sealer.seal(account_id, creds).map_err(|e| {
        tracing::error!(error = %e, "sealing credentials failed");
        ApiError::internal("could not seal the credentials")
    })
}

/// Validates an account as it would be stored, normalizing names and URLs.
fn check(a: &mut Account) -> ApiResult<()> {
    if !a.platform.is_supported() {
        return Err(ApiError::bad_request(format!(
            "platform `{}` is not available yet; this build serves claude_api and anthropic_compatible",
            a.platform.as_str()
        )));
    }
    a.name = input::name("name", &a.name)?;
    match (a.platform, a.preset) {
        (Platform::AnthropicCompatible, None) => {
            return Err(ApiError::bad_request(
                "preset is required for anthropic_compatible (kimi, qwen, glm, deepseek or custom)",
            ))
        }
        (Platform::AnthropicCompatible, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "preset applies only to the anthropic_compatible platform",
            ))
        }
    }
    a.base_url = a
        .base_url
        .as_deref()
        .map(|u| input::http_url("baseUrl", u))
        .transpose()?;
    if a.preset == Some(Preset::Custom) && a.base_url.is_none() {
        return Err(ApiError::bad_request(
            "baseUrl is required with preset custom",
        ));
    }
    a.models = input::string_list("models", &a.models, MAX_MODELS)?;
    if a.model_map.len() > MAX_MODELS {
        return Err(ApiError::bad_request(format!(
            "modelMap may hold at most {MAX_MODELS} entries"
        )));
    }
    for (from, to) in &a.model_map {
        let ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 200;
        if !ok(from) || !ok(to) {
            return Err(ApiError::bad_request(format!(
                "modelMap[{from:?}]: model names must be 1 to 200 characters"
            )));
        }
    }
    if !(0..=MAX_PRIORITY).contains(&a.priority) {
        return Err(ApiError::bad_request(format!(
            "priority must be between 0 and {MAX_PRIORITY}"
        )));
    }
    if a.weight == 0 || a.weight > MAX_WEIGHT {
        return Err(ApiError::bad_request(format!(
            "weight must be between 1 and {MAX_WEIGHT}"
        )));
    }
    if a.max_concurrency == Some(0) {
        return Err(ApiError::bad_request(
            "maxConcurrency must be at least 1 (omit it for no cap)",
        ));
    }
    a.proxy = a
        .proxy
        .as_deref()
        .map(|p| input::url_with_schemes("proxy", p, &PROXY_SCHEMES))
        .transpose()?;
    Ok(())
}
