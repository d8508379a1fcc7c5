//! Failed sign-ins are counted per email in the database; past the limit the email is throttled
//! (429 with `Retry-After`) before any password hash is computed.
//!
//! The tests of this file take turns (`ONE_AT_A_TIME`): they count the process's password checks.

use std::time::Duration;

use auth_login::handler;
use lambda_http::http::HeaderMap;
use serde_json::{json, Value};
use shared::app::App;
use shared::auth::{password_checks, SignInLimit};
use testkit::{assert_error, json_request, read, user, TestEnv};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LIMIT: SignInLimit = SignInLimit {
    max_failures: 3,
    window: Duration::from_secs(600),
};

async fn app(env: &TestEnv) -> App {
    env.app_with(|c| c.auth.sign_in = LIMIT).await
}

async fn sign_in(app: &App, email: &str, password: &str) -> (u16, HeaderMap, Value) {
    let body = json!({"email": email, "password": password});
    read(
        handler(app, json_request("POST", "/auth/login", None, &body))
            .await
            .unwrap(),
    )
}

async fn fail(app: &App, email: &str, times: u32) {
    for _ in 0..times {
        assert_error(
            sign_in(app, email, "wrong password").await,
            401,
            "unauthorized",
        );
    }
}

#[tokio::test]
async fn past_the_allowed_failures_an_email_gets_429_with_retry_after_and_no_hash_is_computed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let app = app(&env).await;
    user(&app, "ada@example.com").await;
    fail(&app, "ada@example.com", LIMIT.max_failures).await;

    let before = password_checks();
    let wrong = sign_in(&app, "ada@example.com", "wrong password").await;
    let right = sign_in(&app, "ADA@example.com", "correct horse battery").await;
    let checked = password_checks() - before;

    let (_, headers, _) = &wrong;
    assert_eq!(headers.get("retry-after").unwrap(), "600");
    let body = assert_error(wrong, 429, "rate_limited");
    assert_eq!(body["error"]["details"]["limit"], "sign_in_failures");
    assert_error(right, 429, "rate_limited");
    assert_eq!(checked, 0, "a throttled sign-in computes no hash");
}

#[tokio::test]
async fn the_throttle_ends_with_its_window_and_a_success_then_clears_the_failures() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let app = app(&env).await;
    user(&app, "ada@example.com").await;
    fail(&app, "ada@example.com", LIMIT.max_failures).await;
    env.clock.advance(Duration::from_secs(599));
    let (_, headers, _) = sign_in(&app, "ada@example.com", "correct horse battery").await;
    assert_eq!(headers.get("retry-after").unwrap(), "1", "a second is left");

    env.clock.advance(Duration::from_secs(1));
    let (status, _, body) = sign_in(&app, "ada@example.com", "correct horse battery").await;

    assert_eq!(status, 200, "{body}");
    fail(&app, "ada@example.com", LIMIT.max_failures).await; // all 401: the count began again
    assert_error(
        sign_in(&app, "ada@example.com", "wrong password").await,
        429,
        "rate_limited",
    );
}

#[tokio::test]
async fn a_success_before_the_limit_resets_the_count() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let app = app(&env).await;
    user(&app, "ada@example.com").await;
    fail(&app, "ada@example.com", LIMIT.max_failures - 1).await;

    let (status, _, _) = sign_in(&app, "ada@example.com", "correct horse battery").await;

    assert_eq!(status, 200);
    fail(&app, "ada@example.com", LIMIT.max_failures).await;
}

#[tokio::test]
async fn a_throttled_email_does_not_throttle_another_account() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let app = app(&env).await;
    user(&app, "ada@example.com").await;
    user(&app, "bob@example.com").await;
    fail(&app, "ada@example.com", LIMIT.max_failures).await;

    let (status, _, body) = sign_in(&app, "bob@example.com", "correct horse battery").await;

    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unknown_email_is_throttled_exactly_like_an_account() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let app = app(&env).await;
    user(&app, "ada@example.com").await;
    fail(&app, "ada@example.com", LIMIT.max_failures).await;
    fail(&app, "nobody@example.com", LIMIT.max_failures).await;

    let before = password_checks();
    let (s1, h1, b1) = sign_in(&app, "ada@example.com", "wrong password").await;
    let (s2, h2, b2) = sign_in(&app, "nobody@example.com", "wrong password").await;

    assert_eq!((s1, s2), (429, 429));
    assert_eq!(b1, b2, "nothing tells an account from no account");
    assert_eq!(h1.get("retry-after"), h2.get("retry-after"));
    assert_eq!(password_checks(), before);
}

#[tokio::test]
async fn the_failures_are_kept_in_the_database_for_every_function_instance() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let first = app(&env).await;
    user(&first, "ada@example.com").await;
    fail(&first, "ada@example.com", LIMIT.max_failures).await;

    let another_instance = app(&env).await;
    let resp = sign_in(
        &another_instance,
        "ada@example.com",
        "correct horse battery",
    )
    .await;

    assert_error(resp, 429, "rate_limited");
}

#[tokio::test]
async fn a_malformed_email_is_refused_without_a_hash_or_a_row() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::start().await;
    let app = app(&env).await;

    let before = password_checks();
    let resp = sign_in(&app, "not an email", "wrong password").await;

    assert_error(resp, 401, "unauthorized");
    assert_eq!(password_checks(), before);
    let rows: i64 = shared::db::query_one(
        &env.conn,
        "SELECT count(*) FROM sign_in_failures",
        (),
        |r| shared::db::int(r, 0),
    )
    .await
    .unwrap();
    assert_eq!(rows, 0);
}
