//! Upstream accounts of carpool groups. Credentials go in sealed and never
//! come back out.

use std::collections::BTreeMap;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform, Preset};
use aicarpool_core::fare::{current_fee, Fee, FeeChange};
use aicarpool_core::id::new_id;
use aicarpool_core::org::GroupRole;
use aicarpool_core::provider::proxy;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{self, Scope};
use super::caller::{authorize, require_group_role, Action, Caller, Resource, Target};
use super::input::{self, double_option, ValidJson};
use super::views::AccountView;
use destination::Destination;

mod destination;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DEFAULT_PRIORITY: i32 = 50;
const MAX_PRIORITY: i32 = 10_000;
const MAX_WEIGHT: u32 = 1_000;
const MAX_MODELS: usize = 200;

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

#[utoipa::path(post, path = "/api/groups/{id}/accounts", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 201, description = "the account, without any secret")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
    ValidJson(body): ValidJson<CreateAccount>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let (group, _) = require_group_role(&state, &caller, &group_id, GroupRole::Admin).await?;
    let account = create_owned(&state, &caller, AccountOwner::Group(group.id), body).await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// Validates, seals and stores a new account of `owner` (a group, or an
/// enterprise pool); the caller's right to do so is already checked.
pub async fn create_owned(
    state: &AppState,
    caller: &Caller,
    owner: AccountOwner,
    body: CreateAccount,
) -> ApiResult<Account> {
    let now = Utc::now();
    let mut account = Account {
        id: new_id(),
        name: body.name,
        platform: body.platform,
        preset: body.preset,
        base_url: body.base_url,
        owner,
        models: body.models,
        model_map: body.model_map,
        serves: Vec::new(),
        priority: body.priority.unwrap_or(DEFAULT_PRIORITY),
        weight: body.weight.unwrap_or(1),
        max_concurrency: body.max_concurrency,
        proxy: body.proxy,
        enabled: body.enabled.unwrap_or(true),
        credentials: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let proxy_password = check(state, &mut account)?;
    let mut creds = credentials(account.platform, body.credentials)?;
    creds.proxy_password = proxy_password;
    account.credentials = seal(state, &account.id, &creds)?;
    state.store.create_account(&account).await?;
    // A group without an explicit binding is served by its own accounts.
    if let AccountOwner::Group(g) = &account.owner {
        state.gateway.invalidate_group(g);
    }
    state.gateway.invalidate_routes();
    audit::record(
        state,
        Some(caller.id()),
        "account.created",
        ("account", &account.id),
        Scope::Account(&account),
        json!({"name": account.name, "platform": account.platform.as_str()}),
    )
    .await;
    tracing::info!(account_id = %account.id, owner = ?account.owner, platform = account.platform.as_str(), "account created");
    Ok(account)
}

#[utoipa::path(get, path = "/api/groups/{id}/accounts", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, description = "the group's own accounts")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Vec<AccountView>>> {
    let (group, _) = require_group_role(&state, &caller, &group_id, GroupRole::Admin).await?;
    let accounts = state.store.accounts_of_group(&group.id).await?;
    Ok(Json(account_views(&state, &accounts).await?))
}

/// The account's view with the fee in effect now.
pub async fn account_view(state: &AppState, account: &Account) -> ApiResult<AccountView> {
    let fee = current_fee(&state.store.fee_history(&account.id).await?);
    Ok(AccountView::from(account).with_fee(fee))
}

/// [`account_view`] of each account, in order.
pub async fn account_views(state: &AppState, accounts: &[Account]) -> ApiResult<Vec<AccountView>> {
    let mut out = Vec::with_capacity(accounts.len());
    for a in accounts {
        out.push(account_view(state, a).await?);
    }
    Ok(out)
}

