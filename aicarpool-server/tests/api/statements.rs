//! Monthly statements over HTTP: fees set and prorated, the split by
//! `equalPart`, a fee shared between groups, pass-through cost, what a
//! member sees, the CSV, closing (on the first read after the month, or
//! early by an owner) and two instances closing one month together.

use aicarpool_core::binding::{Binding, BindingMode, BoundAccount};
use aicarpool_core::fare::{Fee, FeeChange, Month};
use aicarpool_core::id::new_id;
use aicarpool_core::org::{GroupRole, Membership};
use aicarpool_core::usage::{Usage, UsageRecord};
use aicarpool_server::ServeConfig;
use aicarpool_testkit::MockUpstream;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{self, spawn, TestServer, ADMIN_TOKEN};

const USD: i64 = 1_000_000;

/// A group of an owner and `n` plain members: (group id, [(user id,
/// token)], owner first).
async fn team(s: &TestServer, n: usize) -> (String, Vec<(String, String)>) {
    let mail = |who: &str| format!("{who}-{}@fares.test", new_id().to_lowercase());
    let owner = s.register(&mail("owner")).await;
    let (status, group) = s
        .post("/api/groups", &owner.1, json!({"name": "fare team"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let mut people = vec![owner];
    for i in 0..n {
        let (id, token) = s.register(&mail(&format!("member{i}"))).await;
        let m = Membership {
            group_id: group_id.clone(),
            user_id: id.clone(),
            role: GroupRole::Member,
            share_weight: 1,
            joined_at: Utc::now(),
        };
        s.state.store.add_member(&m, None).await.unwrap();
        people.push((id, token));
    }
    (group_id, people)
}

/// A group account at `base_url`; returns its id.
async fn account(s: &TestServer, token: &str, group: &str, name: &str, base_url: &str) -> String {
    let (status, a) = s
        .post(
            &format!("/api/groups/{group}/accounts"),
            token,
            json!({"name": name, "platform": "claude_api", "baseUrl": base_url,
                   "credentials": {"apiKey": "sk-ant-fares"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    assert_eq!(a["fee"], Value::Null);
    a["id"].as_str().unwrap().to_owned()
}

/// A fee of `usd` dollars from `from` on, written to the store (the API
/// sets fees from today only).
async fn fee_from(s: &TestServer, account: &str, from: NaiveDate, usd: Option<i64>) {
    let change = FeeChange {
        from,
        fee: usd.map(|d| Fee::monthly(d * USD)),
    };
    s.state.store.set_fee(account, &change).await.unwrap();
}

fn used(group: &str, user: &str, account: &str, at: DateTime<Utc>, cost: i64) -> UsageRecord {
    UsageRecord {
        at,
        key_id: format!("key-{user}"),
        account_id: Some(account.to_owned()),
        latency_ms: 1,
        attempts: 1,
        ..UsageRecord::new("", user, group, "claude-sonnet-4-5", usage(100, 20), cost)
    }
}

fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
    Usage {
        input_tokens,
        output_tokens,
        ..Usage::default()
    }
}

async fn insert(s: &TestServer, records: Vec<UsageRecord>) {
    s.state.store.insert_usage(&records).await.unwrap();
}

async fn statement(s: &TestServer, token: &str, group: &str, month: &str) -> Value {
    let (status, body) = s
        .get(
            &format!("/api/groups/{group}/statements?month={month}"),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Dollars as cents, exactly (the answer has two places).
fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 100.0).round() as i64
}

fn line<'a>(s: &'a Value, user: &str) -> &'a Value {
    s["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == user)
        .unwrap_or_else(|| panic!("no line for {user}: {s}"))
}

/// Members' fee shares add up to the fee parts; lines to the totals.
fn assert_adds_up(s: &Value) {
    let members = s["members"].as_array().unwrap();
    let sum = |f: &str| members.iter().map(|m| cents(&m[f])).sum::<i64>();
    let t = &s["totalsUsd"];
    assert_eq!(sum("feeShareUsd"), cents(&t["feeShareUsd"]), "{s}");
    assert_eq!(sum("passThroughUsd"), cents(&t["passThroughUsd"]), "{s}");
    assert_eq!(sum("totalUsd"), sum("feeShareUsd") + sum("passThroughUsd"));
    let parts: i64 = s["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| cents(&a["groupPartUsd"]))
        .sum();
    assert_eq!(parts, cents(&t["totalUsd"]), "{s}");
    assert_eq!(
        cents(&t["totalUsd"]),
        sum("totalUsd") + cents(&t["unassignedUsd"])
    );
}

fn this_month() -> Month {
    Month::at(Utc::now(), &Utc)
}

#[tokio::test]
async fn a_fee_changed_mid_month_is_prorated_and_the_ended_month_closes_on_first_read() {
    let s = spawn().await;
    let (g, people) = team(&s, 2).await;
    let owner = &people[0].1;
    let max = account(&s, owner, &g, "Claude Max", "http://127.0.0.1:9").await;
    // June 2024: $300 for 15 days, then $150 for 15 days: $225.
    let day = |d| NaiveDate::from_ymd_opt(2024, 6, d).unwrap();
    fee_from(
        &s,
        &max,
        NaiveDate::from_ymd_opt(2024, 5, 3).unwrap(),
        Some(300),
    )
    .await;
    fee_from(&s, &max, day(16), Some(150)).await;
    fee_from(&s, &max, NaiveDate::from_ymd_opt(2024, 7, 1).unwrap(), None).await;
    let at = Utc.with_ymd_and_hms(2024, 6, 10, 12, 0, 0).unwrap();
    let (a, b) = (&people[1].0, &people[2].0);
    insert(
        &s,
        vec![
            used(&g, a, &max, at, 2 * USD),
            used(&g, b, &max, at, USD),
            // Outside June: not in its statement.
            used(
                &g,
                b,
                &max,
                Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap(),
                50 * USD,
            ),
        ],
    )
    .await;
    let june = statement(&s, owner, &g, "2024-06").await;
    assert_eq!(june["month"], "2024-06");
    assert_eq!(june["closed"], true, "an ended month is stored when read");
    assert_eq!(june["accounts"][0]["name"], "Claude Max");
    assert_eq!(cents(&june["accounts"][0]["feeUsd"]), 22_500);
    assert_eq!(cents(&june["accounts"][0]["groupPartUsd"]), 22_500);
    assert_eq!(cents(&june["accounts"][0]["usageUsd"]), 300);
    // equalPart 0 (the default): by use, 2 : 1.
    assert_eq!(cents(&line(&june, a)["feeShareUsd"]), 15_000);
    assert_eq!(cents(&line(&june, b)["feeShareUsd"]), 7_500);
    assert_eq!(line(&june, b)["requests"], 1);
    assert_eq!(line(&june, a)["inputTokens"], 100);
    assert_eq!(cents(&line(&june, &people[0].0)["totalUsd"]), 0);
    assert_adds_up(&june);
    // July has no fee: the account passes its cost through.
    let july = statement(&s, owner, &g, "2024-07").await;
    assert_eq!(july["accounts"][0]["feeUsd"], Value::Null);
    assert_eq!(cents(&line(&july, b)["passThroughUsd"]), 5_000);
    assert_adds_up(&july);
}

#[tokio::test]
async fn equal_part_zero_half_and_one_split_the_fee() {
    let s = spawn().await;
    let (g, people) = team(&s, 3).await;
    let owner = &people[0].1;
    let max = account(&s, owner, &g, "Claude Max", "http://127.0.0.1:9").await;
    let month = this_month();
    fee_from(&s, &max, month.first_day(), Some(90)).await;
    let (a, b, c) = (&people[1].0, &people[2].0, &people[3].0);
    let now = Utc::now();
    let mut failed = used(&g, c, &max, now, 0);
    failed.status = 529;
    insert(
        &s,
        vec![
            used(&g, a, &max, now, 3 * USD),
            used(&g, b, &max, now, USD),
            // A failed request does not make a member active.
            failed,
        ],
    )
    .await;
    let m = month.to_string();
    for (equal, a_cents, b_cents) in [
        (0.0, 6_750, 2_250),
        (0.5, 5_625, 3_375),
        (1.0, 4_500, 4_500),
    ] {
        let (status, body) = s
            .patch(
                &format!("/api/groups/{g}"),
                owner,
                json!({"fareSplit": {"equalPart": equal}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let st = statement(&s, owner, &g, &m).await;
        assert_eq!(st["closed"], false, "the current month stays open");
        assert_eq!(
            cents(&line(&st, a)["feeShareUsd"]),
            a_cents,
            "equalPart {equal}"
        );
        assert_eq!(
            cents(&line(&st, b)["feeShareUsd"]),
            b_cents,
            "equalPart {equal}"
        );
        assert_eq!(cents(&line(&st, c)["feeShareUsd"]), 0);
        assert_adds_up(&st);
    }
}

#[tokio::test]
async fn a_fee_account_shared_by_two_groups_is_split_by_their_use_and_shares_add_up_to_the_cent() {
    let s = spawn().await;
    let (g1, first) = team(&s, 2).await;
    let (g2, second) = team(&s, 1).await;
    let shared = account(&s, &first[0].1, &g1, "Shared Max", "http://127.0.0.1:9").await;
    // Both groups draw on it: not dedicated to its owner any more.
    for g in [&g1, &g2] {
        let binding = Binding {
            group_id: g.clone(),
            mode: BindingMode::Shared,
            accounts: vec![BoundAccount {
                account_id: shared.clone(),
                priority: None,
                weight: None,
                dedicated: false,
            }],
        };
        s.state.store.put_binding(&binding).await.unwrap();
    }
    let month = this_month();
    fee_from(&s, &shared, month.first_day(), Some(100)).await;
    let now = Utc::now();
    // Group 1: 1 unit over three uneven members; group 2: 2 units.
    insert(
        &s,
        vec![
            used(&g1, &first[0].0, &shared, now, 333_333),
            used(&g1, &first[1].0, &shared, now, 333_333),
            used(&g1, &first[2].0, &shared, now, 333_334),
            used(&g2, &second[1].0, &shared, now, 2 * USD),
        ],
    )
    .await;
    let m = month.to_string();
    let one = statement(&s, &first[0].1, &g1, &m).await;
    let two = statement(&s, &second[0].1, &g2, &m).await;
    assert_eq!(cents(&one["accounts"][0]["feeUsd"]), 10_000);
    let (p1, p2) = (
        cents(&one["accounts"][0]["groupPartUsd"]),
        cents(&two["accounts"][0]["groupPartUsd"]),
    );
    assert_eq!((p1, p2), (3_333, 6_667), "by use, and the cents add up");
    // 33.33 over three equal users: the cents go by largest remainder.
    let shares: Vec<i64> = first
        .iter()
        .map(|(id, _)| cents(&line(&one, id)["feeShareUsd"]))
        .collect();
    assert_eq!(shares.iter().sum::<i64>(), 3_333);
    assert!(
        shares.iter().all(|c| (1_111..=1_112).contains(c)),
        "{shares:?}"
    );
    assert_eq!(cents(&line(&two, &second[1].0)["feeShareUsd"]), 6_667);
    assert_adds_up(&one);
    assert_adds_up(&two);
}

#[tokio::test]
async fn accounts_without_a_fee_pass_their_cost_through() {
    let s = spawn().await;
    let (g, people) = team(&s, 1).await;
    let owner = &people[0].1;
    let api = account(&s, owner, &g, "API key", "http://127.0.0.1:9").await;
    let now = Utc::now();
    insert(
        &s,
        vec![
            used(&g, &people[0].0, &api, now, 1_234_567),
            used(&g, &people[1].0, &api, now, 4_000),
        ],
    )
    .await;
    let st = statement(&s, owner, &g, &this_month().to_string()).await;
    assert_eq!(st["accounts"][0]["feeUsd"], Value::Null);
    assert_eq!(cents(&st["accounts"][0]["groupPartUsd"]), 124);
    // $1.238567 is 124 cents; by largest remainder the 0.4-cent line gets
    // none and the 123.6-cent line the cent left over.
    assert_eq!(cents(&line(&st, &people[0].0)["passThroughUsd"]), 124);
    assert_eq!(cents(&line(&st, &people[0].0)["totalUsd"]), 124);
    assert_eq!(cents(&line(&st, &people[0].0)["usageUsd"]), 123);
    assert_eq!(cents(&line(&st, &people[1].0)["passThroughUsd"]), 0);
    assert_eq!(cents(&st["totalsUsd"]["feeShareUsd"]), 0);
    assert_adds_up(&st);
    // Records leaving the request log for hourly rollups change nothing.
    let folded = s
        .state
        .store
        .roll_up_before(Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(folded, 2);
    let again = statement(&s, owner, &g, &this_month().to_string()).await;
    assert_eq!(again, st);
}

#[tokio::test]
async fn a_member_sees_their_own_line_and_the_totals_and_the_csv_says_the_same() {
    let s = spawn().await;
    let (g, people) = team(&s, 2).await;
    let (owner, member) = (&people[0].1, &people[1]);
    let max = account(&s, owner, &g, "Max, \"team\"", "http://127.0.0.1:9").await;
    let month = this_month();
    fee_from(&s, &max, month.first_day(), Some(60)).await;
    let now = Utc::now();
    insert(
        &s,
        vec![
            used(&g, &member.0, &max, now, USD),
            used(&g, &people[2].0, &max, now, 2 * USD),
        ],
    )
    .await;
    let m = month.to_string();
    let all = statement(&s, owner, &g, &m).await;
    assert_eq!(all["members"].as_array().unwrap().len(), 3);
    let mine = statement(&s, &member.1, &g, &m).await;
    let lines = mine["members"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{mine}");
    assert_eq!(lines[0]["userId"], member.0.as_str());
    assert_eq!(cents(&lines[0]["feeShareUsd"]), 2_000);
    assert_eq!(mine["totalsUsd"], all["totalsUsd"]);

    let resp = s
        .http
        .get(format!("{}/api/groups/{g}/statements/{m}.csv", s.url))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    let disposition = h["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    assert!(disposition.contains(&m), "{disposition}");
    let csv = resp.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "userId,name,usageUsd,requests,inputTokens,outputTokens,feeShareUsd,passThroughUsd,totalUsd"
    );
    assert_eq!(rows.len(), 5, "{csv}");
    let big = rows
        .iter()
        .find(|r| r.starts_with(people[2].0.as_str()))
        .unwrap();
    assert!(big.ends_with(",2.00,1,100,20,40.00,0.00,40.00"), "{big}");
    assert_eq!(rows[4], ",total,3.00,,,,60.00,0.00,60.00");

    let resp = s
        .http
        .get(format!("{}/api/groups/{g}/statements/{m}.csv", s.url))
        .bearer_auth(&member.1)
        .send()
        .await
        .unwrap();
    let csv = resp.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "header, own line, totals: {csv}");

    for bad in ["2024-13", "june", "2024-6"] {
        let (status, _) = s
            .get(&format!("/api/groups/{g}/statements?month={bad}"), owner)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = s
        .get(&format!("/api/groups/{g}/statements/{m}.txt"), owner)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_month_closed_early_never_changes() {
    let s = spawn().await;
    let (g, people) = team(&s, 1).await;
    let (owner, member) = (&people[0].1, &people[1]);
    let max = account(&s, owner, &g, "Claude Max", "http://127.0.0.1:9").await;
    let month = this_month();
    fee_from(&s, &max, month.first_day(), Some(50)).await;
    insert(&s, vec![used(&g, &member.0, &max, Utc::now(), USD)]).await;
    let m = month.to_string();
    let close = format!("/api/groups/{g}/statements/{m}/close");
    let (status, body) = s.post(&close, &member.1, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, closed) = s.post(&close, owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["closed"], true);
    assert_eq!(cents(&line(&closed, &member.0)["feeShareUsd"]), 5_000);

    // Fee, split, usage and members change afterwards; the statement does not.
    let (status, a) = s
        .patch(
            &format!("/api/accounts/{max}"),
            owner,
            json!({"fee": {"amountUsd": 500, "period": "month"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    s.patch(
        &format!("/api/groups/{g}"),
        owner,
        json!({"fareSplit": {"equalPart": 1}}),
    )
    .await;
    insert(&s, vec![used(&g, &member.0, &max, Utc::now(), 9 * USD)]).await;
    team_member_leaves(&s, &g, &member.0).await;
    assert_eq!(statement(&s, owner, &g, &m).await, closed);
    let (status, again) = s.post(&close, owner, json!({})).await;
    assert_eq!((status, &again), (StatusCode::OK, &closed));

    let next = month.next().to_string();
    let (status, _) = s
        .post(
            &format!("/api/groups/{g}/statements/{next}/close"),
            owner,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a month not begun");
    let (status, _) = s
        .get(
            &format!("/api/groups/{g}/statements?month={next}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn team_member_leaves(s: &TestServer, group: &str, user: &str) {
    s.state.store.remove_member(group, user).await.unwrap();
}

/// Real requests through the gateway to a mock upstream, a fee set over
/// the API today: the statement counts the requests and prorates the fee
/// from today.
#[tokio::test]
async fn requests_through_the_gateway_are_billed_in_the_statement() {
    let mock = MockUpstream::start(crate::limits::UPSTREAM_KEY)
        .await
        .unwrap();
    let s = spawn().await;
    let (token, group, key, _) = crate::limits::carpool(&s, &mock.url).await;
    let (_, accounts) = s
        .get(&format!("/api/groups/{group}/accounts"), &token)
        .await;
    let account_id = accounts[0]["id"].as_str().unwrap().to_owned();
    let (status, view) = s
        .patch(
            &format!("/api/accounts/{account_id}"),
            &token,
            json!({"fee": {"amountUsd": 200, "period": "month"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["fee"], json!({"amountUsd": 200.0, "period": "month"}));
    assert_eq!(view["name"], "main", "the rest of the account is kept");
    let (_, view) = s.get(&format!("/api/accounts/{account_id}"), &token).await;
    assert_eq!(view["fee"]["amountUsd"], 200.0);

    for _ in 0..3 {
        let resp = s
            .http
            .post(format!("{}/v1/messages", s.url))
            .header("x-api-key", &key)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().await.unwrap();
    }
    let report = support::report_with(&s, &token, &format!("scope=group&id={group}"), 3).await;
    let month = this_month();
    let st = statement(&s, &token, &group, &month.to_string()).await;
    let (_, me) = s.get("/api/me", &token).await;
    let mine = line(&st, me["user"]["id"].as_str().unwrap());
    assert_eq!(mine["requests"], 3);
    assert_eq!(mine["inputTokens"], report["totals"]["inputTokens"]);
    let cost = (report["totals"]["costUsd"].as_f64().unwrap() * 1e6).round() as i64;
    assert_eq!(cents(&mine["usageUsd"]), (cost + 5_000) / 10_000);
    // From today to the month's end.
    let today = Utc::now().day() as i64;
    let days = month.days() as i64;
    let fee_micro = (200 * USD * (days - today + 1) + days / 2) / days;
    let fee_cents = (fee_micro + 5_000) / 10_000;
    assert_eq!(cents(&st["accounts"][0]["feeUsd"]), fee_cents, "{st}");
    assert_eq!(
        cents(&mine["feeShareUsd"]),
        fee_cents,
        "the only member bears it"
    );
    assert_eq!(cents(&mine["passThroughUsd"]), 0);
    assert_adds_up(&st);

    let (status, view) = s
        .patch(
            &format!("/api/accounts/{account_id}"),
            &token,
            json!({"fee": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["fee"], Value::Null);
    // A body refused for another field leaves the fee alone.
    let (status, _) = s
        .patch(
            &format!("/api/accounts/{account_id}"),
            &token,
            json!({"fee": {"amountUsd": 300, "period": "month"}, "priority": -5}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, view) = s.get(&format!("/api/accounts/{account_id}"), &token).await;
    assert_eq!(view["fee"], Value::Null);
    let (status, _) = s
        .patch(
            &format!("/api/accounts/{account_id}"),
            &token,
            json!({"fee": {"amountUsd": -1, "period": "month"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, audit) = s.get(&format!("/api/audit?groupId={group}"), &token).await;
    let changes = audit["entries"]
        .as_array()
        .or_else(|| audit.as_array())
        .map(|e| {
            e.iter()
                .filter(|x| x["action"] == "account.fee_changed")
                .count()
        });
    assert_eq!(changes, Some(2), "{audit}");
}

/// Two instances on one PostgreSQL schema close the same month at once:
/// both answer the one statement stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_closing_one_month_keep_one_statement() {
    let Ok(postgres) = std::env::var("AICARPOOL_TEST_POSTGRES_URL") else {
        eprintln!("skipped: AICARPOOL_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("fares_{}", new_id().to_lowercase());
    let config = ServeConfig {
        database_url: postgres.clone(),
        database_schema: Some(schema.clone()),
        ..ServeConfig::for_tests(ADMIN_TOKEN)
    };
    let (a, b) = tokio::join!(
        support::spawn_with(config.clone()),
        support::spawn_with(config)
    );
    let (g, people) = team(&a, 2).await;
    let owner = &people[0].1;
    let max = account(&a, owner, &g, "Claude Max", "http://127.0.0.1:9").await;
    fee_from(
        &a,
        &max,
        NaiveDate::from_ymd_opt(2023, 12, 1).unwrap(),
        Some(100),
    )
    .await;
    // Each month of early 2024 is a fresh race between the instances.
    for m in 1..=5 {
        let month = format!("2024-{m:02}");
        let at = Utc.with_ymd_and_hms(2024, m, 10, 0, 0, 0).unwrap();
        insert(
            &a,
            vec![
                used(&g, &people[1].0, &max, at, USD),
                used(&g, &people[2].0, &max, at, 2 * USD),
            ],
        )
        .await;
        let close = format!("/api/groups/{g}/statements/{month}/close");
        let (ra, rb) = tokio::join!(
            a.post(&close, owner, json!({})),
            b.post(&close, owner, json!({}))
        );
        assert_eq!(ra.0, StatusCode::OK, "{}", ra.1);
        assert_eq!(rb.0, StatusCode::OK, "{}", rb.1);
        assert_eq!(ra.1, rb.1, "{month}: one statement");
        assert_eq!(ra.1["closed"], true);
        assert_adds_up(&ra.1);
        // Later use in that month reaches neither instance's answer.
        insert(&a, vec![used(&g, &people[1].0, &max, at, 7 * USD)]).await;
        assert_eq!(statement(&b, owner, &g, &month).await, ra.1);
        assert_eq!(statement(&a, owner, &g, &month).await, ra.1);
    }
    let stored: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {schema}.fare_statements WHERE group_id = $1"
    ))
    .bind(&g)
    .fetch_one(&sqlx::PgPool::connect(&postgres).await.unwrap())
    .await
    .unwrap();
    assert_eq!(stored, 5);

    let pool = sqlx::PgPool::connect(&postgres).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
