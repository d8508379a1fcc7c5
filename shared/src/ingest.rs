//! Creating videos: a YouTube link or an uploaded file becomes a `video_sources` row and its
//! queued `processing_jobs` row, idempotently, and (for uploads) an object stored first.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::clip_config::ClipConfig;
use crate::config::{ConfigError, Env};
use crate::db::{self, DbError, PooledConnection};
use crate::error::{ApiError, FieldErrors};
use crate::http::{media_type, Fields, Response};
use crate::media::{self, MediaError};
use crate::model::{SourceType, JOB_TYPE_TRANSCRIPTION_AND_CLIPPING};
use crate::repo;
use crate::repo::idempotency_keys::{self, IdempotencyKey};
use crate::repo::processing_jobs::{self, NewJob, ProcessingJob};
use crate::repo::uploads;
use crate::repo::video_sources::{self, NewVideoSource, VideoSource};
use crate::storage::{new_video_key, Storage};
use crate::youtube::YoutubeLink;

pub const ROUTE_YOUTUBE: &str = "POST /viral-clip/video/youtube";
pub const ROUTE_UPLOAD: &str = "POST /viral-clip/video/upload";

/// Longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// `MAX_UPLOAD_BYTES` (default 4 MiB): the largest file of a direct upload. A synchronous
    /// Lambda event is at most 6 MiB + 100 bytes and API Gateway base64-encodes a binary body
    /// into it (a third larger), so the largest form this route takes (the file, its fields and
    /// framing, 64 KiB in all) must stay under 4.5 MiB; larger files take the large-upload flow.
    pub max_upload_bytes: u64,
    /// `JOB_MAX_ATTEMPTS` (default 3), stored with each new job.
    pub job_max_attempts: u32,
    /// `UPLOAD_PART_BYTES` (default 8 MiB, at least S3's 5 MiB): a large upload's part size;
    /// files up to this size get one presigned PUT.
    pub upload_part_bytes: u64,
    /// `UPLOAD_URL_TTL_SECONDS` (default 6 h): how long presigned URLs stay valid.
    pub upload_url_ttl: std::time::Duration,
    /// `UPLOAD_COMPLETE_GRACE_SECONDS` (default 1 h): how long after its URLs expire an upload
    /// may still be completed; after that the worker's sweep expires it and cleans up.
    pub upload_complete_grace: std::time::Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 4 * 1024 * 1024,
            job_max_attempts: 3,
            upload_part_bytes: 8 * 1024 * 1024,
            upload_url_ttl: std::time::Duration::from_secs(6 * 3600),
            upload_complete_grace: std::time::Duration::from_secs(3600),
        }
    }
}

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_upload_bytes: env.int_in(
                "MAX_UPLOAD_BYTES",
                d.max_upload_bytes,
                1024..=64 * 1024 * 1024,
            )?,
            job_max_attempts: env.int_in("JOB_MAX_ATTEMPTS", d.job_max_attempts.into(), 1..=100)?
                as u32,
            upload_part_bytes: env.int_in(
                "UPLOAD_PART_BYTES",
                d.upload_part_bytes,
                crate::uploads::MIN_PART_BYTES..=crate::uploads::MAX_PART_BYTES,
            )?,
            upload_url_ttl: std::time::Duration::from_secs(env.int_in(
                "UPLOAD_URL_TTL_SECONDS",
                d.upload_url_ttl.as_secs(),
                1..=7 * 24 * 3600,
            )?),
            upload_complete_grace: std::time::Duration::from_secs(env.int_in(
                "UPLOAD_COMPLETE_GRACE_SECONDS",
                d.upload_complete_grace.as_secs(),
                0..=7 * 24 * 3600,
            )?),
        })
    }
}

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

    pub fn into_response(self) -> Response {
        let replayed = matches!(self, Self::Replayed(_));
        let body = match self {
            Self::Created(b) | Self::Replayed(b) => b,
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = StatusCode::CREATED;
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        if replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

pub(crate) fn new_job(cfg: &IngestConfig, config: &ClipConfig) -> NewJob {
    NewJob {
        job_type: JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
        payload: config.to_payload(),
        max_attempts: cfg.job_max_attempts,
    }
}

fn digest(parts: &[&[u8]]) -> String {
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

/// A write's database error as the API answers it: the user row gone (a valid token of a
/// deleted account) is a 401.
fn answer(e: DbError) -> ApiError {
    if e.is_foreign_key_violation() {
        ApiError::Unauthorized("your account no longer exists; sign up or sign in again".into())
    } else {
        e.into()
    }
}

/// Writes the video, its job and what `record` says in one transaction: one round trip on a
/// remote server. With a key, a repeated request writes nothing and gets the first answer (or a
/// 409 when the key was used for another request), from the same round trip.
pub(crate) async fn create(
    conn: &PooledConnection,
    video: &NewVideoSource,
    job: &NewJob,
    record: Record<'_>,
) -> Result<Outcome, ApiError> {
    let now = crate::time::now();
    let template = serde_json::to_string(&Created {
        video_source: video.stored(repo::VIDEO_ID_SLOT, now)?,
        processing_job: job.stored(repo::JOB_ID_SLOT, repo::VIDEO_ID_SLOT, now),
    })
    .map_err(ApiError::internal)?;
    let mut steps = vec![
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
        Err(e) => return Err(answer(e)),
    };
    let video_id = repo::inserted_id(&rows[0])?;
    let job_id = repo::inserted_id(&rows[1])?;
    match (video_id, job_id, record.key) {
        (Some(video_id), Some(job_id), _) => Ok(Outcome::Created(repo::fill_ids(
            &template, video_id, job_id,
        ))),
        // The key was recorded already: a repeat of the first request, or another request.
        (None, _, Some(key)) => {
            let stored = idempotency_keys::stored(rows.last().map_or(&[], Vec::as_slice))?
                .ok_or_else(|| ApiError::Internal("idempotency key vanished".into()))?;
            if stored.request_hash == key.request_hash {
                Ok(Outcome::Replayed(stored.response_body))
            } else {
                Err(key_reused())
            }
        }
        _ => Err(ApiError::Internal(
            "a new video was not inserted with its job".into(),
        )),
    }
}

fn key_reused() -> ApiError {
    ApiError::Conflict(
        "this Idempotency-Key was already used for a different request; use a new key".into(),
    )
}

/// `POST /viral-clip/video/youtube`'s body.
#[derive(Debug, Clone, PartialEq)]
pub struct YoutubeSubmission {
    pub link: YoutubeLink,
    pub config: ClipConfig,
}

impl YoutubeSubmission {
    /// Reads the JSON object; a 422 names every bad or unknown field.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body);
        let raw = fields.required_string("youtube_url");
        let link = raw.and_then(|raw| match YoutubeLink::parse(&raw) {
            Ok(link) => Some(link),
            Err(msg) => {
                fields.errors.add("youtube_url", msg);
                None
            }
        });
        let config = ClipConfig::from_json(&mut fields);
        fields.finish()?;
        let link = link.ok_or_else(|| ApiError::field("youtube_url", "is required"))?;
        Ok(Self { link, config })
    }
}

pub async fn submit_youtube(
    conn: &PooledConnection,
    cfg: &IngestConfig,
    user_id: i64,
    submission: &YoutubeSubmission,
    idempotency_key: Option<String>,
) -> Result<Outcome, ApiError> {
    let canonical = submission.link.canonical_url();
    let key = idempotency_key.map(|key| IdempotencyKey {
        user_id,
        route: ROUTE_YOUTUBE,
        key,
        request_hash: digest(&[
            canonical.as_bytes(),
            submission.config.to_payload().to_string().as_bytes(),
        ]),
    });
    let video = NewVideoSource {
        user_id,
        source_type: Some(SourceType::Youtube),
        source_url: Some(canonical),
        youtube_video_id: Some(submission.link.id().to_string()),
        thumbnail_url: Some(submission.link.thumbnail_url()),
        ..Default::default()
    };
    let record = Record {
        key: key.as_ref(),
        upload: None,
    };
    create(conn, &video, &new_job(cfg, &submission.config), record).await
}

/// How long a direct upload's intent is held by its request: past the longest a function
/// runs (15 minutes on Lambda), so the sweep never takes an object a live request still owns.
pub const DIRECT_UPLOAD_CLAIM: chrono::Duration = chrono::Duration::minutes(16);

/// A parsed `POST /viral-clip/video/upload` form.
#[derive(Debug, Clone)]
pub struct UploadForm {
    pub file: Bytes,
    pub title: Option<String>,
    pub config: ClipConfig,
    pub duration_seconds: Option<i64>,
}

pub(crate) fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is larger than this route's limit of {} bytes ({:.1} MiB); upload large files with \
         POST /viral-clip/video/uploads, which sends them straight to storage",
        limit,
        limit as f64 / (1024.0 * 1024.0)
    ))
}

