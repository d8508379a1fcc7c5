use auth_login::handler;
use lambda_http::http::HeaderMap;
use lambda_http::Request;
use serde_json::json;
use serde_json::Value;
use shared::app::App;
use testkit::{assert_error, json_request, read, user, TestEnv};

const PATH: &str = "/auth/login";

#[tokio::test]
async fn the_right_password_signs_in_with_any_case_of_the_email() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (id, _) = user(&app, "ada@example.com").await;

    let req = json_request(
        "POST",
        PATH,
        None,
        &json!({"email": "ADA@example.com ", "password": "correct horse battery"}),
    );
    let (status, _, body) = call(&app, req).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], id);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        app.auth.verify(body["token"].as_str().unwrap()).unwrap(),
        id
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    user(&app, "ada@example.com").await;

    let wrong_password = json_request(
        "POST",
        PATH,
        None,
        &json!({"email": "ada@example.com", "password": "wrong password"}),
    );
    let a = assert_error(call(&app, wrong_password).await, 401, "unauthorized");
    let unknown = json_request(
        "POST",
        PATH,
        None,
        &json!({"email": "nobody@example.com", "password": "wrong password"}),
    );
    let b = assert_error(call(&app, unknown).await, 401, "unauthorized");

    assert_eq!(a, b, "nothing tells which one was wrong");
}

#[tokio::test]
async fn missing_fields_are_422() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let resp = call(
        &app,
        json_request("POST", PATH, None, &json!({"email": "ada@example.com"})),
    )
    .await;
    let body = assert_error(resp, 422, "validation_failed");
    assert_eq!(
        body["error"]["details"]["fields"]["password"],
        "is required"
    );
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
