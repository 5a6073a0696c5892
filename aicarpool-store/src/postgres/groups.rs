//! Groups, memberships and invitations.

use aicarpool_core::key::KeyRecord;
use aicarpool_core::org::{Group, GroupRole, Invitation, Membership, User};
use aicarpool_core::store::{GroupStore, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::codec::{db_err, json, ms, wide};
use super::keys::KEY_COLS;
use super::{affected, PostgresStore};
use crate::codec::rows::{
    group_row, invitation_row, invitation_target_ids, key_row, membership_row, role, user_row,
    INVITATION_COLS,
};

pub(super) const GROUP_COLS: &str =
    "g.id AS id, g.name AS name, g.enterprise_id AS enterprise_id, \
     g.department_id AS department_id, g.max_members AS max_members, \
     g.limits::text AS limits, g.fair_share::text AS fair_share, \
     g.fare_split::text AS fare_split, g.created_by AS created_by, g.created_at AS created_at";

#[async_trait]
impl GroupStore for PostgresStore {
    async fn create_group(&self, group: &Group, owner: &Membership) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO carpool_groups (id, name, enterprise_id, department_id, max_members,
                 limits, fair_share, fare_split, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10)",
        )
        .bind(&group.id)
        .bind(&group.name)
        .bind(&group.enterprise_id)
        .bind(&group.department_id)
        .bind(group.max_members.map(wide))
        .bind(json(&group.limits)?)
        .bind(json(&group.fair_share)?)
        .bind(json(&group.fare_split)?)
        .bind(&group.created_by)
        .bind(ms(group.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_membership(&mut tx, owner).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn group(&self, id: &str) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT {GROUP_COLS} FROM carpool_groups g WHERE g.id = $1");
        self.fetch_one(&sql, &[id], group_row).await
    }

    async fn groups(&self) -> StoreResult<Vec<Group>> {
        let sql = format!("SELECT {GROUP_COLS} FROM carpool_groups g ORDER BY g.created_at, g.seq");
        self.fetch_many(&sql, &[], group_row).await
    }

    async fn update_group(&self, group: &Group) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE carpool_groups SET name = $1, enterprise_id = $2, department_id = $3,
                 max_members = $4, limits = $5::jsonb, fair_share = $6::jsonb,
                 fare_split = $7::jsonb, created_by = $8, created_at = $9
             WHERE id = $10",
        )
        .bind(&group.name)
        .bind(&group.enterprise_id)
        .bind(&group.department_id)
        .bind(group.max_members.map(wide))
        .bind(json(&group.limits)?)
        .bind(json(&group.fair_share)?)
        .bind(json(&group.fare_split)?)
        .bind(&group.created_by)
        .bind(ms(group.created_at))
        .bind(&group.id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        affected(done)
    }

    async fn delete_group(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Memberships, invitations, the binding and keys go with the group
        // through `ON DELETE CASCADE`.
        let done = sqlx::query("DELETE FROM carpool_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        affected(done)?;
        // Group-owned accounts have no foreign key to their owner; deleting
        // them cascades them out of every other group's binding.
        sqlx::query("DELETE FROM accounts WHERE owner_kind = 'group' AND owner_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn groups_of_user(&self, user_id: &str) -> StoreResult<Vec<(Group, GroupRole)>> {
        let sql = format!(
            "SELECT {GROUP_COLS}, m.role AS role FROM memberships m
             JOIN carpool_groups g ON g.id = m.group_id
             WHERE m.user_id = $1
             ORDER BY m.joined_at, m.seq"
        );
        self.fetch_many(&sql, &[user_id], |r| Ok((group_row(r)?, role(r, "role")?)))
            .await
    }

    async fn add_member(
        &self,
        membership: &Membership,
        max_members: Option<u32>,
    ) -> StoreResult<()> {
        let Some(max) = max_members else {
            let mut conn = self.pool.acquire().await.map_err(db_err)?;
            return insert_membership(&mut conn, membership).await;
        };
        // The group's row lock serializes joins across instances: the count
        // below runs after the previous holder committed (READ COMMITTED
        // takes a fresh snapshot per statement). NO KEY UPDATE, because it
        // still lets foreign-key checks (new keys, …) through.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let group: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM carpool_groups WHERE id = $1 FOR NO KEY UPDATE")
                .bind(&membership.group_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if group.is_none() {
            return Err(StoreError::NotFound);
        }
        let (count, member): (i64, bool) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(BOOL_OR(user_id = $2), FALSE)
             FROM memberships WHERE group_id = $1",
        )
        .bind(&membership.group_id)
        .bind(&membership.user_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if member {
            return Err(StoreError::Conflict("already a member".into()));
        }
        if count >= i64::from(max) {
            return Err(StoreError::LimitReached(format!(
                "the group has {max} members"
            )));
        }
        insert_membership(&mut tx, membership).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn membership(&self, group_id: &str, user_id: &str) -> StoreResult<Option<Membership>> {
        self.fetch_one(
            "SELECT group_id, user_id, role, share_weight, joined_at FROM memberships
             WHERE group_id = $1 AND user_id = $2",
            &[group_id, user_id],
            membership_row,
        )
        .await
    }

    async fn members(&self, group_id: &str) -> StoreResult<Vec<(Membership, User)>> {
        self.fetch_many(
            "SELECT m.group_id AS group_id, m.user_id AS user_id, m.role AS role,
                 m.share_weight AS share_weight, m.joined_at AS joined_at,
                 u.id AS u_id, u.email AS u_email, u.name AS u_name,
                 u.password_hash AS u_password_hash, u.is_system_admin AS u_is_system_admin,
                 u.created_at AS u_created_at
             FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.group_id = $1
             ORDER BY m.joined_at, m.seq",
            &[group_id],
            |r| Ok((membership_row(r)?, user_row(r, "u_")?)),
        )
        .await
    }

    async fn update_member(&self, membership: &Membership) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE memberships SET role = $1, share_weight = $2
             WHERE group_id = $3 AND user_id = $4",
        )
        .bind(membership.role.as_str())
        .bind(wide(membership.share_weight))
        .bind(&membership.group_id)
        .bind(&membership.user_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        affected(done)
    }

    async fn remove_member(&self, group_id: &str, user_id: &str) -> StoreResult<Vec<KeyRecord>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query("DELETE FROM memberships WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        affected(done)?;
        let sql = format!(
            "DELETE FROM member_keys WHERE group_id = $1 AND user_id = $2 RETURNING {KEY_COLS}"
        );
        let rows = sqlx::query(&sql)
            .bind(group_id)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut keys = rows.iter().map(key_row).collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await.map_err(db_err)?;
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()> {
        let (group_id, enterprise_id, department_id) = invitation_target_ids(&invitation.target);
        sqlx::query(
            "INSERT INTO invitations (id, group_id, enterprise_id, department_id, token_hash,
                 email, role, max_uses, uses, expires_at, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&invitation.id)
        .bind(group_id)
        .bind(enterprise_id)
        .bind(department_id)
        .bind(&invitation.token_hash)
        .bind(&invitation.email)
        .bind(invitation.target.role_str())
        .bind(invitation.max_uses.map(wide))
        .bind(wide(invitation.uses))
        .bind(ms(invitation.expires_at))
        .bind(&invitation.created_by)
        .bind(ms(invitation.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn invitation_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Invitation>> {
        let sql = format!("SELECT {INVITATION_COLS} FROM invitations WHERE token_hash = $1");
        self.fetch_one(&sql, &[token_hash], invitation_row).await
    }

    async fn use_invitation(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        // One conditional statement: an UPDATE that waited for another
        // one's row lock checks its WHERE again on the row that one left
        // (READ COMMITTED), so racers on any instance cannot push `uses`
        // past `max_uses`. Expiry is whole milliseconds, so comparing with
        // `now` rounded down is exact.
        let done = sqlx::query(
            "UPDATE invitations SET uses = uses + 1
             WHERE id = $1 AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(id)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM invitations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match exists {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound),
        }
    }

    async fn release_invitation_use(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE invitations SET uses = uses - 1 WHERE id = $1 AND uses > 0")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

async fn insert_membership(conn: &mut PgConnection, m: &Membership) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO memberships (group_id, user_id, role, share_weight, joined_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&m.group_id)
    .bind(&m.user_id)
    .bind(m.role.as_str())
    .bind(wide(m.share_weight))
    .bind(ms(m.joined_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
