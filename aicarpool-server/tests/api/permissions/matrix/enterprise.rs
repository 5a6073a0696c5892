//! The rows of the permission matrix of enterprise mode: enterprises, departments, their
//! usage, the audit log and the OpenAPI document. Letters, one per role in
//! [`ROLES`](super::ROLES) order (anonymous, system admin, enterprise
//! owner, enterprise admin, department admin, group owner, group admin,
//! group member, outsider): A allowed, U 401, F 403, N 404 (not visible),
//! B 400, C 409. `own` targets the callers' universe, `other` a universe
//! where they hold no role.

use reqwest::Method;
use serde_json::json;

use super::super::{Call, Row};
use super::OTHER;

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            method: Method::GET,
            route: "/api/usage",
            note: "scope=department",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/usage?scope=department&id={}", u.d2),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/usage",
            note: "scope=enterprise",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/usage?scope=enterprise&id={}", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/enterprises",
            note: "",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/enterprises".into(),
                body: Some(json!({"name": "new"})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises",
            note: "",
            own: "UAAAAAAAA",
            other: "UAAAAAAAA",
            call: |_u| Call {
                path: "/api/enterprises".into(),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises/{id}",
            note: "",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/enterprises/{id}",
            note: "rename",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}", u.enterprise),
                body: Some(json!({"name": "renamed"})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/enterprises/{id}",
            note: "budget",
            own: "UAAFFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}", u.enterprise),
                body: Some(json!({"monthlyBudgetUsd": 100})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/enterprises/{id}",
            note: "",
            own: "UAAFFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises/{id}/members",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/members", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/enterprises/{id}/members",
            note: "",
            own: "UAAFFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/members", u.enterprise),
                body: Some(json!({"userId": u.tm.id, "role": "admin"})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/enterprises/{id}/members/{user_id}",
            note: "",
            own: "UAAFFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/members/{}", u.enterprise, u.ea.id),
                body: Some(json!({"role": "owner"})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/enterprises/{id}/members/{user_id}",
            note: "",
            own: "UAAFFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/members/{}", u.enterprise, u.ea.id),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/enterprises/{id}/departments",
            note: "top level",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/departments", u.enterprise),
                body: Some(json!({"name": "new"})),
            },
        },
        Row {
            method: Method::POST,
            route: "/api/enterprises/{id}/departments",
            note: "under D1",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/departments", u.enterprise),
                body: Some(json!({"name": "new", "parentId": u.d1})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises/{id}/departments",
            note: "",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/departments", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/enterprises/{id}/accounts",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/accounts", u.enterprise),
                body: Some(
                    json!({"name": "k", "platform": "claude_api", "credentials": {"apiKey": "sk-ant-x"}}),
                ),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises/{id}/accounts",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/accounts", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/enterprises/{id}/alerts",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/alerts", u.enterprise),
                body: Some(json!({"kind": "budget", "target": "https://hooks.example.com/x"})),
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises/{id}/alerts",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/alerts", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/enterprises/{id}/alerts/{alert_id}",
            note: "an unknown rule: 404 once the caller may manage the enterprise",
            own: "UNNNFFFFN",
            other: "UNNNNNNNN",
            call: |u| Call {
                path: format!(
                    "/api/enterprises/{}/alerts/{}",
                    u.enterprise,
                    aicarpool_core::id::new_id()
                ),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/enterprises/{id}/events",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/enterprises/{}/events", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/departments/{id}",
            note: "",
            own: "UAAAAAAAN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}", u.d2),
                body: None,
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/departments/{id}",
            note: "rename own department",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}", u.d1),
                body: Some(json!({"name": "renamed"})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/departments/{id}",
            note: "budget of own department",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}", u.d1),
                body: Some(json!({"monthlyBudgetUsd": 5})),
            },
        },
        Row {
            method: Method::PATCH,
            route: "/api/departments/{id}",
            note: "budget below own department",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}", u.d2),
                body: Some(json!({"monthlyBudgetUsd": 5})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/departments/{id}",
            note: "empty leaf D3",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}", u.d3),
                body: None,
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/departments/{id}",
            note: "D1 is not empty",
            own: "UCCCFFFFN",
            other: "UCNNNNNNN",
            call: |u| Call {
                path: format!("/api/departments/{}", u.d1),
                body: None,
            },
        },
        Row {
            method: Method::POST,
            route: "/api/departments/{id}/admins",
            note: "",
            own: "UAAAAFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}/admins", u.d2),
                body: Some(json!({"userId": u.tm.id})),
            },
        },
        Row {
            method: Method::DELETE,
            route: "/api/departments/{id}/admins/{user_id}",
            note: "",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/departments/{}/admins/{}", u.d1, u.da.id),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/audit",
            note: "enterpriseId",
            own: "UAAAFFFFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/audit?enterpriseId={}", u.enterprise),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/audit",
            note: "groupId",
            own: "UAAAAAAFN",
            other: OTHER,
            call: |u| Call {
                path: format!("/api/audit?groupId={}", u.group),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/audit",
            note: "no filter: system admins only",
            own: "UABBBBBBB",
            other: "UABBBBBBB",
            call: |_u| Call {
                path: "/api/audit".into(),
                body: None,
            },
        },
        Row {
            method: Method::GET,
            route: "/api/openapi.json",
            note: "public",
            own: "AAAAAAAAA",
            other: "AAAAAAAAA",
            call: |_u| Call {
                path: "/api/openapi.json".into(),
                body: None,
            },
        },
    ]
}
