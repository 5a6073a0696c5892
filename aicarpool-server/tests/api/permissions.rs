//! The permission matrix: every management route × every role × the
//! caller's own resource and another's, each answer checked against the
//! table in [`matrix`].
//!
//! Each case runs against a fresh world (so deletes and role changes do not
//! leak into the next case): two enterprise "universes", the callers
//! holding roles only in the first. The route list is read from the
//! router's source, so adding a route without a row (or leaving a row for
//! a route that is gone) fails [`every_route_has_a_row`].

use std::collections::BTreeSet;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform};
use aicarpool_core::binding::{Binding, BindingMode, BoundAccount};
use aicarpool_core::enterprise::{
    Budget, Department, DepartmentAdmin, Enterprise, EnterpriseMember, EnterpriseRole,
};
use aicarpool_core::id::new_id;
use aicarpool_core::key::{KeyRecord, MemberKey, Service};
use aicarpool_core::org::{Group, GroupRole, Invitation, InvitationTarget, Membership, User};
use aicarpool_server::api::caller::{new_session, random_token, sha256_hex};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{self, TestServer, ADMIN_TOKEN};

mod matrix;

pub use matrix::all as rows;

/// The callers, in the order of the letters of a row.
pub const ROLES: [&str; 9] = [
    "anonymous",
    "system admin",
    "enterprise owner",
    "enterprise admin",
    "department admin",
    "group owner",
    "group admin",
    "group member",
    "outsider",
];

/// The password of every user of a world.
pub const PASSWORD: &str = "correct horse battery";

/// One enterprise with its tree, a group, accounts, a key and an invitation.
///
/// D1 (root, administered by `da`) ⊃ D2 ⊃ D3 (empty leaf); the group G is
/// in D2. P is a pool account bound to G; GA is G's own account; K is the
/// group member's key; T is an open invitation to G; `tm` is one more
/// plain member of G, the target of member changes.
#[derive(Debug)]
pub struct Universe {
    pub enterprise: String,
    pub d1: String,
    pub d2: String,
    pub d3: String,
    pub group: String,
    pub pool_account: String,
    pub group_account: String,
    pub key: String,
    pub token: String,
    /// User ids: enterprise owner, enterprise admin, department admin,
    /// group owner, group admin, group member, outsider, target member.
    pub eo: User,
    pub ea: User,
    pub da: User,
    pub go: User,
    pub ga: User,
    pub gm: User,
    pub out: User,
    pub tm: User,
}

/// Two universes; callers are the users of `own`.
#[derive(Debug)]
pub struct World {
    pub own: Universe,
    pub other: Universe,
}

/// What a row asks: path (with query) and body.
#[derive(Debug)]
pub struct Call {
    pub path: String,
    pub body: Option<Value>,
}

/// A row of the matrix.
pub struct Row {
    pub method: Method,
    /// The route as written in the router (`/api/groups/{id}`).
    pub route: &'static str,
    /// What the row checks, when a route has several rows.
    pub note: &'static str,
    /// One letter per role in [`ROLES`] order: A allowed (2xx), U 401,
    /// F 403, N 404, B 400, C 409.
    pub own: &'static str,
    pub other: &'static str,
    pub call: fn(&Universe) -> Call,
}

pub async fn user(s: &TestServer, hash: &str) -> User {
    let id = new_id();
    let u = User {
        email: format!("{}@perm.test", id.to_lowercase()),
        name: format!("user {id}"),
        id,
        password_hash: hash.to_owned(),
        is_system_admin: false,
        created_at: Utc::now(),
    };
    s.state.store.create_user(&u).await.unwrap();
    u
}

fn member(group: &str, user: &str, role: GroupRole) -> Membership {
    Membership {
        group_id: group.to_owned(),
        user_id: user.to_owned(),
        role,
        share_weight: aicarpool_core::carpool::DEFAULT_SHARE_WEIGHT,
        joined_at: Utc::now(),
    }
}

