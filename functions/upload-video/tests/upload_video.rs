use lambda_http::http::HeaderMap;
use lambda_http::Body;
use lambda_http::Request;
use serde_json::Value;
use shared::app::App;
use shared::storage::Storage;
use testkit::{assert_error, fixture, multipart, read, request, user, TestEnv};
use upload_video::handler;

const PATH: &str = "/viral-clip/video/upload";

fn upload(
    token: &str,
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> lambda_http::Request {
    let (content_type, body) = multipart(texts, files);
    request(
        "POST",
        PATH,
        Some(token),
        Some(&content_type),
        Body::Binary(body),
    )
}

async fn stored_object(env: &TestEnv, key: &str) -> (Vec<u8>, Option<String>) {
    // read back through a real S3 client, as any consumer of the bucket would
    let storage = Storage::connect(&env.s3.storage_config(testkit::BUCKET)).await;
    let got = storage
        .client()
        .get_object()
        .bucket(testkit::BUCKET)
        .key(key)
        .send()
        .await
        .expect("object exists");
    let content_type = got.content_type().map(str::to_owned);
    (
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        content_type,
    )
}

#[tokio::test]
async fn an_mp4_upload_stores_the_same_bytes_at_a_key_of_the_required_form_and_queues_a_job() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (user_id, token) = user(&app, "ada@example.com").await;
    let video = fixture("sample-3s.mp4");

    let (status, _, body) = call(
        &app,
        upload(&token, &[], &[("file", "My Talk.mp4", &video)]),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    let source = &body["video_source"];
    assert_eq!(source["source_type"], "upload");
    assert!(source["source_url"].is_null());
    assert_eq!(source["title"], "My Talk");
    assert_eq!(source["duration_seconds"], 3);
    assert_eq!(source["status"], "pending");
    let key = source["file_path"].as_str().unwrap();
    let uuid = key
        .strip_prefix(&format!("videos/{user_id}/"))
        .and_then(|k| k.strip_suffix(".mp4"))
        .expect(key);
    assert_eq!(uuid.len(), 36, "{key}");
    let (bytes, content_type) = stored_object(&env, key).await;
    assert_eq!(bytes, video, "the stored object's bytes equal the upload");
    assert_eq!(content_type.as_deref(), Some("video/mp4"));
    let job = &body["processing_job"];
    assert_eq!(
        (job["status"].as_str(), job["progress"].as_f64()),
        (Some("queued"), Some(0.0))
    );
    assert_eq!(job["payload"]["aspect_ratio"], "9:16");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 1);
}

#[tokio::test]
async fn a_mov_file_and_options_as_fields_or_as_a_config_part_are_accepted() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;
    let mov = fixture("sample-4s.mov");

    let fields = [
        ("video_type", "vlog"),
        ("aspect_ratio", "4:5"),
        ("subtitle", "false"),
        ("title", "Trip"),
    ];
    let (status, _, body) =
        call(&app, upload(&token, &fields, &[("file", "trip.mov", &mov)])).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["video_source"]["title"], "Trip");
    assert_eq!(body["video_source"]["duration_seconds"], 4);
    assert_eq!(body["processing_job"]["payload"]["video_type"], "vlog");
    assert_eq!(body["processing_job"]["payload"]["subtitle"], false);

    let config = [(
        "config",
        r#"{"clip_length_preset": "0_30", "aspect_ratio": "16:9"}"#,
    )];
    let (status, _, body) = call(&app, upload(&token, &config, &[("file", "a.mp4", &mov)])).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["processing_job"]["payload"]["clip_length_preset"],
        "0_30"
    );
    assert_eq!(body["processing_job"]["payload"]["aspect_ratio"], "16:9");
    assert_eq!(body["processing_job"]["payload"]["video_type"], "auto");
}

