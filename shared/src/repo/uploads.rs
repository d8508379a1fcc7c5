//! The `uploads` table: large uploads that go straight to object storage, from the moment a
//! client asks for URLs until they become a video, fail their checks, are aborted or expire.

use crate::db::Columns;
use chrono::{DateTime, Utc};

use crate::db::{self, DbError, PooledConnection};
use crate::repo::idempotency_keys::IdempotencyKey;

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// URLs handed out; waiting for the bytes and the completion call.
    Pending,
    /// A completion request is checking it (held by a claim until `claim_until`).
    Completing,
    Completed,
    /// Its checks failed; the object was deleted.
    Failed,
    Aborted,
    Expired,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "completing" => Self::Completing,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "aborted" => Self::Aborted,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub id: i64,
    pub user_id: i64,
    pub object_key: String,
    pub multipart_id: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub part_size: u64,
    pub part_count: u32,
    pub title: Option<String>,
    pub payload: serde_json::Value,
    pub status: UploadStatus,
    pub claim_token: Option<String>,
    pub video_source_id: Option<i64>,
    pub result_status: Option<u16>,
    pub result_body: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// What a new upload is.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload {
    pub user_id: i64,
    pub object_key: String,
    pub multipart_id: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub part_size: u64,
    pub part_count: u32,
    pub title: Option<String>,
    pub payload: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, user_id, object_key, multipart_id, filename, content_type, size_bytes, \
    part_size, part_count, title, payload, status, claim_token, video_source_id, result_status, \
    result_body, expires_at, created_at";

fn from_row(r: &dyn Columns) -> Result<Upload, DbError> {
    let status = db::text(r, 11)?;
    let non_negative = |idx: i32| {
        let v = db::int(r, idx)?;
        u64::try_from(v).map_err(|_| DbError::Corrupt(format!("negative value {v} in uploads")))
    };
    Ok(Upload {
        id: db::int(r, 0)?,
        user_id: db::int(r, 1)?,
        object_key: db::text(r, 2)?,
        multipart_id: db::opt_text(r, 3)?,
        filename: db::text(r, 4)?,
        content_type: db::text(r, 5)?,
        size_bytes: non_negative(6)?,
        part_size: non_negative(7)?,
        part_count: u32::try_from(non_negative(8)?)
            .map_err(|_| DbError::Corrupt("part_count out of range".into()))?,
        title: db::opt_text(r, 9)?,
        payload: db::json(r, 10)?,
        status: UploadStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("upload status {status:?}")))?,
        claim_token: db::opt_text(r, 12)?,
        video_source_id: db::opt_int(r, 13)?,
        result_status: db::opt_int(r, 14)?.and_then(|s| u16::try_from(s).ok()),
        result_body: db::opt_text(r, 15)?,
        expires_at: db::timestamp(r, 16)?,
        created_at: db::timestamp(r, 17)?,
    })
}

fn to_i64(v: u64) -> Result<i64, DbError> {
    i64::try_from(v).map_err(|_| DbError::Corrupt(format!("{v} does not fit a column")))
}

