//! The management API (`/api/...`): identity, groups, invitations,
//! upstream accounts, bindings, member keys, usage and monthly statements.
//!
//! Every handler authenticates through [`caller::Caller`] and checks the
//! caller's role through the one permission check, [`caller::authorize`]
//! (`require_group_role` is its group form); answers are built in
//! [`views`], which has no field for any secret.

use axum::routing::{get, post, put};
use axum::Router;

use crate::state::AppState;

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod binding;
pub mod caller;
pub mod departments;
pub mod enterprises;
pub mod events;
pub mod groups;
pub mod input;
pub mod invitations;
pub mod keys;
pub mod oauth;
pub mod openapi;
pub mod requests;
pub mod routing;
pub mod statements;
pub mod throttle;
pub mod usage;
pub mod views;
pub mod windows;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/logout-all", post(auth::logout_all))
        .route("/api/auth/password", post(auth::change_password))
        .route("/api/me", get(auth::me))
        .route("/api/groups", post(groups::create).get(groups::list))
        .route(
            "/api/groups/{id}",
            get(groups::get).patch(groups::patch).delete(groups::delete),
        )
        .route("/api/groups/{id}/members", get(groups::members))
        .route(
            "/api/groups/{id}/members/{user_id}",
            axum::routing::patch(groups::patch_member).delete(groups::remove_member),
        )
        .route("/api/groups/{id}/invitations", post(invitations::create))
        .route("/api/invitations/{token}", get(invitations::preview))
        .route("/api/invitations/{token}/accept", post(invitations::accept))
        .route(
            "/api/groups/{id}/accounts",
            post(accounts::create).get(accounts::list),
        )
        .route(
            "/api/accounts/{id}",
            get(accounts::get)
                .patch(accounts::patch)
                .delete(accounts::delete),
        )
        .route("/api/accounts/{id}/test", post(accounts::test))
        .route("/api/accounts/{id}/health", get(accounts::health))
        .route("/api/oauth/claude/start", post(oauth::start))
        .route("/api/oauth/claude/finish", post(oauth::finish))
        .route("/api/groups/{id}/routing", get(routing::routing))
        .route("/api/groups/{id}/windows", get(windows::windows))
        .route(
            "/api/groups/{id}/binding",
            put(binding::put).get(binding::get),
        )
        .route("/api/groups/{id}/keys", post(keys::create).get(keys::list))
        .route(
            "/api/keys/{id}",
            get(keys::get).patch(keys::patch).delete(keys::delete),
        )
        .route("/api/keys/{id}/rotate", post(keys::rotate))
        .route(
            "/api/groups/{id}/alerts",
            post(alerts::create_for_group).get(alerts::list_for_group),
        )
        .route(
            "/api/groups/{id}/alerts/{alert_id}",
            axum::routing::delete(alerts::delete_for_group),
        )
        .route(
            "/api/enterprises/{id}/alerts",
            post(alerts::create_for_enterprise).get(alerts::list_for_enterprise),
        )
        .route(
            "/api/enterprises/{id}/alerts/{alert_id}",
            axum::routing::delete(alerts::delete_for_enterprise),
        )
        .route("/api/groups/{id}/statements", get(statements::get))
        // `{month}.csv`: the router matches whole segments only.
        .route("/api/groups/{id}/statements/{file}", get(statements::csv))
        .route(
            "/api/groups/{id}/statements/{month}/close",
            post(statements::close),
        )
        .route("/api/usage", get(usage::report))
        .route("/api/requests", get(requests::list))
        .route("/api/usage/export.csv", get(usage::export_csv))
        .route(
            "/api/enterprises",
            post(enterprises::create).get(enterprises::list),
        )
        .route(
            "/api/enterprises/{id}",
            get(enterprises::get)
                .patch(enterprises::patch)
                .delete(enterprises::delete),
        )
        .route(
            "/api/enterprises/{id}/members",
            get(enterprises::members).post(enterprises::add_member),
        )
        .route(
            "/api/enterprises/{id}/members/{user_id}",
            axum::routing::patch(enterprises::patch_member).delete(enterprises::remove_member),
        )
        .route(
            "/api/enterprises/{id}/departments",
            post(departments::create).get(departments::tree),
        )
        .route(
            "/api/enterprises/{id}/accounts",
            post(enterprises::create_account).get(enterprises::list_accounts),
        )
        .route("/api/enterprises/{id}/events", get(events::list))
        .route(
            "/api/departments/{id}",
            get(departments::get)
                .patch(departments::patch)
                .delete(departments::delete),
        )
        .route("/api/departments/{id}/admins", post(departments::add_admin))
        .route(
            "/api/departments/{id}/admins/{user_id}",
            axum::routing::delete(departments::remove_admin),
        )
        .route("/api/audit", get(audit::list))
        .route("/api/openapi.json", get(openapi::document))
        .route("/invite/{token}", get(invitations::page))
}

/// Creates the configured system administrator on an empty database, and
/// the user the admin token acts as. See [`auth::bootstrap`].
pub async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    auth::bootstrap(state).await
}
