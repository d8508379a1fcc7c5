//! Per-user quotas on new videos (`shared::quota`), through the link route: over a limit the
//! answer is 429 with `Retry-After` naming the limit, and nothing is written.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::HeaderMap;
use serde_json::{json, Value};
use shared::app::App;
use shared::quota::Quotas;
use submit_youtube::handler;
use testkit::{assert_error, drain_queue, json_request, read, user, TestEnv};

const PATH: &str = "/viral-clip/video/youtube";

async fn app(env: &TestEnv, active_jobs: u32, videos_per_hour: u32) -> App {
    env.app_with(|c| {
        c.ingest.quotas = Quotas {
            active_jobs,
            videos_per_hour,
        }
    })
    .await
}

async fn submit(app: &App, token: &str, n: u32, key: Option<&str>) -> (u16, HeaderMap, Value) {
    let body = json!({"youtube_url": format!("https://youtu.be/{n:011}")});
    let mut req = json_request("POST", PATH, Some(token), &body);
    if let Some(key) = key {
        req.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
    }
    read(handler(app, req).await.unwrap())
}

#[tokio::test]
async fn over_the_videos_at_once_quota_a_link_gets_429_naming_it_and_nothing_is_written() {
    // Arrange
    let env = TestEnv::start().await;
    let app = app(&env, 2, 100).await;
    let (_, token) = user(&app, "ada@example.com").await;
    for n in 0..2 {
        assert_eq!(submit(&app, &token, n, None).await.0, 201);
    }

    // Act
    let resp = submit(&app, &token, 2, None).await;

    // Assert
    assert_eq!(resp.1.get("retry-after").unwrap(), "60");
    let body = assert_error(resp, 429, "rate_limited");
    assert_eq!(body["error"]["details"]["limit"], "active_jobs");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 videos waiting or processing"),
        "{message}"
    );
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 2);
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 2);
}

#[tokio::test]
async fn a_finished_video_frees_its_place_at_once() {
    let env = TestEnv::start().await;
    let app = app(&env, 2, 100).await;
    let (_, token) = user(&app, "ada@example.com").await;
    for n in 0..2 {
        assert_eq!(submit(&app, &token, n, None).await.0, 201);
    }
    assert_eq!(drain_queue(&env).await.completed, 2);

    let (status, _, body) = submit(&app, &token, 2, None).await;

    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn over_the_hourly_quota_a_link_waits_until_the_oldest_video_is_an_hour_old() {
    // Arrange: three videos ten minutes apart, the newest of them deleted
    let env = TestEnv::start().await;
    let app = app(&env, 100, 3).await;
    let (_, token) = user(&app, "ada@example.com").await;
    for n in 0..3 {
        assert_eq!(submit(&app, &token, n, None).await.0, 201);
        env.clock.advance(Duration::from_secs(600));
    }
    shared::db::execute(
        &env.conn,
        "UPDATE video_sources SET deleted_at = updated_at
          WHERE id = (SELECT max(id) FROM video_sources)",
        (),
    )
    .await
    .unwrap();

    // Act: 30 minutes after the first
    let refused = submit(&app, &token, 3, None).await;
    env.clock.advance(Duration::from_secs(1799));
    let still = submit(&app, &token, 3, None).await;
    env.clock.advance(Duration::from_secs(1));
    let (status, _, body) = submit(&app, &token, 3, None).await;

    // Assert
    assert_eq!(refused.1.get("retry-after").unwrap(), "1800");
    let refused = assert_error(refused, 429, "rate_limited");
    assert_eq!(refused["error"]["details"]["limit"], "videos_per_hour");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 videos in the last hour") && message.contains("in 30 minutes"),
        "{message}"
    );
    assert_eq!(still.1.get("retry-after").unwrap(), "1");
    assert_eq!(status, 201, "{body}");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 4);
}

#[tokio::test]
async fn a_repeated_request_is_answered_again_at_the_quota_and_a_new_one_is_not() {
    let env = TestEnv::start().await;
    let app = app(&env, 1, 100).await;
    let (_, token) = user(&app, "ada@example.com").await;
    let (status, _, first) = submit(&app, &token, 0, Some("key-1")).await;
    assert_eq!(status, 201);

    let (status, headers, again) = submit(&app, &token, 0, Some("key-1")).await;
    let other = submit(&app, &token, 1, Some("key-2")).await;

    assert_eq!(status, 201);
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again, first);
    assert_error(other, 429, "rate_limited");
    assert_eq!(env.count("SELECT count(*) FROM idempotency_keys").await, 1);
}

#[tokio::test]
async fn one_users_quota_does_not_hold_another() {
    let env = TestEnv::start().await;
    let app = app(&env, 1, 1).await;
    let (_, ada) = user(&app, "ada@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    assert_eq!(submit(&app, &ada, 0, None).await.0, 201);
    assert_eq!(submit(&app, &ada, 1, None).await.0, 429);

    let (status, _, body) = submit(&app, &bob, 0, None).await;

    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submissions_at_once_never_get_past_the_quota_together() {
    // Arrange
    let env = TestEnv::start().await;
    let app = Arc::new(app(&env, 3, 100).await);
    let (_, token) = user(&app, "ada@example.com").await;

    // Act: ten at once
    let mut set = tokio::task::JoinSet::new();
    for n in 0..10 {
        let (app, token) = (app.clone(), token.clone());
        set.spawn(async move { submit(&app, &token, n, None).await.0 });
    }
    let mut statuses = set.join_all().await;
    statuses.sort();

    // Assert
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429, 429, 429, 429, 429]);
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 3);
}
