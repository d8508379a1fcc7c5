//! Large uploads: the client PUTs the file straight to object storage through presigned URLs
//! (one for a small file, S3 multipart parts for a large one), then asks us to complete it.
//!
//! The `uploads` row is written before any byte can reach the store, so every object under
//! `videos/` is known to a row: completion checks the stored object (size, leading bytes, the
//! duration from `mvhd` through ranged reads, never the whole object) and turns the upload into
//! a video and its queued job in one transaction; a failed check deletes the object; an abort
//! or the worker's sweep of expired uploads removes parts and object.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clip_config::ClipConfig;
use crate::db::{retry_busy, DbError, PooledConnection};
use crate::error::{ApiError, FieldErrors};
use crate::http::{json_object, Fields, Response};
use crate::ingest::{self, clean_title, title_from_filename, IngestConfig, Outcome, Record};
use crate::media::{self, MediaError, RangedError, ReadStats, VideoInfo};
use crate::model::{SourceType, JOB_TYPE_TRANSCRIPTION_AND_CLIPPING};
use crate::repo::processing_jobs::NewJob;
use crate::repo::uploads::{self, NewUpload, Upload, UploadStatus};
use crate::repo::video_sources::NewVideoSource;
use crate::storage::{new_video_key, CompleteError, LazyStorage, PartTag, Storage, StorageError};

/// The largest file this flow takes: 10 GiB.
pub const MAX_UPLOAD_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// S3's limits on multipart parts: at least 5 MiB (but the last), at most 5 GiB, 10,000 parts.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// Longest file name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;
/// How long one completion request holds an upload; a crashed completer's claim runs out.
const CLAIM: Duration = Duration::from_secs(180);

/// Declared types this flow takes (the bytes are checked at completion whatever is declared).
const ACCEPTED_TYPES: &[&str] = &[
    "video/mp4",
    "video/quicktime",
    "video/x-m4v",
    "application/mp4",
    "application/octet-stream",
];

/// The part size and count for a file of `size` bytes: one part (a single PUT) up to
/// `part_bytes`; above that parts of `part_bytes`, grown in whole MiB when the file would
/// need more than 10,000 of them.
pub fn plan(size: u64, part_bytes: u64) -> (u64, u32) {
    const MIB: u64 = 1024 * 1024;
    if size <= part_bytes {
        return (size, 1);
    }
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    let part_size = part_bytes.max(needed);
    (part_size, size.div_ceil(part_size) as u32)
}

/// `POST /viral-clip/video/uploads`'s body.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub filename: String,
    pub size_bytes: u64,
    pub content_type: String,
    pub title: Option<String>,
    pub config: ClipConfig,
}

impl StartRequest {
    /// Reads the JSON object: 422 naming every bad or unknown field, 413 over 10 GiB, 415 for a
    /// declared type that is not an MP4/MOV video.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body);
        let filename = fields.required_string("filename");
        let size_present = fields.is_present("size_bytes");
        let size_bytes = fields.u64("size_bytes");
        if !size_present {
            fields.errors.add("size_bytes", "is required");
        }
        let content_type = fields.string("content_type");
        let title = fields.string("title");
        let config = ClipConfig::from_json(&mut fields);

