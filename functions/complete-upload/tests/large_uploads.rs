//! The large-upload flow end to end, in process: POST /viral-clip/video/uploads hands out
//! presigned URLs, a plain HTTP client PUTs the bytes straight to the S3-compatible server
//! (which checks every signature), POST …/complete checks the object and creates the video.

use lambda_http::Body;
use serde_json::{json, Value};
use shared::app::App;
use shared::storage::{LazyStorage, Storage};
use testkit::uploads::{id, parts_left_in_store, put_parts, video_of_size, MIB};
use testkit::{assert_error, fixture, json_request, put_url, read, request, user, TestEnv};

async fn start(app: &App, token: &str, body: Value) -> (u16, Value) {
    let req = json_request("POST", "/viral-clip/video/uploads", Some(token), &body);
    let (status, _, body) = read(create_upload::handler(app, req).await.unwrap());
    (status, body)
}

async fn start_ok(app: &App, token: &str, filename: &str, size: usize) -> Value {
    let (status, body) = start(
        app,
        token,
        json!({"filename": filename, "size_bytes": size, "content_type": "video/mp4",
               "aspect_ratio": "1:1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn complete_path(id: i64) -> String {
    format!("/viral-clip/video/uploads/{id}/complete")
}

async fn complete(
    app: &App,
    token: &str,
    id: i64,
    body: Option<Value>,
) -> (u16, lambda_http::http::HeaderMap, Value) {
    let req = match body {
        Some(b) => json_request("POST", &complete_path(id), Some(token), &b),
        None => request("POST", &complete_path(id), Some(token), None, Body::Empty),
    };
    read(complete_upload::handler(app, req).await.unwrap())
}

async fn ready_video(env: &TestEnv, app: &App, token: &str) -> Value {
    testkit::drain_queue(env).await;
    let req = request("GET", "/viral-clip/videos", Some(token), None, Body::Empty);
    let (status, _, body) = read(list_videos::handler(app, req).await.unwrap());
    assert_eq!(status, 200);
    body["items"][0].clone()
}

#[tokio::test]
async fn a_1_mib_file_goes_up_in_one_presigned_put_and_becomes_a_ready_video() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (user_id, token) = user(&app, "a@example.com").await;
    let file = video_of_size(MIB);

    // Act
    let started = start_ok(&app, &token, "My Talk.mp4", file.len()).await;
    let url = started["parts"][0]["url"].as_str().unwrap();
    let (put_status, _) = put_url(url, file.clone()).await;
    let (status, headers, body) = complete(&app, &token, id(&started), None).await;

    // Assert
    assert_eq!(started["multipart"], false);
    assert_eq!(started["parts"].as_array().unwrap().len(), 1);
    assert!(started["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(put_status, 200);
    assert_eq!(status, 201, "{body}");
    assert!(headers.get("idempotent-replayed").is_none());
    let video = &body["video_source"];
    assert_eq!(video["source_type"], "upload");
    assert_eq!(video["title"], "My Talk");
    assert_eq!(video["duration_seconds"], 2);
    assert_eq!(video["status"], "pending");
    assert_eq!(body["processing_job"]["status"], "queued");
    assert_eq!(body["processing_job"]["payload"]["aspect_ratio"], "1:1");
    let key = video["file_path"].as_str().unwrap();
    assert!(key.starts_with(&format!("videos/{user_id}/")) && key.ends_with(".mp4"));
    assert_eq!(
        env.object(key).as_deref(),
        Some(&file[..]),
        "stored byte for byte"
    );
    let listed = ready_video(&env, &app, &token).await;
    assert_eq!(listed["id"], video["id"]);
    assert_eq!(listed["status"], "ready");
    assert_eq!(listed["latest_job"]["status"], "completed");
}

#[tokio::test]
async fn a_12_mib_file_goes_up_in_5_mib_parts_and_becomes_a_ready_video() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| c.ingest.upload_part_bytes = 5 * MIB as u64)
        .await;
    let (_, token) = user(&app, "a@example.com").await;
    let file = video_of_size(12 * MIB);

    // Act
    let started = start_ok(&app, &token, "long.mp4", file.len()).await;
    let parts = put_parts(&started, &file).await;
    let (status, _, body) =
        complete(&app, &token, id(&started), Some(json!({"parts": parts}))).await;
    let (again, again_headers, again_body) = complete(&app, &token, id(&started), None).await;

    // Assert
    assert_eq!(started["multipart"], true);
    assert_eq!(started["part_size"], 5 * MIB);
    assert_eq!(parts.len(), 3);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["video_source"]["duration_seconds"], 2);
    let key = body["video_source"]["file_path"].as_str().unwrap();
    assert_eq!(
        env.object(key).as_deref(),
        Some(&file[..]),
        "stored byte for byte"
    );
    assert_eq!(
        (again, &again_body),
        (201, &body),
        "completing twice: the same answer"
    );
    assert_eq!(again_headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);
    assert_eq!(ready_video(&env, &app, &token).await["status"], "ready");
    assert_eq!(parts_left_in_store(&env), 0);
}

#[tokio::test]
async fn completing_without_etags_lists_the_parts_and_names_the_missing_ones() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| c.ingest.upload_part_bytes = 5 * MIB as u64)
        .await;
    let (_, token) = user(&app, "a@example.com").await;
    let file = video_of_size(11 * MIB);
    let started = start_ok(&app, &token, "x.mp4", file.len()).await;
    let urls: Vec<&str> = started["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    put_url(urls[0], file[..5 * MIB].to_vec()).await;
    put_url(urls[1], file[5 * MIB..10 * MIB].to_vec()).await;

    // Act
    let early = complete(&app, &token, id(&started), None).await;
    put_url(urls[2], file[10 * MIB..].to_vec()).await;
    let (status, _, body) = complete(&app, &token, id(&started), None).await;

    // Assert
    let err = assert_error(early, 422, "validation_failed");
    let msg = err["error"]["details"]["fields"]["parts"].as_str().unwrap();
    assert!(msg.contains("part(s) 3 of 3"), "{msg}");
    assert_eq!(
        status, 201,
        "the upload stayed open after the early call: {body}"
    );
    let key = body["video_source"]["file_path"].as_str().unwrap();
    assert_eq!(env.object(key).as_deref(), Some(&file[..]));
}

