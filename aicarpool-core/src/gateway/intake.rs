//! Request bodies in: a budget on the bytes buffered across all requests.
//!
//! Bodies are buffered whole, because routing needs the `model` and a
//! failover resends the same bytes to the next account. Without a bound,
//! a burst of large bodies takes as much memory as clients send. The
//! budget counts buffered bytes in [`UNIT`]-sized permits of one
//! semaphore: a request takes permits for its declared length before it
//! reads (or as chunks arrive, when no length is declared) and gives them
//! back once its answer has started, when the gateway no longer holds
//! the body. A request that cannot get its permits within the configured
//! wait is answered 503 with `retry-after`, in its protocol's shape.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::GatewayError;

/// Bytes one permit stands for: coarse enough that a 32 MiB body takes
/// 32,768 permits (within `u32`), fine enough that small bodies count.
const UNIT: usize = 1024;

/// The shared budget of buffered request bytes.
#[derive(Debug)]
pub(super) struct BodyBudget {
    permits: std::sync::Arc<Semaphore>,
    /// The largest body accepted: the per-request limit, or the whole
    /// budget when that is smaller (a body it cannot hold never fits).
    max_body: usize,
    wait: Duration,
}

/// The budget a buffered body holds; dropping it gives the bytes back.
#[derive(Debug)]
pub(super) struct BodyHold {
    _permits: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub(super) fn new(max_buffered: usize, max_body: usize, wait: Duration) -> Self {
        let units = (max_buffered / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: std::sync::Arc::new(Semaphore::new(units)),
            max_body: max_body.min(units.saturating_mul(UNIT)),
            wait,
        }
    }

    /// Bytes currently free in the budget.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.permits.available_permits() * UNIT
    }

    /// Reads `body` whole within the budget and the body limit.
    pub(super) async fn read<B>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Result<(Bytes, BodyHold), GatewayError>
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let declared = declared_length(headers);
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(GatewayError::TooLarge);
        }
        let deadline = Instant::now() + self.wait;
        let mut held = Held::default();
        // A declared length is reserved before any byte is read, so bodies
        // that cannot all fit wait (or are refused) instead of each holding
        // part of the budget.
        if let Some(n) = declared {
            held.grow_to(self, n, deadline).await?;
        }
        let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0));
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                tracing::debug!(error = %e, "request body could not be read");
                GatewayError::InvalidRequest("the request body could not be read".into())
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers carry nothing the gateway reads
            };
            let len = buffer.len() + chunk.len();
            if len > self.max_body {
                return Err(GatewayError::TooLarge);
            }
            held.grow_to(self, len, deadline).await?;
            buffer.extend_from_slice(&chunk);
        }
        Ok((
            buffer.freeze(),
            BodyHold {
                _permits: held.permits,
            },
        ))
    }
}

/// Permits taken so far by one body.
#[derive(Default)]
struct Held {
    permits: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl Held {
    /// Takes permits until `bytes` are covered, waiting until `deadline`.
    async fn grow_to(
        &mut self,
        budget: &BodyBudget,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), GatewayError> {
        let units = bytes.div_ceil(UNIT);
        if units <= self.units {
            return Ok(());
        }
        // `max_body` is within the budget and a `u32` of units (see `UNIT`).
        let more = u32::try_from(units - self.units).map_err(|_| GatewayError::TooLarge)?;
        let acquire = budget.permits.clone().acquire_many_owned(more);
        let permit = match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(p)) => p,
            // Timed out, or closed (never: the gateway owns the semaphore).
            _ => return Err(GatewayError::Busy),
        };
        match &mut self.permits {
            Some(held) => held.merge(permit),
            None => self.permits = Some(permit),
        }
        self.units = units;
        Ok(())
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
