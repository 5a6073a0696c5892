//! Alert rules and the events they have told.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::alert::{AlertOwner, AlertRule};

/// Alert rules, and the claim that makes each event told once.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Fails with `NotFound` when the owner does not exist.
    async fn create_alert(&self, rule: &AlertRule) -> StoreResult<()>;
    async fn alert(&self, id: &str) -> StoreResult<Option<AlertRule>>;
    /// The owner's rules, oldest first.
    async fn alerts_of(&self, owner: &AlertOwner) -> StoreResult<Vec<AlertRule>>;
    /// Every rule (what the alert evaluator watches).
    async fn all_alerts(&self) -> StoreResult<Vec<AlertRule>>;
    /// Deletes the rule and what it told; a no-op when absent.
    async fn delete_alert(&self, id: &str) -> StoreResult<()>;
    /// Records that `rule_id` tells the event `event_key`; `true` only the
    /// first time, so one event is delivered once however many instances
    /// see it. Deleting an owner's group or enterprise deletes its rules.
    async fn claim_alert_event(
        &self,
        rule_id: &str,
        event_key: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
}
