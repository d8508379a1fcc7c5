//! The `video_sources` table.

use crate::db::Columns;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{self, DbError, PooledConnection};
use crate::model::{SourceType, VideoStatus};
use crate::repo::idempotency_keys::{IdempotencyKey, Stored};
use crate::repo::processing_jobs::{self as jobs, ProcessingJob};

/// A stored video, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoSource {
    pub id: i64,
    pub user_id: i64,
    pub source_type: SourceType,
    pub source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub youtube_video_id: Option<String>,
    pub file_path: Option<String>,
    pub title: Option<String>,
    pub duration_seconds: Option<i64>,
    pub thumbnail_url: Option<String>,
    pub status: VideoStatus,
    pub error_message: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// What an ingest route knows about a new video.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewVideoSource {
    pub user_id: i64,
    pub source_type: Option<SourceType>,
    pub source_url: Option<String>,
    pub youtube_video_id: Option<String>,
    pub file_path: Option<String>,
    pub title: Option<String>,
    pub duration_seconds: Option<i64>,
    pub thumbnail_url: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, user_id, source_type, source_url, youtube_video_id, \
    file_path, title, duration_seconds, thumbnail_url, status, error_message, created_at, updated_at";

pub(crate) fn from_row(r: &dyn Columns) -> Result<VideoSource, DbError> {
    from_row_at(r, 0)
}

/// Reads the columns of [`COLUMNS`] starting at column `base`.
pub(crate) fn from_row_at(r: &dyn Columns, base: i32) -> Result<VideoSource, DbError> {
    let source_type = db::text(r, base + 2)?;
    let status = db::text(r, base + 9)?;
    Ok(VideoSource {
        id: db::int(r, base)?,
        user_id: db::int(r, base + 1)?,
        source_type: SourceType::parse(&source_type)
            .ok_or_else(|| DbError::Corrupt(format!("source_type {source_type:?}")))?,
        source_url: db::opt_text(r, base + 3)?,
        youtube_video_id: db::opt_text(r, base + 4)?,
        file_path: db::opt_text(r, base + 5)?,
        title: db::opt_text(r, base + 6)?,
        duration_seconds: db::opt_int(r, base + 7)?,
        thumbnail_url: db::opt_text(r, base + 8)?,
        status: VideoStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("video status {status:?}")))?,
        error_message: db::opt_text(r, base + 10)?,
        created_at: db::timestamp(r, base + 11)?,
        updated_at: db::timestamp(r, base + 12)?,
    })
}

impl NewVideoSource {
    /// The video as [`insert`] stores it, with id `id`: known without reading it back.
    pub fn stored(&self, id: i64, now: DateTime<Utc>) -> Result<VideoSource, DbError> {
        let now = crate::time::truncate(now);
        Ok(VideoSource {
            id,
            user_id: self.user_id,
            source_type: self.source_type()?,
            source_url: self.source_url.clone(),
            youtube_video_id: self.youtube_video_id.clone(),
            file_path: self.file_path.clone(),
            title: self.title.clone(),
            duration_seconds: self.duration_seconds,
            thumbnail_url: self.thumbnail_url.clone(),
            status: VideoStatus::Pending,
            error_message: None,
            created_at: now,
            updated_at: now,
        })
    }

    fn source_type(&self) -> Result<SourceType, DbError> {
        self.source_type
            .ok_or_else(|| DbError::Statement("a new video needs its source_type".into()))
    }
}

/// The insert of a `pending` video, as a step of the transaction that also creates its job
/// ([`jobs::insert_for_new_video`] right after it). Returns the new id. With `unless_key`, it
/// inserts nothing when that idempotency key is already recorded (a repeated request).
pub fn insert(
    new: &NewVideoSource,
    now: DateTime<Utc>,
    unless_key: Option<&IdempotencyKey>,
) -> Result<db::Stmt, DbError> {
    let (key_user, key_route, key) = IdempotencyKey::columns(unless_key);
    db::Stmt::new(
        "INSERT INTO video_sources (user_id, source_type, source_url, youtube_video_id, file_path,
             title, duration_seconds, thumbnail_url, status, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9
          WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys
                             WHERE user_id = ?10 AND route = ?11 AND key = ?12)
         RETURNING id",
        libsql::params![
            new.user_id,
            new.source_type()?.as_str(),
            new.source_url.clone(),
            new.youtube_video_id.clone(),
            new.file_path.clone(),
            new.title.clone(),
            new.duration_seconds,
            new.thumbnail_url.clone(),
            crate::time::format(now),
            key_user,
            key_route,
            key,
        ],
    )
}

