//! The worker function end to end: its handler with the scheduled-event fixture, and the real
//! binary killed with SIGKILL in the middle of a job.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use shared::config::{Env, QueueConfig, WorkerConfig};
use shared::model::{JobStatus, VideoStatus};
use shared::pipeline::DummyPipeline;
use shared::storage::LazyStorage;
use shared::worker::Worker;
use testkit::TestEnv;
use worker::{handler, AppState};

const SCHEDULE_FIXTURE: &str = include_str!("../../../local/events/schedule.json");

/// A user with one YouTube video and its queued job: (video id, job id).
async fn queued_job(env: &TestEnv) -> (i64, i64) {
    let (video, job) = env.enqueue(1).await.remove(0);
    (video.id, job.id)
}

/// The job completed on its second attempt (`why` the first one counts) and its video is ready.
async fn assert_done_on_second_attempt(env: &TestEnv, job_id: i64, video_id: i64, why: &str) {
    let job = env.job(job_id).await;
    assert_eq!(job.attempts, 2, "{why}");
    assert_eq!(job.progress, 100.0);
    assert_eq!(env.video(video_id).await.status, VideoStatus::Ready);
}

async fn state_for(f: &TestEnv) -> AppState {
    let (url, token) = (f.database.url_string(), f.database.auth_token());
    let env = Env::from_pairs([
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_AUTH_TOKEN", token.as_str()),
        ("POLL_INTERVAL_SECONDS", "0.05"),
        ("WORKER_STOP_WHEN_IDLE", "true"),
    ]);
    AppState::from_env(&env).await.unwrap()
}

#[tokio::test]
async fn the_scheduled_event_turns_a_queued_job_into_a_completed_job_and_a_ready_video() {
    let f = TestEnv::start().await;
    let (video_id, job_id) = queued_job(&f).await;
    let state = state_for(&f).await;
    let event: serde_json::Value = serde_json::from_str(SCHEDULE_FIXTURE).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");

    let report = handler(&state, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();

    assert_eq!(
        (report.claimed, report.completed, report.errors),
        (1, 1, 0),
        "{report:?}"
    );
    let job = f.job(job_id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.progress, 100.0);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.result_summary.as_ref().unwrap()["pipeline"], "dummy");
    assert!(
        job.result_summary.as_ref().unwrap()["elapsed_ms"]
            .as_u64()
            .unwrap()
            >= 1_900,
        "about 2 s of work"
    );
    assert_eq!(f.video(video_id).await.status, VideoStatus::Ready);
}

#[tokio::test]
async fn a_bare_empty_event_also_runs_the_worker_and_an_empty_queue_returns_at_once() {
    let f = TestEnv::start().await;
    let state = state_for(&f).await;

    let report = handler(&state, LambdaEvent::new(json!({}), Context::default()))
        .await
        .unwrap();

    assert_eq!(report.claimed, 0);
    assert_eq!(report.errors, 0);
}

#[tokio::test]
async fn a_bad_database_url_stops_start_up_naming_the_variable() {
    let env = Env::from_pairs([("DATABASE_URL", "mysql://nope")]);
    let err = AppState::from_env(&env)
        .await
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    let err = AppState::from_env(&Env::from_pairs([]))
        .await
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An in-process worker taking over after a crash: 1 s leases, polling every 50 ms.
fn rescuer(f: &TestEnv, concurrency: usize, step: Duration) -> Worker<DummyPipeline> {
    let cfg = WorkerConfig {
        poll_interval: Duration::from_millis(50),
        concurrency,
        max_run: Duration::from_secs(30),
        stop_when_idle: true,
        queue: QueueConfig {
            lease: Duration::from_secs(1),
            ..QueueConfig::default()
        },
    };
    Worker::new(f.db.clone(), DummyPipeline::with_step(step), cfg)
}

#[tokio::test]
async fn a_worker_process_killed_mid_job_leaves_the_job_to_another_worker_after_its_lease() {
    let f = TestEnv::start().await;
    let (video_id, job_id) = queued_job(&f).await;
    let bin = Path::new(env!("CARGO_BIN_EXE_worker"));
    // A standalone worker process whose job takes 40 s and whose lease is 1 s (kept by heartbeats).
    let mut child = Command::new(bin)
        .arg("--standalone")
        .env("DATABASE_URL", f.database.url_string())
        .env("DATABASE_AUTH_TOKEN", f.database.auth_token())
        .env("JOB_LEASE_SECONDS", "1")
        .env("POLL_INTERVAL_SECONDS", "0.05")
        .env("DUMMY_PIPELINE_STEP_SECONDS", "10")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the child to claim the job",
        Duration::from_secs(30),
        || async { f.job(job_id).await.status == JobStatus::Running },
    )
    .await;
    // let a few heartbeats pass, so the kill lands mid-job and not mid-claim
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        f.job(job_id).await.status,
        JobStatus::Running,
        "heartbeats keep the 1 s lease alive"
    );

    child.kill().unwrap(); // SIGKILL: no clean-up of any kind
    child.wait().unwrap();
    // the rescuer's clock is past the dead worker's lease
    f.clock.advance(Duration::from_secs(2));

    let rescuer = rescuer(&f, 2, Duration::from_millis(50));
    wait_for(
        "another worker to finish the job",
        Duration::from_secs(30),
        || async {
            rescuer
                .run_until(tokio::time::Instant::now() + Duration::from_secs(10))
                .await
                .unwrap();
            f.job(job_id).await.status == JobStatus::Completed
        },
    )
    .await;

    assert_done_on_second_attempt(&f, job_id, video_id, "the killed attempt counts").await;
    let running = f
        .count("SELECT count(*) FROM processing_jobs WHERE status = 'running'")
        .await;
    assert_eq!(running, 0);
}

