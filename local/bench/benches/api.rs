//! API latency: `cargo bench -p bench --bench api` (release mode; prints figures).
//!
//! Handlers are called in-process, as the Lambda runtime calls them, against a real SQLite file
//! (WAL) — no network in the way, so the figures are the functions' own cost: auth, parsing,
//! a fresh connection per request, the SQL, the JSON.

use std::time::{Duration, Instant};

use bench::{ms, percentile};
use serde_json::json;
use shared::history::encode_cursor;
use shared::repo::video_sources::HistoryPosition;
use testkit::{json_request, read, request, user, TestEnv};

const SAMPLES: usize = 2_000;
const HISTORY: usize = 10_000;

fn percentiles(times: Vec<Duration>) -> (Duration, Duration) {
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let env = TestEnv::start().await;
    // one user submits thousands of videos: the quotas lifted
    let app = env.app_without_quotas().await;
    let (user_id, token) = user(&app, "bench@example.com").await;
    println!("# API latency (in-process handler calls, SQLite file in WAL mode)");

    // -- POST /viral-clip/video/youtube -------------------------------------------------------
    let mut times = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES + SAMPLES / 10 {
        let body =
            json!({"youtube_url": format!("https://youtu.be/{:011}", i), "aspect_ratio": "1:1"});
        let req = json_request("POST", "/viral-clip/video/youtube", Some(&token), &body);
        let started = Instant::now();
        let resp = submit_youtube::handler(&app, req).await.unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status(), 201);
        if i >= SAMPLES / 10 {
            times.push(took);
        }
    }
    let (p50, p99) = percentiles(times);
    println!(
        "POST /viral-clip/video/youtube: p50 {:.3} ms  p99 {:.3} ms  ({SAMPLES} requests)",
        ms(p50),
        ms(p99)
    );
    let youtube_p99 = p99;

    // -- GET /viral-clip/videos with 10,000 videos ----------------------------------------------
    let (other_id, other_token) = user(&app, "history@example.com").await;
    let conn = app.db.connect().await.unwrap();
    let items: Vec<_> = (0..HISTORY)
        .map(|i| {
            let sub = json!({"youtube_url": format!("https://youtu.be/{:011}", i)});
            let sub =
                shared::ingest::youtube::YoutubeSubmission::parse(sub.as_object().unwrap().clone())
                    .unwrap();
            (
                shared::repo::video_sources::NewVideoSource {
                    user_id: other_id,
                    source_type: Some(shared::model::SourceType::Youtube),
                    source_url: Some(sub.link.canonical_url()),
                    youtube_video_id: Some(sub.link.id().to_string()),
                    thumbnail_url: Some(sub.link.thumbnail_url()),
                    ..Default::default()
                },
                shared::repo::processing_jobs::NewJob {
                    job_type: shared::model::JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
                    payload: sub.config.to_payload(),
                    max_attempts: 3,
                },
            )
        })
        .collect();
    for chunk in items.chunks(100) {
        testkit::seed::videos_with_jobs(&conn, chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await; // spread created_at like real traffic
    }
    let _ = user_id;
    // the cursor that opens page 451 (items 9,001–9,020)
    let deep = shared::db::query_one(
        &conn,
        "SELECT created_at, id FROM video_sources WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 8999",
        [other_id],
        |r| Ok(HistoryPosition { created_at: shared::db::timestamp(r, 0)?, id: shared::db::int(r, 1)? }),
    )
    .await
    .unwrap();
    let deep_cursor = encode_cursor(&deep);

    let mut results = Vec::new();
    for (label, query) in [
        ("first page", "?limit=20".to_owned()),
        (
            "deep page (items 9,001-9,020)",
            format!("?limit=20&cursor={deep_cursor}"),
        ),
    ] {
        let mut times = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES + SAMPLES / 10 {
            let req = request(
                "GET",
                &format!("/viral-clip/videos{query}"),
                Some(&other_token),
                None,
                "".into(),
            );
            let started = Instant::now();
            let resp = list_videos::handler(&app, req).await.unwrap();
            let took = started.elapsed();
            if i == 0 {
                let (status, _, body) = read(resp);
                assert_eq!(status, 200);
                assert_eq!(body["items"].as_array().unwrap().len(), 20);
            }
            if i >= SAMPLES / 10 {
                times.push(took);
            }
        }
        let (p50, p99) = percentiles(times);
        println!(
            "GET /viral-clip/videos, {HISTORY} videos, {label}: p50 {:.3} ms  p99 {:.3} ms",
            ms(p50),
            ms(p99)
        );
        results.push(p99);
    }
    let ratio = results[1].as_secs_f64() / results[0].as_secs_f64();
    let worst = youtube_p99.max(results[0]).max(results[1]);
    println!(
        "deep / first page p99 = {ratio:.2}x (target <= 2x: {})",
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );
    println!(
        "worst p99 = {:.3} ms (target < 5 ms: {})",
        ms(worst),
        if worst < Duration::from_millis(5) {
            "met"
        } else {
            "MISSED"
        }
    );
}
