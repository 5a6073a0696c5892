//! Members' use of subscription windows in Redis, so that every instance
//! splits a window by the same counts (see [`aicarpool_core::fair`]).
//!
//! One hash per account window, `<prefix><account>:<5h|7d>:<reset>`:
//!
//! | field | holds |
//! |---|---|
//! | `sent` | micro-USD the gateway sent in the window |
//! | `u:<group>\|<user>`, `n:…`, `w:…` | a member's use, requests and weight |
//! | `fu`, `fs` / `lu`, `ls` | first / latest reported utilization (millionths) and `sent` then |
//!
//! A charge is one Lua script, so the observation and the counts move
//! together; the hash expires an hour after the window resets.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aicarpool_core::fair::{
    LedgerError, MemberId, MemberUse, Observation, WindowCharge, WindowId, WindowLedger, WindowUse,
};
use async_trait::async_trait;
use redis::{RedisError, Script};

use super::connection::{Connection, RedisConnectError};

static CHARGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("windows.lua")));

/// Kept this long past the window's reset, for clocks that differ a little.
const RESET_MARGIN_MS: u64 = 3_600_000;
/// Utilizations are stored in millionths.
const MILLIONTHS: f64 = 1e6;

/// The window ledger of several gateway instances. Cheap to clone;
/// `Debug` never shows the URL.
#[derive(Clone)]
pub struct RedisWindowLedger {
    redis: Connection,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisWindowLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWindowLedger")
            .field("target", &self.redis.target)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisWindowLedger {
    pub const DEFAULT_PREFIX: &'static str = "aicp:window:";

    /// A ledger on the Redis at `url`, connected on first use.
    pub async fn connect(url: &str) -> Result<Self, RedisConnectError> {
        Ok(Self {
            redis: Connection::open_lazy(url)?,
            prefix: Self::DEFAULT_PREFIX.into(),
        })
    }

    /// Keys under `prefix` instead of [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    fn key(&self, w: &WindowId) -> String {
        format!(
            "{}{}:{}:{}",
            self.prefix,
            w.account_id,
            w.kind.as_str(),
            w.resets_at
        )
    }

    fn unavailable(&self, e: &RedisError) -> LedgerError {
        LedgerError::Unavailable(format!(
            "Redis at {}: {}",
            self.redis.target,
            self.redis.scrub(e)
        ))
    }
}

fn member_field(m: &MemberId) -> String {
    format!("{}|{}", m.group_id, m.user_id)
}

fn ttl_ms(window: &WindowId) -> u64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    window
        .resets_at
        .saturating_mul(1000)
        .saturating_sub(now_ms)
        .saturating_add(RESET_MARGIN_MS)
}

#[async_trait]
impl WindowLedger for RedisWindowLedger {
    async fn charge(&self, window: &WindowId, charge: &WindowCharge) -> Result<(), LedgerError> {
        let utilization = charge
            .utilization
            .map(|u| ((u * MILLIONTHS).round() as i64).to_string())
            .unwrap_or_default();
        let mut conn = self.redis.conn.clone();
        CHARGE
            .key(self.key(window))
            .arg(member_field(&charge.member))
            .arg(charge.weight)
            .arg(charge.micro_usd)
            .arg(utilization)
            .arg(ttl_ms(window))
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(())
    }

    async fn window(&self, window: &WindowId) -> Result<WindowUse, LedgerError> {
        let mut conn = self.redis.conn.clone();
        let fields: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.key(window))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))?;
        parse(&fields)
    }
}

fn parse(fields: &HashMap<String, i64>) -> Result<WindowUse, LedgerError> {
    let observation = |u: &str, s: &str| {
        Some(Observation {
            utilization: *fields.get(u)? as f64 / MILLIONTHS,
            sent_micro_usd: fields.get(s).copied().unwrap_or(0),
        })
    };
    let mut members = Vec::new();
    for (field, used) in fields {
        let Some(name) = field.strip_prefix("u:") else {
            continue;
        };
        let (group_id, user_id) = name
            .split_once('|')
            .ok_or_else(|| LedgerError::Corrupt(format!("member field `{field}`")))?;
        let weight = fields.get(&format!("w:{name}")).copied().unwrap_or(1);
        let requests = fields.get(&format!("n:{name}")).copied().unwrap_or(0);
        members.push(MemberUse {
            member: MemberId::new(group_id, user_id),
            weight: u32::try_from(weight).unwrap_or(1),
            used_micro_usd: *used,
            requests: u64::try_from(requests).unwrap_or(0),
        });
    }
    members.sort_by(|a, b| a.member.cmp(&b.member));
    Ok(WindowUse {
        members,
        sent_micro_usd: fields.get("sent").copied().unwrap_or(0),
        first: observation("fu", "fs"),
        last: observation("lu", "ls"),
    })
}