#[tokio::test]
async fn completing_before_anything_was_put_leaves_the_upload_open() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = start_ok(&app, &token, "x.mp4", file.len()).await;

    let early = complete(&app, &token, id(&started), None).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;
    let (status, _, body) = complete(&app, &token, id(&started), None).await;

    let err = assert_error(early, 422, "validation_failed");
    assert!(err["error"]["details"]["fields"]["file"].is_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["video_source"]["duration_seconds"], 3);
}

#[tokio::test]
async fn a_tampered_or_expired_presigned_url_is_refused_by_the_store() {
    // Arrange: a live URL to tamper with, and one signed two hours ago that lived for one
    let env = TestEnv::start().await;
    let app = env.app().await;
    let two_hours_behind = env
        .app_with(|c| {
            c.clock = shared::time::Clock::adjustable();
            c.clock.rewind(std::time::Duration::from_secs(7200));
            c.ingest.upload_url_ttl = std::time::Duration::from_secs(3600);
        })
        .await;
    let (user_id, token) = user(&app, "a@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = start_ok(&app, &token, "x.mp4", file.len()).await;
    let url = started["parts"][0]["url"].as_str().unwrap().to_owned();
    let old = start_ok(&two_hours_behind, &token, "y.mp4", file.len()).await;
    let expired_url = old["parts"][0]["url"].as_str().unwrap().to_owned();
    let other_key = url.replace(&format!("videos/{user_id}/"), "videos/999/");
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged_sig = url.clone();
    let flipped = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    forged_sig.replace_range(sig_at..sig_at + 1, flipped);

    // Act
    let (tampered_key, _) = put_url(&other_key, file.clone()).await;
    let (tampered_sig, _) = put_url(&forged_sig, file.clone()).await;
    let (expired, _) = put_url(&expired_url, file.clone()).await;

    // Assert
    assert_eq!(tampered_key, 403);
    assert_eq!(tampered_sig, 403);
    assert_eq!(expired, 403);
    assert!(env.object_keys().is_empty(), "{:?}", env.object_keys());
}

#[tokio::test]
async fn a_wrong_declared_size_is_refused_at_completion_and_leaves_no_object() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = start_ok(&app, &token, "x.mp4", file.len() + 100).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;

    let first = complete(&app, &token, id(&started), None).await;
    let second = complete(&app, &token, id(&started), None).await;

    let err = assert_error(first, 422, "validation_failed");
    assert!(
        err["error"]["details"]["fields"]["size_bytes"].is_string(),
        "{err}"
    );
    assert_eq!(
        assert_error(second, 422, "validation_failed"),
        err,
        "same answer again"
    );
    assert!(env.object_keys().is_empty(), "{:?}", env.object_keys());
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM uploads WHERE status = 'failed'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_video_is_refused_at_completion_and_leaves_no_object() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;
    let mut text = b"this is a text file pretending to be a video ".repeat(100);
    text.truncate(4_000);
    let started = start_ok(&app, &token, "fake.mp4", text.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), text).await;

    let resp = complete(&app, &token, id(&started), None).await;

    assert_error(resp, 415, "unsupported_media_type");
    assert!(env.object_keys().is_empty());
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
}

