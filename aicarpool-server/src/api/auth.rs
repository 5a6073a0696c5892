//! Identity: register, login, logout, `me`, password hashing and the
//! start-up creation of the system administrator.

use std::sync::OnceLock;

use aicarpool_core::id::new_id;
use aicarpool_core::org::{GroupRole, User};
use aicarpool_core::store::{StoreError, StoreResult};
use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::caller::{new_session, Caller, SYSTEM_USER_EMAIL, SYSTEM_USER_ID};
use super::input::{self, ValidJson};
use super::throttle::ClientAddr;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Argon2id (the crate's default algorithm and parameters), off the async
/// runtime because it is deliberately slow.
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))?
}

fn hash_password_blocking(password: &str) -> ApiResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal("password hashing failed"))
}

/// Checks `password` against a stored PHC string. With no user (`None`) a
/// dummy hash is checked, so an unknown email takes as long as a wrong
/// password.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let dummy;
        let phc = match &stored {
            Some(s) => s.as_str(),
            None => {
                dummy = dummy_hash();
                dummy.as_str()
            }
        };
        let ok = PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && stored.is_some()
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password_blocking("not a real password").unwrap_or_default())
        .clone()
}

/// `{user, token}` of register and login.
#[derive(Debug, Serialize)]
pub struct AuthAnswer {
    pub user: User,
    pub token: String,
}

#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// Words a password must not lean on: the email, its parts, the name.
pub fn personal_words<'a>(email: &'a str, name: &'a str) -> Vec<&'a str> {
    let mut words = vec![email, name];
    words.extend(
        email
            .split(|c: char| !c.is_alphanumeric())
            .chain(name.split_whitespace())
            .filter(|w| w.chars().count() >= 3),
    );
    words
}

/// A validated new user (not yet stored).
pub async fn new_user(body: &RegisterBody) -> ApiResult<User> {
    let email = input::email("email", &body.email)?;
    let name = input::name("name", &body.name)?;
    input::password("password", &body.password, &personal_words(&email, &name))?;
    Ok(User {
        id: new_id(),
        email,
        name,
        password_hash: hash_password(body.password.clone()).await?,
        is_system_admin: false,
        created_at: Utc::now(),
    })
}

/// Stores `user`, answering 409 when the email is taken.
pub async fn create_user(state: &AppState, user: &User, taken: &str) -> ApiResult<()> {
    if state.store.user_by_email(&user.email).await?.is_some() {
        return Err(ApiError::conflict(taken));
    }
    state.store.create_user(user).await.map_err(|e| match e {
        aicarpool_core::store::StoreError::Conflict(_) => ApiError::conflict(taken),
        other => other.into(),
    })
}

#[utoipa::path(post, path = "/api/auth/register", tag = "identity",
    responses((status = 201, description = "the new user and a session token"),
        (status = 400, description = "`weak_password` (with why) or another invalid field"),
        (status = 429, description = "`too_many_attempts`: too many registrations from this address; `retry-after`")))]
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ValidJson(body): ValidJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<AuthAnswer>)> {
    if !state.config.allow_signup {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_disabled",
            "sign-up is disabled on this server; ask a group admin for an invitation",
        ));
    }
    // Every attempt counts, refused ones too: a 409 tells whether an
    // email is registered, so the quota also bounds that question.
    state.sign_in.begin_signup(client)?;
    // Validate before the (slow) hash, and refuse a taken email early.
    let email = input::email("email", &body.email)?;
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::conflict("an account with this email exists"));
    }
    let user = new_user(&body).await?;
    create_user(&state, &user, "an account with this email exists").await?;
    let token = new_session(&state, &user.id).await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(AuthAnswer { user, token })))
}

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
}

#[utoipa::path(post, path = "/api/auth/login", tag = "identity",
    responses((status = 200, description = "the user and a session token"),
        (status = 401, description = "wrong email or password"),
        (status = 429, description = "`too_many_attempts`: the email or this address is locked after failed sign-ins, even for the right password; `retry-after`")))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ValidJson(body): ValidJson<LoginBody>,
) -> ApiResult<Json<AuthAnswer>> {
    // Before the lookup: a locked email answers alike whether or not it
    // has an account, and costs no password check.
    let attempt = state.sign_in.begin(&body.email, client)?;
    let user = state.store.user_by_email(body.email.trim()).await?;
    let ok = verify_password(
        body.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let user = match user {
        Some(u) if ok => u,
        other => {
            // Who tried which address; never the password.
            let target = other.as_ref().map_or("", |u| u.id.as_str());
            super::audit::record(
                &state,
                None,
                "auth.login_failed",
                ("user", target),
                super::audit::Scope::System,
                json!({"email": body.email.trim().to_lowercase(), "knownUser": other.is_some()}),
            )
            .await;
            return Err(wrong_credentials());
        }
    };
    state.sign_in.succeeded(attempt);
    let token = new_session(&state, &user.id).await?;
    tracing::info!(user_id = %user.id, "user logged in");
    Ok(Json(AuthAnswer { user, token }))
}

fn wrong_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong email or password",
    )
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "identity",
    responses((status = 204, description = "the session is revoked")))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    if let Some(hash) = &caller.session_hash {
        state.store.delete_session(hash).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller, the one in use included.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "identity",
    responses((status = 204, description = "every session of the caller is revoked")))]
