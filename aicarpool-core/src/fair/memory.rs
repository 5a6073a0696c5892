//! The in-memory window ledger, for one instance.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{LedgerError, MemberUse, Observation, WindowCharge, WindowId, WindowLedger, WindowUse};

/// Keeps window use in this process; windows past their reset are dropped
/// as new ones are charged.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    windows: Mutex<HashMap<WindowId, WindowUse>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl WindowLedger for MemoryLedger {
    async fn charge(&self, window: &WindowId, charge: &WindowCharge) -> Result<(), LedgerError> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if !windows.contains_key(window) {
            // A new window: those that reset before it are over.
            windows.retain(|id, _| {
                id.account_id != window.account_id
                    || id.kind != window.kind
                    || id.resets_at >= window.resets_at
            });
        }
        let usage = windows.entry(window.clone()).or_default();
        if let Some(utilization) = charge.utilization {
            let seen = Observation {
                utilization,
                sent_micro_usd: usage.sent_micro_usd,
            };
            usage.first.get_or_insert(seen);
            usage.last = Some(seen);
        }
        usage.sent_micro_usd += charge.micro_usd;
        match usage.members.iter_mut().find(|m| m.member == charge.member) {
            Some(m) => {
                m.used_micro_usd += charge.micro_usd;
                m.requests += 1;
                m.weight = charge.weight;
            }
            None => usage.members.push(MemberUse {
                member: charge.member.clone(),
                weight: charge.weight,
                used_micro_usd: charge.micro_usd,
                requests: 1,
            }),
        }
        Ok(())
    }

    async fn window(&self, window: &WindowId) -> Result<WindowUse, LedgerError> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(windows.get(window).cloned().unwrap_or_default())
    }
}
