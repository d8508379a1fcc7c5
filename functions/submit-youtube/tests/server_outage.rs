//! Fault under load, on a libSQL server only: the server stops for 6 s while users submit and
//! the worker drains, then starts again on the same port.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::config::{Env, WorkerConfig};
use shared::pipeline::DummyPipeline;
use shared::worker::{RunReport, Worker};
use submit_youtube::handler;
use testkit::sqld::Sqld;
use testkit::{json_request, read, user, TestDatabase, TestEnv};

const CLIENTS: usize = 8;
const DOWN: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn on_a_libsql_server_stopped_for_6_s_requests_answer_201_or_503_and_nothing_is_lost() {
    // Arrange: users submitting links with Idempotency-Keys (a 503 is retried with the same
    // key), and a worker draining, all against one sqld.
    shared::telemetry::init();
    let mut env = TestEnv::start_with(TestDatabase::Server(Sqld::start())).await;
    let app = Arc::new(env.app_without_quotas().await);
    let (_, token) = user(&app, "ada@example.com").await;
    let db = Arc::new(env.open().await);
    let cfg = WorkerConfig::from_env(&Env::from_pairs([
        ("JOB_LEASE_SECONDS", "2"),
        ("POLL_INTERVAL_SECONDS", "0.05"),
        ("WORKER_CONCURRENCY", "4"),
    ]))
    .unwrap();
    let step = Duration::from_millis(10);
    let worker = Arc::new(Worker::new(
        db.clone(),
        DummyPipeline::with_step(step),
        cfg.clone(),
    ));
    let started = Instant::now();
    let run_for = Duration::from_secs(14);
    let draining = {
        let worker = worker.clone();
        tokio::spawn(async move {
            let mut reports = Vec::new();
            while started.elapsed() < run_for {
                let until = tokio::time::Instant::now() + Duration::from_secs(2);
                reports.push(worker.run_until(until).await.unwrap_or_default());
            }
            reports
        })
    };
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (app, token) = (app.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            // (key, video id, every status with the instant it was answered)
            let mut outcomes = Vec::new();
            let mut n = 0;
            while started.elapsed() < run_for {
                let key = format!("client-{c}-request-{n}");
                n += 1;
                let mut answers = Vec::new();
                loop {
                    let mut req = json_request(
                        "POST",
                        "/viral-clip/video/youtube",
                        Some(&token),
                        &json!({"youtube_url": format!("https://youtu.be/{c:05}{n:06}")}),
                    );
                    req.headers_mut()
                        .insert("idempotency-key", key.parse().unwrap());
                    // a request's database call gives up after REMOTE_TIMEOUT: it must be
                    // answered (503) soon after, never hang
                    let sent = started.elapsed();
                    let bound = shared::db::REMOTE_TIMEOUT + Duration::from_secs(5);
                    let answer = tokio::time::timeout(bound, handler(&app, req))
                        .await
                        .unwrap_or_else(|_| panic!("a request sent at {sent:?} got no answer"));
                    let (status, headers, body) = read(answer.unwrap());
                    answers.push((status, Instant::now()));
                    match status {
                        201 => {
                            let id = body["video_source"]["id"].as_i64().unwrap();
                            outcomes.push((key, id, answers));
                            break;
                        }
                        503 => {
                            assert!(headers.contains_key("retry-after"), "{body}");
                            assert!(answers.len() < 200, "still 503 long after the outage");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        other => panic!("{other}: {body}"),
                    }
                }
            }
            outcomes
        }));
    }

    // Act: stop the server 2 s in (SIGTERM; while it shuts down it holds requests unanswered,
    // which db::REMOTE_TIMEOUT turns into 503s), keep it down 6 s, then start it again on the
    // same port and data.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = env.database.server().unwrap();
    tokio::task::block_in_place(|| server.stop());
    let down_from = Instant::now();
    eprintln!("server stopped at {:?}", started.elapsed());
    tokio::time::sleep(DOWN).await;
    let up_at = Instant::now();
    tokio::task::block_in_place(|| server.start_again());
    eprintln!("server answering again at {:?}", started.elapsed());
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }
    eprintln!("clients done at {:?}", started.elapsed());
    let mut reports: Vec<RunReport> = draining.await.unwrap();
    eprintln!("worker done at {:?}", started.elapsed());
    let idle = Worker::new(
        db.clone(),
        DummyPipeline::with_step(step),
        WorkerConfig {
            stop_when_idle: true,
            ..cfg
        },
    );
    // Drain what is left: jobs cut off come back when their leases expire, and jobs whose
    // attempt failed during the outage when their back-off ends. It goes on while jobs finish.
    let (mut left, mut progress_at) = (i64::MAX, Instant::now());
    loop {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        reports.push(idle.run_until(until).await.unwrap());
        let now_left = env
            .count("SELECT count(*) FROM processing_jobs WHERE status <> 'completed'")
            .await;
        if now_left < left {
            (left, progress_at) = (now_left, Instant::now());
        }
        if left == 0 || progress_at.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Assert
    let during: Vec<_> = outcomes
        .iter()
        .flat_map(|(_, _, answers)| answers)
        .filter(|(status, at)| *status == 201 && *at > down_from && *at < up_at)
        .collect();
    assert!(
        during.is_empty(),
        "201 while the server was down: {during:?}"
    );
    let saw_503 = outcomes
        .iter()
        .any(|(_, _, answers)| answers.iter().any(|(s, _)| *s == 503));
    assert!(saw_503, "requests during the outage answered 503");
    let after = outcomes
        .iter()
        .filter(|(_, _, a)| a.last().is_some_and(|(_, at)| *at > up_at))
        .count();
    assert!(
        after > 0,
        "201 again after the restart, with the same function state"
    );
    let ids: BTreeSet<i64> = outcomes.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids.len(), outcomes.len(), "one video per key, no twins");
    let videos = env.count("SELECT count(*) FROM video_sources").await as usize;
    assert_eq!(
        videos,
        outcomes.len(),
        "no video of a request that only answered 503"
    );
    let orphans = env
        .count("SELECT count(*) FROM video_sources v WHERE NOT EXISTS (SELECT 1 FROM processing_jobs j WHERE j.video_source_id = v.id)")
        .await;
    assert_eq!(orphans, 0, "every video has its job");
    let not_done = env
        .count("SELECT count(*) FROM processing_jobs WHERE status <> 'completed'")
        .await;
    assert_eq!(not_done, 0, "every job completed");
    // A completion the server applied but whose answer was lost is not counted by its worker.
    let completed: usize = reports.iter().map(|r| r.completed).sum();
    let lost: usize = reports.iter().map(|r| r.lease_lost + r.errors).sum();
    assert!(
        completed <= videos && videos - completed <= cfg.concurrency,
        "each job completed once: {completed} completions reported for {videos} jobs"
    );
    let rerun = env
        .count("SELECT count(*) FROM processing_jobs WHERE attempts > 1")
        .await;
    // In flight at the server: the jobs the worker was running, and the jobs of at most one
    // claim the server applied but whose answer was lost (the worker claims again).
    assert!(
        rerun as usize <= 2 * cfg.concurrency,
        "only jobs in flight during the outage ran again: {rerun} (errors met: {lost})"
    );
    eprintln!(
        "{} requests, {} answered 503 at least once; {completed} jobs completed, {rerun} ran twice",
        outcomes.len(),
        outcomes
            .iter()
            .filter(|(_, _, a)| a.iter().any(|(s, _)| *s == 503))
            .count()
    );
}