#[tokio::test]
async fn a_truncated_video_is_refused_at_completion_and_leaves_no_object() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;
    let full = fixture("sample-3s.mp4");
    let cut = full[..full.len() * 2 / 3].to_vec();
    let started = start_ok(&app, &token, "cut.mp4", cut.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), cut).await;

    let resp = complete(&app, &token, id(&started), None).await;

    let err = assert_error(resp, 422, "validation_failed");
    assert!(
        err["error"]["details"]["fields"]["file"].is_string(),
        "{err}"
    );
    assert!(env.object_keys().is_empty());
}

#[tokio::test]
async fn a_40_mib_video_with_moov_at_the_end_is_read_with_a_few_small_ranged_reads() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| c.ingest.upload_part_bytes = 5 * MIB as u64)
        .await;
    let (_, token) = user(&app, "a@example.com").await;
    let file = video_of_size(40 * MIB);
    let started = start_ok(&app, &token, "big.mp4", file.len()).await;
    put_parts(&started, &file).await;

    // Act
    let (status, _, body) = complete(&app, &token, id(&started), None).await;
    let key = body["video_source"]["file_path"].as_str().unwrap();
    let storage = Storage::connect(&env.s3.storage_config(testkit::BUCKET)).await;
    let (info, stats) = shared::ingest::upload_complete::probe(&storage, key, file.len() as u64)
        .await
        .unwrap();

    // Assert
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["video_source"]["duration_seconds"], 2);
    assert_eq!(info.duration_seconds, Some(2));
    assert!(stats.requests <= 3, "{stats:?}");
    assert!(
        stats.bytes * 100 < file.len() as u64,
        "under 1% of the object fetched: {stats:?}"
    );
}

#[tokio::test]
async fn someone_elses_upload_is_a_404_to_complete() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, alice) = user(&app, "alice@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = start_ok(&app, &alice, "x.mp4", file.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;

    assert_error(
        complete(&app, &bob, id(&started), None).await,
        404,
        "not_found",
    );
    for bad in ["abc", "0", "-1", "99999"] {
        let req = request(
            "POST",
            &format!("/viral-clip/video/uploads/{bad}/complete"),
            Some(&alice),
            None,
            Body::Empty,
        );
        assert_error(
            read(complete_upload::handler(&app, req).await.unwrap()),
            404,
            "not_found",
        );
    }
    let (status, _, _) = complete(&app, &alice, id(&started), None).await;
    assert_eq!(status, 201, "the owner still completes it");
}