#[tokio::test]
async fn files_that_are_not_videos_are_415_and_damaged_or_empty_ones_are_422_with_nothing_stored() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;
    let video = fixture("sample-3s.mp4");

    let text = b"this is just text, named like a video".to_vec();
    assert_error(
        call(&app, upload(&token, &[], &[("file", "notes.mp4", &text)])).await,
        415,
        "unsupported_media_type",
    );
    let audio = fixture("audio-only-2s.m4a");
    assert_error(
        call(&app, upload(&token, &[], &[("file", "song.mp4", &audio)])).await,
        415,
        "unsupported_media_type",
    );
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    assert_error(
        call(&app, upload(&token, &[], &[("file", "a.mp4", &png)])).await,
        415,
        "unsupported_media_type",
    );

    let body = assert_error(
        call(&app, upload(&token, &[], &[("file", "empty.mp4", b"")])).await,
        422,
        "validation_failed",
    );
    assert_eq!(body["error"]["details"]["fields"]["file"], "is empty");
    let truncated = &video[..video.len() / 2];
    let body = assert_error(
        call(&app, upload(&token, &[], &[("file", "cut.mp4", truncated)])).await,
        422,
        "validation_failed",
    );
    assert!(
        body["error"]["details"]["fields"]["file"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{body}"
    );

    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
    assert!(env.object_keys().is_empty(), "{:?}", env.object_keys());
}

#[tokio::test]
async fn broken_forms_are_400_and_bad_fields_are_422_naming_them() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;
    let video = fixture("sample-3s.mp4");

    // JSON instead of a form; a multipart type without boundary; a body that is not a form
    let json = request(
        "POST",
        PATH,
        Some(&token),
        Some("application/json"),
        Body::from("{}"),
    );
    assert_error(call(&app, json).await, 400, "bad_request");
    let no_boundary = request(
        "POST",
        PATH,
        Some(&token),
        Some("multipart/form-data"),
        Body::from("x"),
    );
    assert_error(call(&app, no_boundary).await, 400, "bad_request");
    let garbage = request(
        "POST",
        PATH,
        Some(&token),
        Some("multipart/form-data; boundary=zzz"),
        Body::from("no parts here"),
    );
    assert_error(call(&app, garbage).await, 400, "bad_request");

    let body = assert_error(
        call(&app, upload(&token, &[("title", "x")], &[])).await,
        422,
        "validation_failed",
    );
    assert!(body["error"]["details"]["fields"]["file"]
        .as_str()
        .unwrap()
        .contains("required"));

    let both = [
        ("config", r#"{"aspect_ratio": "1:1"}"#),
        ("video_type", "news"),
    ];
    let body = assert_error(
        call(&app, upload(&token, &both, &[("file", "a.mp4", &video)])).await,
        422,
        "validation_failed",
    );
    assert!(body["error"]["details"]["fields"]["config"]
        .as_str()
        .unwrap()
        .contains("not both"));

    let bad = [
        ("aspect_ratio", "2:1"),
        ("subtitle", "maybe"),
        ("colour", "red"),
    ];
    let body = assert_error(
        call(&app, upload(&token, &bad, &[("file", "a.mp4", &video)])).await,
        422,
        "validation_failed",
    );
    let fields = &body["error"]["details"]["fields"];
    assert_eq!(
        fields["aspect_ratio"],
        "must be one of 9:16, 1:1, 16:9, 4:5"
    );
    assert_eq!(fields["subtitle"], "must be true or false");
    assert_eq!(fields["colour"], "is not a known field");

    let bad_config = [("config", r#"{"video_type": "cats", "extra": 1}"#)];
    let body = assert_error(
        call(
            &app,
            upload(&token, &bad_config, &[("file", "a.mp4", &video)]),
        )
        .await,
        422,
        "validation_failed",
    );
    assert!(body["error"]["details"]["fields"]["video_type"].is_string());
    assert!(body["error"]["details"]["fields"]["extra"].is_string());

    let two_files = upload(
        &token,
        &[],
        &[("file", "a.mp4", &video), ("file", "b.mp4", &video)],
    );
    assert_error(call(&app, two_files).await, 422, "validation_failed");

    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
    assert!(env.object_keys().is_empty());
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_naming_the_limit_and_the_large_upload_route() {
    let env = TestEnv::start().await;
    let app = env
        .app_with(|cfg| cfg.ingest.max_upload_bytes = 4 * 1024)
        .await;
    let (_, token) = user(&app, "ada@example.com").await;
    let video = fixture("sample-3s.mp4"); // 6.3 KB

    let body = assert_error(
        call(&app, upload(&token, &[], &[("file", "a.mp4", &video)])).await,
        413,
        "payload_too_large",
    );

    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("4096") && message.contains("/viral-clip/video/uploads"),
        "{message}"
    );
    let huge = vec![0u8; 200 * 1024];
    assert_error(
        call(&app, upload(&token, &[], &[("file", "a.mp4", &huge)])).await,
        413,
        "payload_too_large",
    );
    assert!(env.object_keys().is_empty());
}

#[tokio::test]
async fn storage_down_is_503_and_no_row_is_written() {
    let env = TestEnv::start().await;
    let app = env
        .app_with(|cfg| cfg.storage = Some(testkit::unreachable_storage_config(testkit::BUCKET)))
        .await;
    let (_, token) = user(&app, "ada@example.com").await;

    let resp = call(
        &app,
        upload(&token, &[], &[("file", "a.mp4", &fixture("sample-3s.mp4"))]),
    )
    .await;

    let body = assert_error(resp, 503, "unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internals: {body}"
    );
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 0);
}

#[tokio::test]
async fn an_upload_by_a_vanished_account_is_401_and_stores_nothing() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    // a valid token for an account that does not exist: the video row's foreign key fails
    let (token, _) = app.auth.issue(424_242).unwrap();

    let resp = call(
        &app,
        upload(&token, &[], &[("file", "a.mp4", &fixture("sample-3s.mp4"))]),
    )
    .await;

    assert_error(resp, 401, "unauthorized");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
    assert!(
        env.object_keys().is_empty(),
        "orphan left behind: {:?}",
        env.object_keys()
    );
}

