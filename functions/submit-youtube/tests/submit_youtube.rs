use lambda_http::http::HeaderMap;
use lambda_http::Request;
use serde_json::json;
use serde_json::Value;
use shared::app::App;
use submit_youtube::handler;
use testkit::{assert_error, bad_tokens, json_request, read, request, user, TestEnv};

const PATH: &str = "/viral-clip/video/youtube";

async fn submit(
    app: &shared::app::App,
    token: &str,
    body: serde_json::Value,
) -> (u16, lambda_http::http::HeaderMap, serde_json::Value) {
    read(
        handler(app, json_request("POST", PATH, Some(token), &body))
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn a_youtube_link_creates_one_pending_video_and_one_queued_job_with_the_defaults() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (user_id, token) = user(&app, "ada@example.com").await;

    let (status, _, body) = submit(
        &app,
        &token,
        json!({"youtube_url": "https://youtu.be/dQw4w9WgXcQ?si=x"}),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    let video = &body["video_source"];
    assert_eq!(video["user_id"], user_id);
    assert_eq!(video["source_type"], "youtube");
    assert_eq!(
        video["source_url"],
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    );
    assert_eq!(video["youtube_video_id"], "dQw4w9WgXcQ");
    assert_eq!(
        video["thumbnail_url"],
        "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg"
    );
    assert_eq!(video["status"], "pending");
    for field in ["file_path", "title", "duration_seconds", "error_message"] {
        assert!(video[field].is_null(), "{field} present and null: {video}");
    }
    assert!(video["created_at"].as_str().unwrap().ends_with('Z'));
    let job = &body["processing_job"];
    assert_eq!(job["video_source_id"], video["id"]);
    assert_eq!(job["job_type"], "transcription_and_clipping");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["progress"], 0.0);
    assert_eq!(job["attempts"], 0);
    assert!(job["result_summary"].is_null() && job["error_message"].is_null());
    assert_eq!(
        job["payload"],
        json!({"video_type": "auto", "aspect_ratio": "9:16", "clip_length_preset": "auto_0_60", "subtitle": true})
    );
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM processing_jobs WHERE status = 'queued'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_given_clip_options_are_the_jobs_payload() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;

    let body = json!({"youtube_url": "youtube.com/shorts/dQw4w9WgXcQ", "video_type": "podcast",
                      "aspect_ratio": "1:1", "clip_length_preset": "30_60", "subtitle": false});
    let (status, _, body) = submit(&app, &token, body).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["processing_job"]["payload"],
        json!({"video_type": "podcast", "aspect_ratio": "1:1", "clip_length_preset": "30_60", "subtitle": false})
    );
}

#[tokio::test]
async fn bad_links_are_refused_with_422_on_youtube_url_and_create_nothing() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;

    for link in [
        "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
        "https://www.youtube.com/playlist?list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf",
        "https://www.youtube.com/@SomeChannel",
        "https://www.youtube.com/watch?v=short",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ_",
        "javascript:alert(document.cookie)",
        "https://user@youtube.com/watch?v=dQw4w9WgXcQ",
        "ftp://youtube.com/watch?v=dQw4w9WgXcQ",
        "https://vimeo.com/123456",
        "https://youtu.be/",
        "not a link at all",
        "",
        &format!(
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&x={}",
            "a".repeat(2100)
        ),
    ] {
        let body = assert_error(
            submit(&app, &token, json!({"youtube_url": link})).await,
            422,
            "validation_failed",
        );
        assert!(
            body["error"]["details"]["fields"]["youtube_url"].is_string(),
            "{link}: {body}"
        );
    }
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM processing_jobs").await, 0);
}

#[tokio::test]
async fn malformed_json_and_wrong_content_types_are_400() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;

    let bad_json = request(
        "POST",
        PATH,
        Some(&token),
        Some("application/json"),
        r#"{"youtube_url": "#.into(),
    );
    assert_error(call(&app, bad_json).await, 400, "bad_request");
    let form = request(
        "POST",
        PATH,
        Some(&token),
        Some("application/x-www-form-urlencoded"),
        "youtube_url=x".into(),
    );
    assert_error(call(&app, form).await, 400, "bad_request");
    let none = request(
        "POST",
        PATH,
        Some(&token),
        None,
        r#"{"youtube_url": "https://youtu.be/dQw4w9WgXcQ"}"#.into(),
    );
    assert_error(call(&app, none).await, 400, "bad_request");
    let binary = request(
        "POST",
        PATH,
        Some(&token),
        Some("application/json"),
        vec![0xff, 0xfe, 0x00].into(),
    );
    assert_error(call(&app, binary).await, 400, "bad_request");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
}

