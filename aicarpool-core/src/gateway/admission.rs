//! Member limits on the request path: the scopes a request belongs to,
//! the upper bound it reserves, and the refusal in the client's protocol.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::{GatewayError, Inner};
use crate::key::KeyRecord;
use crate::limit::{
    AdmissionRequest, AdmitError, LimitKind, Limiter, Permit, Scope, ScopedLimits, Spend,
};
use crate::limits::{KeyLimits, QueueLimits};

/// Output tokens reserved when a request names no `max_tokens` (the
/// upstream will refuse it anyway, but the reservation must be finite).
const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// Request body bytes per estimated input token. JSON, tool schemas and
/// base64 images make bodies larger than their token count, so this
/// errs high for most requests; settlement corrects it either way.
const BYTES_PER_TOKEN: u64 = 4;

/// A group's limits as the data plane reads them.
#[derive(Debug, Default)]
struct GroupLimits {
    /// The group as a whole.
    group: KeyLimits,
    /// Each member across their keys.
    per_member: KeyLimits,
    /// Budgets of the group's departments and enterprise (enterprise mode).
    org: Arc<Vec<super::budget::OrgBudget>>,
}

/// The limiter and the group limits it is fed, cached.
#[derive(Debug)]
pub(super) struct Admission {
    limiter: Arc<dyn Limiter>,
    groups: Cache<String, Arc<GroupLimits>>,
}

