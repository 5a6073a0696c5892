//! Invitation links: create, public preview, accept (join or register).
//!
//! An invitation grants a place in a group, a role in an enterprise or a
//! department's administration. Enterprise and department roles are only
//! ever given this way ([`invite_person`]): an owner names an email, the
//! person accepts, and the answer to the owner is the same whether or not
//! that email has an account.

use aicarpool_core::enterprise::{Department, DepartmentAdmin, Enterprise, EnterpriseMember};
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
use super::throttle::ClientAddr;
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
    let place = Place::Group(group.clone());
    let email_sent = mail_invitation(&state, &caller, &place, &invitation, &url).await;
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
    place: &Place,
    invitation: &Invitation,
    url: &str,
) -> bool {
    let (Some(mailer), Some(to)) = (&state.mailer, &invitation.email) else {
        return false;
    };
    let mail = InvitationMail {
        to,
        place_name: place.name(),
        place: &place.describe(&invitation.target),
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

/// What an invitation leads to, loaded.
#[derive(Debug, Clone)]
pub enum Place {
    Group(Group),
    Enterprise(Enterprise),
    /// A department, with its enterprise.
    Department(Department, Enterprise),
}

impl Place {
    fn name(&self) -> &str {
        match self {
            Place::Group(g) => &g.name,
            Place::Enterprise(e) => &e.name,
            Place::Department(d, _) => &d.name,
        }
    }

    /// "the carpool group “x”" and the like, for the page and the mail.
    fn describe(&self, target: &InvitationTarget) -> String {
        match self {
            Place::Group(g) => format!("the carpool group \"{}\" as {}", g.name, target.role_str()),
            Place::Enterprise(e) => {
                format!("the enterprise \"{}\" as {}", e.name, target.role_str())
            }
            Place::Department(d, e) => format!(
                "the department \"{}\" of \"{}\" as its admin",
                d.name, e.name
            ),
        }
    }

    /// Audit entries go where the place's admins read them.
    fn scope(&self) -> Scope<'_> {
        match self {
            Place::Group(g) => Scope::Group(&g.id),
            Place::Enterprise(e) | Place::Department(_, e) => Scope::Enterprise(&e.id),
        }
    }

    /// `groupId`, `enterpriseId` or `departmentId` with the place's id.
    fn id_field(&self) -> (&'static str, &str) {
        match self {
            Place::Group(g) => ("groupId", &g.id),
            Place::Enterprise(e) => ("enterpriseId", &e.id),
            Place::Department(d, _) => ("departmentId", &d.id),
        }
    }
}

/// Loads what `target` names; `None` when it is gone.
async fn load_place(state: &AppState, target: &InvitationTarget) -> ApiResult<Option<Place>> {
    Ok(match target {
        InvitationTarget::Group { group_id, .. } => {
            state.store.group(group_id).await?.map(Place::Group)
        }
        InvitationTarget::Enterprise { enterprise_id, .. } => state
            .store
            .enterprise(enterprise_id)
            .await?
            .map(Place::Enterprise),
        InvitationTarget::Department { department_id } => {
            match state.store.department(department_id).await? {
                Some(d) => state
                    .store
                    .enterprise(&d.enterprise_id)
                    .await?
                    .map(|e| Place::Department(d, e)),
                None => None,
            }
        }
    })
}

/// How long an invitation to an enterprise or department role stays open.
const ROLE_INVITATION_HOURS: i64 = 7 * 24;

/// A person named by `userId` or `email`, to be invited to a role.
#[derive(Debug)]
pub enum Invitee<'a> {
    UserId(&'a str),
    Email(&'a str),
}

impl<'a> Invitee<'a> {
    /// The one a body names; 400 when it names nobody.
    pub fn from_body(user_id: Option<&'a str>, email: Option<&'a str>) -> ApiResult<Self> {
        match (user_id, email) {
            (Some(id), _) => Ok(Self::UserId(id)),
            (None, Some(e)) => Ok(Self::Email(e)),
            (None, None) => Err(ApiError::bad_request("userId or email is required")),
        }
    }
}

/// Invites a person to `target` (an enterprise or department role) and
/// answers 202 `{invited, email|userId, role, expiresAt, url, token,
/// emailSent}`. By email, the answer is the same whether or not an
/// account has that address: nothing is looked up but existing roles in
/// `place` itself, which the caller can list anyway (409 then). By
/// `userId` (which reveals nothing new: it came from a list the caller
/// sees) an unknown id is 400, and the user's email is not shown. The
/// invitation has one use and only that address may accept it.
pub async fn invite_person(
    state: &AppState,
    caller: &Caller,
    place: Place,
    target: InvitationTarget,
    invitee: Invitee<'_>,
    already: &str,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (email, shown) = match invitee {
        Invitee::Email(e) => {
            let email = input::email("email", e)?;
            (email.clone(), json!({"email": email}))
        }
        Invitee::UserId(id) => {
            let bad = || ApiError::bad_request(format!("userId: no user `{id}`"));
            if !aicarpool_core::id::is_valid_id(id) {
                return Err(bad());
            }
            let user = state.store.user(id).await?.ok_or_else(bad)?;
            (user.email, json!({"userId": id}))
        }
    };
    if let Some(user) = state.store.user_by_email(&email).await? {
        if holds(state, &target, &user).await? {
            return Err(ApiError::conflict(already.to_owned()));
        }
    }
    let token = random_token();
    let now = Utc::now();
    let invitation = Invitation {
        id: new_id(),
        target,
        token_hash: sha256_hex(&token),
        email: Some(email),
        max_uses: Some(1),
        uses: 0,
        expires_at: now + Duration::hours(ROLE_INVITATION_HOURS),
        created_by: caller.id().to_owned(),
        created_at: now,
    };
    state.store.create_invitation(&invitation).await?;
    let url = format!("{}/invite/{token}", state.config.public_url());
    let email_sent = mail_invitation(state, caller, &place, &invitation, &url).await;
    let role = invitation.target.role_str();
    audit::record(
        state,
        Some(caller.id()),
        "invitation.created",
        ("invitation", &invitation.id),
        place.scope(),
        json!({"kind": invitation.target.kind(), "role": role, "email": invitation.email,
               "emailSent": email_sent}),
    )
    .await;
    tracing::info!(invitation_id = %invitation.id, kind = invitation.target.kind(), "role invitation created");
    let mut answer = json!({
        "invited": true,
        "id": invitation.id,
        "kind": invitation.target.kind(),
        "role": role,
        "expiresAt": invitation.expires_at,
        "token": token,
        "url": url,
        "emailSent": email_sent,
    });
    if let (Some(answer), Some(shown)) = (answer.as_object_mut(), shown.as_object()) {
        answer.extend(shown.clone());
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Whether `user` already holds what `target` grants.
async fn holds(state: &AppState, target: &InvitationTarget, user: &User) -> ApiResult<bool> {
    Ok(match target {
        InvitationTarget::Group { group_id, .. } => {
            state.store.membership(group_id, &user.id).await?.is_some()
        }
        InvitationTarget::Enterprise { enterprise_id, .. } => state
            .store
            .enterprise_member(enterprise_id, &user.id)
            .await?
            .is_some(),
        InvitationTarget::Department { department_id } => state
            .store
            .department_admins(department_id)
            .await?
            .iter()
            .any(|a| a.user_id == user.id),
    })
}

/// The invitation behind `token`, with what it leads to: 404 when
/// unknown, 410 when expired or used up.
async fn open_invitation(state: &AppState, token: &str) -> ApiResult<(Invitation, Place)> {
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
    let place = load_place(state, &inv.target)
        .await?
        .ok_or_else(not_found)?;
    if !inv.is_open(Utc::now()) {
        return Err(closed());
    }
    Ok((inv, place))
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
        Ok((inv, place)) => {
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
                    "<h1>Join {name}</h1><p>{inviter} invites you to {what}. \
                     The link expires {expires}.</p>\
                     <p>To join, send <code>POST {accept}</code> with your session token, or with \
                     <code>{{\"email\", \"password\", \"name\"}}</code> to create an account.</p>",
                    name = html_escape(place.name()),
                    what = html_escape(&place.describe(&inv.target)),
                    inviter = html_escape(&inviter),
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
    let (inv, place) = open_invitation(&state, &token).await?;
    let inviter = state
        .store
        .user(&inv.created_by)
        .await?
        .map(|u| u.name)
        .unwrap_or_default();
    let mut answer = json!({
        "kind": inv.target.kind(),
        "inviter": {"name": inviter},
        "role": inv.target.role_str(),
        "email": inv.email,
        "expiresAt": inv.expires_at,
        "usesLeft": inv.max_uses.map(|m| m.saturating_sub(inv.uses)),
    });
    let named = match &place {
        Place::Group(g) => json!({"groupId": g.id, "groupName": g.name}),
        Place::Enterprise(e) => json!({"enterpriseId": e.id, "enterpriseName": e.name}),
        Place::Department(d, e) => json!({"departmentId": d.id, "departmentName": d.name,
                                          "enterpriseId": e.id, "enterpriseName": e.name}),
    };
    if let (Some(answer), Some(named)) = (answer.as_object_mut(), named.as_object()) {
        answer.extend(named.clone());
    }
    Ok(Json(answer))
}

/// Joins the group or takes the role: as the logged-in caller when the
/// body has no `email`, else registers `{email, password, name}` (allowed
/// even with sign-up disabled: the invitation is the way in).
#[utoipa::path(post, path = "/api/invitations/{token}/accept", tag = "invitations",
    params(("token" = String, Path)),
    request_body(content = serde_json::Value, description = "empty when logged in, else {email, password, name}"),
    responses((status = 200, description = "joined; a session token and the groupId, enterpriseId or departmentId"),
        (status = 403, description = "the invitation is for another email address")))]
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientAddr(client): ClientAddr,
    maybe: MaybeCaller,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Option<Value> = optional_json(&raw)?;
    let registering = body.as_ref().is_some_and(|b| b.get("email").is_some());
    let (inv, place) = open_invitation(&state, &token).await?;
    match (maybe.caller, registering) {
        (Some(caller), false) => accept_as(&state, &inv, &place, caller).await,
        (_, true) => {
            let body: RegisterBody = optional_json(&raw)?
                .ok_or_else(|| ApiError::bad_request("email, password and name are required"))?;
            state.sign_in.begin_signup(client)?;
            accept_registering(&state, &inv, &place, &body).await
        }
        (None, false) if maybe.bad_token => Err(ApiError::unauthorized()),
        (None, false) => Err(ApiError::bad_request(
            "log in first, or send {email, password, name} to create an account",
        )),
    }
}

fn joined(place: &Place, user: &User, token: String) -> Json<Value> {
    let (field, id) = place.id_field();
    let mut answer = json!({"user": user, "token": token});
    if let Some(answer) = answer.as_object_mut() {
        answer.insert(field.to_owned(), json!(id));
    }
    Json(answer)
}

async fn accept_as(
    state: &AppState,
    inv: &Invitation,
    place: &Place,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    check_can_join(state, inv, place, &caller.user).await?;
    with_use(state, inv, grant(state, inv, place, &caller.user)).await?;
    let token = match caller.session_token() {
        Some(t) => t.to_owned(),
        // The admin token is not handed back: the caller gets a session.
        None => new_session(state, caller.id()).await?,
    };
    Ok(joined(place, &caller.user, token))
}

async fn accept_registering(
    state: &AppState,
    inv: &Invitation,
    place: &Place,
    body: &RegisterBody,
) -> ApiResult<Json<Value>> {
    let email = input::email("email", &body.email)?;
    let taken = "an account with this email exists; log in and accept the invitation again";
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::conflict(taken));
    }
    let user = auth::new_user(body).await?;
    check_can_join(state, inv, place, &user).await?;
    // Count the use first so a used-up link cannot create accounts.
    with_use(state, inv, async {
        auth::create_user(state, &user, taken).await?;
        grant(state, inv, place, &user).await
    })
    .await?;
    let token = new_session(state, &user.id).await?;
    tracing::info!(user_id = %user.id, kind = inv.target.kind(), "user registered through an invitation");
    Ok(joined(place, &user, token))
}