#[tokio::test]
async fn the_same_idempotency_key_twice_stores_one_object_and_one_video() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;
    let video = fixture("sample-3s.mp4");
    let keyed = || {
        let mut req = upload(&token, &[], &[("file", "a.mp4", &video)]);
        req.headers_mut()
            .insert("idempotency-key", "upload-1".parse().unwrap());
        req
    };

    let (s1, _, first) = call(&app, keyed()).await;
    let (s2, _, second) = call(&app, keyed()).await;

    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first["video_source"]["id"], second["video_source"]["id"]);
    assert_eq!(
        first["processing_job"]["id"],
        second["processing_job"]["id"]
    );
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);
    assert_eq!(env.object_keys().len(), 1);
}

#[tokio::test]
async fn no_token_is_401_before_anything_is_read() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (content_type, body) = multipart(&[], &[("file", "a.mp4", &fixture("sample-3s.mp4"))]);
    let req = request("POST", PATH, None, Some(&content_type), Body::Binary(body));
    assert_error(call(&app, req).await, 401, "unauthorized");
    assert!(env.object_keys().is_empty());
}

#[tokio::test]
async fn over_a_quota_an_upload_is_refused_before_any_byte_is_stored() {
    // Arrange: one video this hour, the most per hour
    let env = TestEnv::start().await;
    let app = env.app_with(|c| c.ingest.quotas.videos_per_hour = 1).await;
    let (ada, token) = user(&app, "ada@example.com").await;
    testkit::videos::linked(&app, ada, "dQw4w9WgXcQ", serde_json::json!({})).await;
    let video = fixture("sample-3s.mp4");

    // Act
    let resp = call(&app, upload(&token, &[], &[("file", "talk.mp4", &video)])).await;

    // Assert
    let body = assert_error(resp, 429, "rate_limited");
    assert_eq!(body["error"]["details"]["limit"], "videos_per_hour");
    assert!(env.object_keys().is_empty(), "no object stored");
    assert_eq!(env.count("SELECT count(*) FROM uploads").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
