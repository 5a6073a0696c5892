//! Alert rules in memory.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::alert::{AlertOwner, AlertRule};
use crate::store::{AlertStore, StoreError, StoreResult};

#[derive(Debug, Default)]
pub(super) struct AlertTables {
    rules: Vec<AlertRule>,
    /// `(rule id, event key)` of every event told.
    told: HashSet<(String, String)>,
}

impl AlertTables {
    /// Drops an owner's rules with what they told (the owner is deleted).
    pub(super) fn remove_owner(&mut self, owner: &AlertOwner) {
        let gone: HashSet<String> = self
            .rules
            .iter()
            .filter(|r| &r.owner == owner)
            .map(|r| r.id.clone())
            .collect();
        self.rules.retain(|r| !gone.contains(&r.id));
        self.told.retain(|(id, _)| !gone.contains(id));
    }
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn create_alert(&self, rule: &AlertRule) -> StoreResult<()> {
        let mut t = self.t();
        let owner_exists = match &rule.owner {
            AlertOwner::Group(id) => t.groups.iter().any(|g| &g.id == id),
            AlertOwner::Enterprise(id) => t.ent.enterprises.iter().any(|e| &e.id == id),
        };
        if !owner_exists {
            return Err(StoreError::NotFound);
        }
        if t.alerts.rules.iter().any(|r| r.id == rule.id) {
            return Err(StoreError::Conflict("alert id".into()));
        }
        t.alerts.rules.push(rule.clone());
        Ok(())
    }

    async fn alert(&self, id: &str) -> StoreResult<Option<AlertRule>> {
        Ok(self.t().alerts.rules.iter().find(|r| r.id == id).cloned())
    }

    async fn alerts_of(&self, owner: &AlertOwner) -> StoreResult<Vec<AlertRule>> {
        let t = self.t();
        Ok(t.alerts
            .rules
            .iter()
            .filter(|r| &r.owner == owner)
            .cloned()
            .collect())
    }

    async fn all_alerts(&self) -> StoreResult<Vec<AlertRule>> {
        Ok(self.t().alerts.rules.clone())
    }

    async fn delete_alert(&self, id: &str) -> StoreResult<()> {
        let mut t = self.t();
        t.alerts.rules.retain(|r| r.id != id);
        t.alerts.told.retain(|(rule, _)| rule != id);
        Ok(())
    }

    async fn claim_alert_event(
        &self,
        rule_id: &str,
        event_key: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut t = self.t();
        if !t.alerts.rules.iter().any(|r| r.id == rule_id) {
            return Err(StoreError::NotFound);
        }
        Ok(t.alerts
            .told
            .insert((rule_id.to_owned(), event_key.to_owned())))
    }
}