#[tokio::test]
async fn the_sweep_expires_unfinished_uploads_and_removes_their_parts_and_objects() {
    // Arrange: URLs valid for 1 s, no grace
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| {
            c.ingest.upload_part_bytes = 5 * MIB as u64;
            c.ingest.upload_url_ttl = std::time::Duration::from_secs(1);
            c.ingest.upload_complete_grace = std::time::Duration::ZERO;
        })
        .await;
    let (_, token) = user(&app, "a@example.com").await;
    let small = fixture("sample-3s.mp4");
    let single = start_ok(&app, &token, "a.mp4", small.len()).await;
    put_url(single["parts"][0]["url"].as_str().unwrap(), small).await;
    let big = video_of_size(11 * MIB);
    let multi = start_ok(&app, &token, "b.mp4", big.len()).await;
    put_url(
        multi["parts"][0]["url"].as_str().unwrap(),
        big[..5 * MIB].to_vec(),
    )
    .await;
    let storage: LazyStorage = Storage::connect(&env.s3.storage_config(testkit::BUCKET))
        .await
        .into();
    let conn = app.db.connect().await.unwrap();
    let before = shared::ingest::upload_end::sweep(&conn, &storage, std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    env.clock.advance(std::time::Duration::from_millis(1_200));

    // Act
    let report = shared::ingest::upload_end::sweep(&conn, &storage, std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    let late = complete(&app, &token, id(&single), None).await;

    // Assert
    assert_eq!(
        before,
        shared::ingest::upload_end::SweepReport::default(),
        "nothing expired yet"
    );
    assert_eq!((report.expired, report.cleaned, report.failed), (2, 2, 0));
    assert!(env.object_keys().is_empty(), "{:?}", env.object_keys());
    assert_eq!(parts_left_in_store(&env), 0);
    assert_error(late, 409, "conflict");
    assert_eq!(
        env.count(
            "SELECT count(*) FROM uploads WHERE status = 'expired' AND cleaned_at IS NOT NULL"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn storage_down_at_completion_is_a_503_and_the_upload_can_be_completed_later() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = start_ok(&app, &token, "x.mp4", file.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;
    let down = env
        .app_with(|c| c.storage = Some(testkit::unreachable_storage_config(testkit::BUCKET)))
        .await;

    let refused = complete(&down, &token, id(&started), None).await;
    let (status, _, _) = complete(&app, &token, id(&started), None).await;

    assert_error(refused, 503, "unavailable");
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_file_put_again_after_a_failed_check_is_removed_once_the_url_expires() {
    // Arrange: a refused upload whose URL is still live for 2 s
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| c.ingest.upload_url_ttl = std::time::Duration::from_secs(2))
        .await;
    let (_, token) = user(&app, "a@example.com").await;
    let text = b"not a video".repeat(50);
    let started = start_ok(&app, &token, "x.mp4", text.len()).await;
    let url = started["parts"][0]["url"].as_str().unwrap().to_owned();
    put_url(&url, text.clone()).await;
    assert_eq!(complete(&app, &token, id(&started), None).await.0, 415);
    let (again, _) = put_url(&url, text).await;
    let storage: LazyStorage = Storage::connect(&env.s3.storage_config(testkit::BUCKET))
        .await
        .into();
    let conn = app.db.connect().await.unwrap();
    let grace = std::time::Duration::ZERO;

    // Act
    let early = shared::ingest::upload_end::sweep(&conn, &storage, grace, 100)
        .await
        .unwrap();
    let left_early = env.object_keys().len();
    env.clock.advance(std::time::Duration::from_millis(2_200));
    let late = shared::ingest::upload_end::sweep(&conn, &storage, grace, 100)
        .await
        .unwrap();

    // Assert
    assert_eq!(again, 200, "the URL was still valid");
    assert_eq!(early.cleaned, 0, "URL still live: nothing to sweep yet");
    assert_eq!(left_early, 1);
    assert_eq!((late.expired, late.cleaned), (0, 1), "failed, not expired");
    assert!(env.object_keys().is_empty());
    assert_eq!(
        env.count("SELECT count(*) FROM uploads WHERE cleaned_at IS NOT NULL")
            .await,
        1
    );
}