/// Records a new upload: `pending`, or already `completing` under `claim` (token, until) when
/// the caller itself is about to store and complete it.
pub async fn insert(
    conn: &PooledConnection,
    new: &NewUpload,
    claim: Option<(&str, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<Upload, DbError> {
    let stmt = insert_unless_key(new, claim, now, None)?;
    db::query_one(conn, &stmt.sql, stmt.params, |r| from_row(r)).await
}

/// The upload an [`insert_unless_key`] step of a transaction inserted (from its rows).
pub fn inserted(rows: &[db::OwnedRow]) -> Result<Option<Upload>, DbError> {
    rows.first().map(|r| from_row(r)).transpose()
}

/// [`insert`] as a step: nothing is inserted when `unless_key` is already recorded (a repeated
/// request). Returns the row (its id first).
pub fn insert_unless_key(
    new: &NewUpload,
    claim: Option<(&str, DateTime<Utc>)>,
    now: DateTime<Utc>,
    unless_key: Option<&IdempotencyKey>,
) -> Result<db::Stmt, DbError> {
    let (token, until) = claim.map_or((None, None), |(t, u)| {
        (Some(t.to_owned()), Some(crate::time::format(u)))
    });
    let (key_user, key_route, key) = IdempotencyKey::columns(unless_key);
    let now = crate::time::format(now);
    db::Stmt::new(
        format!(
            "INSERT INTO uploads (user_id, object_key, multipart_id, filename, content_type, size_bytes,
                 part_size, part_count, title, payload, expires_at, created_at, updated_at,
                 status, claim_token, claim_until)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12,
                 CASE WHEN ?13 IS NULL THEN 'pending' ELSE 'completing' END, ?13, ?14
              WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys
                                 WHERE user_id = ?15 AND route = ?16 AND key = ?17)
             RETURNING {COLUMNS}"
        ),
        libsql::params![
            new.user_id,
            new.object_key.as_str(),
            new.multipart_id.as_deref(),
            new.filename.as_str(),
            new.content_type.as_str(),
            to_i64(new.size_bytes)?,
            to_i64(new.part_size)?,
            i64::from(new.part_count),
            new.title.as_deref(),
            new.payload.to_string(),
            crate::time::format(new.expires_at),
            now,
            token,
            until,
            key_user,
            key_route,
            key,
        ],
    )
}

/// The upload when it belongs to `user_id`.
pub async fn get_for_user(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
) -> Result<Option<Upload>, DbError> {
    db::query_opt(
        conn,
        &format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1 AND user_id = ?2"),
        (id, user_id),
        |r| from_row(r),
    )
    .await
}

