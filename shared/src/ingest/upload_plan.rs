//! `POST /viral-clip/video/uploads`: a large upload's plan. The client PUTs the file straight
//! to object storage through presigned URLs (one for a file up to the part size, S3 multipart
//! parts above it), then completes it ([`super::upload_complete`]).
//!
//! The `uploads` row is written before any byte can reach the store, so every object under
//! `videos/` is known to a row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::config::IngestConfig;
use super::upload_end::clean;
use crate::clip_config::ClipConfig;
use crate::db::{self, PooledConnection};
use crate::error::ApiError;
use crate::http::Fields;
use crate::repo::uploads::{self, NewUpload, Upload, UploadStatus};
use crate::storage::{new_video_key, Storage, StorageError, MAX_PARTS};
use crate::title::Title;

/// The largest file this flow takes: 10 GiB.
pub const MAX_UPLOAD_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// Longest file name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;

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
    pub title: Option<Title>,
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
        let title = Title::from_field(title.as_deref(), &mut fields.errors);
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
        let title = title.or_else(|| Title::from_filename(&filename));
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
    let now = conn.now();
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
        title: req.title.as_ref().map(|t| t.as_str().to_owned()),
        payload: req.config.to_payload(),
        expires_at,
    };
    // The quotas first, in the same transaction: a user over one is told now, before sending
    // any byte (the completion checks them again).
    let steps = [
        cfg.quotas.check(user_id, now, true, None)?,
        uploads::insert_unless_key(&new, None, now, None)?,
    ];
    let inserted = db::transaction(conn, &steps)
        .await
        .and_then(|rows| uploads::inserted(&rows[1]));
    let upload = match inserted {
        Ok(Some(upload)) => upload,
        failed => {
            if let Some(id) = &multipart_id {
                if let Err(abort) = storage.abort_multipart(&key, id).await {
                    tracing::error!(key, error = %abort, "could not abort an unrecorded multipart upload");
                }
            }
            return Err(match failed {
                Err(e) => cfg.quotas.refusal(conn, user_id, e).await,
                _ => ApiError::Internal("an upload was not inserted".into()),
            });
        }
    };
    match presign(storage, &upload, now, cfg.upload_url_ttl).await {
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
    signed_at: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<PartUrl>, StorageError> {
    let Some(multipart_id) = &upload.multipart_id else {
        let url = storage
            .presign_put(&upload.object_key, signed_at, ttl)
            .await?;
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
            .presign_part(&upload.object_key, multipart_id, n as i32, signed_at, ttl)
            .await?;
        parts.push(PartUrl {
            part_number: n,
            url,
            size_bytes,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MIN_PART_BYTES;

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
        assert_eq!(ok.title.as_ref().map(Title::as_str), Some("My Talk"));
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
}
