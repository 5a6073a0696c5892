//! The rows of the permission matrix: identity, groups, invitations, accounts, keys, usage. Letters, one per role in
//! [`ROLES`](super::ROLES) order (anonymous, system admin, enterprise
//! owner, enterprise admin, department admin, group owner, group admin,
//! group member, outsider): A allowed, U 401, F 403, N 404 (not visible),
//! B 400, C 409. `own` targets the callers' universe, `other` a universe
//! where they hold no role.

use aicarpool_core::id::new_id;
use reqwest::Method;
use serde_json::json;

use super::{Call, Row, PASSWORD};

/// What every role but the system admin gets on another's resource.
pub const OTHER: &str = "UANNNNNNN";

mod enterprise;

/// Every row: identity, groups, invitations, accounts, keys, usage, then
/// enterprise mode.
pub fn all() -> Vec<Row> {
    let mut all = rows();
    all.extend(enterprise::rows());
    all
}

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            method: Method::POST,
            route: "/api/auth/register",
            note: "public; reaches validation",
            own: "BBBBBBBBB",
            other: "BBBBBBBBB",
            call: |_u| Call {
                path: "/api/auth/register".into(),
                body: Some(
                    json!({"email": format!("{}@perm.test", new_id().to_lowercase()), "password": "short", "name": "x"}),
                ),
            },
        },
        Row {
            method: Method::POST,
            route: "/api/auth/login",
            note: "public",
            own: "AAAAAAAAA",
            other: "AAAAAAAAA",
            call: |u| Call {
                path: "/api/auth/login".into(),
                body: Some(json!({"email": u.gm.email, "password": PASSWORD})),
            },
        },
        Row {
            method: Method::POST,
            route: "/api/auth/logout",
            note: "",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/auth/logout".into(),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/auth/logout-all",
            note: "",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/auth/logout-all".into(),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/auth/password",
            note: "the admin token's user has no password",
            own: "UUAAAAAAA",
            other: "UUAAAAAAA",
            call: |_u| Call {
                path: "/api/auth/password".into(),
                body: Some(json!({"current": PASSWORD, "new": "tangerine lighthouse orbit"})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/me",
            note: "",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/me".into(),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups",
            note: "in a department",
            own: "UAAAAFFFB",
            other: "UABBBBBBB",
            call: |u| Call {
                path: "/api/groups".into(),
                body: Some(json!({"name": "new", "departmentId": u.d2})),
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups",
            note: "carpool group",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/groups".into(),
                body: Some(json!({"name": "new"})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups",
            note: "",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/groups".into(),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}",
            note: "",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}", u.group),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/groups/{id}",
            note: "rename",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}", u.group),
                body: Some(json!({"name": "renamed"})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/groups/{id}",
            note: "move to D3",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}", u.group),
                body: Some(json!({"departmentId": u.d3})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/groups/{id}",
            note: "fair share and fare split",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}", u.group),
                body: Some(
                    json!({"fairShare": {"enabled": true, "engageAt": 0.7}, "fareSplit": {"equalPart": 0.5}}),
                ),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/groups/{id}",
            note: "",
            own: "UAAAFAFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/members",
            note: "",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/members", u.group),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/groups/{id}/members/{user_id}",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/members/{}", u.group, u.tm.id),
                body: Some(json!({"role": "admin"})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/groups/{id}/members/{user_id}",
            note: "share weight",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/members/{}", u.group, u.tm.id),
                body: Some(json!({"shareWeight": 3})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/groups/{id}/members/{user_id}",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/members/{}", u.group, u.tm.id),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups/{id}/invitations",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/invitations", u.group),
                body: Some(json!({})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/invitations/{token}",
            note: "public",
            own: "AAAAAAAAA",
            other: "AAAAAAAAA",
            call: |u| Call {
                path: format!("/api/invitations/{}", u.token),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/invitations/{token}/accept",
            note: "members already joined",
            own: "BAAAACCCA",
            other: "BAAAAAAAA",
            call: |u| Call {
                path: format!("/api/invitations/{}/accept", u.token),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/invite/{token}",
            note: "public page",
            own: "AAAAAAAAA",
            other: "AAAAAAAAA",
            call: |u| Call {
                path: format!("/invite/{}", u.token),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups/{id}/accounts",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/accounts", u.group),
                body: Some(
                    json!({"name": "k", "platform": "claude_api", "credentials": {"apiKey": "sk-ant-x"}}),
                ),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/accounts",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/accounts", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/accounts/{id}",
            note: "group account",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.group_account),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/accounts/{id}",
            note: "pool account bound to the group",
            own: "UAAAAAANN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.pool_account),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/accounts/{id}",
            note: "group account",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.group_account),
                body: Some(json!({"name": "renamed"})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/accounts/{id}",
            note: "pool account",
            own: "UAAAFFFNN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.pool_account),
                body: Some(json!({"name": "renamed"})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/accounts/{id}",
            note: "group account",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.group_account),
                body: None,
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/accounts/{id}",
            note: "pool account",
            own: "UAAAFFFNN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.pool_account),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/accounts/{id}/test",
            note: "group account",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}/test", u.group_account),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/accounts/{id}/test",
            note: "pool account",
            own: "UAAAFFFNN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}/test", u.pool_account),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/accounts/{id}/health",
            note: "group account",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}/health", u.group_account),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/accounts/{id}/health",
            note: "pool account",
            own: "UAAAAAANN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}/health", u.pool_account),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/oauth/claude/start",
            note: "for a group",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: "/api/oauth/claude/start".into(),
                body: Some(json!({"groupId": u.group})),
            },
        },
        Row {
            method: Method::POST,
            route: "/api/oauth/claude/start",
            note: "for an enterprise pool",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: "/api/oauth/claude/start".into(),
                body: Some(json!({"enterpriseId": u.enterprise})),
            },
        },
        Row {
            method: Method::POST,
            route: "/api/oauth/claude/finish",
            note: "a session nobody started",
            own: "UBBBBBBBB",
            other: "UBBBBBBBB",
            call: |_u| Call {
                path: "/api/oauth/claude/finish".into(),
                body: Some(json!({"sessionId": "nope", "code": "abc#def"})),
            },
        },
        Row {
            method: Method::PUT,
            route: "/api/groups/{id}/binding",
            note: "bind the pool",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/binding", u.group),
                body: Some(json!({"mode": "shared", "accounts": [{"accountId": u.pool_account}]})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/binding",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/binding", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/windows",
            note: "members see their own line",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/windows", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/routing",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/routing", u.group),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups/{id}/keys",
            note: "keys are for members",
            own: "UBBBBAAAN",
            other: "UBNNNNNNN",
            call: |u| Call {
                path: format!("/api/groups/{}/keys", u.group),
                body: Some(json!({})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/keys",
            note: "",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/keys", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/keys/{id}",
            note: "the member's key",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/keys/{}", u.key),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/keys/{id}",
            note: "the member's key",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/keys/{}", u.key),
                body: Some(json!({"name": "renamed"})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/keys/{id}",
            note: "the member's key",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/keys/{}", u.key),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/keys/{id}/rotate",
            note: "the member's key",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/keys/{}/rotate", u.key),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/usage",
            note: "scope=group",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/usage?scope=group&id={}", u.group),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups/{id}/alerts",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/alerts", u.group),
                body: Some(json!({"kind": "account", "target": "https://hooks.example.com/x"})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/alerts",
            note: "",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/alerts", u.group),
                body: None,
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/groups/{id}/alerts/{alert_id}",
            note: "an unknown rule: 404 once the caller may manage the group",
            own: "UNNNNNNFN",
            other: "UNNNNNNNN",
            call: |u| Call {
                path: format!("/api/groups/{}/alerts/{}", u.group, new_id()),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/requests",
            note: "scope=group",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/requests?scope=group&id={}", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/usage/export.csv",
            note: "scope=group",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/usage/export.csv?scope=group&id={}", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/statements",
            note: "a plain member sees their own line",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/statements?month={}", u.group, this_month()),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/groups/{id}/statements/{file}",
            note: "{month}.csv",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/statements/{}.csv", u.group, this_month()),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/groups/{id}/statements/{month}/close",
            note: "owners close early",
            own: "UAAAFAFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/groups/{}/statements/{}/close", u.group, this_month()),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/accounts/{id}",
            note: "fee of a group account",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.group_account),
                body: Some(json!({"fee": {"amountUsd": 200, "period": "month"}})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/accounts/{id}",
            note: "fee of a pool account",
            own: "UAAAFFFNN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/accounts/{}", u.pool_account),
                body: Some(json!({"fee": null})),
            },
        },
    ]
}

/// The month now, in the test server's time zone (UTC).
fn this_month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}
