//! Fairness benchmark: `cargo bench -p shared --bench fairness` (release mode; prints figures).
//! `TEST_DATABASE=sqld` runs it on a libSQL server instead of a SQLite file.
//!
//! Ada has 10,000 jobs queued and the shipped `Worker` (4 at a time, the dummy pipeline at
//! 4 × 5 ms steps) is draining them; once it has started 100, Bob submits one video. Printed:
//! how many of Ada's jobs were claimed after Bob's commit and before his job, and how long Bob
//! waited — beside the same submission into an idle queue, and beside what first-come,
//! first-served would have made him wait for (every job Ada still had queued). Five runs each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::config::{Env, WorkerConfig};
use shared::pipeline::{DummyPipeline, Pipeline, PipelineError, Progress};
use shared::queue::ClaimedJob;
use shared::worker::Worker;
use testkit::TestEnv;

const FLOOD: usize = 10_000;
const RUNS: usize = 5;
/// The dummy pipeline's step here; the shipped one is 0.5 s (a job of ~2 s).
const STEP: Duration = Duration::from_millis(5);
const POLL: &str = "0.05";

/// The dummy pipeline, noting when each job started.
struct Noting {
    inner: DummyPipeline,
    started: Arc<Mutex<Vec<(i64, Instant)>>>,
}

impl Pipeline for Noting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn expected_duration(&self) -> Duration {
        self.inner.expected_duration()
    }

    async fn run<'a>(
        &'a self,
        job: &'a ClaimedJob,
        progress: &'a Progress,
    ) -> Result<serde_json::Value, PipelineError> {
        self.started
            .lock()
            .unwrap()
            .push((job.id(), Instant::now()));
        self.inner.run(job, progress).await
    }
}

/// What one run saw.
struct Seen {
    /// Ada's jobs started after Bob's commit, before his.
    ahead: usize,
    wait: Duration,
    /// Ada's jobs still queued when Bob submitted: his place under first-come, first-served.
    fifo_ahead: i64,
}

async fn run(flood: usize) -> Seen {
    let env = TestEnv::start().await;
    env.enqueue(flood).await;
    let bob = shared::repo::users::insert(&env.conn, "bob@example.com", "x")
        .await
        .unwrap()
        .unwrap()
        .id;
    let started = Arc::new(Mutex::new(Vec::new()));
    let cfg = WorkerConfig::from_env(&Env::from_pairs([
        ("WORKER_CONCURRENCY", "4"),
        ("POLL_INTERVAL_SECONDS", POLL),
    ]))
    .unwrap();
    let pipeline = Noting {
        inner: DummyPipeline::with_step(STEP),
        started: started.clone(),
    };
    let worker = Arc::new(Worker::new(env.db.clone(), pipeline, cfg));
    let draining = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .run_until(tokio::time::Instant::now() + Duration::from_secs(600))
                .await
        })
    };
    while started.lock().unwrap().len() < flood.min(100) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if flood == 0 {
        // an idle worker is polling: submit at a random point of its poll interval
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..50))).await;
    }

    let fifo_ahead = env
        .count("SELECT count(*) FROM processing_jobs WHERE status = 'queued'")
        .await;
    let (video, job) = testkit::seed::new_video(bob, 0);
    let (_, job) = testkit::seed::video_with_job(&env.conn, &video, &job)
        .await
        .unwrap();
    let submitted = Instant::now();
    let claimed_at = loop {
        let found = started
            .lock()
            .unwrap()
            .iter()
            .find(|(id, _)| *id == job.id)
            .map(|(_, at)| *at);
        if let Some(at) = found {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let ahead = started
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, at)| *id != job.id && *at > submitted && *at < claimed_at)
        .count();
    draining.abort();
    Seen {
        ahead,
        wait: claimed_at.saturating_duration_since(submitted),
        fifo_ahead,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let database = if testkit::sqld::on_server() {
        "libSQL server (sqld)"
    } else {
        "SQLite file"
    };
    println!(
        "fairness on a {database}: the shipped Worker, 4 at a time, {} ms steps, polling every {POLL} s; {RUNS} runs",
        STEP.as_millis()
    );
    println!("| Bob submits one video | Ada's jobs claimed before his (max) | Bob's wait, median (max) | first come, first served: jobs ahead (median) | at ~2 s a job, 4 at a time |");
    println!("|---|---|---|---|---|");
    for (name, flood) in [
        ("while Ada has 10,000 queued", FLOOD),
        ("into an idle queue", 0),
    ] {
        let mut seen: Vec<Seen> = (0..RUNS).map(|_| rt.block_on(run(flood))).collect();
        seen.sort_by_key(|s| s.wait);
        let median = &seen[RUNS / 2];
        let max_ahead = seen.iter().map(|s| s.ahead).max().unwrap();
        let max_wait = seen.last().unwrap().wait;
        let mut fifo: Vec<i64> = seen.iter().map(|s| s.fifo_ahead).collect();
        fifo.sort_unstable();
        let fifo_median = fifo[RUNS / 2];
        println!(
            "| {name} | {max_ahead} | {:.0} ms ({:.0} ms) | {fifo_median} | ≈ {:.0} s under first come, first served; ≤ {:.1} s here |",
            median.wait.as_secs_f64() * 1000.0,
            max_wait.as_secs_f64() * 1000.0,
            fifo_median as f64 * 2.0 / 4.0,
            (max_ahead as f64 + 1.0) * 2.0 / 4.0,
        );
    }
}
