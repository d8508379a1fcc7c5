use auth_register::handler;
use lambda_http::http::HeaderMap;
use lambda_http::Request;
use serde_json::json;
use serde_json::Value;
use shared::app::App;
use testkit::{assert_error, json_request, read, request, TestEnv};

const PATH: &str = "/auth/register";

#[tokio::test]
async fn sign_up_creates_the_account_and_returns_a_working_token() {
    let env = TestEnv::start().await;
    let app = env.app().await;

    let req = json_request(
        "POST",
        PATH,
        None,
        &json!({"email": "  Ada@Example.COM ", "password": "correct horse"}),
    );
    let (status, _, body) = call(&app, req).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert!(body["user"]["id"].as_i64().unwrap() > 0);
    assert!(body["user"]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let user_id = app.auth.verify(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(user_id, body["user"]["id"].as_i64().unwrap());
    assert!(body["user"].get("password_hash").is_none());
    assert_eq!(
        env.count("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM users WHERE password_hash LIKE '%correct horse%'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_taken_email_is_409_whatever_its_case() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let first = json_request(
        "POST",
        PATH,
        None,
        &json!({"email": "ada@example.com", "password": "password-1"}),
    );
    assert_eq!(call(&app, first).await.0, 201);

    let again = json_request(
        "POST",
        PATH,
        None,
        &json!({"email": "ADA@example.com", "password": "password-2"}),
    );
    assert_error(call(&app, again).await, 409, "conflict");
    assert_eq!(env.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn bad_emails_passwords_and_fields_are_422_and_bad_bodies_400() {
    let env = TestEnv::start().await;
    let app = env.app().await;

    for (body, field) in [
        (
            json!({"email": "not-an-email", "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250)), "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": "ada@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "ada@example.com", "password": "x".repeat(129)}),
            "password",
        ),
        (json!({"email": "ada@example.com"}), "password"),
        (json!({"password": "long enough"}), "email"),
        (json!({"email": 5, "password": "long enough"}), "email"),
        (
            json!({"email": "ada@example.com", "password": "long enough", "admin": true}),
            "admin",
        ),
    ] {
        let resp = call(&app, json_request("POST", PATH, None, &body)).await;
        let err = assert_error(resp, 422, "validation_failed");
        assert!(
            err["error"]["details"]["fields"][field].is_string(),
            "{body}: {err}"
        );
    }
    let broken = request(
        "POST",
        PATH,
        None,
        Some("application/json"),
        "{\"email\":".into(),
    );
    assert_error(call(&app, broken).await, 400, "bad_request");
    let text = request("POST", PATH, None, Some("text/plain"), "{}".into());
    assert_error(call(&app, text).await, 400, "bad_request");
    assert_eq!(env.count("SELECT count(*) FROM users").await, 0);
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
