//! Fault under load: another writer holds the database's write lock for 3 s while users submit.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use submit_youtube::handler;
use testkit::{json_request, read, user, TestEnv};

const CLIENTS: usize = 16;
const REQUESTS_EACH: usize = 4;
const LOCK_HELD: Duration = Duration::from_secs(3);

// a thread per client, as sixteen function instances would each have their own
#[tokio::test(flavor = "multi_thread", worker_threads = 16)]
async fn a_database_locked_for_3_s_makes_requests_wait_or_answer_503_and_loses_none() {
    // Arrange: one user on sixteen connections, and another writer holding the write lock.
    let env = TestEnv::start().await;
    let app = Arc::new(env.app_without_quotas().await);
    let (_, token) = user(&app, "ada@example.com").await;
    let locker = testkit::hold_write_lock(env.database.url(), LOCK_HELD);

    // Act: every client submits its links while the lock is held; a 503 is retried with the
    // same Idempotency-Key, as the contract tells clients to.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (app, token) = (app.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new(); // (statuses in order, video id, answered at)
            for n in 0..REQUESTS_EACH {
                let key = format!("client-{i}-request-{n}");
                let mut statuses = Vec::new();
                loop {
                    let mut req = json_request(
                        "POST",
                        "/viral-clip/video/youtube",
                        Some(&token),
                        &json!({"youtube_url": "https://youtu.be/dQw4w9WgXcQ"}),
                    );
                    req.headers_mut()
                        .insert("idempotency-key", key.parse().unwrap());
                    let (status, headers, body) = read(handler(&app, req).await.unwrap());
                    statuses.push(status);
                    match status {
                        201 => {
                            let id = body["video_source"]["id"].as_i64().unwrap();
                            outcomes.push((statuses, id, Instant::now()));
                            break;
                        }
                        503 => {
                            assert!(headers.contains_key("retry-after"), "{body}");
                            assert!(statuses.len() < 20, "still 503 long after the lock");
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        other => panic!("{other}: {body}"),
                    }
                }
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }
    let releasing = locker.join().unwrap();

    // Assert: every request ended 201 (after waiting, or after 503s and a retry), once each.
    assert_eq!(outcomes.len(), CLIENTS * REQUESTS_EACH);
    assert!(
        outcomes.iter().all(|(_, _, at)| *at >= releasing),
        "no write got past the other writer's lock"
    );
    let ids: BTreeSet<i64> = outcomes.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids.len(), outcomes.len(), "one video per request, no twins");
    let rows = env.count("SELECT count(*) FROM video_sources").await as usize;
    let jobs = env
        .count("SELECT count(*) FROM processing_jobs WHERE status = 'queued'")
        .await as usize;
    assert_eq!(rows, outcomes.len(), "no request lost, none written twice");
    assert_eq!(jobs, outcomes.len(), "each video has its queued job");
    let last = outcomes.iter().map(|(_, _, at)| *at).max().unwrap();
    eprintln!(
        "the last request was answered {:.2} s after the lock was released",
        (last - releasing).as_secs_f64()
    );
    let answered_503 = outcomes.iter().filter(|(s, _, _)| s[0] == 503).count();
    eprintln!(
        "{} requests: {} waited for the lock and got 201, {} got 503 first and 201 on retry",
        outcomes.len(),
        outcomes.len() - answered_503,
        answered_503
    );
}
