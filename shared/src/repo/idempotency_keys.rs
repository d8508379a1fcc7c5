//! The `idempotency_keys` table: the first response to a keyed ingest request.

use chrono::{DateTime, Utc};

use crate::db::{self, DbError};

/// A key as a request gives it: whose, for which route, and a digest of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub user_id: i64,
    pub route: &'static str,
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// A key's `(user_id, route, key)` as SQL parameters: all NULL without a key (a condition
    /// `… = NULL` holds for no row).
    pub fn columns(key: Option<&Self>) -> (Option<i64>, Option<&'static str>, Option<String>) {
        match key {
            Some(k) => (Some(k.user_id), Some(k.route), Some(k.key.clone())),
            None => (None, None, None),
        }
    }
}

/// What a key already stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub request_hash: String,
    pub response_body: String,
}

/// The key as recorded, as a step of a transaction: its rows are read by [`stored`].
pub fn find_stmt(key: &IdempotencyKey) -> Result<db::Stmt, DbError> {
    db::Stmt::new(
        "SELECT request_hash, response_body FROM idempotency_keys
          WHERE user_id = ?1 AND route = ?2 AND key = ?3",
        (key.user_id, key.route, key.key.clone()),
    )
}

/// The key a [`find_stmt`] step found.
pub fn stored(rows: &[db::OwnedRow]) -> Result<Option<Stored>, DbError> {
    rows.first()
        .map(|r| {
            Ok(Stored {
                request_hash: db::text(r, 0)?,
                response_body: db::text(r, 1)?,
            })
        })
        .transpose()
}

/// Records the key with the response body `template` (ids filled in), as the step right after
/// [`super::processing_jobs::insert_for_new_video`]: it records nothing when that inserted
/// nothing. The job is `last_insert_rowid()` (this table has no rowid, so its insert does not
/// change it).
pub fn insert_for_new_job(
    key: &IdempotencyKey,
    template: &str,
    now: DateTime<Utc>,
) -> Result<db::Stmt, DbError> {
    let video = "SELECT video_source_id FROM processing_jobs WHERE id = last_insert_rowid()";
    let body = super::fill_ids_sql("?5", video, "last_insert_rowid()");
    db::Stmt::new(
        format!(
            "INSERT INTO idempotency_keys (user_id, route, key, request_hash, video_source_id,
                 response_body, created_at)
             SELECT ?1, ?2, ?3, ?4, ({video}), {body}, ?6
              WHERE changes() = 1"
        ),
        libsql::params![
            key.user_id,
            key.route,
            key.key.as_str(),
            key.request_hash.as_str(),
            template,
            crate::time::format(now),
        ],
    )
}
