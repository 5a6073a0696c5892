//! Claude subscription accounts: browser sign-in with paste-back, pasted
//! setup tokens, and safe writes of accounts whose tokens rotate.
//!
//! `start` returns an authorize URL (PKCE S256; the verifier and state stay
//! on the server side, sealed, for ten minutes, for one use, for the caller
//! who started: in this process, or in Redis when instances share one, so
//! `finish` may reach another instance); the owner signs in at Claude,
//! copies the `code#state` Claude shows, and `finish` exchanges it at the
//! token endpoint (through the account's proxy, if one was given) and
//! creates the account with the tokens sealed. Tokens never appear in an
//! answer or a log line.

use aicarpool_core::account::{Account, AccountOwner, Credentials};
use aicarpool_core::oauth::{
    CredentialLease, OAuthError, PastedCode, PendingLogins, SETUP_TOKEN_SCOPE,
};
use aicarpool_core::org::GroupRole;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::caller::{require_group_role, Action, Caller};
use super::input::{self, ValidJson};
use super::views::AccountView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest token accepted in pasted credentials.
const MAX_TOKEN_LEN: usize = 4096;

/// What a started sign-in remembers besides its PKCE pair and state. Who
/// started it is bound in by [`PendingLogins`] itself: only that caller
/// can finish it. Sealed before it is stored (the proxy URL may hold a
/// password); `Debug` leaves the proxy URL out.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginContext {
    owner: AccountOwner,
    name: Option<String>,
    proxy: Option<String>,
}

impl std::fmt::Debug for LoginContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginContext")
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("proxy", &self.proxy.is_some())
            .finish()
    }
}

/// Pending Claude sign-ins of this server (or of all instances sharing
/// its Redis).
pub type Logins = PendingLogins<LoginContext>;

/// `Debug` leaves out the proxy URL (it may hold a password).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartBody {
    group_id: Option<String>,
    enterprise_id: Option<String>,
    /// Name of the account to create (default: from the signed-in email).
    name: Option<String>,
    /// Outbound proxy for the code exchange and the account afterwards.
    proxy: Option<String>,
}

impl std::fmt::Debug for StartBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartBody")
            .field("group_id", &self.group_id)
            .field("enterprise_id", &self.enterprise_id)
            .field("name", &self.name)
            .field("proxy", &self.proxy.is_some())
            .finish()
    }
}

/// Checks that the caller may add accounts to `owner`.
async fn may_add_accounts(
    state: &AppState,
    caller: &Caller,
    owner: &AccountOwner,
) -> ApiResult<()> {
    match owner {
        AccountOwner::Group(g) => {
            require_group_role(state, caller, g, GroupRole::Admin).await?;
        }
        AccountOwner::Enterprise(e) => {
            super::enterprises::enterprise(state, caller, e, Action::Manage).await?;
        }
    }
    Ok(())
}

/// Starts a Claude sign-in for a group (carpool) or an enterprise pool.
#[utoipa::path(post, path = "/api/oauth/claude/start", tag = "accounts",
    responses((status = 200, description = "{authUrl, sessionId, expiresAt}: open authUrl, sign in, paste the code to finish")))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<StartBody>,
) -> ApiResult<Json<Value>> {
    let owner = match (body.group_id, body.enterprise_id) {
        (Some(g), None) => AccountOwner::Group(g),
        (None, Some(e)) => AccountOwner::Enterprise(e),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of groupId and enterpriseId",
            ))
        }
    };
    may_add_accounts(&state, &caller, &owner).await?;
    let name = body.name.map(|n| input::name("name", &n)).transpose()?;
    let proxy = body
        .proxy
        .as_deref()
        .map(|p| {
            use aicarpool_core::provider::proxy;
            let url = input::url_with_schemes("proxy", p, &proxy::PROXY_SCHEMES)?;
            proxy::validate(&url, &state.config.upstream_allow)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok::<_, ApiError>(url)
        })
        .transpose()?;
    let oauth = state.gateway.claude_oauth();
    let context = LoginContext { owner, name, proxy };
    let started = state
        .oauth_logins
        .start(oauth.config(), caller.id(), context)
        .await
        .map_err(|e| {
            tracing::warn!(user_id = caller.id(), error = %e, "Claude sign-in not started");
            login_error(&e)
        })?;
    let expires_at =
        Utc::now() + chrono::Duration::from_std(oauth.config().login_ttl).unwrap_or_default();
    tracing::info!(user_id = caller.id(), "Claude sign-in started");
    Ok(Json(json!({
        "authUrl": started.auth_url,
        "sessionId": started.session_id,
        "expiresAt": expires_at,
    })))
}

/// `Debug` leaves out the code.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishBody {
    session_id: String,
    /// `code#state` as Claude shows it, a bare code, or the callback URL.
    code: String,
}

impl std::fmt::Debug for FinishBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishBody")
            .field("session_id", &"<redacted>")
            .field("code", &"<redacted>")
            .finish()
    }
}

fn login_error(e: &OAuthError) -> ApiError {
    match e {
        OAuthError::NoCode => ApiError::bad_request(
            "code: paste the code Claude showed (code#state), or the whole callback URL",
        ),
        OAuthError::UnknownSession | OAuthError::SessionExpired | OAuthError::StateMismatch => {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_oauth_session",
                e.to_string(),
            )
        }
        OAuthError::Refused { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "oauth_refused", e.to_string())
        }
        // Where sign-ins are kept is away (Redis); the details are logged.
        OAuthError::Store(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "oauth_sessions_unavailable",
            "sign-in sessions are unavailable; try again shortly",
        ),
        // Instances that do not share one master key, or a damaged entry.
        OAuthError::Secret => ApiError::internal("the sign-in session could not be opened"),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "oauth_unavailable", e.to_string()),
    }
}

