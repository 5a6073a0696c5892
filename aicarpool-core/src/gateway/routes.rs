//! A group's routing table: its bound accounts, opened and ready to call.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::fair_share::GroupFairness;
use super::{GatewayError, Inner};
use crate::account::Account;
use crate::fair::MemberId;
use crate::router::{Candidate, RoutableAccount};

/// The candidates of one group, in binding order.
#[derive(Debug, Default)]
pub(super) struct RouteTable {
    pub candidates: Vec<Candidate>,
    pub fairness: GroupFairness,
}

/// Opens an account's credentials and resolves its base URL.
pub(super) fn routable(inner: &Inner, account: Account) -> Result<RoutableAccount, GatewayError> {
    let credentials = inner
        .sealer
        .open(&account.id, &account.credentials)
        .map_err(|e| GatewayError::BadUpstream(format!("account {}: {e}", account.id)))?;
    let base_url = account.effective_base_url().ok_or_else(|| {
        GatewayError::BadUpstream(format!("account {} has no base URL", account.id))
    })?;
    Ok(RoutableAccount {
        in_flight: inner.in_flight_counter(&account.id),
        account,
        credentials,
        base_url,
    })
}

impl Inner {
    /// The group's routing table, from the cache or built from the store.
    pub(super) async fn route_table(
        &self,
        group_id: &str,
    ) -> Result<Arc<RouteTable>, GatewayError> {
        if let Some(t) = self.routes.get(group_id) {
            return Ok(t);
        }
        let generation = self.cache_generation.load(Ordering::Acquire);
        let table = Arc::new(self.load_route_table(group_id).await?);
        if self.cache_generation.load(Ordering::Acquire) == generation {
            self.routes.insert(group_id.to_owned(), table.clone());
        }
        Ok(table)
    }

    /// A group with a binding is served by the bound accounts; a group
    /// without one by the accounts it owns, as shared entries.
    async fn load_route_table(&self, group_id: &str) -> Result<RouteTable, GatewayError> {
        let storage =
            |e: crate::store::StoreError| GatewayError::Internal(format!("loading routes: {e}"));
        let mut entries = Vec::new();
        match self.store.binding(group_id).await.map_err(storage)? {
            Some(binding) => {
                for bound in binding.accounts {
                    if let Some(account) = self
                        .store
                        .account(&bound.account_id)
                        .await
                        .map_err(storage)?
                    {
                        let priority = bound.priority.unwrap_or(account.priority);
                        let weight = bound.weight.unwrap_or(account.weight);
                        entries.push((account, priority, weight, bound.dedicated));
                    }
                }
            }
            None => {
                for account in self
                    .store
                    .accounts_of_group(group_id)
                    .await
                    .map_err(storage)?
                {
                    let (priority, weight) = (account.priority, account.weight);
                    entries.push((account, priority, weight, false));
                }
            }
        }
        let mut candidates = Vec::with_capacity(entries.len());
        for (account, priority, weight, dedicated) in entries {
            let id = account.id.clone();
            match routable(self, account) {
                Ok(r) => candidates.push(Candidate {
                    account: Arc::new(r),
                    priority,
                    weight,
                    dedicated,
                }),
                // One broken account must not take the group down.
                Err(e) => tracing::warn!(account_id = %id, error = %e, "account skipped"),
            }
        }
        let fairness = match self.store.group(group_id).await.map_err(storage)? {
            Some(group) => GroupFairness {
                settings: group.fair_share,
                members: self
                    .store
                    .members(group_id)
                    .await
                    .map_err(storage)?
                    .into_iter()
                    .map(|(m, _)| (MemberId::new(&m.group_id, &m.user_id), m.share_weight))
                    .collect(),
            },
            None => GroupFairness::default(),
        };
        Ok(RouteTable {
            candidates,
            fairness,
        })
    }
}
