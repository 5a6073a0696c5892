//! The batched, bounded usage writer.
//!
//! Requests hand their record to a channel and go on; one task writes
//! batches to the [`UsageStore`]. The channel is bounded, so a slow database
//! slows recording down instead of growing memory. A failed batch is
//! retried (inserts are idempotent by record id); on shutdown everything
//! queued is written before [`UsageWriter::shutdown`] returns. No string
//! is stored over its bound ([`UsageRecord::bounded`]).
//!
//! [`UsageWriter::flush`] writes what is queued on demand: a limiter that
//! starts counting a scope reads the scope's history from the store, and
//! the records of the last moments must be there too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use super::UsageRecord;
use crate::store::UsageStore;

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct UsageWriterConfig {
    /// Records queued at most before senders wait.
    pub capacity: usize,
    /// Records written per transaction at most.
    pub batch_size: usize,
    /// Longest a record waits before its batch is written.
    pub flush_interval: Duration,
}

impl Default for UsageWriterConfig {
    fn default() -> Self {
        Self {
            capacity: 8192,
            batch_size: 256,
            flush_interval: Duration::from_millis(200),
        }
    }
}

/// The stop signal and handle of the writing task.
type RunningTask = (mpsc::Sender<()>, JoinHandle<()>);

/// Queues usage records for storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<UsageRecord>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
    task: Arc<Mutex<Option<RunningTask>>>,
}

impl UsageWriter {
    /// Starts the writing task on the current runtime.
    pub fn spawn(store: Arc<dyn UsageStore>, config: UsageWriterConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let (flush_tx, flush_rx) = mpsc::channel(64);
        let handle = tokio::spawn(run(store, config, rx, flush_rx, stop_rx));
        Self {
            tx,
            flush: flush_tx,
            task: Arc::new(Mutex::new(Some((stop_tx, handle)))),
        }
    }

    /// Queues a record, waiting for room if the queue is full. A record sent
    /// after shutdown is logged and dropped.
    pub async fn record(&self, record: UsageRecord) {
        if let Err(e) = self.tx.send(record.bounded()).await {
            tracing::error!(record_id = %e.0.id, "usage writer stopped; record dropped");
        }
        let waiting = self.tx.max_capacity() - self.tx.capacity();
        metrics::gauge!(crate::gateway::telemetry::USAGE_WRITER_QUEUE).set(waiting as f64);
    }

    /// Writes every record queued before this call and returns once the
    /// store has them (or writing failed and was logged). After shutdown
    /// everything is written already and this returns at once.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.flush.send(ack).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Writes everything queued, then stops. Later calls do nothing.
    pub async fn shutdown(&self) {
        let Some((stop, handle)) = self.task.lock().await.take() else {
            return;
        };
        let _ = stop.send(()).await;
        if let Err(e) = handle.await {
            tracing::error!(error = %e, "usage writer task failed");
        }
    }
}

