//! Invitation links: create, public preview, accept (join or register).

use aicarpool_core::id::new_id;
use aicarpool_core::org::{Group, GroupRole, Invitation, InvitationTarget, Membership, User};
use aicarpool_core::store::StoreError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{self, Scope};
use super::auth::{self, RegisterBody};
use super::caller::{
    new_session, random_token, require_group_role, sha256_hex, Caller, MaybeCaller,
};
use super::input::{self, optional_json, ValidJson};
use crate::error::{ApiError, ApiResult};
use crate::mail::InvitationMail;
use crate::state::AppState;

const DEFAULT_HOURS: u32 = 72;
const MAX_HOURS: u32 = 720;
/// Largest `maxUses` of one link.
const MAX_USES: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInvitation {
    email: Option<String>,
    role: Option<String>,
    max_uses: Option<u32>,
    expires_in_hours: Option<u32>,
}

#[utoipa::path(post, path = "/api/groups/{id}/invitations", tag = "invitations",
    params(("id" = String, Path)),
    responses((status = 201, description = "the link (mailed when it names an address and SMTP is set up)")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    let role = match body.role.as_deref().map(GroupRole::parse) {
        None => GroupRole::Member,
        Some(Some(r @ (GroupRole::Admin | GroupRole::Member))) => r,
        Some(_) => return Err(ApiError::bad_request("role must be `admin` or `member`")),
    };
    let email = body
        .email
        .as_deref()
        .map(|e| input::email("email", e))
        .transpose()?;
    if body.max_uses.is_some_and(|n| n == 0 || n > MAX_USES) {
        return Err(ApiError::bad_request(format!(
            "maxUses must be between 1 and {MAX_USES}"
        )));
    }
    let hours = body.expires_in_hours.unwrap_or(DEFAULT_HOURS);
    if hours == 0 || hours > MAX_HOURS {
        return Err(ApiError::bad_request(format!(
            "expiresInHours must be between 1 and {MAX_HOURS}"
        )));
    }
    let token = random_token();
    let now = Utc::now();
    let invitation = Invitation {
        id: new_id(),
        target: InvitationTarget::Group {
            group_id: group.id.clone(),
            role,
        },
        token_hash: sha256_hex(&token),
        email,
        max_uses: body.max_uses,
        uses: 0,
        expires_at: now + Duration::hours(i64::from(hours)),
        created_by: caller.id().to_owned(),
        created_at: now,
    };
    state.store.create_invitation(&invitation).await?;
    tracing::info!(group_id = %group.id, invitation_id = %invitation.id, "invitation created");
    let url = format!("{}/invite/{token}", state.config.public_url());
    let email_sent = mail_invitation(&state, &caller, &group, &invitation, &url).await;
    audit::record(
        &state,
        Some(caller.id()),
        "invitation.created",
        ("invitation", &invitation.id),
        Scope::Group(&group.id),
        json!({"role": role, "email": invitation.email, "maxUses": invitation.max_uses, "emailSent": email_sent}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": invitation.id,
            "token": token,
            "url": url,
            "expiresAt": invitation.expires_at,
            "maxUses": invitation.max_uses,
            "role": role,
            "email": invitation.email,
            "emailSent": email_sent,
        })),
    ))
}

/// Mails the link when the invitation names an address and SMTP is set
/// up; returns whether the server accepted it. A failure is logged and the
/// link is still answered, to be shared by hand.
async fn mail_invitation(
    state: &AppState,
    caller: &Caller,
    group: &Group,
    invitation: &Invitation,
    url: &str,
) -> bool {
    let (Some(mailer), Some(to)) = (&state.mailer, &invitation.email) else {
        return false;
    };
    let mail = InvitationMail {
        to,
        group_name: &group.name,
        inviter: &caller.user.name,
        url,
        expires_at: invitation.expires_at,
    };
    match mailer.send_invitation(&mail).await {
        Ok(()) => {
            tracing::info!(invitation_id = %invitation.id, "invitation mailed");
            true
        }
        Err(e) => {
            tracing::warn!(invitation_id = %invitation.id, error = %e, "invitation mail failed; share the link by hand");
            false
        }
    }
}

