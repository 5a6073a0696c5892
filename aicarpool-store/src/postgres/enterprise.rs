//! Enterprises, their members, departments and department admins.

use aicarpool_core::account::Account;
use aicarpool_core::enterprise::{
    Department, DepartmentAdmin, Enterprise, EnterpriseMember, EnterpriseRole,
};
use aicarpool_core::key::KeyRecord;
use aicarpool_core::org::{Group, User};
use aicarpool_core::store::{EnterpriseStore, StoreResult};
use async_trait::async_trait;
use sqlx::PgConnection;

use super::accounts::ACCOUNT_COLS;
use super::codec::{db_err, json, ms};
use super::groups::GROUP_COLS;
use super::keys::KEY_COLS;
use super::{affected, PostgresStore};
use crate::codec::rows::{
    account_row, department_admin_row, department_row, enterprise_member_row, enterprise_role,
    enterprise_row, group_row, key_row, user_row,
};

const ENTERPRISE_COLS: &str = "e.id AS id, e.name AS name, e.budget::text AS budget, \
     e.created_by AS created_by, e.created_at AS created_at";

const DEPARTMENT_COLS: &str = "d.id AS id, d.enterprise_id AS enterprise_id, \
     d.parent_id AS parent_id, d.name AS name, d.budget::text AS budget, \
     d.created_at AS created_at";