/// A title from a file name: no folders, no extension, no control characters.
pub(crate) fn title_from_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => base,
    };
    clean_title(stem)
}

pub(crate) fn clean_title(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_TITLE_CHARS)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

const CONFIG_CONFLICT: &str =
    "give the clip options either as separate fields or as one config part, not both";

impl UploadForm {
    /// Parses and checks a multipart body: 400 for a broken form, 413 over the limit, 415 for a
    /// file that is not an MP4/MOV video, 422 for bad fields or a damaged video.
    pub async fn parse(
        headers: &HeaderMap,
        body: Bytes,
        max_upload_bytes: u64,
    ) -> Result<Self, ApiError> {
        if media_type(headers).as_deref() != Some("multipart/form-data") {
            return Err(ApiError::BadRequest(
                "this route takes a multipart/form-data body with a file part".into(),
            ));
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            ApiError::BadRequest("the multipart Content-Type has no boundary".into())
        })?;
        // Room for the form's own framing and text fields around the file.
        let slack = 64 * 1024;
        if body.len() as u64 > max_upload_bytes + slack {
            return Err(too_large(max_upload_bytes));
        }
        let stream =
            futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_upload_bytes + slack)
                .per_field(max_upload_bytes),
        );
        let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);

        let mut errors = FieldErrors::new();
        let mut file: Option<(Bytes, Option<String>)> = None;
        let mut config_part: Option<String> = None;
        let mut title: Option<String> = None;
        let mut text_config: Vec<(String, String)> = Vec::new();
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return Err(multipart_error(e, max_upload_bytes)),
            };
            let name = field.name().unwrap_or("").to_owned();
            let filename = field.file_name().map(str::to_owned);
            let data = field
                .bytes()
                .await
                .map_err(|e| multipart_error(e, max_upload_bytes))?;
            match name.as_str() {
                "file" => {
                    if file.is_some() {
                        errors.add("file", "send exactly one file");
                    }
                    file = Some((data, filename));
                }
                "config" | "title" | "video_type" | "aspect_ratio" | "clip_length_preset"
                | "subtitle" => {
                    let Ok(text) = String::from_utf8(data.to_vec()) else {
                        errors.add(name, "must be UTF-8 text");
                        continue;
                    };
                    match name.as_str() {
                        "config" => config_part = Some(text),
                        "title" => title = Some(text),
                        _ => text_config.push((name, text)),
                    }
                }
                "" => errors.add("form", "every part needs a name"),
                _ => errors.add(name, "is not a known field"),
            }
        }

        let config = match (config_part, text_config.is_empty()) {
            (Some(_), false) => {
                errors.add("config", CONFIG_CONFLICT);
                ClipConfig::default()
            }
            (Some(json), true) => match serde_json::from_str::<Value>(&json) {
                Ok(Value::Object(map)) => {
                    let mut fields = Fields::new(map);
                    let cfg = ClipConfig::from_json(&mut fields);
                    if let Err(ApiError::Validation(inner)) = fields.finish() {
                        for (k, v) in inner.fields() {
                            errors.add(k, v);
                        }
                    }
                    cfg
                }
                _ => {
                    errors.add("config", "must be a JSON object with the clip options");
                    ClipConfig::default()
                }
            },
            (None, _) => ClipConfig::from_text(&text_config, &mut errors),
        };
        let title = match title {
            Some(raw) if raw.chars().count() > MAX_TITLE_CHARS => {
                errors.add(
                    "title",
                    format!("must be at most {MAX_TITLE_CHARS} characters"),
                );
                None
            }
            Some(raw) => clean_title(&raw),
            None => None,
        };
        let Some((file, filename)) = file else {
            errors.add("file", "is required: attach the video as a part named file");
            return Err(ApiError::Validation(errors));
        };
        if file.is_empty() {
            errors.add("file", "is empty");
        }
        errors.into_result()?;
        if file.len() as u64 > max_upload_bytes {
            return Err(too_large(max_upload_bytes));
        }
        let info = media::inspect(&file).map_err(|e| match e {
            MediaError::NotAVideo(msg) => {
                ApiError::UnsupportedMediaType(format!("{msg}: upload an MP4 or MOV video"))
            }
            MediaError::Damaged(msg) => {
                ApiError::field("file", format!("cannot be read as a video: {msg}"))
            }
        })?;
        let title = title.or_else(|| filename.as_deref().and_then(title_from_filename));
        Ok(Self {
            file,
            title,
            config,
            duration_seconds: info.duration_seconds,
        })
    }
}

