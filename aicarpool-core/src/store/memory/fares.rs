//! Account fees and closed statements in memory; the month's use is read
//! from records and rollups alike, as the SQL backends read `usage_facts`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::fare::{FareUse, FeeChange, Month, Statement};
use crate::store::{sort_fare_use, FareStore, FareUseScope, StoreError, StoreResult};
use crate::usage::{UsageFact, UsageTotals};

#[derive(Debug, Default)]
pub(super) struct FareTables {
    /// Account id → its fee changes, oldest first.
    fees: BTreeMap<String, Vec<FeeChange>>,
    statements: BTreeMap<(String, Month), Statement>,
}

impl FareTables {
    pub(super) fn remove_account(&mut self, account_id: &str) {
        self.fees.remove(account_id);
    }

    pub(super) fn remove_group(&mut self, group_id: &str) {
        self.statements.retain(|(g, _), _| g != group_id);
    }
}

#[async_trait]
impl FareStore for MemoryStore {
    async fn set_fee(&self, account_id: &str, change: &FeeChange) -> StoreResult<()> {
        let mut t = self.t();
        if !t.accounts.iter().any(|a| a.id == account_id) {
            return Err(StoreError::NotFound);
        }
        let history = t.fares.fees.entry(account_id.to_owned()).or_default();
        history.retain(|c| c.from != change.from);
        history.push(change.clone());
        history.sort_by_key(|c| c.from);
        Ok(())
    }

    async fn fee_history(&self, account_id: &str) -> StoreResult<Vec<FeeChange>> {
        Ok(self
            .t()
            .fares
            .fees
            .get(account_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn fare_use(
        &self,
        scope: &FareUseScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<FareUse>> {
        let t = self.t();
        let facts = t
            .usage
            .iter()
            .map(|r| r as &dyn UsageFact)
            .chain(t.rollups.values().map(|r| r as &dyn UsageFact));
        let in_scope = |f: &dyn UsageFact| match scope {
            FareUseScope::Group(g) => f.group_id() == g,
            FareUseScope::Accounts(ids) => {
                f.account_id().is_some_and(|a| ids.iter().any(|i| i == a))
            }
        };
        let mut sums: BTreeMap<(String, Option<String>, String), UsageTotals> = BTreeMap::new();
        for f in facts.filter(|f| f.at() >= from && f.at() < to && in_scope(*f)) {
            let key = (
                f.group_id().to_owned(),
                f.account_id().map(str::to_owned),
                f.user_id().to_owned(),
            );
            f.add_to(sums.entry(key).or_default());
        }
        let mut rows: Vec<FareUse> = sums
            .into_iter()
            .map(|((group_id, account_id, user_id), s)| FareUse {
                group_id,
                account_id,
                user_id,
                cost_micro_usd: s.cost_micro_usd,
                requests: s.requests,
                errors: s.errors,
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
            })
            .collect();
        sort_fare_use(&mut rows);
        Ok(rows)
    }

    async fn close_statement(
        &self,
        group_id: &str,
        statement: &Statement,
        _at: DateTime<Utc>,
    ) -> StoreResult<Statement> {
        let mut t = self.t();
        if !t.groups.iter().any(|g| g.id == group_id) {
            return Err(StoreError::NotFound);
        }
        Ok(t.fares
            .statements
            .entry((group_id.to_owned(), statement.month))
            .or_insert_with(|| statement.clone())
            .clone())
    }

    async fn closed_statement(
        &self,
        group_id: &str,
        month: Month,
    ) -> StoreResult<Option<Statement>> {
        Ok(self
            .t()
            .fares
            .statements
            .get(&(group_id.to_owned(), month))
            .cloned())
    }
}
