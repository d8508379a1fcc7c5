use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shared::config::{QueueConfig, WorkerConfig};
use shared::model::{JobStatus, VideoStatus};
use shared::pipeline::{DummyPipeline, Pipeline, PipelineError, Progress};
use shared::queue::ClaimedJob;
use shared::worker::Worker;
use testkit::TestEnv;
use tokio::time::Instant;

fn config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(20),
        concurrency: 4,
        max_run: Duration::from_secs(30),
        stop_when_idle: true,
        queue: QueueConfig {
            lease: Duration::from_secs(5),
            retry_base: Duration::from_millis(40),
            retry_max: Duration::from_secs(1),
        },
    }
}

/// Fails every time, counting its runs.
struct AlwaysFails(Arc<AtomicUsize>);

impl Pipeline for AlwaysFails {
    fn name(&self) -> &'static str {
        "always-fails"
    }
    fn expected_duration(&self) -> Duration {
        Duration::from_millis(1)
    }
    async fn run<'a>(
        &'a self,
        _: &'a ClaimedJob,
        _: &'a Progress,
    ) -> Result<serde_json::Value, PipelineError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(PipelineError::Retryable(
            "the transcoder is unreachable".into(),
        ))
    }
}

/// Sleeps, tracking how many run at once.
struct Sleeps {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    expected: Duration,
}

impl Pipeline for Sleeps {
    fn name(&self) -> &'static str {
        "sleeps"
    }
    fn expected_duration(&self) -> Duration {
        self.expected
    }
    async fn run<'a>(
        &'a self,
        _: &'a ClaimedJob,
        progress: &'a Progress,
    ) -> Result<serde_json::Value, PipelineError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.report(50.0).await?;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(json!({"slept": true}))
    }
}

#[tokio::test]
async fn the_dummy_pipeline_turns_queued_jobs_into_ready_videos() {
    let t = TestEnv::start().await;
    let created = t.enqueue(3).await;
    let worker = Worker::new(
        t.db.clone(),
        DummyPipeline::with_step(Duration::from_millis(50)),
        config(),
    );

    let report = worker
        .run_until(Instant::now() + Duration::from_secs(20))
        .await
        .unwrap();

    assert_eq!(
        (report.claimed, report.completed, report.errors),
        (3, 3, 0),
        "{report:?}"
    );
    for (video, job) in &created {
        let job = t.job(job.id).await;
        assert_eq!(
            (job.status, job.progress, job.attempts),
            (JobStatus::Completed, 100.0, 1)
        );
        let summary = job.result_summary.unwrap();
        assert_eq!(summary["pipeline"], "dummy");
        assert_eq!(summary["config"]["aspect_ratio"], "9:16");
        assert_eq!(t.video(video.id).await.status, VideoStatus::Ready);
    }
}

#[tokio::test]
async fn a_pipeline_that_always_fails_is_retried_then_fails_the_job_and_video() {
    let t = TestEnv::start().await;
    let created = t.enqueue(1).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let cfg = WorkerConfig {
        stop_when_idle: false,
        ..config()
    };
    let worker = Worker::new(t.db.clone(), AlwaysFails(runs.clone()), cfg);

    // keeps polling through the back-off delays until the deadline
    let report = worker
        .run_until(Instant::now() + Duration::from_secs(2))
        .await
        .unwrap();

    assert_eq!(runs.load(Ordering::SeqCst), 3, "max_attempts runs, no more");
    assert_eq!((report.retried, report.failed), (2, 1), "{report:?}");
    let job = t.job(created[0].1.id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3));
    assert_eq!(
        job.error_message.as_deref(),
        Some("attempt 3 of 3: the transcoder is unreachable")
    );
    let video = t.video(created[0].0.id).await;
    assert_eq!(video.status, VideoStatus::Failed);
    assert_eq!(video.error_message, job.error_message);
}

