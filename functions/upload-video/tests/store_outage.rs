//! Fault under load: the object store stops while users keep uploading, then comes back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lambda_http::Body;
use testkit::{fixture, multipart, read, request, user, TestEnv};
use upload_video::handler;

const CLIENTS: usize = 8;
const UP: u8 = 0;
const DOWN: u8 = 1;
const BACK: u8 = 2;
const DONE: u8 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_while_the_store_stops_and_returns_get_201_or_503_and_leave_nothing_half_written() {
    // Arrange: one application (one cold start) and eight users uploading in a loop.
    let mut env = TestEnv::start().await;
    let app = Arc::new(env.app().await);
    let video = Arc::new(fixture("sample-3s.mp4"));
    let phase = Arc::new(AtomicU8::new(UP));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (_, token) = user(&app, &format!("user{i}@example.com")).await;
        let (app, video, phase) = (app.clone(), video.clone(), phase.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new(); // (phase when sent, status, body)
            loop {
                let sent_in = phase.load(Ordering::SeqCst);
                if sent_in == DONE {
                    return seen;
                }
                let (content_type, body) = multipart(&[], &[("file", "talk.mp4", &video)]);
                let req = request(
                    "POST",
                    "/viral-clip/video/upload",
                    Some(&token),
                    Some(&content_type),
                    Body::Binary(body),
                );
                let (status, headers, body) = read(handler(&app, req).await.unwrap());
                if status == 503 {
                    assert_eq!(body["error"]["code"], "unavailable", "{body}");
                    assert!(headers.contains_key("retry-after"));
                }
                seen.push((sent_in, status, body));
            }
        }));
    }

    // Act: up, stopped mid-run for a second, back on the same address (no restart of the app).
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.s3.stop();
    phase.store(DOWN, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    env.s3.restart().await.unwrap();
    phase.store(BACK, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    phase.store(DONE, Ordering::SeqCst);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }

    // Assert: only 201 or 503; 503s while it was down; 201s before and after.
    let count = |p: u8, s: u16| {
        seen.iter()
            .filter(|(ph, st, _)| *ph == p && *st == s)
            .count()
    };
    for (_, status, body) in &seen {
        assert!(*status == 201 || *status == 503, "{status} {body}");
    }
    assert!(count(UP, 201) > 0, "uploads succeed before the outage");
    assert!(count(DOWN, 503) > 0, "the outage is answered 503");
    assert_eq!(
        count(DOWN, 201),
        0,
        "nothing is stored while the store is down"
    );
    assert!(
        count(BACK, 201) > 0,
        "uploads succeed again without a restart"
    );

    // Nothing half-written: each answered 201 has its row and its object; no other rows or objects.
    let answered: BTreeSet<String> = seen
        .iter()
        .filter(|(_, s, _)| *s == 201)
        .map(|(_, _, b)| b["video_source"]["file_path"].as_str().unwrap().to_owned())
        .collect();
    let rows = env.count("SELECT count(*) FROM video_sources").await as usize;
    let jobs = env.count("SELECT count(*) FROM processing_jobs").await as usize;
    let objects: BTreeSet<String> = env.object_keys().into_iter().collect();
    assert_eq!(rows, answered.len(), "one row per 201");
    assert_eq!(jobs, answered.len(), "one job per 201");
    assert_eq!(objects, answered, "one object per 201, no orphans");
    for key in &answered {
        assert_eq!(env.object(key).as_deref(), Some(video.as_slice()), "{key}");
    }
}