pub async fn logout_all(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let ended = state.store.delete_user_sessions(caller.id(), None).await?;
    super::audit::record(
        &state,
        Some(caller.id()),
        "auth.logged_out_everywhere",
        ("user", caller.id()),
        super::audit::Scope::System,
        json!({"sessionsEnded": ended}),
    )
    .await;
    tracing::info!(user_id = %caller.id(), ended, "all sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// Sets a new password after checking the current one, and ends every
/// other session of the caller: whoever learnt the old password is signed
/// out, the caller stays signed in. A wrong current password counts as a
/// failed sign-in.
#[utoipa::path(post, path = "/api/auth/password", tag = "identity",
    request_body(content = serde_json::Value, description = "{current, new}"),
    responses((status = 204, description = "changed; the caller's other sessions are ended"),
        (status = 400, description = "`weak_password`: the new password is refused, with why"),
        (status = 401, description = "the current password is wrong"),
        (status = 429, description = "`too_many_attempts`, with `retry-after`")))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    ValidJson(body): ValidJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    input::password(
        "new",
        &body.new,
        &personal_words(&caller.user.email, &caller.user.name),
    )?;
    let attempt = state.sign_in.begin(&caller.user.email, client)?;
    if !verify_password(body.current, Some(caller.user.password_hash.clone())).await {
        super::audit::record(
            &state,
            Some(caller.id()),
            "auth.password_change_failed",
            ("user", caller.id()),
            super::audit::Scope::System,
            json!({}),
        )
        .await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    state.sign_in.succeeded(attempt);
    let hash = hash_password(body.new).await?;
    state.store.set_password_hash(caller.id(), &hash).await?;
    let ended = state
        .store
        .delete_user_sessions(caller.id(), caller.session_hash.as_deref())
        .await?;
    super::audit::record(
        &state,
        Some(caller.id()),
        "auth.password_changed",
        ("user", caller.id()),
        super::audit::Scope::System,
        json!({"otherSessionsEnded": ended}),
    )
    .await;
    tracing::info!(user_id = %caller.id(), ended, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/me", tag = "identity",
    responses((status = 200, description = "the caller, their enterprises and groups")))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let groups: Vec<Value> = state
        .store
        .groups_of_user(caller.id())
        .await?
        .into_iter()
        .map(|(g, role): (_, GroupRole)| json!({"id": g.id, "name": g.name, "role": role}))
        .collect();
    let enterprises: Vec<Value> = super::enterprises::visible(&state, &caller)
        .await?
        .into_iter()
        .filter(|e| e.role.is_some())
        .map(|e| json!({"id": e.id, "name": e.name, "role": e.role}))
        .collect();
    Ok(Json(json!({
        "user": caller.user,
        "enterprises": enterprises,
        "groups": groups,
    })))
}

/// On an empty database with `AICARPOOL_ADMIN_EMAIL` and
/// `AICARPOOL_ADMIN_PASSWORD`, creates that system administrator. With an
/// admin token configured and no such administrator, makes sure the
/// built-in `system` user exists so the token has a user to act as (it
/// owns what it creates).
pub async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    let cfg = &state.config;
    let store = &state.store;
    let system = store.user(SYSTEM_USER_ID).await?;
    let real_users = store
        .count_users()
        .await?
        .saturating_sub(u64::from(system.is_some()));
    if let (Some(email), Some(password), 0) = (&cfg.admin_email, &cfg.admin_password, real_users) {
        let email =
            input::email("AICARPOOL_ADMIN_EMAIL", email).map_err(|e| anyhow::anyhow!(e.message))?;
        // A weak administrator password is refused at start, loudly: this
        // account can do everything.
        input::password(
            "AICARPOOL_ADMIN_PASSWORD",
            password,
            &personal_words(&email, "Administrator"),
        )
        .map_err(|e| anyhow::anyhow!(e.message))?;
        let user = User {
            id: new_id(),
            email: email.clone(),
            name: "Administrator".into(),
            password_hash: hash_password(password.clone())
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?,
            is_system_admin: true,
            created_at: Utc::now(),
        };
        if created_unless_raced(store.create_user(&user).await)
            .context("creating the system administrator")?
        {
            tracing::info!(user_id = %user.id, %email, "created the system administrator");
        }
    }
    if cfg.admin_token.is_some() && system.is_none() {
        let configured = super::caller::admin_token_user(state)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if configured.is_none() {
            let user = User {
                id: SYSTEM_USER_ID.into(),
                email: SYSTEM_USER_EMAIL.into(),
                name: "System".into(),
                // Not a PHC string: no password ever verifies against it.
                password_hash: "!".into(),
                is_system_admin: true,
                created_at: Utc::now(),
            };
            if created_unless_raced(store.create_user(&user).await)
                .context("creating the built-in system user")?
            {
                tracing::info!("created the built-in system user for the admin token");
            }
        }
    }
    Ok(())
}

/// `true` when the user was created; `false` when another instance
/// starting on the same database created it first.
fn created_unless_raced(created: StoreResult<()>) -> StoreResult<bool> {
    match created {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
