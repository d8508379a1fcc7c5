//! One of the caller's videos: looked at alone (`GET /viral-clip/videos/{video_id}`), deleted
//! (`DELETE /viral-clip/videos/{video_id}`) and tried again after it failed (`POST
//! /viral-clip/videos/{video_id}/retry`); and the worker's purge of what deleted videos left in
//! the store.

use serde::Serialize;

use crate::db::{self, DbError, PooledConnection};
use crate::error::ApiError;
use crate::ingest::create::{answer_again, digest, new_job, replay, Created, Outcome};
use crate::ingest::IngestConfig;
use crate::model::VideoStatus;
use crate::repo;
use crate::repo::idempotency_keys::{self, IdempotencyKey};
use crate::repo::processing_jobs::{self, ProcessingJob};
use crate::repo::video_sources::{self, VideoSource};
use crate::storage::{LazyStorage, Storage};

pub const RETRY_ROUTE: &str = "POST /viral-clip/videos/{video_id}/retry";

/// The 200 body of `GET /viral-clip/videos/{video_id}`: the video and every job it had.
#[derive(Debug, Serialize)]
pub struct VideoDetail {
    #[serde(flatten)]
    pub video: VideoSource,
    /// Newest first.
    pub jobs: Vec<ProcessingJob>,
}

/// The 404 of every route on one video.
pub fn not_found() -> ApiError {
    ApiError::NotFound("no such video".into())
}

/// The caller's video with its jobs (one read); 404 when it is not the caller's or is deleted.
pub async fn detail(
    conn: &PooledConnection,
    user_id: i64,
    video_id: i64,
) -> Result<VideoDetail, ApiError> {
    let (video, jobs) = video_sources::with_jobs(conn, video_id, user_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(VideoDetail { video, jobs })
}

/// Deletes the caller's video: one statement marks it deleted and ends its queued or running
/// job; then its object leaves the store. When the store cannot be reached the video stays
/// deleted for the caller and the worker's sweep removes the object later ([`purge_deleted`]),
/// so no row points at a removed object and no object is left that no row knows.
pub async fn delete(
    conn: &PooledConnection,
    storage: &Storage,
    user_id: i64,
    video_id: i64,
) -> Result<(), ApiError> {
    let object_key = video_sources::mark_deleted(conn, video_id, user_id, conn.now())
        .await?
        .ok_or_else(not_found)?;
    if let Some(key) = object_key {
        purge(conn, storage, video_id, &key).await;
    }
    Ok(())
}

/// Removes a deleted video's object and records it; a failure is logged and left to the sweep.
async fn purge(conn: &PooledConnection, storage: &Storage, video_id: i64, key: &str) -> bool {
    if let Err(e) = storage.delete(key).await {
        tracing::warn!(video_id, error = %e, "a deleted video's object is still stored; the sweep removes it");
        return false;
    }
    match video_sources::mark_purged(conn, video_id, conn.now()).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(video_id, error = %e, "a deleted video's object is removed but not recorded; the sweep repeats it");
            false
        }
    }
}

/// What one purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Deleted videos whose object is now gone from the store.
    pub removed: u32,
    /// Removals that failed (tried again next time).
    pub failed: u32,
}

/// The worker's sweep of deleted videos whose object may still be stored (at most `limit` per
/// call, oldest deletion first). The store is connected only when there is one to remove.
pub async fn purge_deleted(
    conn: &PooledConnection,
    storage: &LazyStorage,
    limit: u32,
) -> Result<Purged, DbError> {
    let mut purged = Purged::default();
    for (video_id, key) in video_sources::to_purge(conn, limit).await? {
        if purge(conn, storage.get().await, video_id, &key).await {
            purged.removed += 1;
        } else {
            purged.failed += 1;
        }
    }
    Ok(purged)
}

/// Tries a failed video again: a new queued job with the options of its last one, and the
/// video back to `pending` — one transaction. 409 unless the video is `failed`; 429 when the user
/// has as many videos waiting or processing as the quota allows. With an `Idempotency-Key`, a
/// repeat gets the first answer.
pub async fn retry(
    conn: &PooledConnection,
    cfg: &IngestConfig,
    user_id: i64,
    video_id: i64,
    idempotency_key: Option<String>,
) -> Result<Outcome, ApiError> {
    let key = idempotency_key.map(|key| IdempotencyKey {
        user_id,
        route: RETRY_ROUTE,
        key,
        request_hash: digest(&[video_id.to_string().as_bytes()]),
    });
    let found = video_sources::for_retry(conn, video_id, user_id, key.as_ref()).await?;
    if let (Some(key), Some(stored)) = (&key, found.stored) {
        return answer_again(key, stored);
    }
    let (video, last_job) = found.video.ok_or_else(not_found)?;
    if video.status != VideoStatus::Failed {
        return Err(not_failed(video.status));
    }
    let last_job =
        last_job.ok_or_else(|| ApiError::Internal("a failed video has no job".into()))?;
    let now = conn.now();
    let job = new_job(cfg, last_job.payload);
    let template = serde_json::to_string(&Created {
        video_source: video.retried(now),
        processing_job: job.stored(repo::JOB_ID_SLOT, video.id, now),
    })
    .map_err(ApiError::internal)?;
    let mut steps = vec![
        cfg.quotas.check(user_id, now, false, key.as_ref())?,
        video_sources::back_to_pending(video.id, user_id, now, key.as_ref())?,
        processing_jobs::insert_after_retry(video.id, &job, now)?,
    ];
    if let Some(key) = &key {
        steps.push(idempotency_keys::insert_for_new_job(key, &template, now)?);
        steps.push(idempotency_keys::find_stmt(key)?);
    }
    let rows = match db::transaction(conn, &steps).await {
        Ok(rows) => rows,
        Err(e) => return Err(cfg.quotas.refusal(conn, user_id, e).await),
    };
    match (repo::inserted_id(&rows[2])?, &key) {
        (Some(job_id), _) => Ok(Outcome::Created(repo::fill_ids(
            &template, video.id, job_id,
        ))),
        (None, Some(key)) if !rows[4].is_empty() => replay(key, &rows[4]),
        // Tried again, deleted or changed by another request since the read above.
        (None, _) => Err(ApiError::Conflict(
            "this video changed while it was being tried again; reload it".into(),
        )),
    }
}

fn not_failed(status: VideoStatus) -> ApiError {
    ApiError::Conflict(format!(
        "only a failed video can be tried again; this one is {}",
        status.as_str()
    ))
}