        let filename = filename.and_then(|name| {
            let cleaned: String = name.chars().filter(|c| !c.is_control()).collect();
            let cleaned = cleaned.trim().to_owned();
            if cleaned.is_empty() {
                fields.errors.add("filename", "must not be empty");
                None
            } else if cleaned.chars().count() > MAX_FILENAME_CHARS {
                fields.errors.add(
                    "filename",
                    format!("must be at most {MAX_FILENAME_CHARS} characters"),
                );
                None
            } else {
                Some(cleaned)
            }
        });
        if size_bytes == Some(0) {
            fields.errors.add(
                "size_bytes",
                "must be at least 1 (the file's size in bytes)",
            );
        }
        let title = match title {
            Some(raw) if raw.chars().count() > ingest::MAX_TITLE_CHARS => {
                fields.errors.add(
                    "title",
                    format!("must be at most {} characters", ingest::MAX_TITLE_CHARS),
                );
                None
            }
            Some(raw) => clean_title(&raw),
            None => None,
        };
        fields.finish()?;
        let (Some(filename), Some(size_bytes)) = (filename, size_bytes) else {
            return Err(ApiError::Internal("checked fields went missing".into()));
        };
        if size_bytes > MAX_UPLOAD_SIZE {
            return Err(ApiError::PayloadTooLarge(format!(
                "the file is {size_bytes} bytes; the largest upload is {MAX_UPLOAD_SIZE} bytes (10 GiB)"
            )));
        }
        let content_type = content_type
            .map(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        if !ACCEPTED_TYPES.contains(&content_type.as_str()) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content_type {content_type:?} is not an MP4 or MOV video: upload an MP4 or MOV"
            )));
        }
        let title = title.or_else(|| title_from_filename(&filename));
        Ok(Self {
            filename,
            size_bytes,
            content_type,
            title,
            config,
        })
    }
}

/// One presigned PUT.
#[derive(Debug, Clone, Serialize)]
pub struct PartUrl {
    pub part_number: u32,
    pub url: String,
    /// The exact number of bytes this part must hold.
    pub size_bytes: u64,
}

/// The 201 body of `POST /viral-clip/video/uploads`.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub upload_id: i64,
    /// `true` when the file goes in parts (complete with their ETags, or none to let the
    /// server list them); `false` for one PUT of the whole file.
    pub multipart: bool,
    pub size_bytes: u64,
    pub part_size: u64,
    pub parts: Vec<PartUrl>,
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// Where to POST when every byte is up.
    pub complete_url: String,
}

fn account_gone() -> ApiError {
    ApiError::Unauthorized("your account no longer exists; sign up or sign in again".into())
}

/// Records a pending upload and hands out its presigned URLs.
pub async fn start(
    conn: &PooledConnection,
    storage: &Storage,
    cfg: &IngestConfig,
    user_id: i64,
    req: &StartRequest,
) -> Result<Started, ApiError> {
    let (part_size, part_count) = plan(req.size_bytes, cfg.upload_part_bytes);
    let key = new_video_key(user_id);
    let multipart_id = if part_count > 1 {
        Some(storage.create_multipart(&key).await?)
    } else {
        None
    };
    let now = crate::time::now();
    let expires_at = crate::time::truncate(now + cfg.upload_url_ttl);
    let new = NewUpload {
        user_id,
        object_key: key.clone(),
        multipart_id: multipart_id.clone(),
        filename: req.filename.clone(),
        content_type: req.content_type.clone(),
        size_bytes: req.size_bytes,
        part_size,
        part_count,
        title: req.title.clone(),
        payload: req.config.to_payload(),
        expires_at,
    };
    let upload = match retry_busy(|| uploads::insert(conn, &new, None, now)).await {
        Ok(upload) => upload,
        Err(e) => {
            if let Some(id) = &multipart_id {
                if let Err(abort) = storage.abort_multipart(&key, id).await {
                    tracing::error!(key, error = %abort, "could not abort an unrecorded multipart upload");
                }
            }
            return Err(if e.is_foreign_key_violation() {
                account_gone()
            } else {
                e.into()
            });
        }
    };
    match presign(storage, &upload, cfg.upload_url_ttl).await {
        Ok(parts) => Ok(Started {
            upload_id: upload.id,
            multipart: multipart_id.is_some(),
            size_bytes: upload.size_bytes,
            part_size,
            parts,
            expires_at,
            complete_url: format!("/viral-clip/video/uploads/{}/complete", upload.id),
        }),
        Err(e) => {
            if let Ok(true) = uploads::close(conn, upload.id, UploadStatus::Aborted, now).await {
                clean(conn, storage, &upload).await;
            }
            Err(e.into())
        }
    }
}