#[async_trait]
impl EnterpriseStore for PostgresStore {
    async fn create_enterprise(
        &self,
        enterprise: &Enterprise,
        owner: &EnterpriseMember,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO enterprises (id, name, budget, created_by, created_at)
             VALUES ($1, $2, $3::jsonb, $4, $5)",
        )
        .bind(&enterprise.id)
        .bind(&enterprise.name)
        .bind(json(&enterprise.budget)?)
        .bind(&enterprise.created_by)
        .bind(ms(enterprise.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        upsert_member(&mut tx, owner).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn enterprise(&self, id: &str) -> StoreResult<Option<Enterprise>> {
        let sql = format!("SELECT {ENTERPRISE_COLS} FROM enterprises e WHERE e.id = $1");
        self.fetch_one(&sql, &[id], enterprise_row).await
    }

    async fn enterprises(&self) -> StoreResult<Vec<Enterprise>> {
        let sql =
            format!("SELECT {ENTERPRISE_COLS} FROM enterprises e ORDER BY e.created_at, e.seq");
        self.fetch_many(&sql, &[], enterprise_row).await
    }

    async fn update_enterprise(&self, e: &Enterprise) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE enterprises SET name = $1, budget = $2::jsonb, created_by = $3,
                 created_at = $4
             WHERE id = $5",
        )
        .bind(&e.name)
        .bind(json(&e.budget)?)
        .bind(&e.created_by)
        .bind(ms(e.created_at))
        .bind(&e.id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        affected(done)
    }

    async fn delete_enterprise(&self, id: &str) -> StoreResult<Vec<KeyRecord>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Members, departments (and their admins) and events cascade.
        let done = sqlx::query("DELETE FROM enterprises WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        affected(done)?;
        // Lock the groups first: a key created in one of them by another
        // instance from now on waits for this transaction (its foreign key
        // check needs the group row) and then fails, instead of slipping in
        // after the keys are collected and vanishing with the group unseen
        // by the caller's caches.
        sqlx::query("SELECT id FROM carpool_groups WHERE enterprise_id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        const GROUPS: &str = "SELECT id FROM carpool_groups WHERE enterprise_id = $1";
        let sql =
            format!("DELETE FROM member_keys WHERE group_id IN ({GROUPS}) RETURNING {KEY_COLS}");
        let rows = sqlx::query(&sql)
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut keys = rows.iter().map(key_row).collect::<StoreResult<Vec<_>>>()?;
        // Accounts of the groups, then the groups (memberships, invitations
        // and bindings cascade), then the pool (out of every binding).
        let sql =
            format!("DELETE FROM accounts WHERE owner_kind = 'group' AND owner_id IN ({GROUPS})");
        for statement in [
            sql.as_str(),
            "DELETE FROM carpool_groups WHERE enterprise_id = $1",
            "DELETE FROM accounts WHERE owner_kind = 'enterprise' AND owner_id = $1",
        ] {
            sqlx::query(statement)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn put_enterprise_member(&self, member: &EnterpriseMember) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        upsert_member(&mut conn, member).await
    }

    async fn enterprise_member(
        &self,
        enterprise_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<EnterpriseMember>> {
        self.fetch_one(
            "SELECT enterprise_id, user_id, role, added_at FROM enterprise_members
             WHERE enterprise_id = $1 AND user_id = $2",
            &[enterprise_id, user_id],
            enterprise_member_row,
        )
        .await
    }

    async fn enterprise_members(
        &self,
        enterprise_id: &str,
    ) -> StoreResult<Vec<(EnterpriseMember, User)>> {
        self.fetch_many(
            "SELECT m.enterprise_id AS enterprise_id, m.user_id AS user_id, m.role AS role,
                 m.added_at AS added_at,
                 u.id AS u_id, u.email AS u_email, u.name AS u_name,
                 u.password_hash AS u_password_hash, u.is_system_admin AS u_is_system_admin,
                 u.created_at AS u_created_at
             FROM enterprise_members m JOIN users u ON u.id = m.user_id
             WHERE m.enterprise_id = $1
             ORDER BY m.added_at, m.seq",
            &[enterprise_id],
            |r| Ok((enterprise_member_row(r)?, user_row(r, "u_")?)),
        )
        .await
    }

    async fn remove_enterprise_member(
        &self,
        enterprise_id: &str,
        user_id: &str,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("DELETE FROM enterprise_members WHERE enterprise_id = $1 AND user_id = $2")
                .bind(enterprise_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        affected(done)
    }

    async fn enterprises_of_user(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(Enterprise, EnterpriseRole)>> {
        let sql = format!(
            "SELECT {ENTERPRISE_COLS}, m.role AS role FROM enterprise_members m
             JOIN enterprises e ON e.id = m.enterprise_id
             WHERE m.user_id = $1
             ORDER BY m.added_at, m.seq"
        );
        self.fetch_many(&sql, &[user_id], |r| {
            Ok((enterprise_row(r)?, enterprise_role(r, "role")?))
        })
        .await
    }

    async fn create_department(&self, d: &Department) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO departments (id, enterprise_id, parent_id, name, budget, created_at)
             VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
        )
        .bind(&d.id)
        .bind(&d.enterprise_id)
        .bind(&d.parent_id)
        .bind(&d.name)
        .bind(json(&d.budget)?)
        .bind(ms(d.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn department(&self, id: &str) -> StoreResult<Option<Department>> {
        let sql = format!("SELECT {DEPARTMENT_COLS} FROM departments d WHERE d.id = $1");
        self.fetch_one(&sql, &[id], department_row).await
    }

    async fn departments(&self, enterprise_id: &str) -> StoreResult<Vec<Department>> {
        let sql = format!(
            "SELECT {DEPARTMENT_COLS} FROM departments d WHERE d.enterprise_id = $1
             ORDER BY d.created_at, d.seq"
        );
        self.fetch_many(&sql, &[enterprise_id], department_row)
            .await
    }

    async fn update_department(&self, d: &Department) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE departments SET enterprise_id = $1, parent_id = $2, name = $3,
                 budget = $4::jsonb, created_at = $5
             WHERE id = $6",
        )
        .bind(&d.enterprise_id)
        .bind(&d.parent_id)
        .bind(&d.name)
        .bind(json(&d.budget)?)
        .bind(ms(d.created_at))
        .bind(&d.id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        affected(done)
    }

    async fn delete_department(&self, id: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM departments WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        affected(done)
    }

    async fn add_department_admin(&self, a: &DepartmentAdmin) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO department_admins (department_id, user_id, added_at)
             VALUES ($1, $2, $3)",
        )
        .bind(&a.department_id)
        .bind(&a.user_id)
        .bind(ms(a.added_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn remove_department_admin(&self, department_id: &str, user_id: &str) -> StoreResult<()> {
        let done =
            sqlx::query("DELETE FROM department_admins WHERE department_id = $1 AND user_id = $2")
                .bind(department_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        affected(done)
    }

    async fn department_admins(&self, department_id: &str) -> StoreResult<Vec<DepartmentAdmin>> {
        self.fetch_many(
            "SELECT department_id, user_id, added_at FROM department_admins
             WHERE department_id = $1 ORDER BY added_at, seq",
            &[department_id],
            department_admin_row,
        )
        .await
    }

    async fn departments_administered_by(&self, user_id: &str) -> StoreResult<Vec<Department>> {
        let sql = format!(
            "SELECT {DEPARTMENT_COLS} FROM department_admins a
             JOIN departments d ON d.id = a.department_id
             WHERE a.user_id = $1
             ORDER BY a.added_at, a.seq"
        );
        self.fetch_many(&sql, &[user_id], department_row).await
    }

    async fn groups_of_enterprise(&self, enterprise_id: &str) -> StoreResult<Vec<Group>> {
        let sql = format!(
            "SELECT {GROUP_COLS} FROM carpool_groups g WHERE g.enterprise_id = $1
             ORDER BY g.created_at, g.seq"
        );
        self.fetch_many(&sql, &[enterprise_id], group_row).await
    }

    async fn accounts_of_enterprise(&self, enterprise_id: &str) -> StoreResult<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLS} FROM accounts
             WHERE owner_kind = 'enterprise' AND owner_id = $1
             ORDER BY created_at, seq"
        );
        self.fetch_many(&sql, &[enterprise_id], account_row).await
    }
}

async fn upsert_member(conn: &mut PgConnection, m: &EnterpriseMember) -> StoreResult<()> {
    // A second put changes the role and keeps the date first added.
    sqlx::query(
        "INSERT INTO enterprise_members (enterprise_id, user_id, role, added_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (enterprise_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(&m.enterprise_id)
    .bind(&m.user_id)
    .bind(m.role.as_str())
    .bind(ms(m.added_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
