//! `GET /viral-clip/videos/{video_id}` in process: the caller's video with its jobs, newest
//! first; a 404 for everything else.

use get_video::handler;
use lambda_http::http::HeaderMap;
use lambda_http::Request;
use serde_json::{json, Value};
use shared::app::App;
use testkit::videos::{fail_next, ids, linked};
use testkit::{assert_error, read, user, TestEnv};

fn get(token: Option<&str>, raw_id: &str) -> Request {
    testkit::with_path_id("GET", "/viral-clip/videos", "video_id", raw_id, token)
}

#[tokio::test]
async fn the_owner_gets_the_video_with_its_options_and_every_job_newest_first() {
    // Arrange: a video whose first job failed and was tried again
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let options = json!({"aspect_ratio": "1:1", "video_type": "podcast"});
    let (video_id, first_job) = ids(&linked(&app, ada, "dQw4w9WgXcQ", options).await);
    fail_next(&env.conn, "the source could not be fetched").await;
    let conn = app.db.connect().await.unwrap();
    shared::videos::retry(&conn, &app.ingest, ada, video_id, None)
        .await
        .unwrap();

    // Act
    let (status, _, body) = call(&app, get(Some(&token), &video_id.to_string())).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], video_id);
    assert_eq!(body["status"], "pending");
    assert_eq!(body["youtube_video_id"], "dQw4w9WgXcQ");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{body}");
    assert!(jobs[0]["id"].as_i64().unwrap() > first_job, "newest first");
    assert_eq!(jobs[0]["status"], "queued");
    assert_eq!(jobs[1]["id"], first_job);
    assert_eq!(jobs[1]["status"], "failed");
    assert!(jobs[1]["error_message"]
        .as_str()
        .unwrap()
        .contains("could not be fetched"));
    for job in jobs {
        assert_eq!(job["payload"]["aspect_ratio"], "1:1");
        assert_eq!(job["payload"]["video_type"], "podcast");
        assert!(job.get("lease_token").is_none());
    }
}

#[tokio::test]
async fn another_users_video_a_deleted_one_a_missing_one_and_malformed_ids_are_all_404() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, ada_token) = user(&app, "ada@example.com").await;
    let (_, bob_token) = user(&app, "bob@example.com").await;
    let (adas, _) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    let (deleted, _) = ids(&linked(&app, ada, "aaaaaaaaaaa", json!({})).await);
    let conn = app.db.connect().await.unwrap();
    shared::videos::delete(&conn, app.storage().unwrap(), ada, deleted)
        .await
        .unwrap();

    // Act + Assert
    for raw in [
        adas.to_string(),
        "999999".into(),
        "abc".into(),
        "-1".into(),
        "0".into(),
        "1.5".into(),
        " 1".into(),
        "99999999999999999999999".into(),
        "".into(),
    ] {
        assert_error(
            call(&app, get(Some(&bob_token), &raw)).await,
            404,
            "not_found",
        );
    }
    assert_error(
        call(&app, get(Some(&ada_token), &deleted.to_string())).await,
        404,
        "not_found",
    );
    assert_eq!(
        call(&app, get(Some(&ada_token), &adas.to_string())).await.0,
        200
    );
}

#[tokio::test]
async fn no_token_is_401() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    assert_error(call(&app, get(None, "1")).await, 401, "unauthorized");
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