/// The invitation behind `token`, with its group: 404 when unknown, 410
/// when expired or used up.
async fn open_invitation(state: &AppState, token: &str) -> ApiResult<(Invitation, Group)> {
    let not_found = || ApiError::not_found("invitation");
    // Tokens are base64url; anything else cannot match.
    if token.is_empty()
        || token.len() > 128
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(not_found());
    }
    let inv = state
        .store
        .invitation_by_token_hash(&sha256_hex(token))
        .await?
        .ok_or_else(not_found)?;
    let group = state
        .store
        .group(inv.target.group_id().ok_or_else(not_found)?)
        .await?
        .ok_or_else(not_found)?;
    if !inv.is_open(Utc::now()) {
        return Err(closed());
    }
    Ok((inv, group))
}

fn closed() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "invitation_closed",
        "this invitation has expired or has been used up",
    )
}

/// Public: the page an invitation link opens (`{publicUrl}/invite/{token}`).
/// It shows the group and how to join; joining is `POST
/// /api/invitations/{token}/accept`. Never cached: the token is in the URL.
#[utoipa::path(get, path = "/invite/{token}", tag = "invitations",
    params(("token" = String, Path)),
    responses((status = 200, description = "the HTML page the invitation link opens")))]
pub async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> axum::response::Response {
    use axum::response::{Html, IntoResponse};
    let (status, body) = match open_invitation(&state, &token).await {
        Ok((inv, group)) => {
            let inviter = state
                .store
                .user(&inv.created_by)
                .await
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default();
            let accept = format!(
                "{}/api/invitations/{token}/accept",
                state.config.public_url()
            );
            (
                StatusCode::OK,
                format!(
                    "<h1>Join {group}</h1><p>{inviter} invites you to the carpool group \
                     <strong>{group}</strong> as {role}. The link expires {expires}.</p>\
                     <p>To join, send <code>POST {accept}</code> with your session token, or with \
                     <code>{{\"email\", \"password\", \"name\"}}</code> to create an account.</p>",
                    group = html_escape(&group.name),
                    inviter = html_escape(&inviter),
                    role = inv.target.role_str(),
                    expires = inv.expires_at.format("%Y-%m-%d %H:%M UTC"),
                    accept = html_escape(&accept),
                ),
            )
        }
        Err(e) => (
            e.status,
            format!("<h1>Invitation</h1><p>{}</p>", html_escape(&e.message)),
        ),
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>AiCarpool invitation</title></head><body>{body}</body></html>"
    );
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(html),
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Public: what the link leads to, so the page can show it before joining.
#[utoipa::path(get, path = "/api/invitations/{token}", tag = "invitations",
    params(("token" = String, Path)),
    responses((status = 200, description = "public preview of the invitation")))]
pub async fn preview(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<Value>> {
    let (inv, group) = open_invitation(&state, &token).await?;
    let inviter = state
        .store
        .user(&inv.created_by)
        .await?
        .map(|u| u.name)
        .unwrap_or_default();
    Ok(Json(json!({
        "groupId": group.id,
        "groupName": group.name,
        "inviter": {"name": inviter},
        "role": inv.target.role_str(),
        "email": inv.email,
        "expiresAt": inv.expires_at,
        "usesLeft": inv.max_uses.map(|m| m.saturating_sub(inv.uses)),
    })))
}

/// Joins the group: as the logged-in caller when the body has no `email`,
/// else registers `{email, password, name}` (allowed even with sign-up
/// disabled: the invitation is the way in).
#[utoipa::path(post, path = "/api/invitations/{token}/accept", tag = "invitations",
    params(("token" = String, Path)),
    request_body(content = serde_json::Value, description = "empty when logged in, else {email, password, name}"),
    responses((status = 200, description = "joined; a session token")))]
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    maybe: MaybeCaller,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Option<Value> = optional_json(&raw)?;
    let registering = body.as_ref().is_some_and(|b| b.get("email").is_some());
    let (inv, group) = open_invitation(&state, &token).await?;
    match (maybe.caller, registering) {
        (Some(caller), false) => accept_as(&state, &inv, &group, caller).await,
        (_, true) => {
            let body: RegisterBody = optional_json(&raw)?
                .ok_or_else(|| ApiError::bad_request("email, password and name are required"))?;
            accept_registering(&state, &inv, &group, &body).await
        }
        (None, false) if maybe.bad_token => Err(ApiError::unauthorized()),
        (None, false) => Err(ApiError::bad_request(
            "log in first, or send {email, password, name} to create an account",
        )),
    }
}