fn account(s: &TestServer, owner: AccountOwner) -> Account {
    let id = new_id();
    let creds = Credentials {
        api_key: Some("sk-ant-permission-matrix".into()),
        ..Default::default()
    };
    let now = Utc::now();
    Account {
        credentials: s.state.sealer.seal(&id, &creds).unwrap(),
        id,
        name: "acct".into(),
        platform: Platform::ClaudeApi,
        preset: None,
        // Nothing listens there: `test` fails fast.
        base_url: Some("http://127.0.0.1:1".into()),
        owner,
        models: vec![],
        model_map: Default::default(),
        serves: Vec::new(),
        priority: 50,
        weight: 1,
        max_concurrency: None,
        proxy: None,
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}

fn department(enterprise: &str, parent: Option<&str>) -> Department {
    Department {
        id: new_id(),
        enterprise_id: enterprise.to_owned(),
        parent_id: parent.map(str::to_owned),
        name: "dept".into(),
        budget: Budget::default(),
        created_at: Utc::now(),
    }
}

/// Builds one universe straight in the store (no password hashing per
/// user: every user shares `hash`).
pub async fn universe(s: &TestServer, hash: &str) -> Universe {
    let store = &s.state.store;
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(user(s, hash).await);
    }
    let [eo, ea, da, go, ga, gm, out, tm]: [User; 8] = users.try_into().unwrap();
    let now = Utc::now();
    let e = Enterprise {
        id: new_id(),
        name: "ent".into(),
        budget: Budget::default(),
        created_by: eo.id.clone(),
        created_at: now,
    };
    let em = |u: &User, role| EnterpriseMember {
        enterprise_id: e.id.clone(),
        user_id: u.id.clone(),
        role,
        added_at: now,
    };
    store
        .create_enterprise(&e, &em(&eo, EnterpriseRole::Owner))
        .await
        .unwrap();
    store
        .put_enterprise_member(&em(&ea, EnterpriseRole::Admin))
        .await
        .unwrap();
    let d1 = department(&e.id, None);
    let d2 = department(&e.id, Some(&d1.id));
    let d3 = department(&e.id, Some(&d2.id));
    for d in [&d1, &d2, &d3] {
        store.create_department(d).await.unwrap();
    }
    store
        .add_department_admin(&DepartmentAdmin {
            department_id: d1.id.clone(),
            user_id: da.id.clone(),
            added_at: now,
        })
        .await
        .unwrap();
    let g = Group {
        id: new_id(),
        name: "grp".into(),
        enterprise_id: Some(e.id.clone()),
        department_id: Some(d2.id.clone()),
        max_members: None,
        limits: Default::default(),
        fair_share: Default::default(),
        fare_split: Default::default(),
        created_by: go.id.clone(),
        created_at: now,
    };
    store
        .create_group(&g, &member(&g.id, &go.id, GroupRole::Owner))
        .await
        .unwrap();
    for (u, r) in [
        (&ga, GroupRole::Admin),
        (&gm, GroupRole::Member),
        (&tm, GroupRole::Member),
    ] {
        store
            .add_member(&member(&g.id, &u.id, r), None)
            .await
            .unwrap();
    }
    let pool = account(s, AccountOwner::Enterprise(e.id.clone()));
    let own = account(s, AccountOwner::Group(g.id.clone()));
    store.create_account(&pool).await.unwrap();
    store.create_account(&own).await.unwrap();
    store
        .put_binding(&Binding {
            group_id: g.id.clone(),
            mode: BindingMode::Shared,
            accounts: vec![BoundAccount {
                account_id: pool.id.clone(),
                priority: None,
                weight: None,
                dedicated: false,
            }],
        })
        .await
        .unwrap();
    let mk = MemberKey::generate(&g.id, &gm.id);
    let key = KeyRecord {
        id: new_id(),
        group_id: g.id.clone(),
        user_id: gm.id.clone(),
        name: "laptop".into(),
        key_hash: Some(mk.hash()),
        hint: mk.hint(),
        enabled: true,
        expires_at: None,
        services: Service::ALL.to_vec(),
        models: vec![],
        clients: vec![],
        limits: Default::default(),
        created_at: now,
        updated_at: now,
    };
    store.create_key(&key).await.unwrap();
    let token = random_token();
    store
        .create_invitation(&Invitation {
            id: new_id(),
            target: InvitationTarget::Group {
                group_id: g.id.clone(),
                role: GroupRole::Member,
            },
            token_hash: sha256_hex(&token),
            email: None,
            max_uses: None,
            uses: 0,
            expires_at: now + Duration::days(1),
            created_by: go.id.clone(),
            created_at: now,
        })
        .await
        .unwrap();
    Universe {
        enterprise: e.id,
        d1: d1.id,
        d2: d2.id,
        d3: d3.id,
        group: g.id,
        pool_account: pool.id,
        group_account: own.id,
        key: key.id,
        token,
        eo,
        ea,
        da,
        go,
        ga,
        gm,
        out,
        tm,
    }
}

