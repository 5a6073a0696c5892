//! Alerts: every interval, each rule ([`AlertRule`]) is checked against
//! what is true now — usage against budgets and quotas, the router's view
//! of each account, subscription windows, key expiry — and each event that
//! newly fires is delivered: a signed webhook or a mail.
//!
//! An event has a key naming it and its window (`budget:group:…:monthly:
//! 2026-12-01…`), claimed in the store before delivery, so it is told once
//! however many instances see it and however often they look. A delivery
//! is retried with growing waits; the audit log records each outcome.

use std::time::Duration;

use aicarpool_core::alert::{AlertOwner, AlertRule, AlertTarget};
use aicarpool_core::outbound::GuardedResolver;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::audit::{self, Scope};
use crate::state::AppState;

mod conditions;
mod delivery;

pub use conditions::Event;
pub use delivery::{signature, SIGNATURE_HEADER};

/// How often rules are checked by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Tries per delivery.
const TRIES: u32 = 4;

/// What one delivery came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub rule_id: String,
    pub event: String,
    pub attempts: u32,
    /// `None` when delivered; else why it was given up.
    pub error: Option<String>,
}

/// What a webhook receives.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    alert_id: &'a str,
    kind: &'static str,
    owner: Value,
    event: &'a str,
    summary: &'a str,
    detail: &'a Value,
    at: DateTime<Utc>,
}

/// Checks rules and delivers what fires.
#[derive(Debug, Clone)]
pub struct Alerts {
    state: AppState,
    http: reqwest::Client,
    /// The wait before the first retry; each next one is four times longer.
    first_backoff: Duration,
}

impl Alerts {
    pub fn new(state: AppState) -> anyhow::Result<Self> {
        // Webhook targets are reached as accounts are: only where the
        // outbound guard allows, checked again after DNS, no redirects.
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(GuardedResolver::new(
                state.config.upstream_allow.clone(),
            )))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("aicarpool-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            state,
            http,
            first_backoff: Duration::from_secs(2),
        })
    }

    /// Waits `first` before the first retry (tests make it short).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.first_backoff = first;
        self
    }

    /// Checks every rule once at `now` and delivers each event that fires
    /// for the first time; returns when every delivery has ended.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Vec<Delivered> {
        let rules = match self.state.store.all_alerts().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: listing rules failed");
                return Vec::new();
            }
        };
        let mut sends = Vec::new();
        for rule in rules {
            let events = match conditions::firing(&self.state, &rule, now).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, rule = %rule.id, "alerts: checking a rule failed");
                    continue;
                }
            };
            for event in events {
                match self
                    .state
                    .store
                    .claim_alert_event(&rule.id, &event.key, now)
                    .await
                {
                    Ok(true) => sends.push(self.deliver(rule.clone(), event, now)),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "alerts: claiming an event failed"),
                }
            }
        }
        futures::future::join_all(sends).await
    }

    /// Runs [`Alerts::run_once`] every `interval` until aborted.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.run_once(Utc::now()).await;
            }
        })
    }

    async fn deliver(&self, rule: AlertRule, event: Event, now: DateTime<Utc>) -> Delivered {
        let mut attempts = 0;
        let mut wait = self.first_backoff;
        let error = loop {
            attempts += 1;
            let sent = self.send(&rule, &event, now).await;
            match sent {
                Ok(()) => break None,
                Err(e) if attempts >= TRIES => break Some(e),
                Err(e) => {
                    tracing::info!(rule = %rule.id, attempts, error = %e, "alert delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 4;
                }
            }
        };
        let scope = match &rule.owner {
            AlertOwner::Group(g) => Scope::Group(g),
            AlertOwner::Enterprise(e) => Scope::Enterprise(e),
        };
        audit::record(
            &self.state,
            None,
            if error.is_none() {
                "alert.delivered"
            } else {
                "alert.failed"
            },
            ("alert", &rule.id),
            scope,
            json!({"event": event.key, "target": rule.target.as_string(),
                   "attempts": attempts, "error": error}),
        )
        .await;
        Delivered {
            rule_id: rule.id,
            event: event.key,
            attempts,
            error,
        }
    }

    async fn send(
        &self,
        rule: &AlertRule,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let owner = match &rule.owner {
            AlertOwner::Group(id) => json!({"type": "group", "id": id}),
            AlertOwner::Enterprise(id) => json!({"type": "enterprise", "id": id}),
        };
        let payload = Payload {
            alert_id: &rule.id,
            kind: rule.kind.as_str(),
            owner,
            event: &event.key,
            summary: &event.summary,
            detail: &event.detail,
            at: now,
        };
        match &rule.target {
            AlertTarget::Webhook(url) => {
                delivery::webhook(&self.state, &self.http, rule, url, &payload).await
            }
            AlertTarget::Email(to) => {
                let Some(mailer) = &self.state.mailer else {
                    return Err("SMTP is not configured".into());
                };
                mailer
                    .send_alert(
                        to,
                        &event.summary,
                        &serde_json::to_string_pretty(&payload).unwrap_or_default(),
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}