pub async fn get(conn: &PooledConnection, id: i64) -> Result<Option<VideoSource>, DbError> {
    db::query_opt(
        conn,
        &format!("SELECT {COLUMNS} FROM video_sources WHERE id = ?1"),
        [id],
        |r| from_row(r),
    )
    .await
}

/// A position in a user's history: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPosition {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

/// One page of a user's videos, newest first (`created_at`, then `id`), each with its latest
/// job; only videos after `after` when given, never deleted ones. Walks
/// `video_sources_user_history` (or the status index), so a deep page costs what the first one
/// does.
pub async fn list_for_user(
    conn: &PooledConnection,
    user_id: i64,
    status: Option<VideoStatus>,
    after: Option<&HistoryPosition>,
    limit: u32,
) -> Result<Vec<(VideoSource, Option<ProcessingJob>)>, DbError> {
    let video_cols = super::qualified(COLUMNS, "v");
    let job_cols = super::qualified(jobs::COLUMNS, "j");
    let mut sql = format!(
        "SELECT {video_cols}, {job_cols}
           FROM video_sources v
           LEFT JOIN processing_jobs j
             ON j.id = (SELECT max(id) FROM processing_jobs WHERE video_source_id = v.id)
          WHERE v.user_id = ?1 AND v.deleted_at IS NULL"
    );
    let mut params: Vec<libsql::Value> = vec![user_id.into()];
    if let Some(status) = status {
        params.push(status.as_str().into());
        sql.push_str(&format!(" AND v.status = ?{}", params.len()));
    }
    if let Some(after) = after {
        params.push(crate::time::format(after.created_at).into());
        params.push(after.id.into());
        sql.push_str(&format!(
            " AND (v.created_at, v.id) < (?{}, ?{})",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(i64::from(limit).into());
    sql.push_str(&format!(
        " ORDER BY v.created_at DESC, v.id DESC LIMIT ?{}",
        params.len()
    ));
    let video_width = super::width(COLUMNS);
    db::query_all(conn, &sql, params, |r| {
        Ok((from_row_at(r, 0)?, opt_job_at(r, video_width)?))
    })
    .await
}

/// The caller's video (not deleted) with every job it had, newest first: one statement.
pub async fn with_jobs(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
) -> Result<Option<(VideoSource, Vec<ProcessingJob>)>, DbError> {
    let video_cols = super::qualified(COLUMNS, "v");
    let job_cols = super::qualified(jobs::COLUMNS, "j");
    let rows = db::query_all(
        conn,
        &format!(
            "SELECT {video_cols}, {job_cols}
               FROM video_sources v LEFT JOIN processing_jobs j ON j.video_source_id = v.id
              WHERE v.id = ?1 AND v.user_id = ?2 AND v.deleted_at IS NULL
              ORDER BY j.id DESC"
        ),
        [id, user_id],
        |r| Ok((from_row_at(r, 0)?, opt_job_at(r, super::width(COLUMNS))?)),
    )
    .await?;
    let mut rows = rows.into_iter();
    let Some((video, first)) = rows.next() else {
        return Ok(None);
    };
    let jobs = first
        .into_iter()
        .chain(rows.filter_map(|(_, j)| j))
        .collect();
    Ok(Some((video, jobs)))
}

/// The job read at `base` of a LEFT JOIN's row, `None` when the join found none.
fn opt_job_at(r: &dyn Columns, base: i32) -> Result<Option<ProcessingJob>, DbError> {
    match r.value(base)? {
        libsql::Value::Null => Ok(None),
        _ => Ok(Some(jobs::from_row_at(r, base)?)),
    }
}

/// Marks the caller's video deleted (its unfinished jobs end in the same statement, by
/// trigger). `None`: no such video for the caller; `Some(key)`: the object to remove from the
/// store, if it has one. A video without an object is purged at once.
pub async fn mark_deleted(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Option<String>>, DbError> {
    db::retry_busy(|| {
        let now = crate::time::format(now);
        async move {
            db::query_opt(
                conn,
                "UPDATE video_sources
                    SET deleted_at = ?1, updated_at = ?1,
                        purged_at = CASE WHEN file_path IS NULL THEN ?1 END
                  WHERE id = ?2 AND user_id = ?3 AND deleted_at IS NULL
                  RETURNING file_path",
                libsql::params![now, id, user_id],
                |r| db::opt_text(r, 0),
            )
            .await
        }
    })
    .await
}

/// Records that nothing of a deleted video is left in the store.
pub async fn mark_purged(
    conn: &PooledConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let now = crate::time::format(now);
    db::retry_busy(|| {
        let params = libsql::params![now.clone(), id];
        async move {
            db::execute(
                conn,
                "UPDATE video_sources SET purged_at = ?1
                  WHERE id = ?2 AND deleted_at IS NOT NULL AND purged_at IS NULL",
                params,
            )
            .await
        }
    })
    .await
    .map(|_| ())
}

/// Deleted videos whose object may still be stored, oldest deletion first: (id, object key).
pub async fn to_purge(conn: &PooledConnection, limit: u32) -> Result<Vec<(i64, String)>, DbError> {
    db::query_all(
        conn,
        "SELECT id, file_path FROM video_sources
          WHERE deleted_at IS NOT NULL AND purged_at IS NULL
          ORDER BY deleted_at LIMIT ?1",
        [i64::from(limit)],
        |r| Ok((db::int(r, 0)?, db::text(r, 1)?)),
    )
    .await
}

/// What a retry needs to know, read in one statement: the caller's video (not deleted) with its
/// latest job, and what its `Idempotency-Key` recorded, if it was used before.
#[derive(Debug)]
pub struct ForRetry {
    pub video: Option<(VideoSource, Option<ProcessingJob>)>,
    pub stored: Option<Stored>,
}

pub async fn for_retry(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
    key: Option<&IdempotencyKey>,
) -> Result<ForRetry, DbError> {
    let video_cols = super::qualified(COLUMNS, "v");
    let job_cols = super::qualified(jobs::COLUMNS, "j");
    let (key_user, key_route, key) = IdempotencyKey::columns(key);
    let width = super::width(COLUMNS);
    let job_width = super::width(jobs::COLUMNS);
    db::query_one(
        conn,
        &format!(
            "SELECT {video_cols}, {job_cols}, k.request_hash, k.response_body
               FROM (SELECT 1)
               LEFT JOIN video_sources v
                 ON v.id = ?1 AND v.user_id = ?2 AND v.deleted_at IS NULL
               LEFT JOIN processing_jobs j
                 ON j.id = (SELECT max(id) FROM processing_jobs WHERE video_source_id = v.id)
               LEFT JOIN idempotency_keys k
                 ON k.user_id = ?3 AND k.route = ?4 AND k.key = ?5"
        ),
        libsql::params![id, user_id, key_user, key_route, key],
        |r| {
            let video = match r.value(0)? {
                libsql::Value::Null => None,
                _ => Some((from_row_at(r, 0)?, opt_job_at(r, width)?)),
            };
            let stored = match db::opt_text(r, width + job_width)? {
                Some(request_hash) => Some(Stored {
                    request_hash,
                    response_body: db::text(r, width + job_width + 1)?,
                }),
                None => None,
            };
            Ok(ForRetry { video, stored })
        },
    )
    .await
}

/// The first step of a retry's transaction: a failed video (still the caller's, not deleted)
/// back to `pending`; nothing when `unless_key` is recorded already.
pub fn back_to_pending(
    id: i64,
    user_id: i64,
    now: DateTime<Utc>,
    unless_key: Option<&IdempotencyKey>,
) -> Result<db::Stmt, DbError> {
    let (key_user, key_route, key) = IdempotencyKey::columns(unless_key);
    db::Stmt::new(
        "UPDATE video_sources SET status = 'pending', error_message = NULL, updated_at = ?1
          WHERE id = ?2 AND user_id = ?3 AND status = 'failed' AND deleted_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM idempotency_keys
                             WHERE user_id = ?4 AND route = ?5 AND key = ?6)",
        libsql::params![
            crate::time::format(now),
            id,
            user_id,
            key_user,
            key_route,
            key
        ],
    )
}

impl VideoSource {
    /// The video as [`back_to_pending`] leaves it.
    pub fn retried(&self, now: DateTime<Utc>) -> Self {
        Self {
            status: VideoStatus::Pending,
            error_message: None,
            updated_at: crate::time::truncate(now),
            ..self.clone()
        }
    }
}