fn multipart_error(e: multer::Error, limit: u64) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(limit)
        }
        other => ApiError::BadRequest(format!("the body is not a valid multipart form ({other})")),
    }
}

/// Stores the file, then writes the rows; deletes the object if the rows cannot be written.
pub async fn upload_video(
    conn: &PooledConnection,
    storage: &Storage,
    cfg: &IngestConfig,
    user_id: i64,
    form: &UploadForm,
    idempotency_key: Option<String>,
) -> Result<Outcome, ApiError> {
    let key = idempotency_key.map(|key| {
        let file_digest = digest(&[&form.file]);
        IdempotencyKey {
            user_id,
            route: ROUTE_UPLOAD,
            key,
            request_hash: digest(&[
                file_digest.as_bytes(),
                form.config.to_payload().to_string().as_bytes(),
                form.title.as_deref().unwrap_or("").as_bytes(),
            ]),
        }
    });
    // The intent first: a claimed `uploads` row naming the object, written before any byte
    // reaches the store. Should this request die half-way (the store gone mid-PUT, the function
    // killed), an object nobody answered for is still known, and the worker's sweep removes it
    // once the claim has run out. The video's transaction completes it. A repeated keyed
    // request writes no intent and gets the first answer, in the same round trip.
    let object_key = new_video_key(user_id);
    let token = uuid::Uuid::new_v4().to_string();
    let now = crate::time::now();
    let size = form.file.len() as u64;
    let intent = uploads::NewUpload {
        user_id,
        object_key: object_key.clone(),
        multipart_id: None,
        filename: form.title.clone().unwrap_or_else(|| "upload".into()),
        content_type: "video/mp4".into(),
        size_bytes: size,
        part_size: size,
        part_count: 1,
        title: form.title.clone(),
        payload: form.config.to_payload(),
        expires_at: now, // there is no URL to expire: only the claim guards it
    };
    let claim_until = now + DIRECT_UPLOAD_CLAIM;
    let mut steps = vec![uploads::insert_unless_key(
        &intent,
        Some((&token, claim_until)),
        now,
        key.as_ref(),
    )?];
    if let Some(key) = &key {
        steps.push(idempotency_keys::find_stmt(key)?);
    }
    let rows = db::transaction(conn, &steps).await.map_err(answer)?;
    let Some(intent_id) = repo::inserted_id(&rows[0])? else {
        let stored = match (&key, rows.get(1)) {
            (Some(key), Some(rows)) => idempotency_keys::stored(rows)?
                .map(|s| (s.request_hash == key.request_hash, s.response_body)),
            _ => None,
        };
        return match stored {
            Some((true, body)) => Ok(Outcome::Replayed(body)),
            Some((false, _)) => Err(key_reused()),
            None => Err(ApiError::Internal(
                "the upload's intent was not written".into(),
            )),
        };
    };
    storage.put_video(&object_key, form.file.clone()).await?;
    let video = NewVideoSource {
        user_id,
        source_type: Some(SourceType::Upload),
        file_path: Some(object_key.clone()),
        title: form.title.clone(),
        duration_seconds: form.duration_seconds,
        ..Default::default()
    };
    let record = Record {
        key: key.as_ref(),
        upload: Some((intent_id, &token)),
    };
    let outcome = create(conn, &video, &new_job(cfg, &form.config), record).await;
    if !matches!(outcome, Ok(Outcome::Created(_))) {
        // No video points at the object (an error, or a concurrent twin request won): remove
        // it now; the intent stays, so the sweep removes it again should this delete fail.
        if let Err(e) = storage.delete(&object_key).await {
            tracing::warn!(key = %object_key, error = %e, "could not delete an unused upload; the sweep will");
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_file_names_without_folders_or_extensions() {
        assert_eq!(
            title_from_filename("My Talk.mp4").as_deref(),
            Some("My Talk")
        );
        assert_eq!(
            title_from_filename("C:\\fakepath\\clip.final.mov").as_deref(),
            Some("clip.final")
        );
        assert_eq!(title_from_filename("/home/a/b.mp4").as_deref(), Some("b"));
        assert_eq!(title_from_filename(".mp4").as_deref(), Some(".mp4"));
        assert_eq!(title_from_filename("  \u{7}.mp4"), None);
        assert_eq!(
            title_from_filename(&format!("{}.mp4", "x".repeat(500)))
                .unwrap()
                .chars()
                .count(),
            MAX_TITLE_CHARS
        );
    }
}
