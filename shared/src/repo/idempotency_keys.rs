//! The `idempotency_keys` table: the first response to a keyed ingest request.

use chrono::{DateTime, Utc};
use libsql::Connection;

use crate::db::{self, DbError};

/// A key as a request gives it: whose, for which route, and a digest of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub user_id: i64,
    pub route: &'static str,
    pub key: String,
    pub request_hash: String,
}

/// What a key already stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub request_hash: String,
    pub response_body: String,
}

pub async fn find(conn: &Connection, key: &IdempotencyKey) -> Result<Option<Stored>, DbError> {
    db::query_opt(
        conn,
        "SELECT request_hash, response_body FROM idempotency_keys
          WHERE user_id = ?1 AND route = ?2 AND key = ?3",
        (key.user_id, key.route, key.key.as_str()),
        |r| {
            Ok(Stored {
                request_hash: db::text(r, 0)?,
                response_body: db::text(r, 1)?,
            })
        },
    )
    .await
}

/// Records the key (inside the transaction that created the video); `false` when another
/// request recorded it first.
pub async fn insert(
    conn: &Connection,
    key: &IdempotencyKey,
    video_source_id: i64,
    response_body: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    db::wrote_row(
        conn,
        "INSERT INTO idempotency_keys (user_id, route, key, request_hash, video_source_id, response_body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (user_id, route, key) DO NOTHING
         RETURNING 1",
        libsql::params![
            key.user_id,
            key.route,
            key.key.as_str(),
            key.request_hash.as_str(),
            video_source_id,
            response_body,
            crate::time::format(now),
        ],
    )
    .await
}
