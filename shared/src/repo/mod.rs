//! One module per table, plus the writes that span tables.

pub mod idempotency_keys;
pub mod processing_jobs;
pub mod uploads;
pub mod users;
pub mod video_sources;

use libsql::TransactionBehavior;

/// A table's column list (`"a, b, c"`) qualified with a table alias (`"v.a, v.b, v.c"`).
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many columns a column list names.
pub(crate) fn width(columns: &str) -> i32 {
    columns.split(", ").count() as i32
}

use crate::db::{retry_busy, DbError, PooledConnection};
use processing_jobs::{NewJob, ProcessingJob};
use video_sources::{NewVideoSource, VideoSource};

/// Creates a video and its queued job in one transaction: both rows or neither.
pub async fn create_video_with_job(
    conn: &PooledConnection,
    video: &NewVideoSource,
    job: &NewJob,
) -> Result<(VideoSource, ProcessingJob), DbError> {
    let mut created =
        create_videos_with_jobs(conn, std::slice::from_ref(&(video.clone(), job.clone()))).await?;
    created
        .pop()
        .ok_or_else(|| DbError::Corrupt("the insert returned nothing".into()))
}

/// Creates many videos, each with its job, in one transaction (one commit for the batch).
pub async fn create_videos_with_jobs(
    conn: &PooledConnection,
    items: &[(NewVideoSource, NewJob)],
) -> Result<Vec<(VideoSource, ProcessingJob)>, DbError> {
    retry_busy(|| async move {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .await?;
        let now = crate::time::now();
        let mut out = Vec::with_capacity(items.len());
        for (video, job) in items {
            // on the transaction's connection, with its prepared statements
            let video = video_sources::insert(conn, video, now).await?;
            let job = processing_jobs::insert(conn, video.id, job, now).await?;
            out.push((video, job));
        }
        tx.commit().await?;
        Ok(out)
    })
    .await
}
