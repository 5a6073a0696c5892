//! The row mappers of both SQL backends: each reads one result row into a
//! domain value through [`ReadRow`], whichever database it came from.
//!
//! The SQL stays with each backend (placeholders, casts, locking and
//! ordering differ); its `SELECT` names the columns a mapper reads. Most
//! column lists differ too (PostgreSQL selects JSONB as `col::text`,
//! SQLite aliases joined columns with `AS`) and stay in the backend; the
//! ones both write alike are here, next to their mapper.

use aicarpool_core::account::Account;
use aicarpool_core::alert::{AlertKind, AlertOwner, AlertRule, AlertTarget};
use aicarpool_core::binding::BoundAccount;
use aicarpool_core::enterprise::{
    AuditEntry, Department, DepartmentAdmin, Enterprise, EnterpriseEvent, EnterpriseMember,
    EnterpriseRole,
};
use aicarpool_core::key::{KeyHash, KeyRecord};
use aicarpool_core::org::{
    Group, GroupRole, Invitation, InvitationTarget, Membership, Session, User,
};
use aicarpool_core::secret::Sealed;
use aicarpool_core::store::StoreResult;
use aicarpool_core::usage::{
    Accuracy, RefusalReason, Usage, UsageRecord, UsageReport, UsageRow, UsageTotals,
};

use super::{corrupt, owner, platform, preset, ReadRow};

pub(crate) fn role<R: ReadRow>(row: &R, col: &str) -> StoreResult<GroupRole> {
    GroupRole::parse(&row.text(col)?).ok_or_else(|| corrupt(col))
}

pub(crate) fn enterprise_role<R: ReadRow>(row: &R, col: &str) -> StoreResult<EnterpriseRole> {
    EnterpriseRole::parse(&row.text(col)?).ok_or_else(|| corrupt(col))
}

// Users and sessions.

pub(crate) const USER_COLS: &str = "id, email, name, password_hash, is_system_admin, created_at";

/// Reads a user from columns named as in [`USER_COLS`], each prefixed
/// with `prefix` (for joins).
pub(crate) fn user_row<R: ReadRow>(row: &R, prefix: &str) -> StoreResult<User> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(User {
        id: row.text(&col("id"))?,
        email: row.text(&col("email"))?,
        name: row.text(&col("name"))?,
        password_hash: row.text(&col("password_hash"))?,
        is_system_admin: row.bool(&col("is_system_admin"))?,
        created_at: row.time(&col("created_at"))?,
    })
}