async fn presign(
    storage: &Storage,
    upload: &Upload,
    ttl: Duration,
) -> Result<Vec<PartUrl>, StorageError> {
    let Some(multipart_id) = &upload.multipart_id else {
        let url = storage.presign_put(&upload.object_key, ttl).await?;
        return Ok(vec![PartUrl {
            part_number: 1,
            url,
            size_bytes: upload.size_bytes,
        }]);
    };
    let mut parts = Vec::with_capacity(upload.part_count as usize);
    for n in 1..=upload.part_count {
        let start = u64::from(n - 1) * upload.part_size;
        let size_bytes = upload.part_size.min(upload.size_bytes - start);
        let url = storage
            .presign_part(&upload.object_key, multipart_id, n as i32, ttl)
            .await?;
        parts.push(PartUrl {
            part_number: n,
            url,
            size_bytes,
        });
    }
    Ok(parts)
}

/// `POST /viral-clip/video/uploads/{upload_id}/complete`'s body: the parts' ETags, or nothing
/// (a single PUT, or "list them yourself").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompleteRequest {
    pub parts: Option<Vec<PartTag>>,
}

impl CompleteRequest {
    /// An empty body is fine; otherwise a JSON object with an optional `parts` array of
    /// `{"part_number", "etag"}` in ascending order.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let mut fields = Fields::new(json_object(headers, body)?);
        let raw = fields.raw("parts");
        let mut errors = FieldErrors::new();
        let parts = match raw {
            None => None,
            Some(Value::Array(items)) => Some(parse_parts(items, &mut errors)),
            Some(_) => {
                errors.add(
                    "parts",
                    "must be an array of {\"part_number\", \"etag\"} objects",
                );
                None
            }
        };
        if let Err(ApiError::Validation(unknown)) = fields.finish() {
            for (k, v) in unknown.fields() {
                errors.add(k, v);
            }
        }
        errors.into_result()?;
        Ok(Self { parts })
    }
}

fn parse_parts(items: Vec<Value>, errors: &mut FieldErrors) -> Vec<PartTag> {
    if items.len() as u64 > MAX_PARTS {
        errors.add("parts", format!("has more than {MAX_PARTS} parts"));
        return Vec::new();
    }
    let mut out: Vec<PartTag> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("parts[{i}]");
        let Value::Object(map) = item else {
            errors.add(at, "must be an object with part_number and etag");
            continue;
        };
        let mut f = Fields::new(map);
        let number = f.u64("part_number");
        let etag = f.required_string("etag");
        if number.is_none() && f.errors.get("part_number").is_none() {
            f.errors.add("part_number", "is required");
        }
        let mut part_errors = FieldErrors::new();
        if let Err(ApiError::Validation(e)) = f.finish() {
            part_errors = e;
        }
        for (k, v) in part_errors.fields() {
            errors.add(format!("{at}.{k}"), v);
        }
        let (Some(number), Some(etag)) = (number, etag) else {
            continue;
        };
        if !(1..=MAX_PARTS).contains(&number) {
            errors.add(format!("{at}.part_number"), "must be between 1 and 10000");
            continue;
        }
        if etag.is_empty() || etag.len() > 1024 {
            errors.add(
                format!("{at}.etag"),
                "must be the ETag the store answered the PUT with",
            );
            continue;
        }
        if out.last().is_some_and(|p| p.part_number >= number as i32) {
            errors.add(
                "parts",
                "must be in ascending part_number order, each part once",
            );
            continue;
        }
        out.push(PartTag {
            part_number: number as i32,
            etag: Some(etag),
        });
    }
    out
}

/// The answer to a completion: the created video (or the same one again), or the refusal a
/// failed check gave, repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Done(Outcome),
    Refused { status: u16, body: String },
}

