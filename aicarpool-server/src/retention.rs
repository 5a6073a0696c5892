//! The request log's retention: once an hour, records older than
//! `AICARPOOL_REQUEST_LOG_DAYS` are folded into hourly rollups and deleted
//! ([`RequestLogStore::roll_up_before`]). Every instance may run it: the
//! stores fold each record exactly once.
//!
//! [`RequestLogStore::roll_up_before`]: aicarpool_core::store::RequestLogStore::roll_up_before

use std::time::Duration;

use aicarpool_core::store::DynStore;
use chrono::{DateTime, Utc};

/// How often old records are folded.
const EVERY: Duration = Duration::from_secs(3600);

/// The instant before which records leave the log, `days` before `now`;
/// `None` when the log keeps everything (`days == 0`).
pub fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(i64::from(days)))
}

/// Folds what is older than the retention, once; returns how many records
/// left the log.
pub async fn run_once(store: &DynStore, days: u32, now: DateTime<Utc>) -> u64 {
    let Some(before) = cutoff(now, days) else {
        return 0;
    };
    match store.roll_up_before(before).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(records = n, %before, "request log: folded old records into hourly sums");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "request log retention failed; retrying in an hour");
            0
        }
    }
}

/// Runs [`run_once`] at start and then hourly, until the task is aborted.
pub fn spawn(store: DynStore, days: u32) -> Option<tokio::task::JoinHandle<()>> {
    (days > 0).then(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                run_once(&store, days, Utc::now()).await;
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_everything() {
        let now = Utc::now();
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, 30), Some(now - chrono::Duration::days(30)));
    }
}