pub(crate) fn session_row<R: ReadRow>(row: &R) -> StoreResult<Session> {
    Ok(Session {
        token_hash: row.text("token_hash")?,
        user_id: row.text("user_id")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

// Groups, memberships and invitations.

pub(crate) fn group_row<R: ReadRow>(row: &R) -> StoreResult<Group> {
    Ok(Group {
        id: row.text("id")?,
        name: row.text("name")?,
        enterprise_id: row.opt_text("enterprise_id")?,
        department_id: row.opt_text("department_id")?,
        max_members: row.opt_int("max_members")?,
        limits: row.json("limits")?,
        fair_share: row.json("fair_share")?,
        fare_split: row.json("fare_split")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn membership_row<R: ReadRow>(row: &R) -> StoreResult<Membership> {
    Ok(Membership {
        group_id: row.text("group_id")?,
        user_id: row.text("user_id")?,
        role: role(row, "role")?,
        share_weight: row.int("share_weight")?,
        joined_at: row.time("joined_at")?,
    })
}

pub(crate) const INVITATION_COLS: &str =
    "id, group_id, enterprise_id, department_id, token_hash, email, role, max_uses, uses, \
     expires_at, created_by, created_at";

/// The `(group_id, enterprise_id, department_id)` columns of a target:
/// exactly one is set.
pub(crate) fn invitation_target_ids(
    target: &InvitationTarget,
) -> (Option<&str>, Option<&str>, Option<&str>) {
    match target {
        InvitationTarget::Group { group_id, .. } => (Some(group_id), None, None),
        InvitationTarget::Enterprise { enterprise_id, .. } => (None, Some(enterprise_id), None),
        InvitationTarget::Department { department_id } => (None, None, Some(department_id)),
    }
}

pub(crate) fn invitation_row<R: ReadRow>(row: &R) -> StoreResult<Invitation> {
    let target = match (
        row.opt_text("group_id")?,
        row.opt_text("enterprise_id")?,
        row.opt_text("department_id")?,
    ) {
        (Some(group_id), None, None) => InvitationTarget::Group {
            group_id,
            role: role(row, "role")?,
        },
        (None, Some(enterprise_id), None) => InvitationTarget::Enterprise {
            enterprise_id,
            role: enterprise_role(row, "role")?,
        },
        (None, None, Some(department_id)) => InvitationTarget::Department { department_id },
        _ => return Err(corrupt("invitation target")),
    };
    Ok(Invitation {
        id: row.text("id")?,
        target,
        token_hash: row.text("token_hash")?,
        email: row.opt_text("email")?,
        max_uses: row.opt_int("max_uses")?,
        uses: row.int("uses")?,
        expires_at: row.time("expires_at")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
    })
}

// Member keys.

pub(crate) fn key_row<R: ReadRow>(row: &R) -> StoreResult<KeyRecord> {
    let hash = row.text("key_hash")?;
    Ok(KeyRecord {
        id: row.text("id")?,
        group_id: row.text("group_id")?,
        user_id: row.text("user_id")?,
        name: row.text("name")?,
        key_hash: Some(KeyHash::from_hex(&hash).ok_or_else(|| corrupt("key_hash"))?),
        hint: row.text("hint")?,
        enabled: row.bool("enabled")?,
        expires_at: row.opt_time("expires_at")?,
        services: row.json("services")?,
        models: row.json("models")?,
        clients: row.json("clients")?,
        limits: row.json("limits")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

// Upstream accounts and bindings.

pub(crate) fn account_row<R: ReadRow>(row: &R) -> StoreResult<Account> {
    let owner_kind = row.text("owner_kind")?;
    Ok(Account {
        id: row.text("id")?,
        name: row.text("name")?,
        platform: platform(&row.text("platform")?)?,
        preset: row.opt_text("preset")?.map(|p| preset(&p)).transpose()?,
        base_url: row.opt_text("base_url")?,
        owner: owner(&owner_kind, row.text("owner_id")?)?,
        models: row.json("models")?,
        model_map: row.json("model_map")?,
        serves: Vec::new(),
        priority: row.i32("priority")?,
        weight: row.int("weight")?,
        max_concurrency: row.opt_int("max_concurrency")?,
        proxy: row.opt_text("proxy")?,
        enabled: row.bool("enabled")?,
        credentials: Sealed(row.bytes("credentials")?),
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// An entry of a binding (`binding_accounts`).
pub(crate) fn bound_row<R: ReadRow>(row: &R) -> StoreResult<BoundAccount> {
    Ok(BoundAccount {
        account_id: row.text("account_id")?,
        priority: row.opt_i32("priority")?,
        weight: row.opt_int("weight")?,
        dedicated: row.bool("dedicated")?,
    })
}

/// A binding listing an account: its group, and whether it is dedicated.
pub(crate) fn account_binding_row<R: ReadRow>(row: &R) -> StoreResult<(String, bool)> {
    Ok((row.text("group_id")?, row.bool("dedicated")?))
}

// Enterprises and departments.

pub(crate) fn enterprise_row<R: ReadRow>(row: &R) -> StoreResult<Enterprise> {
    Ok(Enterprise {
        id: row.text("id")?,
        name: row.text("name")?,
        budget: row.json("budget")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn department_row<R: ReadRow>(row: &R) -> StoreResult<Department> {
    Ok(Department {
        id: row.text("id")?,
        enterprise_id: row.text("enterprise_id")?,
        parent_id: row.opt_text("parent_id")?,
        name: row.text("name")?,
        budget: row.json("budget")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn enterprise_member_row<R: ReadRow>(row: &R) -> StoreResult<EnterpriseMember> {
    Ok(EnterpriseMember {
        enterprise_id: row.text("enterprise_id")?,
        user_id: row.text("user_id")?,
        role: enterprise_role(row, "role")?,
        added_at: row.time("added_at")?,
    })
}

pub(crate) fn department_admin_row<R: ReadRow>(row: &R) -> StoreResult<DepartmentAdmin> {
    Ok(DepartmentAdmin {
        department_id: row.text("department_id")?,
        user_id: row.text("user_id")?,
        added_at: row.time("added_at")?,
    })
}

// The audit log and enterprise events.

pub(crate) fn audit_row<R: ReadRow>(row: &R) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: row.text("id")?,
        at: row.time("at")?,
        actor_id: row.opt_text("actor_id")?,
        action: row.text("action")?,
        target_type: row.text("target_type")?,
        target_id: row.text("target_id")?,
        enterprise_id: row.opt_text("enterprise_id")?,
        group_id: row.opt_text("group_id")?,
        detail: row.json("detail")?,
    })
}

pub(crate) fn event_row<R: ReadRow>(row: &R) -> StoreResult<EnterpriseEvent> {
    Ok(EnterpriseEvent {
        id: row.text("id")?,
        enterprise_id: row.text("enterprise_id")?,
        department_id: row.opt_text("department_id")?,
        at: row.time("at")?,
        kind: row.text("kind")?,
        dedupe_key: row.text("dedupe_key")?,
        detail: row.json("detail")?,
    })
}

// Usage sums.

/// The `usage_rollups` and `usage_facts` column counting the refusals of
/// `reason` (`refused_rate_limit`, …; migration 0010 creates them).
pub(crate) fn refused_col(reason: RefusalReason) -> String {
    format!("refused_{}", reason.as_str().replace('-', "_"))
}

/// Whether a `usage_records` row was refused for `reason`. The reason
/// names are fixed identifiers, safe to write into the statement.
pub(crate) fn refused_when(reason: RefusalReason) -> String {
    format!("refusal = '{}'", reason.as_str())
}

/// One sum per refusal reason, comma-separated: `sum(column)` for each
/// `refused_…` column, the backend's way of summing and naming it.
pub(crate) fn refusal_sums(sum: impl Fn(&str) -> String) -> String {
    RefusalReason::ALL
        .into_iter()
        .map(|r| sum(&refused_col(r)))
        .collect::<Vec<_>>()
        .join(",\n    ")
}

/// The sums of a report row: `requests`, `input_tokens`, … `errors`,
/// and one `refused_…` count per reason.
pub(crate) fn totals_row<R: ReadRow>(row: &R) -> StoreResult<UsageTotals> {
    totals_with_suffix(row, "")
}

/// The sums since instant `i`: `requests_{i}`, … `errors_{i}`.
pub(crate) fn since_totals<R: ReadRow>(row: &R, i: usize) -> StoreResult<UsageTotals> {
    totals_with_suffix(row, &format!("_{i}"))
}

fn totals_with_suffix<R: ReadRow>(row: &R, suffix: &str) -> StoreResult<UsageTotals> {
    let col = |c: &str| format!("{c}{suffix}");
    Ok(UsageTotals {
        requests: row.int(&col("requests"))?,
        input_tokens: row.int(&col("input_tokens"))?,
        output_tokens: row.int(&col("output_tokens"))?,
        cache_write_tokens: row.int(&col("cache_write_tokens"))?,
        cache_write_5m_tokens: row.int(&col("cache_write_5m_tokens"))?,
        cache_write_1h_tokens: row.int(&col("cache_write_1h_tokens"))?,
        cache_read_tokens: row.int(&col("cache_read_tokens"))?,
        cost_micro_usd: row.i64(&col("cost_micro_usd"))?,
        errors: row.int(&col("errors"))?,
        estimated: row.int(&col("estimated"))?,
        partial: row.int(&col("partial"))?,
        refusals: RefusalReason::ALL
            .into_iter()
            .map(|r| Ok((r, row.int(&col(&refused_col(r)))?)))
            .collect::<StoreResult<_>>()?,
    })
}

/// A usage report from the rows of its query: one row of sums when
/// ungrouped (none reads as zeros), else one per `bucket`, in order.
pub(crate) fn usage_report<R: ReadRow>(rows: &[R], grouped: bool) -> StoreResult<UsageReport> {
    if !grouped {
        let totals = rows
            .first()
            .map(totals_row)
            .transpose()?
            .unwrap_or_default();
        return Ok(UsageReport {
            rows: Vec::new(),
            totals,
        });
    }
    let mut report = UsageReport::default();
    for row in rows {
        let totals = totals_row(row)?;
        report.totals.merge(&totals);
        report.rows.push(UsageRow {
            bucket: row.text("bucket")?,
            totals,
        });
    }
    Ok(report)
}

// Alert rules.

pub(crate) const ALERT_COLS: &str =
    "id, group_id, enterprise_id, kind, target, threshold_milli, secret, created_by, created_at";

/// The `(group_id, enterprise_id)` columns of an owner.
pub(crate) fn alert_owner_ids(owner: &AlertOwner) -> (Option<&str>, Option<&str>) {
    match owner {
        AlertOwner::Group(id) => (Some(id), None),
        AlertOwner::Enterprise(id) => (None, Some(id)),
    }
}

/// A threshold as stored: thousandths.
pub(crate) fn threshold_milli(t: Option<f64>) -> Option<i64> {
    t.map(|t| (t * 1000.0).round() as i64)
}

pub(crate) fn alert_row<R: ReadRow>(row: &R) -> StoreResult<AlertRule> {
    let owner = match (row.opt_text("group_id")?, row.opt_text("enterprise_id")?) {
        (Some(g), None) => AlertOwner::Group(g),
        (None, Some(e)) => AlertOwner::Enterprise(e),
        _ => return Err(corrupt("alert owner")),
    };
    Ok(AlertRule {
        id: row.text("id")?,
        owner,
        kind: AlertKind::parse(&row.text("kind")?).ok_or_else(|| corrupt("alert kind"))?,
        target: AlertTarget::parse(&row.text("target")?).ok_or_else(|| corrupt("alert target"))?,
        threshold: row.opt_i64("threshold_milli")?.map(|m| m as f64 / 1000.0),
        secret: Sealed(row.bytes("secret")?),
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
    })
}

// The request log.

/// The columns [`usage_record_row`] reads, in both backends.
pub(crate) const USAGE_RECORD_COLS: &str =
    "id, at, key_id, user_id, group_id, account_id, model, input_tokens, output_tokens, \
     cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_micro_usd, \
     latency_ms, status, accuracy, served_model, refusal, ttfb_ms, attempts, failed_over";

/// The failover path as stored: a JSON array, `NULL` when empty.
pub(crate) fn failed_over_col(path: &[String]) -> StoreResult<Option<String>> {
    (!path.is_empty()).then(|| super::json(&path)).transpose()
}

pub(crate) fn usage_record_row<R: ReadRow>(row: &R) -> StoreResult<UsageRecord> {
    let accuracy = row.text("accuracy")?;
    let refusal = row
        .opt_text("refusal")?
        .map(|r| RefusalReason::parse(&r).ok_or_else(|| corrupt("refusal")))
        .transpose()?;
    let failed_over = match row.opt_text("failed_over")? {
        Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("failed_over"))?,
        None => Vec::new(),
    };
    Ok(UsageRecord {
        id: row.text("id")?,
        at: row.time("at")?,
        key_id: row.text("key_id")?,
        user_id: row.text("user_id")?,
        group_id: row.text("group_id")?,
        account_id: row.opt_text("account_id")?,
        model: row.text("model")?,
        usage: Usage {
            input_tokens: row.int("input_tokens")?,
            output_tokens: row.int("output_tokens")?,
            cache_write_5m_tokens: row.int("cache_write_5m_tokens")?,
            cache_write_1h_tokens: row.int("cache_write_1h_tokens")?,
            cache_read_tokens: row.int("cache_read_tokens")?,
        },
        cost_micro_usd: row.i64("cost_micro_usd")?,
        latency_ms: row.int("latency_ms")?,
        // INTEGER in both schemas: 32 bits in PostgreSQL.
        status: u16::try_from(row.i32("status")?).map_err(|_| corrupt("status"))?,
        accuracy: Accuracy::parse(&accuracy).ok_or_else(|| corrupt("accuracy"))?,
        served_model: row.opt_text("served_model")?,
        refusal,
        ttfb_ms: row.opt_int("ttfb_ms")?,
        attempts: u32::try_from(row.i32("attempts")?).map_err(|_| corrupt("attempts"))?,
        failed_over,
    })
}