async fn run(
    store: Arc<dyn UsageStore>,
    config: UsageWriterConfig,
    mut rx: mpsc::Receiver<UsageRecord>,
    mut flush: mpsc::Receiver<oneshot::Sender<()>>,
    mut stop: mpsc::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + config.flush_interval,
        config.flush_interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            // First: a steady stream of records must not starve a waiting
            // flush (a request's admission waits for it).
            Some(ack) = flush.recv() => {
                write_queued(&*store, &config, &mut rx, &mut batch).await;
                let _ = ack.send(());
            }
            got = rx.recv() => match got {
                Some(r) => {
                    batch.push(r);
                    if batch.len() >= config.batch_size {
                        write(&*store, &mut batch, false).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => write(&*store, &mut batch, false).await,
            _ = stop.recv() => {
                // Take what is already queued, then stop.
                rx.close();
                while let Some(r) = rx.recv().await {
                    batch.push(r);
                    if batch.len() >= config.batch_size {
                        write(&*store, &mut batch, true).await;
                    }
                }
                break;
            }
        }
    }
    write(&*store, &mut batch, true).await;
}

/// Writes the batch and the records queued now (not those arriving
/// meanwhile, so a steady stream cannot hold the flush up), a batch at a
/// time. Stops early when a batch could not be written (it stays queued).
async fn write_queued(
    store: &dyn UsageStore,
    config: &UsageWriterConfig,
    rx: &mut mpsc::Receiver<UsageRecord>,
    batch: &mut Vec<UsageRecord>,
) {
    let mut queued = rx.len();
    loop {
        while batch.len() < config.batch_size && queued > 0 {
            match rx.try_recv() {
                Ok(r) => {
                    batch.push(r);
                    queued -= 1;
                }
                Err(_) => queued = 0,
            }
        }
        if batch.is_empty() {
            return;
        }
        write(store, batch, false).await;
        // What still waits: the queue and a batch that could not be written.
        let waiting = rx.len() + batch.len();
        metrics::gauge!(crate::gateway::telemetry::USAGE_WRITER_QUEUE).set(waiting as f64);
        if !batch.is_empty() || queued == 0 {
            return;
        }
    }
}

/// Writes the batch, retrying with back-off. While running, a batch that
/// keeps failing stays queued for the next tick; at shutdown it is retried a
/// few times and then reported as lost.
async fn write(store: &dyn UsageStore, batch: &mut Vec<UsageRecord>, final_flush: bool) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match store.insert_usage(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "writing usage failed");
                if !final_flush && attempt >= 2 {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(
        records = batch.len(),
        "usage records could not be written and are lost"
    );
    batch.clear();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::MemoryStore;
    use crate::usage::{Accuracy, Usage, UsageQuery, UsageScope};

    fn rec(i: usize) -> UsageRecord {
        UsageRecord {
            id: format!("r{i}"),
            at: chrono::Utc::now(),
            key_id: "k".into(),
            user_id: "u".into(),
            group_id: "g".into(),
            account_id: None,
            model: "m".into(),
            usage: Usage {
                input_tokens: 1,
                ..Default::default()
            },
            cost_micro_usd: 0,
            latency_ms: 1,
            status: 200,
            accuracy: Accuracy::Exact,
            served_model: None,
            refusal: None,
            ttfb_ms: None,
            attempts: 1,
            failed_over: Vec::new(),
        }
    }

    /// A writer that flushes only when told to (or at shutdown).
    fn writer(store: &Arc<MemoryStore>, capacity: usize, batch_size: usize) -> UsageWriter {
        UsageWriter::spawn(
            store.clone(),
            UsageWriterConfig {
                capacity,
                batch_size,
                flush_interval: Duration::from_secs(3600),
            },
        )
    }

    async fn written(store: &MemoryStore) -> u64 {
        store
            .usage_report(&UsageQuery {
                scope: UsageScope::Key("k".into()),
                from: None,
                to: None,
                group_by: None,
            })
            .await
            .unwrap()
            .totals
            .requests
    }

    #[tokio::test]
    async fn shutdown_flushes_everything_queued() {
        let store = Arc::new(MemoryStore::new());
        let w = writer(&store, 16, 7);
        for i in 0..100 {
            w.record(rec(i)).await;
        }
        w.shutdown().await;
        assert_eq!(written(&store).await, 100);
    }

    #[tokio::test]
    async fn no_field_is_stored_over_its_bound() {
        let store = Arc::new(MemoryStore::new());
        let w = writer(&store, 4, 4);
        let mut r = rec(0);
        r.model = format!("m\r\n{}", "x".repeat(1 << 20));
        w.record(r).await;
        w.flush().await;
        let report = store
            .usage_report(&UsageQuery {
                scope: UsageScope::Key("k".into()),
                from: None,
                to: None,
                group_by: Some(crate::usage::UsageGroupBy::Model),
            })
            .await
            .unwrap();
        let model = &report.rows[0].bucket;
        assert_eq!(model.len(), crate::bounds::MAX_MODEL_LEN);
        assert!(model.starts_with("mxxx"), "control characters dropped");
    }

    #[tokio::test]
    async fn flush_writes_what_was_queued_before_it() {
        let store = Arc::new(MemoryStore::new());
        let w = writer(&store, 64, 50);
        for i in 0..30 {
            w.record(rec(i)).await;
        }
        assert_eq!(written(&store).await, 0, "nothing written before the flush");
        w.flush().await;
        assert_eq!(written(&store).await, 30);
        w.shutdown().await;
        w.flush().await;
    }

    #[tokio::test]
    async fn a_flush_writes_more_than_a_batch() {
        let store = Arc::new(MemoryStore::new());
        let w = writer(&store, 64, 8);
        // Queued while the writing task has not run yet: all in the channel.
        for i in 0..30 {
            w.record(rec(i)).await;
        }
        w.flush().await;
        assert_eq!(written(&store).await, 30);
        w.shutdown().await;
    }
}