/// The bearer token of role `i` (in [`ROLES`] order) in `u`.
async fn token_of(s: &TestServer, u: &Universe, i: usize) -> Option<String> {
    let user = match i {
        0 => return None,
        1 => return Some(ADMIN_TOKEN.to_owned()),
        2 => &u.eo,
        3 => &u.ea,
        4 => &u.da,
        5 => &u.go,
        6 => &u.ga,
        7 => &u.gm,
        _ => &u.out,
    };
    Some(new_session(&s.state, &user.id).await.unwrap())
}

fn matches(letter: char, status: StatusCode) -> bool {
    match letter {
        'A' => status.is_success(),
        'U' => status == StatusCode::UNAUTHORIZED,
        'F' => status == StatusCode::FORBIDDEN,
        'N' => status == StatusCode::NOT_FOUND,
        'B' => status == StatusCode::BAD_REQUEST,
        'C' => status == StatusCode::CONFLICT,
        _ => false,
    }
}

/// `(METHOD, path)` of every route in the management router's source.
pub fn router_routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../../src/api.rs");
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let Some(q0) = rest.find('"') else { break };
        let Some(q1) = rest[q0 + 1..].find('"') else {
            break;
        };
        let path = &rest[q0 + 1..q0 + 1 + q1];
        // The handlers: up to the parenthesis closing `.route(`.
        let mut depth = 1;
        let mut end = rest.len();
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let handlers = &rest[q0 + 1 + q1..end];
        for m in ["get", "post", "put", "patch", "delete"] {
            let n = handlers.matches(&format!("{m}(")).count();
            let prefixed = handlers.matches(&format!("_{m}(")).count();
            if n > prefixed {
                out.insert((m.to_uppercase(), path.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_route_has_a_row() {
    let routes = router_routes();
    assert!(routes.len() > 40, "the route parser found only {routes:?}");
    let covered: BTreeSet<(String, String)> = rows()
        .iter()
        .map(|r| (r.method.to_string(), r.route.to_owned()))
        .collect();
    let missing: Vec<_> = routes.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the permission matrix: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for routes that do not exist: {stale:?}"
    );
    for r in rows() {
        for s in [r.own, r.other] {
            assert_eq!(
                s.len(),
                ROLES.len(),
                "{} {} {}: one letter per role",
                r.method,
                r.route,
                r.note
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_holds() {
    let s = support::spawn().await;
    let hash = aicarpool_server::api::auth::hash_password(PASSWORD.into())
        .await
        .unwrap();
    let mut failures = Vec::new();
    let mut cases = 0;
    for row in rows() {
        for (side, letters) in [("own", row.own), ("other", row.other)] {
            for (i, letter) in letters.chars().enumerate() {
                let world = World {
                    own: universe(&s, &hash).await,
                    other: universe(&s, &hash).await,
                };
                let target = if side == "own" {
                    &world.own
                } else {
                    &world.other
                };
                let call = (row.call)(target);
                let token = token_of(&s, &world.own, i).await;
                let (status, body) = s
                    .call(row.method.clone(), &call.path, token.as_deref(), call.body)
                    .await;
                cases += 1;
                if !matches(letter, status) {
                    failures.push(format!(
                        "{} {} [{}] as {} on {side}: want {letter}, got {status}: {body}",
                        row.method, row.route, row.note, ROLES[i]
                    ));
                }
            }
        }
    }
    assert!(cases > 800, "only {cases} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
