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
    let app = Arc::new(env.app_without_quotas().await);
    let video = Arc::new(fixture("sample-3s.mp4"));
    let phase = Arc::new(AtomicU8::new(UP));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (_, token) = user(&app, &format!("user{i}@example.com")).await;
        let (app, video, phase) = (app.clone(), video.clone(), phase.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new(); // (phase when sent, phase when answered, status, body)
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
                seen.push((sent_in, phase.load(Ordering::SeqCst), status, body));
            }
        }));
    }

    // Act: up, stopped mid-run for 6 s (longer than the S3 client's own retries ride out),
    // back on the same address; the application is not restarted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.s3.stop();
    // stopping takes effect as its tasks are next polled: requests of that instant count as "up"
    tokio::time::sleep(Duration::from_millis(100)).await;
    phase.store(DOWN, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
    env.s3.restart().await.unwrap();
    phase.store(BACK, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    phase.store(DONE, Ordering::SeqCst);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }

    // Assert: only 201 or 503; 503s while it was down, no 201 answered then; 201s before and after.
    let count = |sent: u8, answered: u8, status: u16| {
        seen.iter()
            .filter(|(s, a, st, _)| (*s, *a, *st) == (sent, answered, status))
            .count()
    };
    eprintln!(
        "sent and answered up: {} x 201, {} x 503; down: {} x 503; back: {} x 201, {} x 503",
        count(UP, UP, 201),
        count(UP, UP, 503),
        count(DOWN, DOWN, 503),
        count(BACK, BACK, 201),
        count(BACK, BACK, 503)
    );
    for (_, _, status, body) in &seen {
        assert!(*status == 201 || *status == 503, "{status} {body}");
    }
    assert!(count(UP, UP, 201) > 0, "uploads succeed before the outage");
    assert!(count(DOWN, DOWN, 503) > 0, "the outage is answered 503");
    let stored_while_down = seen
        .iter()
        .filter(|(_, a, st, _)| *a == DOWN && *st == 201)
        .count();
    assert_eq!(stored_while_down, 0, "no 201 while the store is down");
    assert!(
        count(BACK, BACK, 201) > 0,
        "uploads succeed again without a restart"
    );

    // Nothing half-written: each answered 201 has its row and its object; no other rows or objects.
    let answered: BTreeSet<String> = seen
        .iter()
        .filter(|(_, _, s, _)| *s == 201)
        .map(|(_, _, _, b)| b["video_source"]["file_path"].as_str().unwrap().to_owned())
        .collect();
    let rows = env.count("SELECT count(*) FROM video_sources").await as usize;
    let jobs = env.count("SELECT count(*) FROM processing_jobs").await as usize;
    let objects: BTreeSet<String> = env.object_keys().into_iter().collect();
    assert_eq!(rows, answered.len(), "one row per 201");
    assert_eq!(jobs, answered.len(), "one job per 201");
    // An object nobody answered 201 for (the store took the bytes, the answer was lost) is
    // known to its request's intent row ...
    let unanswered: BTreeSet<String> = objects.difference(&answered).cloned().collect();
    let intents: BTreeSet<String> = env
        .strings("SELECT object_key FROM uploads WHERE status = 'completing'")
        .await
        .into_iter()
        .collect();
    assert!(
        unanswered.is_subset(&intents),
        "objects without a row that knows them: {:?}",
        unanswered.difference(&intents).take(3).collect::<Vec<_>>()
    );
    assert!(answered.is_subset(&objects), "every 201 has its object");
    for key in &answered {
        assert_eq!(env.object(key).as_deref(), Some(video.as_slice()), "{key}");
    }
    // ... and the worker's sweep removes it once the claim has run out (moved into the past here).
    let db = env.open().await;
    let conn = db.connect().await.unwrap();
    conn.execute(
        "UPDATE uploads SET claim_until = '2000-01-01T00:00:00.000Z' WHERE status = 'completing'",
        (),
    )
    .await
    .unwrap();
    let storage: shared::storage::LazyStorage =
        shared::storage::Storage::connect(&env.s3.storage_config(testkit::BUCKET))
            .await
            .into();
    let report = shared::ingest::upload_end::sweep(&conn, &storage, Duration::ZERO, 10_000)
        .await
        .unwrap();
    eprintln!("{} unanswered objects, sweep: {report:?}", unanswered.len());
    assert_eq!(report.failed, 0);
    let objects: BTreeSet<String> = env.object_keys().into_iter().collect();
    assert_eq!(
        objects.len(),
        answered.len(),
        "after the sweep: one object per 201"
    );
    assert_eq!(objects, answered);
}
