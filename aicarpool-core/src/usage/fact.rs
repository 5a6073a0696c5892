//! What a usage report sums: single records, and the hourly rollups they
//! become once the request log's retention drops them.
//!
//! Total quotas, monthly reports and the limit counters rebuilt after a
//! restart all read sums that reach further back than the request log
//! keeps its rows. So a record is never just deleted: it is first added
//! to the rollup of its hour, key, account and model, and reports read
//! records and rollups alike. Hours (not days) keep day, week and month
//! boundaries exact in every whole-hour time zone.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{UsageRecord, UsageTotals};

/// A record or a rollup, as a report sees it.
pub trait UsageFact {
    fn at(&self) -> DateTime<Utc>;
    fn key_id(&self) -> &str;
    fn user_id(&self) -> &str;
    fn group_id(&self) -> &str;
    fn account_id(&self) -> Option<&str>;
    fn model(&self) -> &str;
    fn add_to(&self, totals: &mut UsageTotals);
}

/// The identity fields both kinds of fact hold under the same names.
macro_rules! fact_ids {
    ($at:ident) => {
        fn at(&self) -> DateTime<Utc> {
            self.$at
        }
        fn key_id(&self) -> &str {
            &self.key_id
        }
        fn user_id(&self) -> &str {
            &self.user_id
        }
        fn group_id(&self) -> &str {
            &self.group_id
        }
        fn account_id(&self) -> Option<&str> {
            self.account_id.as_deref()
        }
        fn model(&self) -> &str {
            &self.model
        }
    };
}

impl UsageFact for UsageRecord {
    fact_ids!(at);
    fn add_to(&self, totals: &mut UsageTotals) {
        totals.add(self);
    }
}

/// The sums of one hour's records of one key, account and model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRollup {
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    pub key_id: String,
    pub user_id: String,
    pub group_id: String,
    pub account_id: Option<String>,
    pub model: String,
    pub totals: UsageTotals,
}

impl UsageRollup {
    /// The start of the hour `at` falls in.
    pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
    }

    /// Folds `records` into `into`, merging with the rollups already there
    /// (a second pass over the same hour adds to it).
    pub fn fold<'a>(
        into: &mut BTreeMap<RollupKey, UsageRollup>,
        records: impl IntoIterator<Item = &'a UsageRecord>,
    ) {
        for r in records {
            let hour = Self::hour_of(r.at);
            let key = (
                hour,
                r.key_id.clone(),
                r.account_id.clone(),
                r.model.clone(),
            );
            into.entry(key)
                .or_insert_with(|| UsageRollup {
                    hour,
                    key_id: r.key_id.clone(),
                    user_id: r.user_id.clone(),
                    group_id: r.group_id.clone(),
                    account_id: r.account_id.clone(),
                    model: r.model.clone(),
                    totals: UsageTotals::default(),
                })
                .totals
                .add(r);
        }
    }
}

/// What identifies a rollup: its hour, key, account and model (a key
/// belongs to one member of one group).
pub type RollupKey = (DateTime<Utc>, String, Option<String>, String);

impl UsageFact for UsageRollup {
    fact_ids!(hour);
    fn add_to(&self, totals: &mut UsageTotals) {
        totals.merge(&self.totals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Accuracy, RefusalReason, Usage, UsageQuery, UsageScope};
    use chrono::TimeZone;

    fn record(at: DateTime<Utc>, model: &str, status: u16) -> UsageRecord {
        UsageRecord {
            id: crate::id::new_id(),
            at,
            key_id: "k".into(),
            user_id: "u".into(),
            group_id: "g".into(),
            account_id: Some("a".into()),
            model: model.into(),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 3,
                cache_write_5m_tokens: 2,
                cache_write_1h_tokens: 1,
                cache_read_tokens: 7,
            },
            cost_micro_usd: 55,
            latency_ms: 1,
            status,
            accuracy: if status == 200 {
                Accuracy::Exact
            } else {
                Accuracy::Partial
            },
            served_model: None,
            refusal: None,
            ttfb_ms: None,
            attempts: 1,
            failed_over: Vec::new(),
        }
    }

    #[test]
    fn rollups_sum_as_their_records_do_for_whole_hours() {
        let base = Utc.with_ymd_and_hms(2030, 1, 31, 22, 0, 0).unwrap();
        let records: Vec<_> = (0..40)
            .map(|i| {
                let mut r = record(
                    base + TimeDelta::minutes(i * 7),
                    if i % 3 == 0 { "m1" } else { "m2" },
                    if i % 5 == 0 { 500 } else { 200 },
                );
                // Every reason, several times in some hours.
                if i % 4 == 1 {
                    r.status = 429;
                    r.refusal = RefusalReason::ALL.get(i as usize / 4 % 5).copied();
                }
                r
            })
            .collect();
        let mut rollups = BTreeMap::new();
        UsageRollup::fold(&mut rollups, &records[..20]);
        UsageRollup::fold(&mut rollups, &records[20..]);
        assert!(rollups.len() < records.len());
        for group_by in [None, Some(super::super::UsageGroupBy::Day)] {
            let q = UsageQuery {
                scope: UsageScope::Key("k".into()),
                from: Some(base + TimeDelta::hours(1)),
                to: Some(base + TimeDelta::hours(4)),
                group_by,
            };
            assert_eq!(q.aggregate(&records), q.aggregate(rollups.values()));
        }
        let all = UsageQuery {
            scope: UsageScope::Key("k".into()),
            from: None,
            to: None,
            group_by: None,
        };
        let refusals = all.aggregate(rollups.values()).totals.refusals;
        assert!(refusals.iter().all(|(_, n)| n == 2), "{refusals:?}");
    }
}