async fn accept_as(
    state: &AppState,
    inv: &Invitation,
    group: &Group,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    check_can_join(state, inv, group, &caller.user).await?;
    with_use(state, inv, add_member(state, inv, group, &caller.user)).await?;
    let token = match caller.session_token() {
        Some(t) => t.to_owned(),
        // The admin token is not handed back: the caller gets a session.
        None => new_session(state, caller.id()).await?,
    };
    Ok(Json(
        json!({"user": caller.user, "token": token, "groupId": group.id}),
    ))
}

async fn accept_registering(
    state: &AppState,
    inv: &Invitation,
    group: &Group,
    body: &RegisterBody,
) -> ApiResult<Json<Value>> {
    let email = input::email("email", &body.email)?;
    let taken = "an account with this email exists; log in and accept the invitation again";
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::conflict(taken));
    }
    let user = auth::new_user(body).await?;
    check_can_join(state, inv, group, &user).await?;
    // Count the use first so a used-up link cannot create accounts.
    with_use(state, inv, async {
        auth::create_user(state, &user, taken).await?;
        add_member(state, inv, group, &user).await
    })
    .await?;
    let token = new_session(state, &user.id).await?;
    tracing::info!(user_id = %user.id, group_id = %group.id, "user registered through an invitation");
    Ok(Json(
        json!({"user": user, "token": token, "groupId": group.id}),
    ))
}

/// Email restriction, existing membership and the group's size.
async fn check_can_join(
    state: &AppState,
    inv: &Invitation,
    group: &Group,
    user: &User,
) -> ApiResult<()> {
    if let Some(only) = &inv.email {
        if !only.eq_ignore_ascii_case(&user.email) {
            return Err(ApiError::forbidden(
                "this invitation is for another email address",
            ));
        }
    }
    if state.store.membership(&group.id, &user.id).await?.is_some() {
        return Err(ApiError::conflict("you are already a member of this group"));
    }
    // A fast path only: it spares an account and a counted use when the
    // group is visibly full; `add_member` enforces the limit atomically.
    if let Some(max) = group.max_members {
        if state.store.members(&group.id).await?.len() >= max as usize {
            return Err(group_full(max));
        }
    }
    Ok(())
}

fn group_full(max: u32) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "group_full",
        format!("the group is full ({max} members)"),
    )
}

/// Counts the use (atomically, so `maxUses` holds under races), then runs
/// `join`. A join refused there (a full group, an existing member or
/// email) gives the use back, so refusals do not use up the link; after a
/// server error the use stays counted, as the join may have happened.
async fn with_use(
    state: &AppState,
    inv: &Invitation,
    join: impl std::future::Future<Output = ApiResult<()>>,
) -> ApiResult<()> {
    if !state.store.use_invitation(&inv.id, Utc::now()).await? {
        return Err(closed());
    }
    let joined = join.await;
    if let Err(refused) = &joined {
        if refused.status.is_client_error() {
            if let Err(e) = state.store.release_invitation_use(&inv.id).await {
                tracing::warn!(invitation_id = %inv.id, error = %e, "could not give an invitation use back");
            }
        }
    }
    joined
}

async fn add_member(
    state: &AppState,
    inv: &Invitation,
    group: &Group,
    user: &User,
) -> ApiResult<()> {
    state
        .store
        .add_member(
            &Membership {
                group_id: group.id.clone(),
                user_id: user.id.clone(),
                role: group_role(inv),
                joined_at: Utc::now(),
            },
            group.max_members,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict("you are already a member of this group"),
            StoreError::LimitReached(_) => group_full(group.max_members.unwrap_or_default()),
            other => other.into(),
        })?;
    audit::record(
        state,
        Some(&user.id),
        "member.added",
        ("user", &user.id),
        Scope::Group(&group.id),
        json!({"role": group_role(inv), "invitationId": inv.id, "email": user.email}),
    )
    .await;
    tracing::info!(group_id = %group.id, user_id = %user.id, invitation_id = %inv.id, "member joined");
    Ok(())
}

/// The role a group invitation gives (member for any other kind).
fn group_role(inv: &Invitation) -> GroupRole {
    match inv.target {
        InvitationTarget::Group { role, .. } => role,
        _ => GroupRole::Member,
    }
}