impl Completion {
    pub fn into_response(self) -> Response {
        match self {
            Self::Done(outcome) => outcome.into_response(),
            Self::Refused { status, body } => {
                let mut resp = http::Response::new(body);
                *resp.status_mut() =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp
            }
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such upload".into())
}

/// What an ended upload answers.
fn ended(upload: &Upload) -> Option<Result<Completion, ApiError>> {
    let stored = || (upload.result_status, upload.result_body.clone());
    match upload.status {
        UploadStatus::Completed => match stored() {
            (_, Some(body)) => Some(Ok(Completion::Done(Outcome::Replayed(body)))),
            _ => Some(Err(ApiError::Internal(
                "a completed upload has no result".into(),
            ))),
        },
        UploadStatus::Failed => match stored() {
            (Some(status), Some(body)) => Some(Ok(Completion::Refused { status, body })),
            _ => Some(Err(ApiError::Internal(
                "a failed upload has no result".into(),
            ))),
        },
        UploadStatus::Aborted => Some(Err(ApiError::Conflict(
            "this upload was aborted; start a new one".into(),
        ))),
        UploadStatus::Expired => Some(Err(ApiError::Conflict(format!(
            "this upload expired (its URLs were valid until {}); start a new one",
            crate::time::format(upload.expires_at)
        )))),
        UploadStatus::Pending | UploadStatus::Completing => None,
    }
}

/// A check that failed: either the client can fix it and complete again (the upload stays
/// pending), or the object is bad for good (it is deleted and the upload fails).
enum Problem {
    Retry(ApiError),
    Final(ApiError),
}

/// Completes an upload: joins multipart parts, checks the object, creates the video and its
/// queued job. A repeat answers what the first completion answered.
pub async fn complete(
    conn: &PooledConnection,
    storage: &Storage,
    cfg: &IngestConfig,
    user_id: i64,
    upload_id: i64,
    req: &CompleteRequest,
) -> Result<Completion, ApiError> {
    // The claim first (the usual case is one statement): an upload still open for completion
    // becomes ours. Only when it is not is the upload read, to say why.
    let now = crate::time::now();
    let token = uuid::Uuid::new_v4().to_string();
    let cutoff = now - cfg.upload_complete_grace;
    let claimed =
        uploads::claim(conn, upload_id, user_id, &token, now, now + CLAIM, cutoff).await?;
    let Some(upload) = claimed else {
        let upload = uploads::get_for_user(conn, upload_id, user_id)
            .await?
            .ok_or_else(not_found)?;
        if let Some(answer) = ended(&upload) {
            return answer;
        }
        if upload.expires_at < cutoff {
            if uploads::close(conn, upload.id, UploadStatus::Expired, now).await? {
                clean(conn, storage, &upload).await;
            }
            return ended(&Upload {
                status: UploadStatus::Expired,
                ..upload
            })
            .unwrap_or_else(|| Err(not_found()));
        }
        return Err(ApiError::Conflict(
            "another request is completing this upload; ask again in a few seconds".into(),
        ));
    };
    let release = || async {
        if let Err(e) = uploads::release(conn, upload.id, &token).await {
            tracing::error!(upload_id = upload.id, error = %e, "could not release an upload");
        }
    };
    match check(storage, &upload, req.parts.clone()).await {
        Ok((info, stats)) => {
            tracing::info!(
                upload_id = upload.id,
                size_bytes = upload.size_bytes,
                ranged_requests = stats.requests,
                ranged_bytes = stats.bytes,
                "upload checked"
            );
            let video = NewVideoSource {
                user_id,
                source_type: Some(SourceType::Upload),
                file_path: Some(upload.object_key.clone()),
                title: upload.title.clone(),
                duration_seconds: info.duration_seconds,
                ..Default::default()
            };
            let job = NewJob {
                job_type: JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
                payload: upload.payload.clone(),
                max_attempts: cfg.job_max_attempts,
            };
            let record = Record {
                key: None,
                upload: Some((upload.id, &token)),
            };
            match ingest::create(conn, &video, &job, record).await {
                Ok(outcome) => Ok(Completion::Done(outcome)),
                Err(e) => {
                    // The object stays, known to the pending upload: completing again works.
                    release().await;
                    Err(e)
                }
            }
        }
        Err(Problem::Retry(e)) => {
            release().await;
            Err(e)
        }
        Err(Problem::Final(e)) => {
            if let Err(d) = storage.delete(&upload.object_key).await {
                release().await;
                return Err(d.into());
            }
            let body = e.body().to_string();
            let status = e.status().as_u16();
            if let Err(db) = uploads::finish(
                conn,
                upload.id,
                &token,
                UploadStatus::Failed,
                None,
                status,
                &body,
            )
            .await
            {
                tracing::error!(upload_id = upload.id, error = %db, "could not record a failed upload");
            }
            Err(e)
        }
    }
}

fn parts_problem(e: CompleteError) -> Problem {
    match e {
        CompleteError::Refused(msg) => Problem::Retry(ApiError::field(
            "parts",
            format!("the store refused the parts ({msg}); upload every part, then complete again"),
        )),
        CompleteError::Storage(e) => Problem::Retry(e.into()),
    }
}

/// The object as the client left it: joined (multipart), of the declared size, a video.
async fn check(
    storage: &Storage,
    upload: &Upload,
    parts: Option<Vec<PartTag>>,
) -> Result<(VideoInfo, ReadStats), Problem> {
    let key = upload.object_key.as_str();
    let retry = |e: StorageError| Problem::Retry(e.into());
    let mut size = storage.size_of(key).await.map_err(retry)?;
    if let (None, Some(multipart_id)) = (size, &upload.multipart_id) {
        let parts = match parts {
            Some(parts) => parts,
            None => storage
                .list_parts(key, multipart_id)
                .await
                .map_err(parts_problem)?,
        };
        check_part_numbers(&parts, upload.part_count).map_err(Problem::Retry)?;
        storage
            .complete_multipart(key, multipart_id, &parts)
            .await
            .map_err(parts_problem)?;
        size = storage.size_of(key).await.map_err(retry)?;
    }
    let Some(size) = size else {
        return Err(Problem::Retry(ApiError::field(
            "file",
            "nothing has been uploaded yet: PUT the file to the upload URL, then complete",
        )));
    };
    if size != upload.size_bytes {
        return Err(Problem::Final(ApiError::field(
            "size_bytes",
            format!(
                "the uploaded file has {size} bytes but the upload was declared as {} bytes",
                upload.size_bytes
            ),
        )));
    }
    probe(storage, key, size).await.map_err(|e| match e {
        RangedError::Media(MediaError::NotAVideo(msg)) => Problem::Final(
            ApiError::UnsupportedMediaType(format!("{msg}: upload an MP4 or MOV video")),
        ),
        RangedError::Media(MediaError::Damaged(msg)) => Problem::Final(ApiError::field(
            "file",
            format!("cannot be read as a video: {msg}"),
        )),
        RangedError::Read(e) => retry(e),
    })
}

/// Every part from 1 to `count`, once, in order.
fn check_part_numbers(parts: &[PartTag], count: u32) -> Result<(), ApiError> {
    let have: std::collections::BTreeSet<i32> = parts.iter().map(|p| p.part_number).collect();
    let missing: Vec<String> = (1..=count as i32)
        .filter(|n| !have.contains(n))
        .take(20)
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::field(
            "parts",
            format!(
                "part(s) {} of {count} are not uploaded yet; PUT them, then complete again",
                missing.join(", ")
            ),
        ));
    }
    if parts.len() != count as usize || have.iter().any(|n| *n > count as i32) {
        return Err(ApiError::field(
            "parts",
            format!("this upload has exactly {count} parts, numbered 1 to {count}"),
        ));
    }
    Ok(())
}

