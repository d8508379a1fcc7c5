//! Large uploads for tests: a video of any size, an upload started and completed through
//! `shared::ingest` (the functions' own flows, without their HTTP framing), its parts PUT to
//! their presigned URLs, and what the store holds of unfinished uploads.

use serde_json::{json, Value};
use shared::app::App;
use shared::error::ApiError;
use shared::ingest::upload_complete::{self, CompleteRequest, Completion};
use shared::ingest::upload_plan::{self, StartRequest};

use crate::{fixture, put_url, TestEnv};

pub const MIB: usize = 1024 * 1024;

/// A valid 2-second MP4 of exactly `size` bytes with `moov` at the end.
pub fn video_of_size(size: usize) -> Vec<u8> {
    let base = fixture("moov-at-end-2s.mp4");
    assert!(size >= base.len());
    let video = crate::pad_mdat(&base, size - base.len());
    assert_eq!(video.len(), size);
    video
}

/// An upload of `size` bytes started for `user_id`: the body `POST /viral-clip/video/uploads`
/// answers with.
pub async fn start(app: &App, user_id: i64, filename: &str, size: usize) -> Value {
    let request = StartRequest {
        filename: filename.into(),
        size_bytes: size as u64,
        content_type: "video/mp4".into(),
        title: None,
        config: Default::default(),
    };
    let conn = app.db.connect().await.unwrap();
    let started = upload_plan::start(
        &conn,
        app.storage().unwrap(),
        &app.ingest,
        user_id,
        &request,
    )
    .await
    .expect("the upload starts");
    serde_json::to_value(started).unwrap()
}

/// Completes upload `upload_id` for `user_id`, letting the store list its parts.
pub async fn complete(app: &App, user_id: i64, upload_id: i64) -> Result<Completion, ApiError> {
    let conn = app.db.connect().await.unwrap();
    let request = CompleteRequest { parts: None };
    upload_complete::complete(
        &conn,
        app.storage().unwrap(),
        &app.ingest,
        user_id,
        upload_id,
        &request,
    )
    .await
}

/// PUTs each part's slice of `file` to its URL; returns the parts as completion takes them.
pub async fn put_parts(started: &Value, file: &[u8]) -> Vec<Value> {
    let part_size = started["part_size"].as_u64().unwrap() as usize;
    let mut done = Vec::new();
    for part in started["parts"].as_array().unwrap() {
        let n = part["part_number"].as_u64().unwrap() as usize;
        let chunk = &file[(n - 1) * part_size..(n * part_size).min(file.len())];
        assert_eq!(part["size_bytes"].as_u64().unwrap() as usize, chunk.len());
        let (status, etag) = put_url(part["url"].as_str().unwrap(), chunk.to_vec()).await;
        assert_eq!(status, 200, "PUT part {n}");
        done.push(json!({"part_number": n, "etag": etag.expect("an ETag")}));
    }
    done
}

/// The upload id of a started upload's body.
pub fn id(started: &Value) -> i64 {
    started["upload_id"].as_i64().expect("upload_id")
}

/// Multipart uploads the store still holds parts of.
pub fn parts_left_in_store(env: &TestEnv) -> usize {
    std::fs::read_dir(&env.s3.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
        .count()
}
