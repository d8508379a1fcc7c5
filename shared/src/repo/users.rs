//! The `users` table.

use chrono::{DateTime, Utc};

use serde::Serialize;

use crate::db::{self, Columns, DbError, PooledConnection};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// A user from a row's first three columns: `id, email, created_at`.
pub(crate) fn from_row(r: &dyn Columns) -> Result<User, DbError> {
    Ok(User {
        id: db::int(r, 0)?,
        email: db::text(r, 1)?,
        created_at: db::timestamp(r, 2)?,
    })
}

/// Inserts a user (the email already normalised); `None` when the email is taken.
pub async fn insert(
    conn: &PooledConnection,
    email: &str,
    password_hash: &str,
) -> Result<Option<User>, DbError> {
    let now = crate::time::format(conn.now());
    db::query_opt(
        conn,
        "INSERT INTO users (email, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (email) DO NOTHING
         RETURNING id, email, created_at",
        (email, password_hash, now),
        |r| from_row(r),
    )
    .await
}