/// Reads a stored video's headers and duration by ranged GETs (completion's check; also for
/// benchmarks and tools).
pub async fn probe(
    storage: &Storage,
    key: &str,
    size: u64,
) -> Result<(VideoInfo, ReadStats), RangedError<StorageError>> {
    media::inspect_ranged(size, |start, len| storage.read_range(key, start, len)).await
}

/// `DELETE /viral-clip/video/uploads/{upload_id}`: stops an unfinished upload and removes what
/// reached the store. Aborting an ended (failed, aborted, expired) upload again is a no-op.
pub async fn abort(
    conn: &PooledConnection,
    storage: &Storage,
    user_id: i64,
    upload_id: i64,
) -> Result<(), ApiError> {
    let upload = uploads::get_for_user(conn, upload_id, user_id)
        .await?
        .ok_or_else(not_found)?;
    let completed = |u: &Upload| {
        ApiError::Conflict(format!(
            "this upload is already complete (video {}); it cannot be aborted",
            u.video_source_id.map_or("?".into(), |id| id.to_string())
        ))
    };
    match upload.status {
        UploadStatus::Completed => return Err(completed(&upload)),
        UploadStatus::Failed | UploadStatus::Aborted | UploadStatus::Expired => return Ok(()),
        UploadStatus::Pending | UploadStatus::Completing => {}
    }
    if !uploads::close(conn, upload.id, UploadStatus::Aborted, crate::time::now()).await? {
        let now = uploads::get_for_user(conn, upload_id, user_id)
            .await?
            .ok_or_else(not_found)?;
        return match now.status {
            UploadStatus::Completed => Err(completed(&now)),
            UploadStatus::Completing => Err(ApiError::Conflict(
                "this upload is being completed right now; it cannot be aborted".into(),
            )),
            _ => Ok(()),
        };
    }
    clean(conn, storage, &upload).await;
    Ok(())
}