#[tokio::test]
async fn no_more_than_the_configured_number_of_jobs_run_at_once() {
    let t = TestEnv::start().await;
    t.enqueue(10).await;
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pipeline = Sleeps {
        now,
        peak: peak.clone(),
        expected: Duration::from_millis(100),
    };
    let worker = Worker::new(
        t.db.clone(),
        pipeline,
        WorkerConfig {
            concurrency: 3,
            ..config()
        },
    );

    let report = worker
        .run_until(Instant::now() + Duration::from_secs(20))
        .await
        .unwrap();

    assert_eq!(report.completed, 10, "{report:?}");
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn no_job_is_taken_when_too_little_time_is_left_to_finish_it() {
    let t = TestEnv::start().await;
    t.enqueue(2).await;
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // a job takes "5 s"; the invocation has 2 s left
    let pipeline = Sleeps {
        now,
        peak,
        expected: Duration::from_secs(5),
    };
    let worker = Worker::new(t.db.clone(), pipeline, config());

    let started = Instant::now();
    let report = worker
        .run_until(Instant::now() + Duration::from_secs(2))
        .await
        .unwrap();

    assert_eq!(report.claimed, 0, "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "returns at once"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM processing_jobs WHERE status = 'queued'")
            .await,
        2
    );
}

/// Has another process's writer take the write lock of `database` for `hold`, then ticks for
/// a while on the worker's runtime, recording the longest gap between its ticks.
struct TicksWhileLocked {
    database: shared::config::DatabaseUrl,
    hold: Duration,
    longest_gap: Arc<std::sync::Mutex<Duration>>,
}

impl Pipeline for TicksWhileLocked {
    fn name(&self) -> &'static str {
        "ticks-while-locked"
    }
    fn expected_duration(&self) -> Duration {
        Duration::from_secs(3)
    }
    async fn run<'a>(
        &'a self,
        _: &'a ClaimedJob,
        _: &'a Progress,
    ) -> Result<serde_json::Value, PipelineError> {
        let (database, hold) = (self.database.clone(), self.hold);
        let holder = tokio::task::spawn_blocking(move || testkit::hold_write_lock(database, hold))
            .await
            .unwrap();
        let mut last = Instant::now();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let gap = last.elapsed();
            let mut longest = self.longest_gap.lock().unwrap();
            *longest = (*longest).max(gap);
            last = Instant::now();
        }
        tokio::task::spawn_blocking(move || holder.join().unwrap())
            .await
            .unwrap();
        Ok(json!({"ticked": true}))
    }
}

#[tokio::test]
async fn a_heartbeat_waiting_for_the_write_lock_does_not_stall_the_workers_other_tasks() {
    // Arrange: a worker whose heartbeat (every 1 s) falls inside 1.5 s when another process
    // holds the write lock; the job ticks every 50 ms on the same (one-thread) runtime.
    let t = TestEnv::start().await;
    let job_id = t.enqueue(1).await[0].1.id;
    let longest_gap = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let pipeline = TicksWhileLocked {
        database: t.database.url(),
        hold: Duration::from_millis(1_500),
        longest_gap: longest_gap.clone(),
    };
    let cfg = WorkerConfig {
        concurrency: 1,
        queue: QueueConfig {
            lease: Duration::from_secs(3),
            ..config().queue
        },
        ..config()
    };
    let worker = Worker::new(t.db.clone(), pipeline, cfg);

    // Act
    let report = worker
        .run_until(Instant::now() + Duration::from_secs(20))
        .await
        .unwrap();

    // Assert: the ticks kept their 50 ms (a heartbeat blocking the thread would make a gap of
    // about a second), and the heartbeat got through once the lock was free.
    let longest_gap = *longest_gap.lock().unwrap();
    assert!(
        longest_gap < Duration::from_millis(400),
        "longest gap between ticks: {longest_gap:?}"
    );
    assert_eq!((report.completed, report.lease_lost), (1, 0), "{report:?}");
    let job = t.job(job_id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Completed, 1));
}