/// Finishes a sign-in: exchanges the pasted code and creates the account.
#[utoipa::path(post, path = "/api/oauth/claude/finish", tag = "accounts",
    responses((status = 201, description = "the new claude_oauth account, without any secret, with `oauth` (scopes, organization, account email, expiry)")))]
pub async fn finish(
    State(state): State<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<FinishBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let pasted = PastedCode::parse(&body.code).map_err(|e| login_error(&e))?;
    let login = state
        .oauth_logins
        .take(body.session_id.trim(), caller.id(), pasted.state.as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(user_id = caller.id(), error = %e, "Claude sign-in refused");
            login_error(&e)
        })?;
    let ctx = login.context;
    // The role may have changed since the start.
    may_add_accounts(&state, &caller, &ctx.owner).await?;
    let granted = state
        .gateway
        .claude_oauth()
        .endpoint()
        .exchange_code(
            ctx.proxy.as_deref(),
            &pasted.code,
            login.pkce.verifier(),
            &login.state,
        )
        .await
        .map_err(|e| {
            tracing::warn!(user_id = caller.id(), error = %e, "Claude code exchange failed");
            login_error(&e)
        })?;
    let creds = granted.into_credentials(None, Utc::now());
    let name = ctx.name.unwrap_or_else(|| default_name(&creds));
    let summary = summary(&creds);
    // Through the one account-creation path, so validation, sealing, cache
    // invalidation and the audit entry are the same as for any account.
    let request: super::accounts::CreateAccount = serde_json::from_value(json!({
        "name": name,
        "platform": "claude_oauth",
        "credentials": creds,
        "proxy": ctx.proxy,
    }))
    .map_err(|e| ApiError::internal(format!("building the account: {e}")))?;
    let account = super::accounts::create_owned(&state, &caller, ctx.owner, request).await?;
    tracing::info!(account_id = %account.id, "Claude subscription account added by sign-in");
    let mut view = json!(AccountView::from(&account));
    view["oauth"] = summary;
    Ok((StatusCode::CREATED, Json(view)))
}

fn default_name(creds: &Credentials) -> String {
    let email = creds.identity.as_ref().and_then(|i| i.email.as_deref());
    let name = email.map_or_else(
        || "Claude subscription".to_owned(),
        |e| format!("Claude {e}"),
    );
    name.chars().take(100).collect()
}

/// What may be shown about OAuth credentials: never a token.
fn summary(creds: &Credentials) -> Value {
    let id = creds.identity.clone().unwrap_or_default();
    json!({
        "scopes": creds.scopes,
        "expiresAt": creds.expires_at,
        "refreshable": creds.refresh_token.is_some(),
        "organization": {"uuid": id.organization_uuid, "name": id.organization_name},
        "account": {"uuid": id.account_uuid, "email": id.email},
    })
}

fn token_field(field: &str, v: Option<String>) -> ApiResult<Option<String>> {
    let Some(v) = v.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_TOKEN_LEN || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::bad_request(format!(
            "credentials.{field} is malformed"
        )));
    }
    super::accounts::refuse_member_key(&format!("credentials.{field}"), &v)?;
    Ok(Some(v))
}

/// Credentials of a `claude_oauth` account given directly: a long-lived
/// setup token (`claude setup-token`) as `accessToken`, or a full pair
/// with `refreshToken` and `expiresAt`.
pub fn pasted_credentials(c: Option<Credentials>) -> ApiResult<Credentials> {
    let c = c.unwrap_or_default();
    if c.api_key.is_some() {
        return Err(ApiError::bad_request(
            "claude_oauth takes credentials.accessToken (a setup token), not apiKey; \
             or sign in with POST /api/oauth/claude/start",
        ));
    }
    let access_token = token_field("accessToken", c.access_token)?.ok_or_else(|| {
        ApiError::bad_request(
            "credentials.accessToken is required (paste a setup token), \
             or sign in with POST /api/oauth/claude/start",
        )
    })?;
    let refresh_token = token_field("refreshToken", c.refresh_token)?;
    let mut scopes = input::string_list("credentials.scopes", &c.scopes, 20)?;
    if scopes.is_empty() && refresh_token.is_none() {
        scopes.push(SETUP_TOKEN_SCOPE.to_owned());
    }
    Ok(Credentials {
        api_key: None,
        access_token: Some(access_token),
        refresh_token,
        expires_at: c.expires_at,
        scopes,
        identity: c.identity,
        proxy_password: None,
    })
}

/// Writes an edited account under its credential lease, with the stored
/// credentials re-read unless the edit replaces them: a token refresh
/// between the edit's read and its write must not be undone.
pub async fn update_account_locked(
    state: &AppState,
    account: &mut Account,
    replaces_credentials: bool,
) -> ApiResult<()> {
    let store = state.store.as_ref();
    let lease = CredentialLease::acquire(
        store,
        &account.id,
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(5),
    )
    .await?
    .ok_or_else(|| ApiError::conflict("the account's tokens are being refreshed; try again"))?;
    let written = async {
        if !replaces_credentials {
            account.credentials = store
                .sealed_credentials(&account.id)
                .await?
                .ok_or(aicarpool_core::store::StoreError::NotFound)?;
        }
        store.update_account(account).await
    }
    .await;
    if let Err(e) = lease.release(store).await {
        tracing::warn!(account_id = %account.id, error = %e, "could not release the credential lease");
    }
    Ok(written?)
}
