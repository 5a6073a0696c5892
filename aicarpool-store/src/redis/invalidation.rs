//! Cache invalidations between gateway instances over Redis pub/sub.
//!
//! Every instance publishes what its management writes made stale on one
//! channel and applies what the others publish, so a key revoked through
//! one instance stops working on all of them at once, not when their
//! caches expire. Rate-limit coolings travel the same way.
//!
//! Pub/sub does not keep messages for a subscriber that is away. After
//! every (re)subscription the listener therefore applies
//! [`Invalidation::All`]: what it may have missed is dropped too.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::gateway::{Invalidation, InvalidationBus};
use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::connection::{Connection, RedisConnectError};

/// Messages queued for publishing at most; more are dropped (and logged)
/// rather than slowing the management API down.
const QUEUE: usize = 1024;

/// Wait before subscribing again after the subscription was lost.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// Why the bus could not start.
pub type InvalidationBusError = RedisConnectError;

/// Publishes and receives cache invalidations on one Redis channel.
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisInvalidationBus {
    client: redis::Client,
    channel: Arc<str>,
    /// Marks this instance's messages, so it skips its own echo.
    instance: Arc<str>,
    queue: mpsc::Sender<String>,
}

impl fmt::Debug for RedisInvalidationBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client holds the URL, which may hold a password.
        f.debug_struct("RedisInvalidationBus")
            .field("channel", &self.channel)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl RedisInvalidationBus {
    /// Connects for publishing on `channel`; [`listen`](Self::listen)
    /// starts receiving. Like the limiter, a Redis that is down does not
    /// fail the start: messages published meanwhile are lost (and logged),
    /// and the listener drops its whole cache once it is back.
    pub async fn connect(url: &str, channel: &str) -> Result<Self, InvalidationBusError> {
        let publisher = Connection::open_lazy(url)?;
        let client = redis::Client::open(url)
            .map_err(|e| RedisConnectError::Url(format!("{:?}", e.kind())))?;
        let (queue, pending) = mpsc::channel(QUEUE);
        let channel: Arc<str> = channel.into();
        tokio::spawn(publish_queued(publisher, channel.clone(), pending));
        Ok(Self {
            client,
            channel,
            instance: aicarpool_core::id::new_id().into(),
            queue,
        })
    }

    /// Applies every invalidation another instance publishes, until the
    /// returned task is aborted. Subscribes again after a lost connection.
    pub fn listen(
        &self,
        apply: impl Fn(&Invalidation) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                match bus.client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&*bus.channel).await {
                        Ok(()) => {
                            // Whatever was published while we were away.
                            apply(&Invalidation::All);
                            let mut messages = pubsub.into_on_message();
                            while let Some(message) = messages.next().await {
                                if let Some(event) = bus.received(message.get_payload_bytes()) {
                                    apply(&event);
                                }
                            }
                            tracing::warn!("cache invalidation subscription lost; resubscribing");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot subscribe for cache invalidation")
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach Redis for cache invalidation")
                    }
                }
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        })
    }

    /// The event in a message from another instance.
    fn received(&self, payload: &[u8]) -> Option<Invalidation> {
        let text = std::str::from_utf8(payload).ok()?;
        let (sender, event) = text.split_once(' ')?;
        if sender == &*self.instance {
            return None;
        }
        let event = Invalidation::decode(event);
        if event.is_none() {
            tracing::warn!("ignored an unreadable cache invalidation message");
        }
        event
    }
}

impl InvalidationBus for RedisInvalidationBus {
    fn publish(&self, event: &Invalidation) {
        let message = format!("{} {}", self.instance, event.encode());
        if self.queue.try_send(message).is_err() {
            tracing::warn!(
                "cache invalidation queue full; other instances catch up when their caches expire"
            );
        }
    }
}

async fn publish_queued(
    publisher: Connection,
    channel: Arc<str>,
    mut pending: mpsc::Receiver<String>,
) {
    let mut conn = publisher.conn.clone();
    while let Some(message) = pending.recv().await {
        let sent: redis::RedisResult<()> = conn.publish(&*channel, message).await;
        if let Err(e) = sent {
            tracing::warn!(error = %publisher.scrub(&e), "cannot publish a cache invalidation");
        }
    }
}
