//! Users and login sessions.

use aicarpool_core::org::{Session, User};
use aicarpool_core::store::{StoreResult, UserStore};
use async_trait::async_trait;

use super::codec::{db_err, ms};
use super::{affected, PostgresStore};
use crate::codec::rows::{session_row, user_row, USER_COLS};

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, is_system_admin, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.is_system_admin)
        .bind(ms(user.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        self.fetch_one(&sql, &[id], |r| user_row(r, "")).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        // Emails are stored lower-cased, so the unique index serves this.
        let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
        self.fetch_one(&sql, &[&email.to_lowercase()], |r| user_row(r, ""))
            .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY created_at, id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(|r| user_row(r, "")).collect()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        affected(done)
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (token_hash) DO UPDATE SET
                 user_id = excluded.user_id,
                 created_at = excluded.created_at,
                 expires_at = excluded.expires_at",
        )
        .bind(&session.token_hash)
        .bind(&session.user_id)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        self.fetch_one(
            "SELECT token_hash, user_id, created_at, expires_at FROM sessions
             WHERE token_hash = $1",
            &[token_hash],
            session_row,
        )
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        // `IS DISTINCT FROM` holds against NULL too, so no `keep` deletes them all.
        let done = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash IS DISTINCT FROM $2",
        )
        .bind(user_id)
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
