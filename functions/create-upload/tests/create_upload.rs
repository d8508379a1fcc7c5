//! POST /viral-clip/video/uploads: what is refused before any URL is handed out.

use create_upload::handler;
use lambda_http::http::HeaderMap;
use lambda_http::Body;
use lambda_http::Request;
use serde_json::{json, Value};
use shared::app::App;
use testkit::{assert_error, json_request, read, request, user, TestEnv};

const PATH: &str = "/viral-clip/video/uploads";

fn start(token: Option<&str>, body: Value) -> lambda_http::Request {
    json_request("POST", PATH, token, &body)
}

#[tokio::test]
async fn a_large_file_gets_one_url_per_part_and_a_pending_upload_row() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;
    let size: u64 = 3 * 1024 * 1024 * 1024 + 17; // 3 GiB and a bit

    let (status, _, body) = call(
        &app,
        start(
            Some(&token),
            json!({"filename": "talk.mov", "size_bytes": size,
            "content_type": "video/quicktime"}),
        ),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["multipart"], true);
    let parts = body["parts"].as_array().unwrap();
    let part_size = body["part_size"].as_u64().unwrap();
    assert_eq!(parts.len() as u64, size.div_ceil(part_size));
    assert!(parts.len() <= 10_000);
    let total: u64 = parts
        .iter()
        .map(|p| p["size_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(total, size, "the parts cover the file exactly");
    assert!(parts[0]["url"]
        .as_str()
        .unwrap()
        .contains("X-Amz-Signature="));
    assert_eq!(
        body["complete_url"],
        format!("/viral-clip/video/uploads/{}/complete", body["upload_id"])
    );
    assert_eq!(
        env.count("SELECT count(*) FROM uploads WHERE status = 'pending'")
            .await,
        1
    );
    assert!(
        env.object_keys().is_empty(),
        "no object before the client PUTs"
    );
}

#[tokio::test]
async fn bad_fields_are_named_in_a_422_and_nothing_is_recorded() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;

    let resp = call(
        &app,
        start(
            Some(&token),
            json!({"filename": "", "size_bytes": "big",
            "aspect_ratio": "3:2", "colour": "red"}),
        ),
    )
    .await;

    let body = assert_error(resp, 422, "validation_failed");
    let fields = &body["error"]["details"]["fields"];
    for name in ["filename", "size_bytes", "aspect_ratio", "colour"] {
        assert!(fields[name].is_string(), "{name}: {body}");
    }
    assert_eq!(env.count("SELECT count(*) FROM uploads").await, 0);
}

#[tokio::test]
async fn over_10_gib_is_a_413_and_a_non_video_type_a_415() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;

    let too_big = call(
        &app,
        start(
            Some(&token),
            json!({"filename": "a.mp4",
            "size_bytes": 10u64 * 1024 * 1024 * 1024 + 1}),
        ),
    )
    .await;
    let image = call(
        &app,
        start(
            Some(&token),
            json!({"filename": "a.png", "size_bytes": 100,
            "content_type": "image/png"}),
        ),
    )
    .await;

    let body = assert_error(too_big, 413, "payload_too_large");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("10 GiB"));
    assert_error(image, 415, "unsupported_media_type");
    assert_eq!(env.count("SELECT count(*) FROM uploads").await, 0);
}

#[tokio::test]
async fn no_token_is_a_401_and_a_non_json_body_a_400() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "a@example.com").await;

    let anonymous = call(
        &app,
        start(None, json!({"filename": "a.mp4", "size_bytes": 1})),
    )
    .await;
    let text = call(
        &app,
        request(
            "POST",
            PATH,
            Some(&token),
            Some("text/plain"),
            Body::from("hi"),
        ),
    )
    .await;
    let wrong_method = handler(&app, request("GET", PATH, Some(&token), None, Body::Empty))
        .await
        .unwrap();

    assert_error(anonymous, 401, "unauthorized");
    assert_error(text, 400, "bad_request");
    assert_eq!(wrong_method.status(), 405);
}

#[tokio::test]
async fn storage_down_is_a_503_and_no_upload_is_recorded() {
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| c.storage = Some(testkit::unreachable_storage_config(testkit::BUCKET)))
        .await;
    let (_, token) = user(&app, "a@example.com").await;

    let resp = call(
        &app,
        start(
            Some(&token),
            json!({"filename": "a.mp4",
            "size_bytes": 100 * 1024 * 1024}),
        ),
    )
    .await;

    assert_error(resp, 503, "unavailable");
    assert_eq!(env.count("SELECT count(*) FROM uploads").await, 0);
}

#[tokio::test]
async fn over_a_quota_an_upload_is_refused_before_any_url_and_nothing_is_left() {
    // Arrange: one video waiting, the most at once
    let env = TestEnv::start().await;
    let app = env.app_with(|c| c.ingest.quotas.active_jobs = 1).await;
    let (ada, token) = user(&app, "a@example.com").await;
    testkit::videos::linked(&app, ada, "dQw4w9WgXcQ", json!({})).await;

    // Act
    let resp = call(
        &app,
        start(
            Some(&token),
            json!({"filename": "talk.mov", "size_bytes": 100_000_000u64,
            "content_type": "video/quicktime"}),
        ),
    )
    .await;

    // Assert
    let body = assert_error(resp, 429, "rate_limited");
    assert_eq!(body["error"]["details"]["limit"], "active_jobs");
    assert_eq!(env.count("SELECT count(*) FROM uploads").await, 0);
    assert!(env.object_keys().is_empty());
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