impl Admission {
    pub(super) fn new(limiter: Arc<dyn Limiter>, ttl: Duration) -> Self {
        Self {
            limiter,
            groups: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub(super) fn limiter(&self) -> &Arc<dyn Limiter> {
        &self.limiter
    }

    /// Drops a group's cached limits (they were changed).
    pub(super) fn forget_group(&self, group_id: &str) {
        self.groups.invalidate(group_id);
    }

    /// Drops every group's cached limits.
    pub(super) fn forget_all_groups(&self) {
        self.groups.invalidate_all();
    }
}

/// The upper bound a request reserves: its body as input, `max_tokens` as
/// output, priced at the model the client asked for.
pub(super) fn reservation(
    inner: &Inner,
    model: &str,
    body_len: usize,
    max_tokens: Option<u64>,
) -> Spend {
    let input = (body_len as u64).div_ceil(BYTES_PER_TOKEN);
    let output = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    Spend {
        tokens: input.saturating_add(output),
        cost_micro_usd: inner.pricing.reservation_micro_usd(model, input, output),
    }
}

/// A request the limits did not admit.
pub(super) struct NotAdmitted {
    pub error: GatewayError,
    /// Set when only a concurrency slot was missing and the limits let
    /// the request wait for one: the line and its bounds.
    pub line: Option<(String, QueueLimits)>,
}

impl Inner {
    /// Admits a Messages request under the limits of its key, its member
    /// and its group, and the budgets of its departments and enterprise.
    pub(super) async fn admit_limits(
        &self,
        key: &KeyRecord,
        reserve: Spend,
    ) -> Result<(Permit, Option<QueueLimits>), NotAdmitted> {
        let group = self
            .group_limits(&key.group_id)
            .await
            .map_err(|error| NotAdmitted { error, line: None })?;
        let admitted = self.try_admit(key, &group, reserve).await;
        // Refused or not, the request shows where the budgets stand.
        if !group.org.is_empty() {
            self.watch_budgets(&group.org).await;
        }
        admitted.map(|p| (p, queue_of(key, &group))).map_err(|e| {
            let line = match &e {
                AdmitError::Refused(r) if r.kind == LimitKind::Concurrency => {
                    queue_of(key, &group).map(|q| (line_name(&r.scope), q))
                }
                _ => None,
            };
            NotAdmitted {
                error: refused(e),
                line,
            }
        })
    }

    /// Waits in `line` for the concurrency slot [`Inner::admit_limits`]
    /// found missing, admitting as soon as one comes free.
    pub(super) async fn wait_for_limits(
        &self,
        key: &KeyRecord,
        reserve: Spend,
        (line, queue): (String, QueueLimits),
    ) -> Result<Permit, GatewayError> {
        let group = self.group_limits(&key.group_id).await?;
        let group = &group;
        let waited = self
            .waiting
            .wait(&line, queue, || async move {
                match self.try_admit(key, group, reserve).await {
                    Err(AdmitError::Refused(r)) if r.kind == LimitKind::Concurrency => None,
                    done => Some(done),
                }
            })
            .await;
        match waited {
            Ok(done) => done.map_err(refused),
            Err(gave_up) => Err(GatewayError::RateLimited {
                message: format!("concurrency limit reached and {}", gave_up.describe()),
                retry_after: Some(Duration::from_secs(1)),
                refusal: Some(crate::usage::RefusalReason::Concurrency),
            }),
        }
    }

    async fn try_admit(
        &self,
        key: &KeyRecord,
        group: &GroupLimits,
        reserve: Spend,
    ) -> Result<Permit, AdmitError> {
        let scopes = [
            Scope::Key(key.id.clone()),
            Scope::Member {
                group_id: key.group_id.clone(),
                user_id: key.user_id.clone(),
            },
            Scope::Group(key.group_id.clone()),
        ];
        let limits = [&key.limits, &group.per_member, &group.group];
        let request = AdmissionRequest {
            scopes: scopes
                .iter()
                .zip(limits)
                .map(|(scope, limits)| ScopedLimits { scope, limits })
                .chain(group.org.iter().map(|b| ScopedLimits {
                    scope: &b.scope,
                    limits: &b.limits,
                }))
                .collect(),
            reserve,
        };
        self.admission.limiter.admit(request).await
    }

    /// The group's limits, from the cache or the store. A group that is
    /// gone has none (its keys are gone too).
    async fn group_limits(&self, group_id: &str) -> Result<Arc<GroupLimits>, GatewayError> {
        let cache = &self.admission.groups;
        if let Some(g) = cache.get(group_id) {
            return Ok(g);
        }
        let generation = self.cache_generation.load(Ordering::Acquire);
        let group = self
            .store
            .group(group_id)
            .await
            .map_err(|e| GatewayError::Internal(format!("loading group limits: {e}")))?;
        let limits = Arc::new(match group {
            Some(g) => {
                let org = super::budget::org_budgets(self, &g)
                    .await
                    .map_err(|e| GatewayError::Internal(format!("loading budgets: {e}")))?;
                let mut group = g.limits;
                let per_member = group.per_member.take().map(|m| *m).unwrap_or_default();
                GroupLimits {
                    group,
                    per_member,
                    org: Arc::new(org),
                }
            }
            None => GroupLimits::default(),
        });
        if self.cache_generation.load(Ordering::Acquire) == generation {
            cache.insert(group_id.to_owned(), limits.clone());
        }
        Ok(limits)
    }
}

/// The key's own queue, else its group's for each member, else the
/// group's.
fn queue_of(key: &KeyRecord, group: &GroupLimits) -> Option<QueueLimits> {
    key.limits
        .queue
        .or(group.per_member.queue)
        .or(group.group.queue)
}

/// The line of a limit scope.
fn line_name(scope: &Scope) -> String {
    match scope {
        Scope::Key(id) => format!("key:{id}"),
        Scope::Member { group_id, user_id } => format!("member:{group_id}:{user_id}"),
        Scope::Group(id) => format!("group:{id}"),
        Scope::Department(id) => format!("department:{id}"),
        Scope::Enterprise(id) => format!("enterprise:{id}"),
    }
}

/// A limiter's refusal as the client's error.
fn refused(e: AdmitError) -> GatewayError {
    match e {
        AdmitError::Refused(r) => GatewayError::RateLimited {
            message: r.to_string(),
            retry_after: r.retry_after,
            refusal: Some(r.reason()),
        },
        AdmitError::Unavailable(m) => {
            super::telemetry::limiter_error();
            GatewayError::Unavailable(format!("limits cannot be checked right now: {m}"))
        }
    }
}