/// Email restriction, what the user already holds and the group's size.
async fn check_can_join(
    state: &AppState,
    inv: &Invitation,
    place: &Place,
    user: &User,
) -> ApiResult<()> {
    if let Some(only) = &inv.email {
        if !only.eq_ignore_ascii_case(&user.email) {
            return Err(ApiError::forbidden(
                "this invitation is for another email address",
            ));
        }
    }
    if holds(state, &inv.target, user).await? {
        return Err(already_holds(place));
    }
    // A fast path only: it spares an account and a counted use when the
    // group is visibly full; `add_member` enforces the limit atomically.
    if let Place::Group(group) = place {
        if let Some(max) = group.max_members {
            if state.store.members(&group.id).await?.len() >= max as usize {
                return Err(group_full(max));
            }
        }
    }
    Ok(())
}

fn already_holds(place: &Place) -> ApiError {
    ApiError::conflict(match place {
        Place::Group(_) => "you are already a member of this group",
        Place::Enterprise(_) => "you already have a role in this enterprise",
        Place::Department(..) => "you already administer this department",
    })
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

/// Gives `user` what the invitation grants, and records it.
async fn grant(state: &AppState, inv: &Invitation, place: &Place, user: &User) -> ApiResult<()> {
    let now = Utc::now();
    let (action, detail) = match (&inv.target, place) {
        (InvitationTarget::Group { role, .. }, Place::Group(group)) => {
            state
                .store
                .add_member(
                    &Membership {
                        group_id: group.id.clone(),
                        user_id: user.id.clone(),
                        role: *role,
                        share_weight: aicarpool_core::carpool::DEFAULT_SHARE_WEIGHT,
                        joined_at: now,
                    },
                    group.max_members,
                )
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => already_holds(place),
                    StoreError::LimitReached(_) => {
                        group_full(group.max_members.unwrap_or_default())
                    }
                    other => other.into(),
                })?;
            ("member.added", json!({"role": role}))
        }
        (InvitationTarget::Enterprise { role, .. }, Place::Enterprise(e)) => {
            state
                .store
                .put_enterprise_member(&EnterpriseMember {
                    enterprise_id: e.id.clone(),
                    user_id: user.id.clone(),
                    role: *role,
                    added_at: now,
                })
                .await?;
            ("member.added", json!({"role": role.as_str()}))
        }
        (InvitationTarget::Department { .. }, Place::Department(d, _)) => {
            state
                .store
                .add_department_admin(&DepartmentAdmin {
                    department_id: d.id.clone(),
                    user_id: user.id.clone(),
                    added_at: now,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => already_holds(place),
                    other => other.into(),
                })?;
            (
                "member.role_changed",
                json!({"departmentId": d.id, "to": "department_admin"}),
            )
        }
        _ => return Err(ApiError::internal("the invitation names another place")),
    };
    let mut detail = detail;
    if let Some(d) = detail.as_object_mut() {
        d.insert("invitationId".into(), json!(inv.id));
        d.insert("email".into(), json!(user.email));
    }
    audit::record(
        state,
        Some(&user.id),
        action,
        ("user", &user.id),
        place.scope(),
        detail,
    )
    .await;
    tracing::info!(user_id = %user.id, invitation_id = %inv.id, kind = inv.target.kind(), "invitation accepted");
    Ok(())
}