#[tokio::test]
async fn unknown_fields_wrong_types_and_bad_choices_are_422_naming_every_field() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;

    let body = json!({"youtube_url": 42, "video_type": "cats", "aspect_ratio": "3:2",
                      "clip_length_preset": "forever", "subtitle": "yes", "colour": "red"});
    let body = assert_error(submit(&app, &token, body).await, 422, "validation_failed");

    let fields = &body["error"]["details"]["fields"];
    assert_eq!(fields["youtube_url"], "must be a string");
    assert_eq!(
        fields["aspect_ratio"],
        "must be one of 9:16, 1:1, 16:9, 4:5"
    );
    assert!(fields["video_type"].as_str().unwrap().contains("talk_show"));
    assert!(fields["clip_length_preset"]
        .as_str()
        .unwrap()
        .contains("90_180"));
    assert_eq!(fields["subtitle"], "must be true or false");
    assert_eq!(fields["colour"], "is not a known field");

    let body = assert_error(
        submit(&app, &token, json!({})).await,
        422,
        "validation_failed",
    );
    assert_eq!(
        body["error"]["details"]["fields"]["youtube_url"],
        "is required"
    );
    let body = assert_error(
        submit(&app, &token, json!(["https://youtu.be/dQw4w9WgXcQ"])).await,
        422,
        "validation_failed",
    );
    assert!(body["error"]["details"]["fields"]["body"].is_string());
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
}

#[tokio::test]
async fn missing_malformed_forged_expired_and_alg_none_tokens_are_401() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (user_id, _) = user(&app, "ada@example.com").await;
    let body = json!({"youtube_url": "https://youtu.be/dQw4w9WgXcQ"});

    let no_token = json_request("POST", PATH, None, &body);
    assert_error(call(&app, no_token).await, 401, "unauthorized");
    for token in [
        "garbage".to_owned(),
        bad_tokens::forged(user_id),
        bad_tokens::expired(user_id),
        bad_tokens::alg_none(user_id),
        bad_tokens::other_algorithm(user_id),
    ] {
        assert_error(
            submit(&app, &token, body.clone()).await,
            401,
            "unauthorized",
        );
    }
    let mut basic = json_request("POST", PATH, None, &body);
    basic
        .headers_mut()
        .insert("authorization", "Basic YWRhOnB3".parse().unwrap());
    assert_error(call(&app, basic).await, 401, "unauthorized");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 0);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_gives_one_video_and_the_same_ids() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;
    let body = json!({"youtube_url": "https://youtu.be/dQw4w9WgXcQ", "aspect_ratio": "16:9"});
    let keyed = || {
        let mut req = json_request("POST", PATH, Some(&token), &body);
        req.headers_mut()
            .insert("idempotency-key", "3f1c2a9e-key-1".parse().unwrap());
        req
    };

    let (s1, h1, first) = call(&app, keyed()).await;
    let (s2, h2, second) = call(&app, keyed()).await;

    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second, "the first response, replayed");
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);

    // the same key for a different request is a conflict
    let mut other = json_request(
        "POST",
        PATH,
        Some(&token),
        &json!({"youtube_url": "https://youtu.be/aaaaaaaaaaa"}),
    );
    other
        .headers_mut()
        .insert("idempotency-key", "3f1c2a9e-key-1".parse().unwrap());
    assert_error(call(&app, other).await, 409, "conflict");
    // another user's identical key is theirs alone
    let (_, token_b) = user(&app, "bob@example.com").await;
    let mut theirs = json_request("POST", PATH, Some(&token_b), &body);
    theirs
        .headers_mut()
        .insert("idempotency-key", "3f1c2a9e-key-1".parse().unwrap());
    let (status, _, created) = call(&app, theirs).await;
    assert_eq!(status, 201);
    assert_ne!(created["video_source"]["id"], first["video_source"]["id"]);
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_idempotency_key_create_one_video() {
    let env = TestEnv::start().await;
    let app = std::sync::Arc::new(env.app().await);
    let (_, token) = user(&app, "ada@example.com").await;
    let body = json!({"youtube_url": "https://youtu.be/dQw4w9WgXcQ"});

    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut req = json_request("POST", PATH, Some(&token), &body);
            req.headers_mut()
                .insert("idempotency-key", "same-key".parse().unwrap());
            let app = app.clone();
            tokio::spawn(async move { call(&app, req).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.insert(body["video_source"]["id"].as_i64().unwrap());
    }

    assert_eq!(ids.len(), 1, "every response names the same video");
    assert_eq!(env.count("SELECT count(*) FROM video_sources").await, 1);
}

#[tokio::test]
async fn other_methods_are_405() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (status, headers, body) = call(&app, request("GET", PATH, None, None, "".into())).await;
    assert_eq!(status, 405);
    assert_eq!(headers.get("allow").unwrap(), "POST");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
