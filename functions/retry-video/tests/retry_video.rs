//! `POST /viral-clip/videos/{video_id}/retry` in process: a failed video gets a new queued job
//! with the same options and is pending again; anything else is a 409 or a 404.

use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request};
use retry_video::handler;
use serde_json::{json, Value};
use shared::app::App;
use testkit::videos::{fail_next, ids, linked};
use testkit::{assert_error, drain_queue, read, request, user, TestEnv};

fn retry(token: Option<&str>, raw_id: &str, key: Option<&str>) -> Request {
    let mut req = request(
        "POST",
        &format!("/viral-clip/videos/{raw_id}/retry"),
        token,
        None,
        Body::Empty,
    );
    if let Some(key) = key {
        req.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn a_failed_video_gets_a_new_queued_job_with_the_same_options_and_is_pending_again() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let options = json!({"aspect_ratio": "16:9", "clip_length_preset": "30_60", "subtitle": false});
    let (video_id, first_job) = ids(&linked(&app, ada, "dQw4w9WgXcQ", options).await);
    fail_next(&env.conn, "the source could not be fetched").await;

    // Act
    let (status, _, body) = call(&app, retry(Some(&token), &video_id.to_string(), None)).await;

    // Assert
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["video_source"]["id"], video_id);
    assert_eq!(body["video_source"]["status"], "pending");
    assert_eq!(body["video_source"]["error_message"], Value::Null);
    let job = &body["processing_job"];
    assert_ne!(job["id"], first_job);
    assert_eq!(job["status"], "queued");
    assert_eq!(job["progress"], 0.0);
    assert_eq!(job["payload"]["aspect_ratio"], "16:9");
    assert_eq!(job["payload"]["clip_length_preset"], "30_60");
    assert_eq!(job["payload"]["subtitle"], false);
    assert_eq!(env.video(video_id).await.status.as_str(), "pending");
    let stored = env.job(job["id"].as_i64().unwrap()).await;
    assert_eq!(
        serde_json::to_value(&stored).unwrap(),
        *job,
        "the body is what is stored"
    );
    let report = drain_queue(&env).await;
    assert_eq!(report.completed, 1, "{report:?}");
    assert_eq!(env.video(video_id).await.status.as_str(), "ready");
}

#[tokio::test]
async fn only_a_failed_video_can_be_tried_again_a_pending_or_ready_one_is_409() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);

    // Act + Assert
    let pending = assert_error(
        call(&app, retry(Some(&token), &video_id.to_string(), None)).await,
        409,
        "conflict",
    );
    assert!(pending["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pending"));
    drain_queue(&env).await;
    assert_error(
        call(&app, retry(Some(&token), &video_id.to_string(), None)).await,
        409,
        "conflict",
    );
    assert_eq!(
        env.count("SELECT count(*) FROM processing_jobs").await,
        1,
        "no job added"
    );
}

#[tokio::test]
async fn a_retry_repeated_with_its_idempotency_key_gets_the_first_answer_and_adds_no_job() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    let (other_id, _) = ids(&linked(&app, ada, "aaaaaaaaaaa", json!({})).await);
    fail_next(&env.conn, "first").await;
    fail_next(&env.conn, "second").await;
    let id = video_id.to_string();

    // Act
    let first = call(&app, retry(Some(&token), &id, Some("try-1"))).await;
    let again = call(&app, retry(Some(&token), &id, Some("try-1"))).await;
    let elsewhere = call(
        &app,
        retry(Some(&token), &other_id.to_string(), Some("try-1")),
    )
    .await;

    // Assert
    assert_eq!(first.0, 201, "{}", first.2);
    assert_eq!(again.0, 201, "{}", again.2);
    assert_eq!(again.2, first.2, "the same answer");
    assert_eq!(
        again
            .1
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_error(elsewhere, 409, "conflict");
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_retries_at_once_add_one_job_and_the_other_is_409() {
    // Arrange
    let env = TestEnv::start().await;
    let app = std::sync::Arc::new(env.app().await);
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    fail_next(&env.conn, "failed").await;

    // Act
    let tries: Vec<_> = (0..2)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                call(&app, retry(Some(&token), &video_id.to_string(), None))
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tries {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();

    // Assert
    assert_eq!(statuses, vec![201, 409]);
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 2);
}

#[tokio::test]
async fn another_users_or_a_deleted_video_is_404_and_no_token_is_401() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, ada_token) = user(&app, "ada@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let (video_id, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    fail_next(&env.conn, "failed").await;
    let (deleted, _) = ids(&linked(&app, ada, "aaaaaaaaaaa", json!({})).await);
    fail_next(&env.conn, "failed").await;
    let conn = app.db.connect().await.unwrap();
    shared::videos::delete(&conn, app.storage().unwrap(), ada, deleted)
        .await
        .unwrap();

    // Act + Assert
    for raw in [video_id.to_string(), "x".into(), "0".into()] {
        assert_error(
            call(&app, retry(Some(&bob), &raw, None)).await,
            404,
            "not_found",
        );
    }
    assert_error(
        call(&app, retry(Some(&ada_token), &deleted.to_string(), None)).await,
        404,
        "not_found",
    );
    assert_error(
        call(&app, retry(None, &video_id.to_string(), None)).await,
        401,
        "unauthorized",
    );
    assert_eq!(env.video(video_id).await.status.as_str(), "failed");
}

#[tokio::test]
async fn at_the_quota_of_videos_at_once_a_retry_gets_429_and_the_video_stays_failed() {
    // Arrange: one failed video, and another waiting, the most at once
    let env = TestEnv::start().await;
    let app = env.app_with(|c| c.ingest.quotas.active_jobs = 1).await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (failed, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    fail_next(&env.conn, "the source could not be fetched").await;
    linked(&app, ada, "9bZkp7q19f0", json!({})).await;

    // Act
    let resp = call(&app, retry(Some(&token), &failed.to_string(), None)).await;

    // Assert
    let body = assert_error(resp, 429, "rate_limited");
    assert_eq!(body["error"]["details"]["limit"], "active_jobs");
    assert_eq!(env.video(failed).await.status.as_str(), "failed");
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 2);
}

#[tokio::test]
async fn a_retry_is_not_a_new_video_for_the_hourly_quota() {
    let env = TestEnv::start().await;
    let app = env.app_with(|c| c.ingest.quotas.videos_per_hour = 1).await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    fail_next(&env.conn, "the source could not be fetched").await;

    let (status, _, body) = call(&app, retry(Some(&token), &video_id.to_string(), None)).await;

    assert_eq!(status, 201, "{body}");
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
