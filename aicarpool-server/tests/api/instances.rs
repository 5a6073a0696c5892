//! Two server instances behind one load balancer: one PostgreSQL database,
//! one Redis, one master key. What one instance creates the other serves;
//! a member's budget and requests per minute hold across both; a Claude
//! sign-in started on one finishes on the other.
//!
//! The databases come from `AICARPOOL_TEST_POSTGRES_URL` and
//! `AICARPOOL_TEST_REDIS_URL`; without them the tests say they were skipped.

use std::time::Duration;

use aicarpool_core::oauth::ClaudeOAuthConfig;
use aicarpool_core::pricing::Pricing;
use aicarpool_server::config::ClaudeOAuthArgs;
use aicarpool_server::ServeConfig;
use aicarpool_testkit::{Behavior, MockOAuth, MockUpstream};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::limits::{carpool, UPSTREAM_KEY};
use crate::support::{report_with, spawn_with, TestServer, ADMIN_TOKEN};

const MODEL: &str = "claude-sonnet-4-5";

/// Two instances sharing a fresh schema and a fresh Redis prefix.
struct Shared {
    a: TestServer,
    b: TestServer,
    postgres: String,
    schema: String,
    redis: String,
    prefix: String,
}

/// Starts two instances, or `None` when the services are not configured.
async fn two_instances() -> Option<Shared> {
    two_instances_with(ClaudeOAuthArgs::default()).await
}

/// Two instances with Claude's OAuth at `claude_oauth`.
async fn two_instances_with(claude_oauth: ClaudeOAuthArgs) -> Option<Shared> {
    let (Ok(postgres), Ok(redis)) = (
        std::env::var("AICARPOOL_TEST_POSTGRES_URL"),
        std::env::var("AICARPOOL_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "skipped: AICARPOOL_TEST_POSTGRES_URL and AICARPOOL_TEST_REDIS_URL are not both set"
        );
        return None;
    };
    let run = aicarpool_core::id::new_id().to_lowercase();
    let (schema, prefix) = (format!("instances_{run}"), format!("aicp-test:{run}:"));
    let config = ServeConfig {
        database_url: postgres.clone(),
        database_schema: Some(schema.clone()),
        redis_url: Some(redis.clone()),
        redis_prefix: Some(prefix.clone()),
        claude_oauth,
        ..ServeConfig::for_tests(ADMIN_TOKEN)
    };
    // Started together: migrations and schema creation race like a
    // rolling deploy's.
    let (a, b) = tokio::join!(spawn_with(config.clone()), spawn_with(config));
    Some(Shared {
        a,
        b,
        postgres,
        schema,
        redis,
        prefix,
    })
}

