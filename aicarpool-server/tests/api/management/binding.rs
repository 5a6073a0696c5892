//! Bindings of accounts to a group, and dedicated accounts that only one group may bind.

use super::*;

#[tokio::test]
async fn binding_put_get_and_dedicated_conflicts() {
    let s = support::spawn().await;
    let t = team(&s, "bind").await;
    let owner = &t.owner.1;
    let g1 = &t.group;
    let g2 = group(&s, owner, "second").await;
    let mk = |name: &str, prio: i32| json!({"name": name, "platform": "claude_api", "credentials": {"apiKey": "k"}, "priority": prio});
    let (_, a1) = s
        .post(&format!("/api/groups/{g1}/accounts"), owner, mk("a1", 20))
        .await;
    let (_, a2) = s
        .post(&format!("/api/groups/{g1}/accounts"), owner, mk("a2", 10))
        .await;
    let (a1, a2) = (a1["id"].as_str().unwrap(), a2["id"].as_str().unwrap());

    // Implicit default: the group's own accounts, by priority.
    let (st, b) = s.get(&format!("/api/groups/{g1}/binding"), owner).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["implicit"], true);
    assert_eq!(b["mode"], "shared");
    assert_eq!(b["accounts"][0]["accountId"], a2);
    assert_eq!(b["accounts"][1]["accountId"], a1);
    let (st, _) = s
        .get(&format!("/api/groups/{g1}/binding"), &t.member.1)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let put = json!({"mode": "hybrid", "accounts": [
        {"accountId": a1, "priority": 1},
        {"accountId": a2, "dedicated": false, "weight": 2}
    ]});
    let (st, b) = s
        .put(&format!("/api/groups/{g1}/binding"), &t.admin.1, put)
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["implicit"], false);
    assert_eq!(b["accounts"][0]["dedicated"], true);
    assert_eq!(b["accounts"][0]["priority"], 1);
    assert_eq!(b["accounts"][1]["dedicated"], false);
    let (_, got) = s.get(&format!("/api/groups/{g1}/binding"), owner).await;
    assert_eq!(got, b);

    // a1 is dedicated to g1: g2 cannot bind it; a2 is shared: g2 may.
    let (st, body) = s
        .put(
            &format!("/api/groups/{g2}/binding"),
            owner,
            json!({"mode": "shared", "accounts": [{"accountId": a1}]}),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, a1);
    let (st, body) = s
        .put(
            &format!("/api/groups/{g2}/binding"),
            owner,
            json!({"mode": "shared", "accounts": [{"accountId": a2}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // …and now g1 cannot make a2 dedicated.
    let (st, body) = s
        .put(
            &format!("/api/groups/{g1}/binding"),
            owner,
            json!({"mode": "dedicated", "accounts": [{"accountId": a1}, {"accountId": a2}]}),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, a2);

    // Bad bodies.
    for (body, needle, want) in [
        (
            json!({"mode": "solo", "accounts": []}),
            "mode",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"mode": "shared", "accounts": [{"accountId": a1}, {"accountId": a1}]}),
            "twice",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"mode": "shared", "accounts": [{"accountId": "missing"}]}),
            "accounts[0].accountId",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, resp) = s
            .put(&format!("/api/groups/{g1}/binding"), owner, body)
            .await;
        assert_error(st, &resp, want, needle);
    }
    // An account of a group the caller does not manage cannot be bound.
    let (_, other) = s.register("other-bind@example.com").await;
    let g3 = group(&s, &other, "third").await;
    let (st, body) = s
        .put(
            &format!("/api/groups/{g3}/binding"),
            &other,
            json!({"mode": "shared", "accounts": [{"accountId": a2}]}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, a2);
}
