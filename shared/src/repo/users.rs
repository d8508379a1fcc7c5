//! The `users` table.

use chrono::{DateTime, Utc};

use serde::Serialize;

use crate::db::{self, DbError, PooledConnection};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
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
        |r| {
            Ok(User {
                id: db::int(r, 0)?,
                email: db::text(r, 1)?,
                created_at: db::timestamp(r, 2)?,
            })
        },
    )
    .await
}

/// The user with this (normalised) email, and their password hash.
pub async fn find_by_email(
    conn: &PooledConnection,
    email: &str,
) -> Result<Option<(User, String)>, DbError> {
    db::query_opt(
        conn,
        "SELECT id, email, created_at, password_hash FROM users WHERE email = ?1",
        [email],
        |r| {
            let user = User {
                id: db::int(r, 0)?,
                email: db::text(r, 1)?,
                created_at: db::timestamp(r, 2)?,
            };
            Ok((user, db::text(r, 3)?))
        },
    )
    .await
}
