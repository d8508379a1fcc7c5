//! `POST /viral-clip/video/upload`: a multipart form with the file (MP4/MOV, up to
//! `MAX_UPLOAD_BYTES`) and clip options. The object is stored, then the video and its job are
//! written; an object no row answers for is removed.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::config::IngestConfig;
use super::create::{create, digest, new_job, replay, uploaded_video, Outcome, Record};
use crate::clip_config::ClipConfig;
use crate::db::{self, PooledConnection};
use crate::error::{ApiError, FieldErrors};
use crate::http::{media_type, Fields};
use crate::media;
use crate::repo;
use crate::repo::idempotency_keys::{self, IdempotencyKey};
use crate::repo::uploads::{self, NewUpload};
use crate::storage::{new_video_key, Storage};
use crate::title::Title;

pub const ROUTE: &str = "POST /viral-clip/video/upload";

/// How long a direct upload's intent is held by its request: past the longest a function
/// runs (15 minutes on Lambda), so the sweep never takes an object a live request still owns.
pub const CLAIM: chrono::Duration = chrono::Duration::minutes(16);

/// Room for the form's own framing and text fields around the file.
const FORM_SLACK_BYTES: u64 = 64 * 1024;

const CONFIG_CONFLICT: &str =
    "give the clip options either as separate fields or as one config part, not both";

/// A parsed form.
#[derive(Debug, Clone)]
pub struct UploadForm {
    pub file: Bytes,
    pub title: Option<Title>,
    pub config: ClipConfig,
    pub duration_seconds: Option<i64>,
}

/// The 413 of a file over the route's limit, pointing at the large-upload flow.
pub(crate) fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is larger than this route's limit of {} bytes ({:.1} MiB); upload large files with \
         POST /viral-clip/video/uploads, which sends them straight to storage",
        limit,
        limit as f64 / (1024.0 * 1024.0)
    ))
}

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
        if body.len() as u64 > max_upload_bytes + FORM_SLACK_BYTES {
            return Err(too_large(max_upload_bytes));
        }
        let stream =
            futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_upload_bytes + FORM_SLACK_BYTES)
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
        let title = Title::from_field(title.as_deref(), &mut errors);
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
        let info = media::inspect(&file)?;
        let title = title.or_else(|| filename.as_deref().and_then(Title::from_filename));
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
pub async fn upload(
    conn: &PooledConnection,
    storage: &Storage,
    cfg: &IngestConfig,
    user_id: i64,
    form: &UploadForm,
    idempotency_key: Option<String>,
) -> Result<Outcome, ApiError> {
    let title = form.title.as_ref().map(|t| t.as_str().to_owned());
    let payload = form.config.to_payload();
    let key = idempotency_key.map(|key| {
        let file_digest = digest(&[&form.file]);
        IdempotencyKey {
            user_id,
            route: ROUTE,
            key,
            request_hash: digest(&[
                file_digest.as_bytes(),
                payload.to_string().as_bytes(),
                title.as_deref().unwrap_or("").as_bytes(),
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
    let now = conn.now();
    let size = form.file.len() as u64;
    let intent = NewUpload {
        user_id,
        object_key: object_key.clone(),
        multipart_id: None,
        filename: title.clone().unwrap_or_else(|| "upload".into()),
        content_type: "video/mp4".into(),
        size_bytes: size,
        part_size: size,
        part_count: 1,
        title: title.clone(),
        payload: payload.clone(),
        expires_at: now, // there is no URL to expire: only the claim guards it
    };
    // Over a quota, the intent is not written and no byte is stored.
    let mut steps = vec![
        cfg.quotas.check(user_id, now, true, key.as_ref())?,
        uploads::insert_unless_key(&intent, Some((&token, now + CLAIM)), now, key.as_ref())?,
    ];
    if let Some(key) = &key {
        steps.push(idempotency_keys::find_stmt(key)?);
    }
    let rows = match db::transaction(conn, &steps).await {
        Ok(rows) => rows,
        Err(e) => return Err(cfg.quotas.refusal(conn, user_id, e).await),
    };
    let Some(intent_id) = repo::inserted_id(&rows[1])? else {
        return match &key {
            Some(key) => replay(key, rows.get(2).map_or(&[], Vec::as_slice)),
            None => Err(ApiError::Internal(
                "the upload's intent was not written".into(),
            )),
        };
    };
    storage.put_video(&object_key, form.file.clone()).await?;
    let video = uploaded_video(user_id, &object_key, title, form.duration_seconds);
    let record = Record {
        key: key.as_ref(),
        upload: Some((intent_id, &token)),
    };
    let outcome = create(conn, &cfg.quotas, &video, &new_job(cfg, payload), record).await;
    if !matches!(outcome, Ok(Outcome::Created(_))) {
        // No video points at the object (an error, or a concurrent twin request won): remove
        // it now; the intent stays, so the sweep removes it again should this delete fail.
        if let Err(e) = storage.delete(&object_key).await {
            tracing::warn!(key = %object_key, error = %e, "could not delete an unused upload; the sweep will");
        }
    }
    outcome
}
