use lambda_http::http::HeaderMap;
use lambda_http::Request;
use std::collections::HashSet;

use list_videos::handler;
use serde_json::{json, Value};
use shared::app::App;
use testkit::{assert_error, read, request, user, TestEnv};

async fn add_videos(app: &App, user_id: i64, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = testkit::videos::linked(app, user_id, &format!("{i:011}"), json!({})).await;
        ids.push(testkit::videos::ids(&created).0);
    }
    ids
}

async fn page(app: &App, token: &str, query: &str) -> Value {
    let (status, _, body) = read(
        handler(
            app,
            request(
                "GET",
                &format!("/viral-clip/videos{query}"),
                Some(token),
                None,
                "".into(),
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_user_sees_only_their_own_videos_newest_first_each_with_its_latest_job() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (a, token_a) = user(&app, "ada@example.com").await;
    let (b, token_b) = user(&app, "bob@example.com").await;
    let a_ids = add_videos(&app, a, 3).await;
    let b_ids = add_videos(&app, b, 2).await;

    let body = page(&app, &token_a, "").await;

    let mut expected = a_ids.clone();
    expected.reverse();
    assert_eq!(ids(&body), expected, "newest first, only A's");
    assert!(body["next_cursor"].is_null());
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["user_id"], a);
        assert_eq!(item["latest_job"]["status"], "queued");
        assert_eq!(item["latest_job"]["video_source_id"], item["id"]);
        assert_eq!(item["source_type"], "youtube");
    }
    let mut expected_b = b_ids;
    expected_b.reverse();
    assert_eq!(ids(&page(&app, &token_b, "").await), expected_b);
}

#[tokio::test]
async fn forty_five_videos_page_by_twenty_as_20_20_5_without_duplicates_or_gaps_while_new_ones_arrive(
) {
    let env = TestEnv::start().await;
    let app = env.app_without_quotas().await;
    let (a, token) = user(&app, "ada@example.com").await;
    let original = add_videos(&app, a, 45).await;

    let first = page(&app, &token, "?limit=20").await;
    add_videos(&app, a, 3).await; // new videos arrive between pages
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = page(&app, &token, &format!("?limit=20&cursor={cursor}")).await;
    add_videos(&app, a, 2).await;
    let cursor = second["next_cursor"].as_str().unwrap().to_owned();
    let third = page(&app, &token, &format!("?limit=20&cursor={cursor}")).await;

    assert_eq!(
        (ids(&first).len(), ids(&second).len(), ids(&third).len()),
        (20, 20, 5)
    );
    assert!(third["next_cursor"].is_null());
    let seen: Vec<i64> = [ids(&first), ids(&second), ids(&third)].concat();
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        45,
        "no duplicates"
    );
    let mut expected = original;
    expected.reverse();
    assert_eq!(seen, expected, "no gaps, newest first");
}

#[tokio::test]
async fn the_status_filter_and_the_default_limit_apply() {
    let env = TestEnv::start().await;
    let app = env.app_without_quotas().await;
    let (a, token) = user(&app, "ada@example.com").await;
    let ids_all = add_videos(&app, a, 25).await;
    let conn = app.db.connect().await.unwrap();
    conn.execute(
        "UPDATE video_sources SET status = 'failed' WHERE id = ?1",
        [ids_all[3]],
    )
    .await
    .unwrap();

    assert_eq!(
        ids(&page(&app, &token, "").await).len(),
        20,
        "default limit 20"
    );
    assert_eq!(
        ids(&page(&app, &token, "?status=failed").await),
        vec![ids_all[3]]
    );
    assert_eq!(
        ids(&page(&app, &token, "?status=pending&limit=100").await).len(),
        24
    );
    assert!(ids(&page(&app, &token, "?status=ready").await).is_empty());
}

#[tokio::test]
async fn bad_limits_cursors_and_statuses_are_422_and_no_token_is_401() {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "ada@example.com").await;

    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=abc", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?status=done", "status"),
    ] {
        let req = request(
            "GET",
            &format!("/viral-clip/videos{query}"),
            Some(&token),
            None,
            "".into(),
        );
        let body = assert_error(call(&app, req).await, 422, "validation_failed");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{query}: {body}"
        );
    }
    let req = request("GET", "/viral-clip/videos", None, None, "".into());
    assert_error(call(&app, req).await, 401, "unauthorized");
}

/// The handler's answer to `req`: status, headers and JSON body.
async fn call(app: &App, req: Request) -> (u16, HeaderMap, Value) {
    read(handler(app, req).await.unwrap())
}