#[tokio::test]
async fn each_tick_expires_large_uploads_nobody_completed_and_removes_their_objects() {
    // Arrange: an upload whose URL lived 1 s, its file PUT, never completed
    let env = testkit::TestEnv::start().await;
    let app = env
        .app_with(|c| c.ingest.upload_url_ttl = Duration::from_secs(1))
        .await;
    let (user_id, _) = testkit::user(&app, "late@example.com").await;
    let file = testkit::fixture("sample-3s.mp4");
    let started = testkit::uploads::start(&app, user_id, "late.mp4", file.len()).await;
    testkit::put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;
    assert_eq!(env.object_keys().len(), 1);
    env.clock.advance(Duration::from_millis(1_200));
    let db = env.db.clone();
    let cfg =
        WorkerConfig::from_env(&Env::from_pairs([("WORKER_STOP_WHEN_IDLE", "true")])).unwrap();
    let state = AppState {
        worker: Worker::new(db.clone(), DummyPipeline::default(), cfg),
        sweep: Some(worker::StoreSweep {
            db,
            storage: LazyStorage::on_first_use(env.s3.storage_config(testkit::BUCKET)),
            grace: Duration::ZERO,
        }),
    };

    // Act
    handler(&state, LambdaEvent::new(json!({}), Context::default()))
        .await
        .unwrap();

    // Assert
    assert!(state.sweep.as_ref().unwrap().storage.is_connected());
    assert!(env.object_keys().is_empty(), "{:?}", env.object_keys());
    assert_eq!(
        env.count(
            "SELECT count(*) FROM uploads WHERE status = 'expired' AND cleaned_at IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_tick_with_no_upload_to_clean_never_builds_the_s3_client() {
    // Arrange: an idle queue, no uploads, and an object store that cannot be reached
    let f = TestEnv::start().await;
    let cfg =
        WorkerConfig::from_env(&Env::from_pairs([("WORKER_STOP_WHEN_IDLE", "true")])).unwrap();
    let state = AppState {
        worker: Worker::new(f.db.clone(), DummyPipeline::default(), cfg),
        sweep: Some(worker::StoreSweep {
            db: f.db.clone(),
            storage: LazyStorage::on_first_use(testkit::unreachable_storage_config("nowhere")),
            grace: Duration::ZERO,
        }),
    };

    // Act
    let report = handler(&state, LambdaEvent::new(json!({}), Context::default()))
        .await
        .unwrap();

    // Assert: the tick succeeded without storage, whose client was never built
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(!state.sweep.as_ref().unwrap().storage.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_load_leaves_every_job_completed_exactly_once() {
    // Arrange: 150 queued jobs, a worker process running 8 at a time (0.2 s each, 1 s lease).
    let f = TestEnv::start().await;
    f.enqueue(150).await;
    let mut child = Command::new(Path::new(env!("CARGO_BIN_EXE_worker")))
        .arg("--standalone")
        .env("DATABASE_URL", f.database.url_string())
        .env("DATABASE_AUTH_TOKEN", f.database.auth_token())
        .env("WORKER_CONCURRENCY", "8")
        .env("JOB_LEASE_SECONDS", "1")
        .env("POLL_INTERVAL_SECONDS", "0.05")
        .env("DUMMY_PIPELINE_STEP_SECONDS", "0.05")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Act: 50 more jobs arrive while it works; it is SIGKILLed with jobs in flight.
    f.enqueue(50).await;
    wait_for(
        "the child to finish 40 jobs with others in flight",
        Duration::from_secs(60),
        || async {
            f.count("SELECT count(*) FROM processing_jobs WHERE status = 'completed'")
                .await
                >= 40
                && f.count("SELECT count(*) FROM processing_jobs WHERE status = 'running'")
                    .await
                    > 0
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    f.clock.advance(Duration::from_secs(2)); // past every lease of the dead worker
    let done_by_child = f
        .count("SELECT count(*) FROM processing_jobs WHERE status = 'completed'")
        .await;
    let in_flight = f
        .count("SELECT count(*) FROM processing_jobs WHERE status = 'running'")
        .await;
    assert!(in_flight > 0, "the kill landed with jobs running");

    let rescuer = rescuer(&f, 8, Duration::from_millis(10));
    let rescued = std::cell::Cell::new(0);
    wait_for(
        "another worker to drain the queue",
        Duration::from_secs(60),
        || async {
            let report = rescuer
                .run_until(tokio::time::Instant::now() + Duration::from_secs(10))
                .await
                .unwrap();
            rescued.set(rescued.get() + report.completed);
            f.count("SELECT count(*) FROM processing_jobs WHERE status <> 'completed'")
                .await
                == 0
        },
    )
    .await;
    let done_by_rescuer = rescued.get() as i64;

    // Assert: 200 completions in all, each job once; only the jobs cut off ran twice.
    assert_eq!(f.count("SELECT count(*) FROM processing_jobs").await, 200);
    assert_eq!(
        done_by_child + done_by_rescuer,
        200,
        "completed by the child ({done_by_child}) + by the rescuer ({done_by_rescuer})"
    );
    assert_eq!(
        f.count("SELECT count(*) FROM processing_jobs WHERE attempts = 2")
            .await,
        in_flight,
        "exactly the jobs in flight at the kill ran a second time"
    );
    assert_eq!(
        f.count(
            "SELECT count(*) FROM processing_jobs WHERE attempts NOT IN (1, 2) OR progress <> 100"
        )
        .await,
        0
    );
    assert_eq!(
        f.count("SELECT count(*) FROM video_sources WHERE status <> 'ready'")
            .await,
        0
    );
}

#[tokio::test]
async fn an_invocation_cut_off_by_its_timeout_mid_job_leaves_the_job_to_the_next_invocation() {
    // Arrange: one 2 s job; leases of 1 s.
    let f = TestEnv::start().await;
    let (video_id, job_id) = queued_job(&f).await;
    let env = Env::from_pairs([
        ("POLL_INTERVAL_SECONDS", "0.05"),
        ("WORKER_STOP_WHEN_IDLE", "true"),
        ("JOB_LEASE_SECONDS", "1"),
    ]);
    let cfg = WorkerConfig::from_env(&env).unwrap();
    let state = AppState {
        worker: Worker::new(f.db.clone(), DummyPipeline::default(), cfg),
        sweep: None,
    };
    let invoke = || handler(&state, LambdaEvent::new(json!({}), Context::default()));

    // Act: the platform ends the invocation 0.7 s in (its timeout), in the middle of the job.
    let cut = tokio::time::timeout(Duration::from_millis(700), invoke()).await;
    assert!(cut.is_err(), "the invocation was still working");
    let job = f.job(job_id).await;
    assert_eq!(job.status, JobStatus::Running);
    assert!(job.progress < 100.0);
    f.clock.advance(Duration::from_secs(2)); // past the cut-off attempt's lease

    // the next scheduled invocation finds the lease expired and finishes the job
    wait_for(
        "a later invocation to finish the job",
        Duration::from_secs(30),
        || async {
            invoke().await.unwrap();
            f.job(job_id).await.status == JobStatus::Completed
        },
    )
    .await;

    // Assert
    assert_done_on_second_attempt(&f, job_id, video_id, "the cut-off attempt counts").await;
}
