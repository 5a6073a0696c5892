//! The management API: identity, groups, invitations, accounts, bindings,
//! member keys and usage, called over HTTP; one module per area, sharing
//! the set-up helpers below.

use aicarpool_core::key::KeyHash;
use aicarpool_core::org::{GroupRole, Invitation};
use aicarpool_core::usage::{Accuracy, Usage, UsageRecord};
use aicarpool_server::api::caller::sha256_hex;
use aicarpool_server::ServeConfig;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, TestServer, ADMIN_TOKEN};

mod accounts;
mod binding;
mod groups;
mod identity;
mod invitations;
mod keys;
mod usage;

const PASSWORD: &str = "correct horse battery";

/// Creates a group as `token`; returns its id.
async fn group(s: &TestServer, token: &str, name: &str) -> String {
    let (st, body) = s.post("/api/groups", token, json!({"name": name})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Invites and accepts as a logged-in user with `role`.
async fn join(s: &TestServer, owner: &str, group_id: &str, token: &str, role: &str) {
    let (st, inv) = s
        .post(
            &format!("/api/groups/{group_id}/invitations"),
            owner,
            json!({"role": role}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let t = inv["token"].as_str().unwrap();
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{t}/accept"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

/// A group owned by a new user, with an admin and a member in it.
struct Team {
    group: String,
    owner: (String, String),
    admin: (String, String),
    member: (String, String),
}

async fn team(s: &TestServer, tag: &str) -> Team {
    let owner = s.register(&format!("owner-{tag}@example.com")).await;
    let admin = s.register(&format!("admin-{tag}@example.com")).await;
    let member = s.register(&format!("member-{tag}@example.com")).await;
    let group = group(s, &owner.1, &format!("team {tag}")).await;
    join(s, &owner.1, &group, &admin.1, "admin").await;
    join(s, &owner.1, &group, &member.1, "member").await;
    Team {
        group,
        owner,
        admin,
        member,
    }
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
}
