//! A function's app opens in the background ([`Starting`]) and every request waits for it.

use std::sync::Arc;

use http::StatusCode;
use shared::app::Starting;
use shared::config::Env;

const SECRET: &str = "app-test-secret-app-test-secret-0123456789";

fn env(database_url: &str) -> Env {
    Env::from_pairs([("DATABASE_URL", database_url), ("JWT_SECRET", SECRET)])
}

#[tokio::test]
async fn a_function_serves_every_request_with_the_app_it_opened_once() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file:{}", dir.path().join("app.db").display());

    // Act
    let starting = Starting::from_env(&env(&url)).unwrap();
    let first = starting.ready().await.unwrap();
    let second = starting.ready().await.unwrap();

    // Assert: one app, its database migrated.
    assert!(Arc::ptr_eq(&first, &second));
    let conn = first.db.connect().await.unwrap();
    let users = shared::db::query_one(&conn, "SELECT count(*) FROM users", (), |r| {
        shared::db::int(r, 0)
    })
    .await
    .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn a_bad_configuration_stops_the_function_before_it_takes_a_request() {
    let started = Starting::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]));

    assert!(started.err().unwrap().to_string().contains("DATABASE_URL"));
}

#[tokio::test]
async fn a_database_that_cannot_open_answers_503_and_is_tried_again_for_the_next_request() {
    // Arrange: the database's folder is blocked by a file of that name.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("data");
    std::fs::write(&blocker, "not a folder").unwrap();
    let url = format!("file:{}", blocker.join("app.db").display());
    let starting = Starting::from_env(&env(&url)).unwrap();

    // Act + Assert: the first request gets a 503; once the folder can be made, the next opens it.
    let refused = starting.ready().await.err().unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    std::fs::remove_file(&blocker).unwrap();
    let app = starting.ready().await.unwrap();
    assert!(app.db.connect().await.is_ok());
    assert!(blocker.join("app.db").exists());
}
