//! Candidates and upstream answers for the router tests, without HTTP.
#![allow(dead_code)]

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform};
use aicarpool_core::router::{Candidate, RoutableAccount};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Epoch ms the virtual clocks start at.
pub const T0: u64 = 1_767_225_600_000;

/// An account bound to a group: `(id, priority, weight, dedicated, cap)`.
pub fn candidate(
    id: &str,
    priority: i32,
    weight: u32,
    dedicated: bool,
    max_concurrency: Option<u32>,
) -> Candidate {
    let now = chrono::Utc::now();
    let account = Account {
        id: id.to_owned(),
        name: format!("account {id}"),
        platform: Platform::ClaudeApi,
        preset: None,
        base_url: Some(format!("https://{id}.example.com")),
        owner: AccountOwner::Group("g".into()),
        models: vec![],
        model_map: Default::default(),
        serves: Vec::new(),
        priority,
        weight,
        max_concurrency,
        proxy: None,
        enabled: true,
        credentials: Default::default(),
        created_at: now,
        updated_at: now,
    };
    Candidate {
        account: Arc::new(RoutableAccount {
            base_url: account.base_url.clone().unwrap_or_default(),
            account,
            credentials: Credentials {
                api_key: Some(format!("sk-{id}")),
                ..Default::default()
            },
            in_flight: Arc::new(AtomicU32::new(0)),
        }),
        priority,
        weight,
        dedicated,
    }
}

/// `n` accounts `a0…` in one tier, weight 1, no cap.
pub fn pool(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| candidate(&format!("a{i}"), 10, 1, false, None))
        .collect()
}

pub fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The headers of a subscription answer: 5-hour window status and reset.
pub fn unified(status: &str, reset_s: u64, utilization: f64) -> HeaderMap {
    headers(&[
        ("anthropic-ratelimit-unified-status", status.to_owned()),
        ("anthropic-ratelimit-unified-reset", reset_s.to_string()),
        ("anthropic-ratelimit-unified-5h-status", status.to_owned()),
        ("anthropic-ratelimit-unified-5h-reset", reset_s.to_string()),
        (
            "anthropic-ratelimit-unified-5h-utilization",
            format!("{utilization:.2}"),
        ),
    ])
}

pub fn id(c: &Candidate) -> &str {
    &c.account.account.id
}
