//! Where every ingest flow ends: the video, its queued job and what else the request records
//! (its `Idempotency-Key` with the answer, the upload it completes), written in one transaction.

use http::{HeaderValue, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::IngestConfig;
use crate::db::{self, OwnedRow, PooledConnection};
use crate::error::ApiError;
use crate::http::{json_text, Response};
use crate::model::{SourceType, JOB_TYPE_TRANSCRIPTION_AND_CLIPPING};
use crate::quota::Quotas;
use crate::repo;
use crate::repo::idempotency_keys::{self, IdempotencyKey, Stored};
use crate::repo::processing_jobs::{self, NewJob, ProcessingJob};
use crate::repo::uploads;
use crate::repo::video_sources::{self, NewVideoSource, VideoSource};

/// The 201 body of every ingest route.
#[derive(Debug, Serialize)]
pub struct Created {
    pub video_source: VideoSource,
    pub processing_job: ProcessingJob,
}

/// A created video, or the first response to a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    Replayed(String),
}

impl Outcome {
    pub fn body(&self) -> &str {
        match self {
            Self::Created(b) | Self::Replayed(b) => b,
        }
    }

    /// 201 with the body; a replay says so in `Idempotent-Replayed: true`.
    pub fn into_response(self) -> Response {
        let (body, replayed) = match self {
            Self::Created(b) => (b, false),
            Self::Replayed(b) => (b, true),
        };
        let mut resp = json_text(StatusCode::CREATED, body);
        if replayed {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

/// The queued job of a new video: the clip options' `payload`, attempts from the settings.
pub(crate) fn new_job(cfg: &IngestConfig, payload: serde_json::Value) -> NewJob {
    NewJob {
        job_type: JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
        payload,
        max_attempts: cfg.job_max_attempts,
    }
}

/// An uploaded file's video: stored at `object_key`.
pub(crate) fn uploaded_video(
    user_id: i64,
    object_key: &str,
    title: Option<String>,
    duration_seconds: Option<i64>,
) -> NewVideoSource {
    NewVideoSource {
        user_id,
        source_type: Some(SourceType::Upload),
        file_path: Some(object_key.to_owned()),
        title,
        duration_seconds,
        ..Default::default()
    }
}

/// A request's fingerprint for its `Idempotency-Key`: SHA-256 over the length-prefixed parts.
pub(crate) fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What else the transaction that creates a video records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// The request's `Idempotency-Key`, stored with the response.
    pub key: Option<&'a IdempotencyKey>,
    /// An upload claimed with this token (id, token) becomes `completed` with this video.
    pub upload: Option<(i64, &'a str)>,
}

/// Writes the video, its job and what `record` says in one transaction: one round trip on a
/// remote server. With a key, a repeated request writes nothing and gets the first answer (or a
/// 409 when the key was used for another request), from the same round trip. The transaction's
/// first step checks the user's quotas: over one, nothing is written and the answer is a 429.
pub(crate) async fn create(
    conn: &PooledConnection,
    quotas: &Quotas,
    video: &NewVideoSource,
    job: &NewJob,
    record: Record<'_>,
) -> Result<Outcome, ApiError> {
    let now = conn.now();
    let template = serde_json::to_string(&Created {
        video_source: video.stored(repo::VIDEO_ID_SLOT, now)?,
        processing_job: job.stored(repo::JOB_ID_SLOT, repo::VIDEO_ID_SLOT, now),
    })
    .map_err(ApiError::internal)?;
    let mut steps = vec![
        quotas.check(video.user_id, now, true, record.key)?,
        video_sources::insert(video, now, record.key)?,
        processing_jobs::insert_for_new_video(job, now)?,
    ];
    if let Some(key) = record.key {
        steps.push(idempotency_keys::insert_for_new_job(key, &template, now)?);
    }
    if let Some((id, token)) = record.upload {
        steps.push(uploads::complete_with_new_video(id, token, &template, now)?);
        steps.push(uploads::completed_guard(id)?);
    }
    if let Some(key) = record.key {
        steps.push(idempotency_keys::find_stmt(key)?);
    }
    let rows = match db::transaction(conn, &steps).await {
        Ok(rows) => rows,
        Err(e) if e.is_guard() => {
            return Err(ApiError::Conflict(
                "another request is completing this upload; ask again in a few seconds".into(),
            ))
        }
        Err(e) => return Err(quotas.refusal(conn, video.user_id, e).await),
    };
    let video_id = repo::inserted_id(&rows[1])?;
    let job_id = repo::inserted_id(&rows[2])?;
    match (video_id, job_id, record.key) {
        (Some(video_id), Some(job_id), _) => Ok(Outcome::Created(repo::fill_ids(
            &template, video_id, job_id,
        ))),
        // The key was recorded already: a repeat of the first request, or another request.
        (None, _, Some(key)) => replay(key, rows.last().map_or(&[], Vec::as_slice)),
        _ => Err(ApiError::Internal(
            "a new video was not inserted with its job".into(),
        )),
    }
}

/// The answer to a request whose `Idempotency-Key` is recorded already, from the rows of its
/// [`idempotency_keys::find_stmt`]: the first answer again for the same request, 409 for another.
pub(crate) fn replay(key: &IdempotencyKey, rows: &[OwnedRow]) -> Result<Outcome, ApiError> {
    let stored = idempotency_keys::stored(rows)?
        .ok_or_else(|| ApiError::Internal("idempotency key vanished".into()))?;
    answer_again(key, stored)
}

/// The answer to a request whose `Idempotency-Key` recorded `stored`: the first answer again
/// for the same request, 409 for another.
pub(crate) fn answer_again(key: &IdempotencyKey, stored: Stored) -> Result<Outcome, ApiError> {
    if stored.request_hash == key.request_hash {
        Ok(Outcome::Replayed(stored.response_body))
    } else {
        Err(ApiError::Conflict(
            "this Idempotency-Key was already used for a different request; use a new key".into(),
        ))
    }
}
