//! `POST /viral-clip/video/uploads/{upload_id}/complete`: the parts joined, the stored object
//! checked (size, leading bytes, the duration from `mvhd` through ranged reads, never the whole
//! object) and turned into a video and its queued job in one transaction. A failed check
//! deletes the object; a repeat answers what the first completion answered.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::config::IngestConfig;
use super::create::{create, new_job, uploaded_video, Outcome, Record};
use super::upload_end::{clean, no_such_upload};
use crate::db::PooledConnection;
use crate::error::{ApiError, FieldErrors};
use crate::http::{json_object, json_text, Fields, Response};
use crate::media::{self, RangedError, ReadStats, VideoInfo};
use crate::repo::uploads::{self, Upload, UploadStatus};
use crate::storage::{CompleteError, PartTag, Storage, StorageError, MAX_PARTS};

/// How long one completion request holds an upload; a crashed completer's claim runs out.
const CLAIM: Duration = Duration::from_secs(180);

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
            Self::Refused { status, body } => json_text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                body,
            ),
        }
    }
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
    let now = conn.now();
    let token = uuid::Uuid::new_v4().to_string();
    let cutoff = now - cfg.upload_complete_grace;
    let claimed =
        uploads::claim(conn, upload_id, user_id, &token, now, now + CLAIM, cutoff).await?;
    let Some(upload) = claimed else {
        let upload = uploads::get_for_user(conn, upload_id, user_id)
            .await?
            .ok_or_else(no_such_upload)?;
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
            .unwrap_or_else(|| Err(no_such_upload()));
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
            let video = uploaded_video(
                user_id,
                &upload.object_key,
                upload.title.clone(),
                info.duration_seconds,
            );
            let job = new_job(cfg, upload.payload.clone());
            let record = Record {
                key: None,
                upload: Some((upload.id, &token)),
            };
            match create(conn, &cfg.quotas, &video, &job, record).await {
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
        RangedError::Media(e) => Problem::Final(e.into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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