impl Shared {
    /// Drops the schema and the Redis keys of this run.
    async fn clean_up(self) {
        // Settlements still on their way would recreate keys after the DEL.
        for s in [&self.a, &self.b] {
            s.state.gateway.limiter().flush().await;
        }
        let pool = sqlx::PgPool::connect(&self.postgres).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .execute(&pool)
            .await
            .unwrap();
        let client = redis::Client::open(self.redis.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A prompt long enough that the reservation (body bytes / 4 at the input
/// price, plus `max_tokens` of output) covers what the mock bills.
fn request() -> Value {
    json!({"model": MODEL, "max_tokens": 64,
           "messages": [{"role": "user", "content": "x".repeat(6_000)}]})
}

async fn send(s: &TestServer, key: &str, body: &Value) -> StatusCode {
    s.http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// A report's total cost in micro-USD.
fn micro_usd(report: &Value) -> i64 {
    (report["totals"]["costUsd"].as_f64().unwrap() * 1e6).round() as i64
}

async fn set_key_limits(s: &TestServer, token: &str, key_id: &str, limits: Value) {
    let (status, body) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            token,
            json!({ "limits": limits }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_on_one_instance_is_limited_on_both() {
    let Some(shared) = two_instances().await else {
        return;
    };
    let (a, b) = (&shared.a, &shared.b);
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let (token, _group, key, key_id) = carpool(a, &mock.url).await;
    set_key_limits(a, &token, &key_id, json!({"requestsPerMinute": 4})).await;

    // Two requests on each instance use the minute up; both then refuse.
    let body = request();
    for s in [a, b, a, b] {
        assert_eq!(send(s, &key, &body).await, StatusCode::OK);
    }
    assert_eq!(send(a, &key, &body).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send(b, &key, &body).await, StatusCode::TOO_MANY_REQUESTS);

    // Usage written by both instances is one report, seen from either:
    // four answers and the two refusals.
    let from_b = report_with(b, &token, &format!("scope=key&id={key_id}"), 6).await;
    let from_a = report_with(a, &token, &format!("scope=key&id={key_id}"), 6).await;
    assert_eq!(from_a["totals"], from_b["totals"]);
    assert_eq!(from_a["totals"]["errors"], 2);
    shared.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_two_instances_never_overspend_one_budget() {
    let Some(shared) = two_instances().await else {
        return;
    };
    let (a, b) = (&shared.a, &shared.b);
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let (token, _group, key, key_id) = carpool(a, &mock.url).await;

    // What one request costs, measured, and what it reserves. (On the
    // instance that changes the limits next: the other has not cached the
    // key yet, so it sees the budget at once too.)
    let body = request();
    assert_eq!(send(a, &key, &body).await, StatusCode::OK);
    let one = report_with(a, &token, &format!("scope=key&id={key_id}"), 1).await;
    let per_request = micro_usd(&one);
    assert!(per_request > 0, "{one}");
    let body_len = body.to_string().len() as u64;
    let reservation = Pricing::embedded().reservation_micro_usd(MODEL, body_len.div_ceil(4), 64);
    assert!(reservation >= per_request, "{reservation} < {per_request}");

    // A total budget of about 20 more requests.
    let budget = 21 * per_request;
    set_key_limits(
        a,
        &token,
        &key_id,
        json!({"costUsd": {"total": budget as f64 / 1e6}}),
    )
    .await;
    mock.push((0..200).map(|_| Behavior::Slow(Duration::from_millis(2))));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let instance = if i % 2 == 0 { a } else { b };
        let (http, url) = (instance.http.clone(), instance.url.clone());
        let (key, body) = (key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            http.post(format!("{url}/v1/messages"))
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut accepted = 0u64;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected status {other}"),
        }
    }
    // Then one at a time, alternating, until the budget refuses: what is
    // left is used.
    let mut sequential = 0u64;
    loop {
        let instance = if sequential % 2 == 0 { b } else { a };
        match send(instance, &key, &body).await {
            StatusCode::OK => sequential += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            other => panic!("unexpected status {other}"),
        }
    }
    // The measuring request, the burst, the sequential ones and the final
    // refusal, all in one report.
    let recorded = 1 + 200 + sequential + 1;
    let report = report_with(b, &token, &format!("scope=key&id={key_id}"), recorded).await;
    let answered = recorded - report["totals"]["errors"].as_u64().unwrap();
    assert_eq!(answered, 1 + accepted + sequential);
    let spent = micro_usd(&report);
    println!(
        "two instances: budget {budget} µ$; 200 concurrent requests: accepted {accepted}; \
         then {sequential} sequential; spent {spent} µ$ (one request {per_request} µ$, \
         largest reservation {reservation} µ$)"
    );
    assert!(accepted >= 1);
    assert!(
        spent <= budget + reservation,
        "overspent: {spent} > {budget} + {reservation}"
    );
    assert!(spent >= budget, "the budget is usable to its end");
    shared.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_stops_on_the_other_at_once() {
    let Some(shared) = two_instances().await else {
        return;
    };
    let (a, b) = (&shared.a, &shared.b);
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let (token, _group, key, key_id) = carpool(a, &mock.url).await;
    let body = request();
    // B has the key in its cache now (kept for minutes without a bus).
    assert_eq!(send(b, &key, &body).await, StatusCode::OK);

    let (status, _) = a.delete(&format!("/api/keys/{key_id}"), &token).await;
    assert!(status.is_success(), "{status}");
    // Pub/sub is asynchronous: B learns of the revocation within moments.
    let mut refused = false;
    for _ in 0..250 {
        if send(b, &key, &body).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the revoked key still works on the other instance");
    assert_eq!(send(a, &key, &body).await, StatusCode::UNAUTHORIZED);
    shared.clean_up().await;
}

/// Keys of this run under `<prefix>oauth-login:`, with their values.
async fn pending_sign_ins(shared: &Shared) -> Vec<(String, Vec<u8>)> {
    let client = redis::Client::open(shared.redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}oauth-login:*", shared.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut found = Vec::new();
    for key in keys {
        let value: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        found.push((key, value));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_sign_in_started_on_one_instance_finishes_on_the_other() {
    let upstream = MockUpstream::start("sk-ant-api-unused").await.unwrap();
    let oauth = MockOAuth::start(&ClaudeOAuthConfig::default().client_id)
        .await
        .unwrap();
    oauth.link_upstream(&upstream);
    let Some(shared) = two_instances_with(ClaudeOAuthArgs {
        token_url: Some(oauth.token_url()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let (a, b) = (&shared.a, &shared.b);
    let run = aicarpool_core::id::new_id().to_lowercase();
    let (_, token) = a.register(&format!("owner-{run}@example.com")).await;
    let (st, group) = a.post("/api/groups", &token, json!({"name": "subs"})).await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();

    // Started on A: the session waits in Redis, sealed, under a key that
    // is not the session id.
    let (st, started) = a
        .post(
            "/api/oauth/claude/start",
            &token,
            json!({"groupId": group, "name": "max"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{started}");
    let session = started["sessionId"].as_str().unwrap().to_owned();
    let auth_url = started["authUrl"].as_str().unwrap().to_owned();
    let pending = pending_sign_ins(&shared).await;
    assert_eq!(pending.len(), 1);
    let (key, sealed) = pending[0].clone();
    assert!(!key.contains(&session), "{key}");

    // Another user on B can neither finish it nor use it up.
    let (_, other) = b.register(&format!("other-{run}@example.com")).await;
    let approval = oauth.approve(&auth_url);
    let finish = json!({"sessionId": session, "code": approval.pasted});
    let (st, body) = b
        .post("/api/oauth/claude/finish", &other, finish.clone())
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(pending_sign_ins(&shared).await.len(), 1);

    // Finished on B: the account exists, for both instances.
    let (st, account) = b
        .post("/api/oauth/claude/finish", &token, finish.clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{account}");
    assert_eq!(account["platform"], "claude_oauth");
    assert_eq!(account["name"], "max");
    let account_id = account["id"].as_str().unwrap().to_owned();
    assert!(pending_sign_ins(&shared).await.is_empty(), "used up");
    let requests = oauth.requests();
    assert_eq!(requests.len(), 1);
    let verifier = requests[0].body["code_verifier"].as_str().unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains(verifier),
        "the verifier was stored in the clear"
    );

    // The same session again, on A: used.
    let (st, body) = a.post("/api/oauth/claude/finish", &token, finish).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_oauth_session");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    assert_eq!(oauth.requests().len(), 1, "nothing exchanged twice");

    // Usable: bound and keyed on A, serving through B. A new base URL
    // drops the tokens unless they come along.
    let sealed = a
        .state
        .store
        .sealed_credentials(&account_id)
        .await
        .unwrap()
        .unwrap();
    let tokens = a.state.sealer.open(&account_id, &sealed).unwrap();
    let (st, body) = a
        .patch(
            &format!("/api/accounts/{account_id}"),
            &token,
            json!({"baseUrl": upstream.url, "credentials": tokens}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = a
        .put(
            &format!("/api/groups/{group}/binding"),
            &token,
            json!({"mode": "dedicated", "accounts": [{"accountId": account_id}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, key) = a
        .post(
            &format!("/api/groups/{group}/keys"),
            &token,
            json!({"name": "laptop"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap();
    let body = json!({"model": MODEL, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(send(b, key, &body).await, StatusCode::OK);
    let got = upstream.received();
    assert!(got[0].headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Bearer sk-ant-oat01"));
    shared.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_seen_on_one_instance_cools_the_account_on_the_other() {
    let Some(shared) = two_instances().await else {
        return;
    };
    let (a, b) = (&shared.a, &shared.b);
    let first = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let second = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    first.push([Behavior::RateLimited {
        retry_after: Some(60),
        unified_reset: None,
    }]);
    // Two accounts, the rate-limited one preferred (lower priority first).
    let run = aicarpool_core::id::new_id().to_lowercase();
    let (_, token) = a.register(&format!("owner-{run}@example.com")).await;
    let (st, group) = a.post("/api/groups", &token, json!({"name": "pair"})).await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let mut accounts = Vec::new();
    for (i, url) in [&first.url, &second.url].into_iter().enumerate() {
        let (st, account) = a
            .post(
                &format!("/api/groups/{group}/accounts"),
                &token,
                json!({"name": format!("acc-{i}"), "platform": "claude_api", "baseUrl": url,
                       "priority": i + 1, "credentials": {"apiKey": UPSTREAM_KEY}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{account}");
        accounts.push(account["id"].as_str().unwrap().to_owned());
    }
    let bound: Vec<Value> = accounts.iter().map(|a| json!({"accountId": a})).collect();
    let (st, body) = a
        .put(
            &format!("/api/groups/{group}/binding"),
            &token,
            json!({"mode": "dedicated", "accounts": bound}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, key) = a
        .post(
            &format!("/api/groups/{group}/keys"),
            &token,
            json!({"name": "cli"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();

    // A meets the 429 and fails over.
    let body = request();
    assert_eq!(send(a, &key, &body).await, StatusCode::OK);
    assert_eq!((first.hits(), second.hits()), (1, 1));

    // B hears of it over pub/sub, without a request of its own.
    let path = format!("/api/accounts/{}/health", accounts[0]);
    let mut seen = Value::Null;
    for _ in 0..250 {
        let (st, health) = b.get(&path, &token).await;
        assert_eq!(st, StatusCode::OK, "{health}");
        seen = health;
        if seen["state"] == "cooling" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen["state"], "cooling", "{seen}");
    assert_eq!(seen["reason"], "rate_limited", "{seen}");
    assert_eq!(
        seen["lastError"]["message"],
        "rate limited (reported by another instance)"
    );
    assert_eq!(seen["recentOutcomes"], 0, "not a failure of B's");
    let (_, on_a) = a.get(&path, &token).await;
    assert_eq!(seen["coolingUntil"], on_a["coolingUntil"], "{seen} {on_a}");

    for _ in 0..3 {
        assert_eq!(send(b, &key, &body).await, StatusCode::OK);
    }
    assert_eq!(first.hits(), 1, "B sent nothing to the cooling account");
    assert_eq!(second.hits(), 4);
    shared.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_hold_a_member_to_one_fair_share() {
    use crate::fair_share::{
        assert_fair_share_refusal, carpool, message, subscription, until_refused,
    };

    let Some(shared) = two_instances().await else {
        return;
    };
    let mock = subscription().await;
    let (_, _, heavy_key, _, _, light_key) = carpool(&shared.a, &mock.url).await;
    // The light member is served by B, the heavy one by A until their
    // share of the window is used.
    assert_eq!(
        message(&shared.b, &light_key).await.status(),
        StatusCode::OK
    );
    let (refused, served) = until_refused(&shared.a, &heavy_key).await;
    assert!(served >= 8, "{served} served before the fair share engaged");
    assert_fair_share_refusal(refused).await;
    // B counts the use A sent: it refuses the heavy member too, and
    // still serves the light one.
    assert_eq!(
        message(&shared.b, &light_key).await.status(),
        StatusCode::OK
    );
    assert_fair_share_refusal(message(&shared.b, &heavy_key).await).await;
    assert_eq!(mock.counts().1, 0, "the window never ran dry");
    shared.clean_up().await;
}
