//! `DELETE /viral-clip/videos/{video_id}` in process: the video leaves the caller's history and
//! its object the store; its queued job is never claimed, its running one stops; with the store
//! down the video is deleted all the same and the worker's sweep removes the object later.

use delete_video::handler;
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use shared::app::App;
use shared::config::QueueConfig;
use shared::queue::Queue;
use shared::repo::processing_jobs;
use shared::storage::LazyStorage;
use testkit::videos::{ids, linked, uploaded};
use testkit::{assert_error, read, request, unreachable_storage_config, user, TestEnv};

fn delete(token: Option<&str>, raw_id: &str) -> Request {
    request(
        "DELETE",
        &format!("/viral-clip/videos/{raw_id}"),
        token,
        None,
        Body::Empty,
    )
}

#[tokio::test]
async fn a_deleted_video_leaves_the_history_and_it_and_its_job_are_404_from_then_on() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (kept, _) = ids(&linked(&app, ada, "aaaaaaaaaaa", json!({})).await);
    let (gone, gone_job) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);

    // Act
    let (status, _, body) = call(&app, delete(Some(&token), &gone.to_string())).await;

    // Assert
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null, "no body");
    let conn = app.db.connect().await.unwrap();
    let query = shared::history::HistoryQuery::parse([]).unwrap();
    let page = shared::history::page(&conn, ada, &query).await.unwrap();
    let listed: Vec<i64> = page.items.iter().map(|i| i.video.id).collect();
    assert_eq!(listed, vec![kept]);
    assert!(shared::videos::detail(&conn, ada, gone).await.is_err());
    assert!(processing_jobs::get_for_user(&conn, gone_job, ada)
        .await
        .unwrap()
        .is_none());
    assert_error(
        call(&app, delete(Some(&token), &gone.to_string())).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_deleted_uploads_object_leaves_the_store_and_its_key_stays_recorded() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let created = uploaded(&app, ada).await;
    let (video_id, _) = ids(&created);
    let key = created["video_source"]["file_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(env.object_keys(), vec![key.clone()]);

    // Act
    let (status, _, _) = call(&app, delete(Some(&token), &video_id.to_string())).await;

    // Assert: the object is gone, and its key can never be handed out again
    assert_eq!(status, 204);
    assert!(env.object_keys().is_empty(), "{:?}", env.object_keys());
    assert_eq!(
        env.count("SELECT count(*) FROM video_sources WHERE purged_at IS NOT NULL")
            .await,
        1
    );
    let reused = env
        .conn
        .execute(
            "INSERT INTO uploads (user_id, object_key, filename, content_type, size_bytes,
                 part_size, part_count, payload, expires_at, created_at, updated_at)
             VALUES (?1, ?2, 'x.mp4', 'video/mp4', 1, 1, 1, '{}', 'x', 'x', 'x')",
            (ada, key.as_str()),
        )
        .await;
    assert!(reused.is_err(), "the key is still taken");
    let again = uploaded(&app, ada).await;
    assert_ne!(again["video_source"]["file_path"], key.as_str());
}

#[tokio::test]
async fn a_queued_job_of_a_deleted_video_is_never_claimed() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, job_id) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);

    // Act
    call(&app, delete(Some(&token), &video_id.to_string())).await;

    // Assert
    let queue = Queue::new(QueueConfig::default());
    assert!(queue.claim(&env.conn, "w", 10).await.unwrap().is_empty());
    let job = env.job(job_id).await;
    assert_eq!(job.status.as_str(), "failed");
    assert!(job.error_message.unwrap().contains("deleted"));
}

#[tokio::test]
async fn a_running_job_of_a_deleted_video_stops_at_its_next_progress_write_and_its_finish_changes_nothing(
) {
    // Arrange: the job is running on a worker
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, job_id) = ids(&linked(&app, ada, "dQw4w9WgXcQ", json!({})).await);
    let queue = Queue::new(QueueConfig::default());
    let running = queue.claim(&env.conn, "w", 1).await.unwrap().pop().unwrap();

    // Act
    let (status, _, _) = call(&app, delete(Some(&token), &video_id.to_string())).await;

    // Assert
    assert_eq!(status, 204);
    assert!(!queue
        .heartbeat(&env.conn, &running.lease, Some(50.0))
        .await
        .unwrap());
    assert!(!queue
        .complete(&env.conn, &running.lease, &json!({"clips": []}))
        .await
        .unwrap());
    let job = env.job(job_id).await;
    assert_eq!(job.status.as_str(), "failed");
    assert_eq!(job.progress, 0.0);
    assert!(job.result_summary.is_none());
}

#[tokio::test]
async fn with_the_store_down_the_video_is_deleted_and_the_sweep_removes_its_object_later() {
    // Arrange: the delete function cannot reach the store
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, token) = user(&app, "ada@example.com").await;
    let (video_id, _) = ids(&uploaded(&app, ada).await);
    let cut_off = env
        .app_with(|c| c.storage = Some(unreachable_storage_config(testkit::BUCKET)))
        .await;

    // Act
    let (status, _, body) = call(&cut_off, delete(Some(&token), &video_id.to_string())).await;
    let object_left = env.object_keys().len();
    let conn = env.db.connect().await.unwrap();
    let store = LazyStorage::from(app.storage().unwrap().clone());
    let purged = shared::videos::purge_deleted(&conn, &store, 100)
        .await
        .unwrap();

    // Assert
    assert_eq!(status, 204, "{body}");
    assert_eq!(object_left, 1, "the store was down");
    assert!(shared::videos::detail(&conn, ada, video_id).await.is_err());
    assert_eq!(purged.removed, 1, "{purged:?}");
    assert!(env.object_keys().is_empty());
    assert_eq!(
        env.count("SELECT count(*) FROM video_sources WHERE purged_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn someone_elses_video_and_malformed_ids_are_404_and_nothing_is_deleted() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (ada, _) = user(&app, "ada@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let (video_id, _) = ids(&uploaded(&app, ada).await);

    // Act + Assert
    for raw in [video_id.to_string(), "abc".into(), "0".into(), "-3".into()] {
        assert_error(call(&app, delete(Some(&bob), &raw)).await, 404, "not_found");
    }
    assert_error(
        call(&app, delete(None, &video_id.to_string())).await,
        401,
        "unauthorized",
    );
    assert_eq!(env.object_keys().len(), 1);
    let conn = app.db.connect().await.unwrap();
    assert!(shared::videos::detail(&conn, ada, video_id).await.is_ok());
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
