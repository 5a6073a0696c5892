//! Sessions that stick and move, accounts that come back by themselves,
//! and the upstream's usage warning, through the server.

use std::time::Duration;

use aicarpool_testkit::{Behavior, MockUpstream};
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::json;

use super::{carpool, health, mocks, request, send};
use crate::support::spawn;

#[tokio::test]
async fn a_session_sticks_to_one_account_and_moves_when_it_cools() {
    let m = mocks(3).await;
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 1), (&m[2].url, 1)]).await;
    for turn in 0..6 {
        let st = request(&s, &c, turn, Some("conversation-1"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, StatusCode::OK);
    }
    let hits: Vec<usize> = m.iter().map(MockUpstream::hits).collect();
    let home = hits
        .iter()
        .position(|h| *h == 6)
        .expect("one account took every turn");
    assert_eq!(health(&s, &c, home).await["stickySessions"], 1);

    // Its account starts rate limiting: the session moves, once, and stays.
    m[home].push([Behavior::RateLimited {
        retry_after: Some(60),
        unified_reset: None,
    }]);
    for turn in 6..12 {
        let st = request(&s, &c, turn, Some("conversation-1"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, StatusCode::OK);
    }
    let after: Vec<usize> = m.iter().map(MockUpstream::hits).collect();
    assert_eq!(after[home], 7);
    let moved: Vec<usize> = (0..3).filter(|i| *i != home && after[*i] > 0).collect();
    assert_eq!(moved.len(), 1, "{after:?}");
    assert_eq!(after[moved[0]], 6);
    assert_eq!(health(&s, &c, moved[0]).await["stickySessions"], 1);
    assert_eq!(health(&s, &c, home).await["stickySessions"], 0);
}

#[tokio::test]
async fn the_session_in_metadata_sticks_without_the_header() {
    let m = mocks(3).await;
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 1), (&m[2].url, 1)]).await;
    let user_id = r#"{"device_id":"d1","account_uuid":"","session_id":"6f1c0c3e-1d5e-4e55-b1c4-2f3a7d9e8b11"}"#;
    for turn in 0..6 {
        let resp = s
            .http
            .post(format!("{}/v1/messages", s.url))
            .header("x-api-key", &c.key)
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1,
                          "metadata": {"user_id": user_id},
                          "messages": [{"role": "user", "content": format!("turn {turn}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert!(
        m.iter().any(|x| x.hits() == 6),
        "{:?}",
        m.iter().map(MockUpstream::hits).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_rate_limited_account_comes_back_without_an_admin() {
    let m = mocks(2).await;
    m[0].push([Behavior::RateLimited {
        retry_after: Some(1),
        unified_reset: None,
    }]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 2)]).await;
    assert_eq!(send(&s, &c, 0).await, StatusCode::OK);
    assert_eq!(health(&s, &c, 0).await["state"], "cooling");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (_, r) = s
        .get(&format!("/api/groups/{}/routing", c.group), &c.token)
        .await;
    assert_eq!(r["candidates"][0]["state"], "half_open", "{r}");
    assert_eq!(r["candidates"][0]["eligible"], true);
    assert_eq!(send(&s, &c, 1).await, StatusCode::OK);
    assert_eq!(m[0].hits(), 2, "the probe went to the recovered account");
    assert_eq!(health(&s, &c, 0).await["state"], "healthy");
}

#[tokio::test]
async fn an_upstream_warning_lowers_preference() {
    let m = mocks(2).await;
    let reset = (Utc::now().timestamp() + 3600).to_string();
    m[0].push([Behavior::AnswerWithHeaders(vec![
        (
            "anthropic-ratelimit-unified-5h-status".into(),
            "allowed_warning".into(),
        ),
        ("anthropic-ratelimit-unified-5h-reset".into(), reset),
        (
            "anthropic-ratelimit-unified-5h-utilization".into(),
            "0.91".into(),
        ),
    ])]);
    let s = spawn().await;
    let c = carpool(&s, &[(&m[0].url, 1), (&m[1].url, 1)]).await;
    let mut turn = 0;
    while m[0].hits() == 0 {
        assert_eq!(send(&s, &c, turn).await, StatusCode::OK);
        turn += 1;
        assert!(turn < 50, "the pool never chose the first account");
    }
    let before = m[1].hits();
    for t in 0..10 {
        assert_eq!(send(&s, &c, 100 + t).await, StatusCode::OK);
    }
    assert_eq!(m[0].hits(), 1, "the warned account lost every pair");
    assert_eq!(m[1].hits(), before + 10);
    let h = health(&s, &c, 0).await;
    assert_eq!(
        h["unifiedWindow"]["fiveHour"]["status"], "allowed_warning",
        "{h}"
    );
    assert_eq!(h["unifiedWindow"]["fiveHour"]["utilization"], 0.91);
    let (_, r) = s
        .get(&format!("/api/groups/{}/routing", c.group), &c.token)
        .await;
    assert!(
        r["candidates"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("lower preference"),
        "{r}"
    );
}