/// An account the caller manages: a group account for the group's
/// owner/admin, a pool account for the enterprise's owner/admin (404 for
/// outsiders, 403 for roles too low), or any for a system admin.
pub async fn managed_account(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Account> {
    account_for(state, caller, id, Action::Manage).await
}

/// An account the caller may see: as [`managed_account`], and also a pool
/// account bound to a group the caller administers. The view never holds
/// credentials.
pub async fn viewable_account(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Account> {
    account_for(state, caller, id, Action::View).await
}

async fn account_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<Account> {
    match authorize(state, caller, action, Resource::Account(id))
        .await?
        .target
    {
        Target::Account(a) => Ok(a),
        _ => Err(ApiError::internal(
            "authorization loaded the wrong resource",
        )),
    }
}

#[utoipa::path(get, path = "/api/accounts/{id}", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, description = "the account, without any secret")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountView>> {
    let account = viewable_account(&state, &caller, &id).await?;
    Ok(Json(account_view(&state, &account).await?))
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
    /// `{amountUsd, period: "month"}` from today on, or `null` to end it
    /// today (days in the server's time zone).
    #[serde(default, deserialize_with = "double_option")]
    fee: Option<Option<Fee>>,
}

impl PatchAccount {
    /// The names of the fields the body changes, for the audit log (the
    /// values of credentials never go there).
    fn field_names(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("preset", self.preset.is_some()),
            ("baseUrl", self.base_url.is_some()),
            ("credentials", self.credentials.is_some()),
            ("models", self.models.is_some()),
            ("modelMap", self.model_map.is_some()),
            ("priority", self.priority.is_some()),
            ("weight", self.weight.is_some()),
            ("maxConcurrency", self.max_concurrency.is_some()),
            ("proxy", self.proxy.is_some()),
            ("enabled", self.enabled.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect()
    }
}

#[utoipa::path(patch, path = "/api/accounts/{id}", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, description = "the changed account; `fee: {amountUsd, period: \"month\"} | null` sets or ends its fee from today")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(mut body): ValidJson<PatchAccount>,
) -> ApiResult<Json<AccountView>> {
    let mut account = managed_account(&state, &caller, &id).await?;
    let fee = body.fee.take();
    // A body that only sets the fee leaves the account as it is.
    if body.field_names().is_empty() && body.platform.is_none() {
        if let Some(fee) = fee {
            set_fee(&state, &caller, &account, fee).await?;
        }
        return Ok(Json(account_view(&state, &account).await?));
    }
    if body.platform.is_some_and(|p| p != account.platform) {
        return Err(ApiError::bad_request(
            "platform cannot be changed; create a new account instead",
        ));
    }
    let before = account.clone();
    let changed = body.field_names();
    let proxy_in_body = body.proxy.is_some();
    let credentials_given = body.credentials.is_some();
    let creds = body
        .credentials
        .map(|c| credentials(account.platform, Some(c)))
        .transpose()?;
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
    let proxy_password = check(&state, &mut account)?;
    let destination =
        Destination::change(&before, &account, proxy_in_body, proxy_password.is_some());
    // The key is tied to where it goes: an edit that sends the account
    // elsewhere drops it unless a new one comes along, so whoever may edit
    // an account cannot redirect someone else's key to a server of theirs.
    let creds = match creds {
        Some(mut c) => {
            c.proxy_password = match proxy_in_body {
                true => proxy_password,
                false => previous_proxy_password(&state, &before),
            };
            Some(c)
        }
        None if destination.changed() => Some(Credentials {
            proxy_password: proxy_password.filter(|_| proxy_in_body),
            ..Default::default()
        }),
        None => None,
    };
    let replaces_credentials = creds.is_some();
    let credentials_dropped = destination.changed() && !credentials_given;
    if let Some(c) = creds {
        account.credentials = match c.proxy_password.is_none() && c.bearer_or_key().is_none() {
            // Nothing left to seal: the view says the account has none.
            true => Default::default(),
            false => seal(&state, &account.id, &c)?,
        };
    }
    account.updated_at = Utc::now();
    super::oauth::update_account_locked(&state, &mut account, replaces_credentials).await?;
    state.gateway.invalidate_routes();
    // An admin looked at it: one that needed attention is chosen again.
    state.gateway.reset_account_health(&account.id);
    audit::record(
        &state,
        Some(caller.id()),
        "account.changed",
        ("account", &account.id),
        Scope::Account(&account),
        destination.audit(changed, credentials_dropped),
    )
    .await;
    tracing::info!(account_id = %account.id, "account updated");
    // Only once the rest of the body was accepted.
    if let Some(fee) = fee {
        set_fee(&state, &caller, &account, fee).await?;
    }
    Ok(Json(account_view(&state, &account).await?))
}

/// Records a fee change from today (in the server's time zone) and audits
/// it with the fee before and after. Statements already closed keep the
/// fees they were built with.
async fn set_fee(
    state: &AppState,
    caller: &Caller,
    account: &Account,
    fee: Option<Fee>,
) -> ApiResult<()> {
    let before = current_fee(&state.store.fee_history(&account.id).await?);
    let today = Utc::now()
        .with_timezone(&state.config.timezone)
        .date_naive();
    state
        .store
        .set_fee(&account.id, &FeeChange { from: today, fee })
        .await?;
    audit::record(
        state,
        Some(caller.id()),
        "account.fee_changed",
        ("account", &account.id),
        Scope::Account(account),
        json!({"before": before, "after": fee, "from": today}),
    )
    .await;
    tracing::info!(account_id = %account.id, "account fee changed");
    Ok(())
}

#[utoipa::path(delete, path = "/api/accounts/{id}", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted and unbound everywhere")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let account = managed_account(&state, &caller, &id).await?;
    state.store.delete_account(&account.id).await?;
    state.gateway.invalidate_routes();
    audit::record(
        &state,
        Some(caller.id()),
        "account.deleted",
        ("account", &account.id),
        Scope::Account(&account),
        json!({"name": account.name}),
    )
    .await;
    tracing::info!(account_id = %account.id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A minimal real upstream call with the account's credentials.
#[utoipa::path(post, path = "/api/accounts/{id}/test", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, description = "{ok, status, latencyMs, error?}")))]
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

#[utoipa::path(get, path = "/api/accounts/{id}/health", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, description = "routing health of the account")))]
pub async fn health(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = viewable_account(&state, &caller, &id).await?;
    // state, coolingUntil, reason, inFlight, lastError, recentSuccessRate,
    // stickySessions and the upstream's unified window, as the router sees it.
    let mut view = json!(state.gateway.account_health(&account.id));
    if !account.enabled {
        view["state"] = json!("disabled");
    }
    Ok(Json(view))
}

/// The credentials this build uses: an API key, or for `claude_oauth`
/// OAuth tokens (see [`super::oauth::pasted_credentials`]).
fn credentials(platform: Platform, c: Option<Credentials>) -> ApiResult<Credentials> {
    if platform == Platform::ClaudeOauth {
        return super::oauth::pasted_credentials(c);
    }
    let key = c
        .and_then(|c| c.api_key)
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("credentials.apiKey is required"))?;
    if key.len() > 4096 || key.chars().any(char::is_control) {
        return Err(ApiError::bad_request("credentials.apiKey is malformed"));
    }
    refuse_member_key("credentials.apiKey", &key)?;
    Ok(Credentials {
        api_key: Some(key),
        ..Default::default()
    })
}

/// A member key of a gateway as an upstream credential would make the
/// account call a gateway, likely this one: a loop, or a way to spend one
/// member's quota as an account of another group.
pub fn refuse_member_key(field: &str, secret: &str) -> ApiResult<()> {
    if aicarpool_core::key::is_member_key_like(secret) {
        return Err(ApiError::bad_request(format!(
            "{field} is an AiCarpool member key; an account needs the upstream's own key"
        )));
    }
    Ok(())
}

/// The proxy password sealed with the account's current credentials (or,
/// for an account stored before passwords were sealed, in its URL).
fn previous_proxy_password(state: &AppState, account: &Account) -> Option<String> {
    let in_url = account
        .proxy
        .as_deref()
        .and_then(|p| proxy::split_password(p).1);
    in_url.or_else(|| {
        state
            .sealer
            .open(&account.id, &account.credentials)
            .ok()
            .and_then(|c| c.proxy_password)
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

/// Validates an account as it would be stored, normalizing names and URLs;
/// returns the proxy URL's password, which is sealed rather than stored.
fn check(state: &AppState, a: &mut Account) -> ApiResult<Option<String>> {
    let guard = &state.config.upstream_allow;
    if !a.platform.is_supported() {
        return Err(ApiError::bad_request(format!(
            "platform `{}` is not available in this build",
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
    if let Some(url) = &a.base_url {
        let parsed = url::Url::parse(url)
            .map_err(|_| ApiError::bad_request("baseUrl must be an http/https URL"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ApiError::bad_request(
                "baseUrl may not hold a user or password; put the key in credentials",
            ));
        }
    }
    if let Some(url) = a.effective_base_url() {
        guard
            .check_url(&url)
            .map_err(|e| ApiError::bad_request(format!("baseUrl: {e}")))?;
    }
    if a.preset == Some(Preset::Custom) && a.base_url.is_none() {
        return Err(ApiError::bad_request(
            "baseUrl is required with preset custom",
        ));
    }
    if a.platform == Platform::OpenaiCompatible && a.base_url.is_none() {
        return Err(ApiError::bad_request(
            "baseUrl is required for openai_compatible, with its version prefix (e.g. https://api.openai.com/v1)",
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
    let Some(url) = a.proxy.as_deref() else {
        return Ok(None);
    };
    let url = input::url_with_schemes("proxy", url, &proxy::PROXY_SCHEMES)?;
    proxy::validate(&url, guard).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (stored, password) = proxy::split_password(&url);
    a.proxy = Some(stored);
    Ok(password)
}
