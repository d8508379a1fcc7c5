//! The `processing_jobs` table, as rows. Its life as a queue (claim, lease, retry) is
//! [`crate::queue`].

use crate::db::Columns;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{self, DbError, PooledConnection};
use crate::model::JobStatus;

/// A stored job, as the API shows it (lease internals are not shown).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessingJob {
    pub id: i64,
    pub video_source_id: i64,
    pub job_type: String,
    pub status: JobStatus,
    pub progress: f64,
    pub payload: serde_json::Value,
    pub result_summary: Option<serde_json::Value>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub error_message: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Not claimable before this instant (a retry's back-off).
    #[serde(with = "crate::time::rfc3339")]
    pub run_after: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// A job to enqueue with its video.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub job_type: String,
    pub payload: serde_json::Value,
    pub max_attempts: u32,
}

pub(crate) const COLUMNS: &str = "id, video_source_id, job_type, status, progress, payload, \
    result_summary, attempts, max_attempts, error_message, created_at, updated_at, run_after, \
    finished_at, lease_expires_at";

pub(crate) fn from_row(r: &dyn Columns) -> Result<ProcessingJob, DbError> {
    from_row_at(r, 0)
}

/// Reads the columns of [`COLUMNS`] starting at column `base`.
pub(crate) fn from_row_at(r: &dyn Columns, base: i32) -> Result<ProcessingJob, DbError> {
    let status = db::text(r, base + 3)?;
    Ok(ProcessingJob {
        id: db::int(r, base)?,
        video_source_id: db::int(r, base + 1)?,
        job_type: db::text(r, base + 2)?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("job status {status:?}")))?,
        progress: db::real(r, base + 4)?,
        payload: db::json(r, base + 5)?,
        result_summary: db::opt_json(r, base + 6)?,
        attempts: db::int(r, base + 7)?,
        max_attempts: db::int(r, base + 8)?,
        error_message: db::opt_text(r, base + 9)?,
        created_at: db::timestamp(r, base + 10)?,
        updated_at: db::timestamp(r, base + 11)?,
        run_after: db::timestamp(r, base + 12)?,
        finished_at: db::opt_timestamp(r, base + 13)?,
        lease_expires_at: db::opt_timestamp(r, base + 14)?,
    })
}

/// Enqueues a job for a video: `queued`, progress 0, claimable now. Every column is written
/// here, so the stored job is known without reading it back: only its id is returned.
pub async fn insert(
    conn: &PooledConnection,
    video_source_id: i64,
    new: &NewJob,
    now: DateTime<Utc>,
) -> Result<ProcessingJob, DbError> {
    const INSERT: &str = "INSERT INTO processing_jobs (video_source_id, job_type, status, \
        progress, payload, attempts, max_attempts, run_after, created_at, updated_at) \
        VALUES (?1, ?2, 'queued', 0.0, ?3, 0, ?4, ?5, ?5, ?5) RETURNING id";
    let id = db::query_one_cached(conn, INSERT, columns(video_source_id, new, now), |r| {
        db::int(r, 0)
    })
    .await?;
    Ok(new.stored(id, video_source_id, now))
}

/// The insert of a new video's first job, as the step right after [`super::video_sources::insert`]
/// in one transaction: it takes the video's id from `last_insert_rowid()`, and inserts nothing
/// when the video insert inserted nothing (`changes()`). Returns the new id.
pub fn insert_for_new_video(new: &NewJob, now: DateTime<Utc>) -> Result<db::Stmt, DbError> {
    insert_after_step(None, new, now)
}

/// The insert of a retried video's new job, as the step right after
/// [`super::video_sources::back_to_pending`] in one transaction: nothing when that step changed
/// nothing (`changes()`). Returns the new id.
pub fn insert_after_retry(
    video_source_id: i64,
    new: &NewJob,
    now: DateTime<Utc>,
) -> Result<db::Stmt, DbError> {
    insert_after_step(Some(video_source_id), new, now)
}

/// A job insert that runs only when the transaction's step before it changed one row; its video
/// is `video_source_id`, or else the row that step inserted (`last_insert_rowid()`).
fn insert_after_step(
    video_source_id: Option<i64>,
    new: &NewJob,
    now: DateTime<Utc>,
) -> Result<db::Stmt, DbError> {
    db::Stmt::new(
        "INSERT INTO processing_jobs (video_source_id, job_type, status, progress, payload,
             attempts, max_attempts, run_after, created_at, updated_at)
         SELECT coalesce(?1, last_insert_rowid()), ?2, 'queued', 0.0, ?3, 0, ?4, ?5, ?5, ?5
          WHERE changes() = 1
         RETURNING id",
        columns(video_source_id, new, now),
    )
}

/// The values of the job inserts' `?1`–`?5`: video, type, payload, attempts allowed, now.
fn columns(
    video_source_id: impl Into<libsql::Value>,
    new: &NewJob,
    now: DateTime<Utc>,
) -> Vec<libsql::Value> {
    vec![
        video_source_id.into(),
        new.job_type.as_str().into(),
        new.payload.to_string().into(),
        i64::from(new.max_attempts).into(),
        crate::time::format(now).into(),
    ]
}

impl NewJob {
    /// The job as the inserts store it, with id `id`.
    pub fn stored(&self, id: i64, video_source_id: i64, now: DateTime<Utc>) -> ProcessingJob {
        let now = crate::time::truncate(now);
        ProcessingJob {
            id,
            video_source_id,
            job_type: self.job_type.clone(),
            status: JobStatus::Queued,
            progress: 0.0,
            payload: self.payload.clone(),
            result_summary: None,
            attempts: 0,
            max_attempts: i64::from(self.max_attempts),
            error_message: None,
            created_at: now,
            updated_at: now,
            run_after: now,
            finished_at: None,
            lease_expires_at: None,
        }
    }
}

pub async fn get(conn: &PooledConnection, id: i64) -> Result<Option<ProcessingJob>, DbError> {
    db::query_opt(
        conn,
        &format!("SELECT {COLUMNS} FROM processing_jobs WHERE id = ?1"),
        [id],
        |r| from_row(r),
    )
    .await
}

/// Every job of a video, oldest first.
pub async fn for_video(
    conn: &PooledConnection,
    video_source_id: i64,
) -> Result<Vec<ProcessingJob>, DbError> {
    db::query_all(
        conn,
        &format!("SELECT {COLUMNS} FROM processing_jobs WHERE video_source_id = ?1 ORDER BY id"),
        [video_source_id],
        |r| from_row(r),
    )
    .await
}

/// A job, if its video belongs to `user_id` and is not deleted (another user's job is "not
/// found").
pub async fn get_for_user(
    conn: &PooledConnection,
    id: i64,
    user_id: i64,
) -> Result<Option<ProcessingJob>, DbError> {
    let cols = super::qualified(COLUMNS, "j");
    db::query_opt(
        conn,
        &format!(
            "SELECT {cols} FROM processing_jobs j JOIN video_sources v ON v.id = j.video_source_id
              WHERE j.id = ?1 AND v.user_id = ?2 AND v.deleted_at IS NULL"
        ),
        [id, user_id],
        |r| from_row(r),
    )
    .await
}
