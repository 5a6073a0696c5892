//! Account fees, the usage a statement splits, and closed statements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::fare::{FareUse, FeeChange, Month, Statement};

/// Whose usage [`FareStore::fare_use`] sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FareUseScope {
    /// One group's usage, on every account.
    Group(String),
    /// Every group's usage of these accounts.
    Accounts(Vec<String>),
}

/// What the fare split reads and keeps.
#[async_trait]
pub trait FareStore: Send + Sync {
    /// Records a fee change; a change already recorded for the same
    /// account and day is replaced. Fails with `NotFound` when the account
    /// does not exist. Deleting the account deletes its history.
    async fn set_fee(&self, account_id: &str, change: &FeeChange) -> StoreResult<()>;
    /// The account's fee changes, oldest first.
    async fn fee_history(&self, account_id: &str) -> StoreResult<Vec<FeeChange>>;

    /// The usage facts (records and rollups alike) at or after `from` and
    /// before `to`, summed per (group, account, user), in that order.
    async fn fare_use(
        &self,
        scope: &FareUseScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<FareUse>>;

    /// Stores the group's statement for its month unless one is stored
    /// already, atomically, and returns the one stored: instances closing
    /// the same month together keep one. Fails with `NotFound` when the
    /// group does not exist; deleting the group deletes its statements.
    async fn close_statement(
        &self,
        group_id: &str,
        statement: &Statement,
        at: DateTime<Utc>,
    ) -> StoreResult<Statement>;
    /// The group's stored statement of `month`.
    async fn closed_statement(
        &self,
        group_id: &str,
        month: Month,
    ) -> StoreResult<Option<Statement>>;
}

/// Sorts use rows into the order [`FareStore::fare_use`] promises.
pub fn sort_fare_use(rows: &mut [FareUse]) {
    rows.sort_by(|a, b| {
        (&a.group_id, &a.account_id, &a.user_id).cmp(&(&b.group_id, &b.account_id, &b.user_id))
    });
}
