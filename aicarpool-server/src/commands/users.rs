//! `aicarpool admin create-user | reset-password | list-users`.
//!
//! Passwords are read from `AICARPOOL_NEW_PASSWORD` when it is set, else
//! from the first line of standard input, never from the command line
//! (where `ps` and shell history would show them). They must pass the
//! same strength check as the API's.

use std::io::BufRead;

use aicarpool_core::id::new_id;
use aicarpool_core::org::User;
use aicarpool_core::store::DynStore;
use anyhow::{bail, Context};
use chrono::Utc;

use crate::api::auth::{hash_password, personal_words};
use crate::api::input;

/// Where a new password comes from.
pub const PASSWORD_ENV: &str = "AICARPOOL_NEW_PASSWORD";

/// The new password: from [`PASSWORD_ENV`], else standard input's first
/// line.
pub fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password given: set {PASSWORD_ENV} or pipe it on standard input");
    }
    Ok(password)
}

/// Creates a user (a system administrator with `admin`) and prints its id.
pub async fn create_user(
    store: &DynStore,
    email: &str,
    name: Option<&str>,
    admin: bool,
    password: &str,
) -> anyhow::Result<User> {
    let email = input::email("email", email).map_err(|e| anyhow::anyhow!(e.message))?;
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    input::password("password", password, &personal_words(&email, &name))
        .map_err(|e| anyhow::anyhow!(e.message))?;
    if store.user_by_email(&email).await?.is_some() {
        bail!("a user with the email {email} exists already (reset-password changes its password)");
    }
    let user = User {
        id: new_id(),
        email,
        name,
        password_hash: hash_password(password.to_owned())
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?,
        is_system_admin: admin,
        created_at: Utc::now(),
    };
    store
        .create_user(&user)
        .await
        .context("creating the user")?;
    Ok(user)
}

/// Sets a user's password and ends every session they had; returns how
/// many sessions ended.
pub async fn reset_password(store: &DynStore, email: &str, password: &str) -> anyhow::Result<u64> {
    let Some(user) = store.user_by_email(email).await? else {
        bail!("no user has the email {email} (list-users shows them all)");
    };
    input::password(
        "password",
        password,
        &personal_words(&user.email, &user.name),
    )
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let hash = hash_password(password.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    store.set_password_hash(&user.id, &hash).await?;
    Ok(store.delete_user_sessions(&user.id, None).await?)
}

/// Every user as a table: id, email, admin, created, name.
pub async fn list_users(store: &DynStore) -> anyhow::Result<String> {
    let users = store.users().await?;
    let mut out = format!(
        "{:<26} {:<36} {:<5} {:<20} name\n",
        "id", "email", "admin", "created"
    );
    for u in &users {
        out.push_str(&format!(
            "{:<26} {:<36} {:<5} {:<20} {}\n",
            u.id,
            u.email,
            if u.is_system_admin { "yes" } else { "no" },
            u.created_at.format("%Y-%m-%d %H:%M UTC"),
            u.name.replace(['\n', '\r'], " "),
        ));
    }
    out.push_str(&format!("{} users\n", users.len()));
    Ok(out)
}