/// Takes the upload for completion: a `pending` one, or one whose previous completer's claim
/// ran out (it crashed or timed out), whose URLs expired no earlier than `cutoff`. `None` when
/// it is not claimable right now.
pub async fn claim(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
    token: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<Option<Upload>, DbError> {
    db::query_opt(
        conn,
        &format!(
            "UPDATE uploads SET status = 'completing', claim_token = ?3, claim_until = ?5, updated_at = ?4
              WHERE id = ?1 AND user_id = ?2 AND expires_at >= ?6
                AND (status = 'pending' OR (status = 'completing' AND claim_until < ?4))
              RETURNING {COLUMNS}"
        ),
        libsql::params![
            id,
            user_id,
            token,
            crate::time::format(now),
            crate::time::format(until),
            crate::time::format(cutoff)
        ],
        |r| from_row(r),
    )
    .await
}

/// Gives a claimed upload back (`pending`): the client can fix what was wrong and try again.
pub async fn release(conn: &PooledConnection, id: i64, token: &str) -> Result<bool, DbError> {
    db::wrote_row(
        conn,
        "UPDATE uploads SET status = 'pending', claim_token = NULL, claim_until = NULL, updated_at = ?3
          WHERE id = ?1 AND claim_token = ?2 AND status = 'completing'
          RETURNING 1",
        libsql::params![id, token, crate::time::format(conn.now())],
    )
    .await
}

/// Ends a claimed upload: `completed` (with its video; nothing left to clean) or `failed` (its
/// object already deleted, but its URL may still be live: the sweep deletes again after it
/// expires), keeping the answer given.
pub async fn finish(
    conn: &PooledConnection,
    id: i64,
    token: &str,
    status: UploadStatus,
    video_source_id: Option<i64>,
    result_status: u16,
    result_body: &str,
) -> Result<bool, DbError> {
    db::wrote_row(
        conn,
        "UPDATE uploads SET status = ?3, claim_token = NULL, claim_until = NULL, video_source_id = ?4,
                result_status = ?5, result_body = ?6, updated_at = ?7,
                cleaned_at = CASE WHEN ?3 = 'completed' THEN ?7 END
          WHERE id = ?1 AND claim_token = ?2 AND status = 'completing'
          RETURNING 1",
        libsql::params![
            id,
            token,
            status.as_str(),
            video_source_id,
            i64::from(result_status),
            result_body,
            crate::time::format(conn.now())
        ],
    )
    .await
}

/// Ends a claimed upload `completed` with the video whose `file_path` is its object key, keeping
/// the 201 body `template` (ids filled in): a step of the transaction that creates the video
/// and its job, after them. Followed by [`completed_guard`].
pub fn complete_with_new_video(
    id: i64,
    token: &str,
    template: &str,
    now: DateTime<Utc>,
) -> Result<db::Stmt, DbError> {
    let job = "SELECT max(id) FROM processing_jobs WHERE video_source_id = v.id";
    let body = super::fill_ids_sql("?3", "v.id", job);
    db::Stmt::new(
        format!(
            "UPDATE uploads SET status = 'completed', claim_token = NULL, claim_until = NULL,
                    video_source_id = v.id, result_status = 201, result_body = {body},
                    updated_at = ?4, cleaned_at = ?4
               FROM video_sources v
              WHERE uploads.id = ?1 AND uploads.claim_token = ?2 AND uploads.status = 'completing'
                AND v.file_path = uploads.object_key"
        ),
        libsql::params![id, token, template, crate::time::format(now)],
    )
}

/// Aborts the transaction when its video was created but [`complete_with_new_video`] found the
/// upload's claim gone (another request took it over): no video without its upload completed.
pub fn completed_guard(id: i64) -> Result<db::Stmt, DbError> {
    db::Stmt::new(
        "INSERT INTO write_guards (held)
         SELECT changes() = 1 OR NOT EXISTS (SELECT 1 FROM video_sources
                WHERE file_path = (SELECT object_key FROM uploads WHERE id = ?1))",
        [id],
    )
}

/// What [`close`] and [`close_for_user`] may close: an unfinished upload nobody is completing
/// right now (its completer's claim ran out). `?3` is now.
const CLOSABLE: &str = "(status = 'pending' OR (status = 'completing' AND claim_until < ?3))";

/// Marks an unfinished upload `aborted` or `expired` (nobody completing it right now);
/// `false` when it was not in such a state.
pub async fn close(
    conn: &PooledConnection,
    id: i64,
    status: UploadStatus,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let now = crate::time::format(now);
    db::wrote_row(
        conn,
        &format!(
            "UPDATE uploads SET status = ?2, claim_token = NULL, claim_until = NULL, updated_at = ?3
              WHERE id = ?1 AND {CLOSABLE}
              RETURNING 1"
        ),
        libsql::params![id, status.as_str(), now],
    )
    .await
}

/// [`close`] as `aborted` for its owner, the closed upload back; `None` when the user has no such
/// upload or it was not open.
pub async fn close_for_user(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Upload>, DbError> {
    db::query_opt(
        conn,
        &format!(
            "UPDATE uploads SET status = 'aborted', claim_token = NULL, claim_until = NULL, updated_at = ?3
              WHERE id = ?1 AND user_id = ?2 AND {CLOSABLE}
              RETURNING {COLUMNS}"
        ),
        libsql::params![id, user_id, crate::time::format(now)],
        |r| from_row(r),
    )
    .await
}

/// Uploads with something to clean up, oldest first: ended ones (aborted, failed) not cleaned
/// since their URLs died at `now` (a client could PUT again until then), and unfinished ones
/// whose URLs expired before `cutoff` (expiry plus the grace for completing).
pub async fn to_clean(
    conn: &PooledConnection,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Upload>, DbError> {
    db::query_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM uploads
              WHERE cleaned_at IS NULL
                AND ((status IN ('aborted', 'expired', 'failed') AND expires_at < ?1)
                     OR expires_at < ?2)
              ORDER BY expires_at LIMIT ?3"
        ),
        libsql::params![
            crate::time::format(now),
            crate::time::format(cutoff),
            i64::from(limit)
        ],
        |r| from_row(r),
    )
    .await
}

/// Records that the upload's leftovers (parts, object) are gone for good: only once its URLs
/// have expired, since until then a client could still PUT to them.
pub async fn mark_cleaned(
    conn: &PooledConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let now = crate::time::format(now);
    db::execute(
        conn,
        "UPDATE uploads SET cleaned_at = ?2 WHERE id = ?1 AND cleaned_at IS NULL
            AND status IN ('aborted', 'expired', 'failed') AND expires_at < ?2",
        libsql::params![id, now],
    )
    .await?;
    Ok(())
}