/// Removes an ended upload's parts and object. The sweep does it again once the upload's URLs
/// have expired (a client could PUT again until then), and retries a failed clean-up.
async fn clean(conn: &PooledConnection, storage: &Storage, upload: &Upload) -> bool {
    let result = async {
        if let Some(id) = &upload.multipart_id {
            storage.abort_multipart(&upload.object_key, id).await?;
        }
        storage.delete(&upload.object_key).await
    }
    .await;
    let now = crate::time::now();
    match result {
        // Until its URLs expire a client could PUT again: it is cleaned again (and marked) then.
        Ok(()) if upload.expires_at >= now => false,
        Ok(()) => match uploads::mark_cleaned(conn, upload.id, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(upload_id = upload.id, error = %e, "clean-up not recorded; the sweep repeats it");
                false
            }
        },
        Err(e) => {
            tracing::warn!(upload_id = upload.id, error = %e, "clean-up failed; the sweep tries again");
            false
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Unfinished uploads past their completion deadline, now `expired`.
    pub expired: u32,
    /// Uploads whose leftovers were removed.
    pub cleaned: u32,
    /// Clean-ups that failed (tried again next time).
    pub failed: u32,
}

/// The worker's sweep: expires uploads nobody completed in time (URL expiry plus `grace`) and
/// removes the leftovers of every ended upload not cleaned up yet (at most `limit` per call).
/// The storage is connected only when there is something to clean.
pub async fn sweep(
    conn: &PooledConnection,
    storage: &LazyStorage,
    grace: Duration,
    limit: u32,
) -> Result<SweepReport, DbError> {
    let now = crate::time::now();
    let mut report = SweepReport::default();
    for upload in uploads::to_clean(conn, now, now - grace, limit).await? {
        if matches!(
            upload.status,
            UploadStatus::Pending | UploadStatus::Completing
        ) {
            if !uploads::close(conn, upload.id, UploadStatus::Expired, now).await? {
                continue; // being completed right now
            }
            report.expired += 1;
        }
        if clean(conn, storage.get().await, &upload).await {
            report.cleaned += 1;
        } else {
            report.failed += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn small_files_get_one_put_and_large_ones_at_most_10000_parts() {
        assert_eq!(plan(1, 8 * MIB), (1, 1));
        assert_eq!(plan(8 * MIB, 8 * MIB), (8 * MIB, 1));
        assert_eq!(plan(12 * MIB, 5 * MIB), (5 * MIB, 3));
        assert_eq!(plan(8 * MIB + 1, 8 * MIB), (8 * MIB, 2));
        let (part, count) = plan(MAX_UPLOAD_SIZE, 5 * MIB);
        assert_eq!((part, count), (5 * MIB, 2048));
        let (part, count) = plan(MAX_UPLOAD_SIZE, MIN_PART_BYTES);
        assert!(u64::from(count) <= MAX_PARTS && part * u64::from(count) >= MAX_UPLOAD_SIZE);
        // a part size so small the file would need more than 10,000 parts grows
        let (part, count) = plan(100_000 * MIB, 5 * MIB);
        assert!(u64::from(count) <= MAX_PARTS, "{count}");
        assert_eq!(part % MIB, 0);
        assert!(part * u64::from(count) >= 100_000 * MIB);
    }

    fn start(body: Value) -> Result<StartRequest, ApiError> {
        StartRequest::parse(body.as_object().unwrap().clone())
    }

    #[test]
    fn start_requests_are_checked_field_by_field() {
        let ok = start(
            serde_json::json!({"filename": "C:\\x\\My Talk.mov", "size_bytes": 5,
            "content_type": "video/quicktime", "aspect_ratio": "1:1"}),
        )
        .unwrap();
        assert_eq!(ok.title.as_deref(), Some("My Talk"));
        assert_eq!(ok.config.to_payload()["aspect_ratio"], "1:1");

        let Err(ApiError::Validation(e)) = start(serde_json::json!({"size_bytes": 0, "x": 1,
            "aspect_ratio": "2:3"}))
        else {
            panic!("422 expected")
        };
        for f in ["filename", "size_bytes", "x", "aspect_ratio"] {
            assert!(e.get(f).is_some(), "{f}: {e:?}");
        }
        let Err(ApiError::Validation(e)) =
            start(serde_json::json!({"filename": " ", "size_bytes": -3}))
        else {
            panic!("422 expected")
        };
        assert!(e.get("filename").is_some() && e.get("size_bytes").is_some());
        assert!(matches!(
            start(serde_json::json!({"filename": "a.mp4", "size_bytes": MAX_UPLOAD_SIZE + 1})),
            Err(ApiError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            start(
                serde_json::json!({"filename": "a.png", "size_bytes": 10, "content_type": "image/png"})
            ),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }

    fn complete(body: &str) -> Result<CompleteRequest, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        CompleteRequest::parse(&headers, body.as_bytes())
    }

    #[test]
    fn completion_bodies_take_ordered_parts_or_nothing() {
        assert_eq!(
            CompleteRequest::parse(&HeaderMap::new(), b"")
                .unwrap()
                .parts,
            None
        );
        assert_eq!(complete("{}").unwrap().parts, None);
        let parts = complete(
            r#"{"parts":[{"part_number":1,"etag":"\"a\""},{"part_number":2,"etag":"b"}]}"#,
        )
        .unwrap()
        .parts
        .unwrap();
        assert_eq!(parts.len(), 2);
        for bad in [
            r#"{"parts":[{"part_number":2,"etag":"a"},{"part_number":1,"etag":"b"}]}"#,
            r#"{"parts":[{"part_number":0,"etag":"a"}]}"#,
            r#"{"parts":[{"etag":"a"}]}"#,
            r#"{"parts":[{"part_number":1}]}"#,
            r#"{"parts":[{"part_number":1,"etag":"a","x":1}]}"#,
            r#"{"parts":"all"}"#,
            r#"{"parts":[1]}"#,
            r#"{"other":1}"#,
        ] {
            assert!(
                matches!(complete(bad), Err(ApiError::Validation(_))),
                "{bad}"
            );
        }
        assert!(matches!(complete("{"), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn part_lists_must_cover_every_part() {
        let tags = |ns: &[i32]| {
            ns.iter()
                .map(|n| PartTag {
                    part_number: *n,
                    etag: None,
                })
                .collect::<Vec<_>>()
        };
        assert!(check_part_numbers(&tags(&[1, 2, 3]), 3).is_ok());
        assert!(check_part_numbers(&tags(&[1, 3]), 3).is_err());
        assert!(check_part_numbers(&tags(&[1, 2, 3, 4]), 3).is_err());
        assert!(check_part_numbers(&tags(&[]), 1).is_err());
    }
}
