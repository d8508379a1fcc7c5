//! `DELETE /viral-clip/video/uploads/{upload_id}` in process: an unfinished large upload is
//! stopped and what reached the store removed; a completed one stays.

use lambda_http::Body;
use serde_json::Value;
use shared::app::App;
use shared::error::ApiError;
use testkit::uploads::{self, id, parts_left_in_store, video_of_size, MIB};
use testkit::{assert_error, fixture, put_url, read, request, user, TestEnv};

async fn abort(app: &App, token: &str, id: i64) -> (u16, lambda_http::http::HeaderMap, Value) {
    let req = request(
        "DELETE",
        &format!("/viral-clip/video/uploads/{id}"),
        Some(token),
        None,
        Body::Empty,
    );
    read(abort_upload::handler(app, req).await.unwrap())
}

#[tokio::test]
async fn someone_elses_upload_is_a_404_to_abort_and_stays_open() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (alice_id, _) = user(&app, "alice@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = uploads::start(&app, alice_id, "x.mp4", file.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;

    // Act
    let by_bob = abort(&app, &bob, id(&started)).await;
    let malformed: Vec<_> = ["abc", "0", "-1", "99999"]
        .into_iter()
        .map(|bad| {
            request(
                "DELETE",
                &format!("/viral-clip/video/uploads/{bad}"),
                Some(&bob),
                None,
                Body::Empty,
            )
        })
        .collect();

    // Assert
    assert_error(by_bob, 404, "not_found");
    for req in malformed {
        assert_error(
            read(abort_upload::handler(&app, req).await.unwrap()),
            404,
            "not_found",
        );
    }
    assert!(
        uploads::complete(&app, alice_id, id(&started))
            .await
            .is_ok(),
        "the owner still completes it"
    );
}

#[tokio::test]
async fn an_aborted_upload_leaves_nothing_in_the_store_and_cannot_be_completed() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env
        .app_with(|c| c.ingest.upload_part_bytes = 5 * MIB as u64)
        .await;
    let (user_id, token) = user(&app, "a@example.com").await;
    let file = video_of_size(11 * MIB);
    let started = uploads::start(&app, user_id, "x.mp4", file.len()).await;
    put_url(
        started["parts"][0]["url"].as_str().unwrap(),
        file[..5 * MIB].to_vec(),
    )
    .await;
    assert_eq!(parts_left_in_store(&env), 1);

    // Act
    let (status, _, _) = abort(&app, &token, id(&started)).await;
    let again = abort(&app, &token, id(&started)).await;
    let completed = uploads::complete(&app, user_id, id(&started)).await;

    // Assert
    assert_eq!(status, 204);
    assert_eq!(again.0, 204, "aborting twice is fine");
    assert!(
        matches!(completed, Err(ApiError::Conflict(_))),
        "{completed:?}"
    );
    assert_eq!(parts_left_in_store(&env), 0);
    assert!(env.object_keys().is_empty());
}

#[tokio::test]
async fn a_completed_upload_cannot_be_aborted() {
    // Arrange
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (user_id, token) = user(&app, "a@example.com").await;
    let file = fixture("sample-3s.mp4");
    let started = uploads::start(&app, user_id, "x.mp4", file.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;
    uploads::complete(&app, user_id, id(&started))
        .await
        .expect("completed");

    // Act
    let aborted = abort(&app, &token, id(&started)).await;

    // Assert
    assert_error(aborted, 409, "conflict");
    assert_eq!(env.object_keys().len(), 1, "the video's object stays");
}

#[tokio::test]
async fn aborting_without_a_token_is_a_401() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let req = request(
        "DELETE",
        "/viral-clip/video/uploads/1",
        None,
        None,
        Body::Empty,
    );

    assert_error(
        read(abort_upload::handler(&app, req).await.unwrap()),
        401,
        "unauthorized",
    );
}
