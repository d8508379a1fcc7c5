use get_job::handler;
use lambda_http::http::HeaderMap;
use lambda_http::Request;
use serde_json::{json, Value};
use shared::app::App;
use testkit::{assert_error, read, user, TestEnv};

async fn job_of(app: &App, user_id: i64) -> i64 {
    let created = testkit::videos::linked(app, user_id, "dQw4w9WgXcQ", json!({})).await;
    testkit::videos::ids(&created).1
}

fn get(token: Option<&str>, raw_id: &str) -> lambda_http::Request {
    testkit::with_path_id("GET", "/viral-clip/jobs", "job_id", raw_id, token)
}

#[tokio::test]
async fn the_owner_gets_the_jobs_status_and_progress() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (a, token) = user(&app, "ada@example.com").await;
    let job_id = job_of(&app, a).await;

    let (status, _, body) = call(&app, get(Some(&token), &job_id.to_string())).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], job_id);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["progress"], 0.0);
    for field in [
        "video_source_id",
        "job_type",
        "payload",
        "result_summary",
        "attempts",
        "error_message",
        "created_at",
        "updated_at",
    ] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }
    assert!(
        body.get("lease_token").is_none(),
        "lease internals stay inside"
    );
}

#[tokio::test]
async fn another_users_job_a_missing_job_and_malformed_ids_are_all_404() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (a, _) = user(&app, "ada@example.com").await;
    let (_, token_b) = user(&app, "bob@example.com").await;
    let job_a = job_of(&app, a).await;

    for raw in [
        job_a.to_string(),
        "999999".into(),
        "abc".into(),
        "-1".into(),
        "0".into(),
        "1.5".into(),
        "+1".into(),
        " 1".into(),
        "99999999999999999999999".into(),
        "".into(),
    ] {
        assert_error(
            call(&app, get(Some(&token_b), &raw)).await,
            404,
            "not_found",
        );
    }
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
