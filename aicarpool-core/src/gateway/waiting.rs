//! Waiting instead of refusing: requests that find every concurrency slot
//! taken wait in line for one (`limits.queue`), in arrival order, rather
//! than getting an instant 429 that breaks a client's parallel sub-agents.
//!
//! Each line is one limit scope (a key, a member, a group) or one group's
//! accounts. The request at its head retries when a slot is freed on this
//! instance, and at least every [`RETRY_EVERY`] for slots freed on another;
//! the rest wait behind it, so arrival order holds. A line is bounded
//! (`maxWaiting`) and so is each wait (`maxWaitMs`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits::QueueLimits;

mod stream;

pub(super) use stream::stream;

/// How often the head of a line retries without being woken: slots freed
/// on other instances wake no one here.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// Why a request stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GaveUp {
    /// `maxWaiting` requests were already in line.
    Full { waiting: u32 },
    /// `maxWaitMs` passed without a slot.
    TimedOut { waited: Duration },
}

impl GaveUp {
    /// The end of a refusal's message.
    pub(super) fn describe(self) -> String {
        match self {
            GaveUp::Full { waiting } => {
                format!("{waiting} requests are already waiting for a slot")
            }
            GaveUp::TimedOut { waited } => {
                format!("no slot came free in {} ms of waiting", waited.as_millis())
            }
        }
    }
}

/// One line: its turnstile (a fair lock: the holder is the head) and how
/// many wait in it.
#[derive(Debug, Default)]
struct Line {
    turn: tokio::sync::Mutex<()>,
    waiting: AtomicU32,
}

/// Every line of a gateway, and the signal that a slot came free.
#[derive(Debug, Default)]
pub(super) struct WaitingRoom {
    lines: Mutex<HashMap<String, Arc<Line>>>,
    freed: Notify,
}

/// Counts a request in its line until it leaves; the last to leave
/// removes the line.
struct InLine<'a> {
    room: &'a WaitingRoom,
    name: &'a str,
    line: Arc<Line>,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        // Under the map's lock, so no one joins the line meanwhile.
        let mut lines = self.room.lines();
        if self.line.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            lines.remove(self.name);
        }
    }
}

impl WaitingRoom {
    fn lines(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Line>>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A concurrency slot came free on this instance: the heads retry.
    pub(super) fn freed(&self) {
        self.freed.notify_waiters();
    }

    /// Requests waiting now, in every line.
    #[cfg(test)]
    fn waiting(&self) -> u32 {
        self.lines()
            .values()
            .map(|l| l.waiting.load(Ordering::Acquire))
            .sum()
    }

    /// Waits in line `name` until `attempt` gives `Some` (it is retried at
    /// the head of the line, each time a slot may have come free), or
    /// until the queue's bounds give up.
    pub(super) async fn wait<T, F, Fut>(
        &self,
        name: &str,
        queue: QueueLimits,
        mut attempt: F,
    ) -> Result<T, GaveUp>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        let deadline = started + queue.max_wait();
        let line = {
            let mut lines = self.lines();
            let line = lines.entry(name.to_owned()).or_default().clone();
            let waiting = line.waiting.fetch_add(1, Ordering::AcqRel);
            if waiting >= queue.max_waiting {
                line.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(GaveUp::Full { waiting });
            }
            line
        };
        let _in_line = InLine {
            room: self,
            name,
            line: line.clone(),
        };
        let timed_out = || GaveUp::TimedOut {
            waited: started.elapsed(),
        };
        let _head = tokio::time::timeout_at(deadline, line.turn.lock())
            .await
            .map_err(|_| timed_out())?;
        loop {
            // Listening before the attempt: a slot freed during it is not
            // missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(done) = attempt().await {
                return Ok(done);
            }
            if Instant::now() >= deadline {
                return Err(timed_out());
            }
            let retry = (Instant::now() + RETRY_EVERY).min(deadline);
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep_until(retry) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn queue(max_waiting: u32, max_wait_ms: u64) -> QueueLimits {
        QueueLimits {
            max_waiting,
            max_wait_ms,
        }
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order_as_slots_free() {
        let room = Arc::new(WaitingRoom::default());
        let slots = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (room, slots, order) = (room.clone(), slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                room.wait("k", queue(10, 5_000), || {
                    let got = slots
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok();
                    std::future::ready(got.then_some(()))
                })
                .await
                .unwrap();
                order.lock().unwrap().push(i);
            }));
            // Each arrives after the one before is in line.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(room.waiting(), 5);
        for _ in 0..5 {
            slots.fetch_add(1, Ordering::AcqRel);
            room.freed();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(room.waiting(), 0);
        assert!(room.lines().is_empty(), "an empty line is removed");
    }

    #[tokio::test]
    async fn a_full_line_refuses_at_once_and_a_wait_is_bounded() {
        let room = Arc::new(WaitingRoom::default());
        let never = || std::future::ready(None::<()>);
        let first = {
            let room = room.clone();
            tokio::spawn(async move { room.wait("k", queue(1, 200), never).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            room.wait("k", queue(1, 200), never).await,
            Err(GaveUp::Full { waiting: 1 })
        );
        // Another line is not affected.
        let other = room.wait("other", queue(1, 30), never).await;
        assert!(matches!(other, Err(GaveUp::TimedOut { .. })));
        match first.await.unwrap() {
            Err(GaveUp::TimedOut { waited }) => {
                assert!(waited >= Duration::from_millis(200), "{waited:?}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(room.waiting(), 0);
    }
}
