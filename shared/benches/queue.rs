//! Queue benchmark: `cargo bench -p shared --bench queue` (release mode; prints figures).
//!
//! Every figure runs against a fresh SQLite file (WAL, synchronous = NORMAL) in a temporary
//! directory, through the same `shared` code the functions use. Options:
//! `--jobs N` (claim/complete workload, default 20000), `--claims N` (latency samples, default 2000),
//! `--peer-workload` (only the workload of `local/bench/queue_peers.sh`, as one JSON line).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::json;
use shared::config::{Env, QueueConfig, WorkerConfig};
use shared::db::Db;
use shared::pipeline::DummyPipeline;
use shared::queue::Queue;
use shared::repo::{self, users};
use shared::worker::Worker;

/// Jobs one worker runs at once: the shipped default of `WORKER_CONCURRENCY`.
const CONCURRENCY: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let jobs = opt("--jobs", 20_000);
    let claims = opt("--claims", 2_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    if args.iter().any(|a| a == "--peer-workload") {
        // The workload run against the PyPI queues: enqueue `jobs` one per transaction, then
        // drain them with 1 and 4 workers, one job per claim and with the shipped worker.
        // Beside it, the API's write: a new video with its job, one per transaction.
        let (path, user) = rt.block_on(fresh(dir.path(), "peer-enqueue"));
        let enqueue = jobs as f64 / rt.block_on(enqueue_jobs(&path, user, jobs));
        let (path, user) = rt.block_on(fresh(dir.path(), "peer-submission"));
        let submission = jobs as f64 / rt.block_on(submit(&path, user, jobs, 1));
        let figures = json!({
            "jobs": jobs,
            "enqueue": enqueue,
            "submission": submission,
            "drain_one_by_one_1": drain(&rt, dir.path(), jobs, 1, Mode::Plain),
            "drain_one_by_one_4": drain(&rt, dir.path(), jobs, 4, Mode::Plain),
            "drain_worker_1": drain(&rt, dir.path(), jobs, 1, Mode::Worker),
            "drain_worker_4": drain(&rt, dir.path(), jobs, 4, Mode::Worker),
        });
        println!("{figures}");
        return;
    }

    println!("# queue benchmark");
    println!("machine: {}", machine());
    println!("sqlite: {}", rt.block_on(sqlite_version(dir.path())));
    println!("workload: {jobs} jobs; latency over {claims} claims\n");

    // -- enqueue ------------------------------------------------------------------------------
    let n = jobs / 4;
    let (path, user) = rt.block_on(fresh(dir.path(), "enqueue-job"));
    let secs = rt.block_on(enqueue_jobs(&path, user, n));
    println!(
        "enqueue, a job for an existing video:   {:>9.0} jobs/s ({n} jobs)",
        n as f64 / secs
    );
    let (path, user) = rt.block_on(fresh(dir.path(), "enqueue-single"));
    let secs = rt.block_on(submit(&path, user, n, 1));
    println!(
        "enqueue, one video+job per transaction: {:>9.0} jobs/s ({n} jobs)",
        n as f64 / secs
    );
    let (path, user) = rt.block_on(fresh(dir.path(), "enqueue-batched"));
    let secs = rt.block_on(submit(&path, user, jobs, 500));
    println!(
        "enqueue, 500 per transaction:           {:>9.0} jobs/s ({jobs} jobs)",
        jobs as f64 / secs
    );

    // -- claim + complete ---------------------------------------------------------------------
    println!();
    let plain = drain(&rt, dir.path(), jobs, 1, Mode::Plain);
    println!("plain loop (1 claim + 1 complete statement per job), 1 worker: {plain:>8.0} jobs/s");
    let plain4 = drain(&rt, dir.path(), jobs, 4, Mode::Plain);
    println!("plain loop, 4 workers:                                         {plain4:>8.0} jobs/s");
    let mut shipped = Vec::new();
    for workers in [1, 2, 4] {
        let rate = drain(&rt, dir.path(), jobs, workers, Mode::Worker);
        println!("the shipped worker (WORKER_CONCURRENCY={CONCURRENCY}, 3 progress reports per job), {workers} process(es): {rate:>8.0} jobs/s");
        shipped.push(rate);
    }
    let ratio = shipped[2] / plain;
    println!(
        "ratio: the worker with 4 processes / plain loop = {ratio:.1}x (target >= 2x: {})",
        if ratio >= 2.0 { "met" } else { "MISSED" }
    );

    // -- claim latency ------------------------------------------------------------------------
    println!();
    let small = rt.block_on(claim_latency(dir.path(), 100, claims));
    let large = rt.block_on(claim_latency(dir.path(), 100_000, claims));
    for (queued, (p50, p99)) in [(100, small), (100_000, large)] {
        println!(
            "claim latency with {queued:>6} queued: p50 {:>7.1} µs  p99 {:>7.1} µs",
            micros(p50),
            micros(p99)
        );
    }
    let ratio = large.1.as_secs_f64() / small.1.as_secs_f64();
    println!(
        "p99 ratio 100,000 / 100 queued = {ratio:.2}x (target <= 2x: {})",
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

async fn sqlite_version(dir: &Path) -> String {
    let db = Db::open_file(&dir.join("version.db")).await.unwrap();
    let conn = db.connect().await.unwrap();
    shared::db::query_one(&conn, "SELECT sqlite_version()", (), |r| {
        shared::db::text(r, 0)
    })
    .await
    .unwrap()
}

/// A new migrated database file with one user.
async fn fresh(dir: &Path, name: &str) -> (PathBuf, i64) {
    let path = dir.join(format!("{name}-{}.db", uuid::Uuid::new_v4().simple()));
    let db = Db::open_file(&path).await.unwrap();
    let conn = db.connect().await.unwrap();
    shared::migrations::migrate(&conn).await.unwrap();
    let user = users::insert(&conn, "bench@example.com", "x")
        .await
        .unwrap()
        .unwrap();
    (path, user.id)
}

/// Writes `n` new videos, each with its job (the API's write), `per_tx` per transaction;
/// returns seconds taken.
async fn submit(path: &Path, user: i64, n: usize, per_tx: usize) -> f64 {
    let db = Db::open_file(path).await.unwrap();
    let conn = db.connect().await.unwrap();
    let items: Vec<_> = (0..n).map(|i| testkit::seed::new_video(user, i)).collect();
    let started = Instant::now();
    for chunk in items.chunks(per_tx) {
        testkit::seed::videos_with_jobs(&conn, chunk).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// `Queue::enqueue` of `n` jobs, one per transaction, for videos written beforehand (untimed,
/// as the peers' tables are); returns seconds taken.
async fn enqueue_jobs(path: &Path, user: i64, n: usize) -> f64 {
    let db = Db::open_file(path).await.unwrap();
    let conn = db.connect().await.unwrap();
    let items: Vec<_> = (0..n).map(|i| testkit::seed::new_video(user, i)).collect();
    let now = conn.now();
    let steps: Vec<_> = items
        .iter()
        .map(|(video, _)| repo::video_sources::insert(video, now, None).unwrap())
        .collect();
    let videos: Vec<i64> = shared::db::transaction(&conn, &steps)
        .await
        .unwrap()
        .iter()
        .map(|rows| shared::db::int(&rows[0], 0).unwrap())
        .collect();
    let q = Queue::new(QueueConfig::default());
    let started = Instant::now();
    for (video, (_, job)) in videos.iter().zip(&items) {
        q.enqueue(&conn, *video, job).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

#[derive(Clone, Copy)]
enum Mode {
    /// One claim statement (LIMIT 1) and one completion statement per job.
    Plain,
    /// The shipped `Worker` with its default settings, running the dummy pipeline with no wait
    /// between steps: it claims its free slots in one statement, reports progress after each of
    /// the 4 steps but the last, and completes each job on its own.
    Worker,
}

/// Drains `jobs` jobs with `workers` OS threads (own runtime, own connection each); jobs/s.
fn drain(rt: &tokio::runtime::Runtime, dir: &Path, jobs: usize, workers: usize, mode: Mode) -> f64 {
    let (path, user) = rt.block_on(fresh(dir, "drain"));
    rt.block_on(async {
        let db = Db::open_file(&path).await.unwrap();
        let conn = db.connect().await.unwrap();
        let items: Vec<_> = (0..jobs)
            .map(|i| testkit::seed::new_video(user, i))
            .collect();
        for chunk in items.chunks(500) {
            testkit::seed::videos_with_jobs(&conn, chunk).await.unwrap();
        }
    });
    let barrier = Arc::new(Barrier::new(workers + 1));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let db = Arc::new(Db::open_file(&path).await.unwrap());
                    if let Mode::Worker = mode {
                        let worker = Worker::new(
                            db,
                            DummyPipeline::with_step(Duration::ZERO),
                            WorkerConfig {
                                concurrency: CONCURRENCY,
                                stop_when_idle: true,
                                max_run: Duration::from_secs(600),
                                ..WorkerConfig::from_env(&Env::from_pairs([])).unwrap()
                            },
                        );
                        barrier.wait();
                        let far = tokio::time::Instant::now() + Duration::from_secs(600);
                        let report = worker.run_until(far).await.unwrap();
                        assert_eq!(report.errors, 0, "{report:?}");
                        return report.completed;
                    }
                    let conn = db.connect().await.unwrap();
                    let q = Queue::new(QueueConfig::default());
                    let worker_id = format!("bench-{w}");
                    let summary = json!({"pipeline": "bench"});
                    let mut done = 0usize;
                    barrier.wait();
                    loop {
                        let claimed = q.claim(&conn, &worker_id, 1).await.unwrap();
                        if claimed.is_empty() {
                            break;
                        }
                        for job in &claimed {
                            assert!(q.complete(&conn, &job.lease, &summary).await.unwrap());
                        }
                        done += claimed.len();
                    }
                    done
                })
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let done: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(done, jobs, "every job completed exactly once");
    jobs as f64 / secs
}

/// p50/p99 of one claim (LIMIT 1) with `queued` jobs waiting; the queue is refilled after each
/// claim (outside the timing) so it stays at that depth.
async fn claim_latency(dir: &Path, queued: usize, samples: usize) -> (Duration, Duration) {
    let (path, user) = fresh(dir, "latency").await;
    let db = Db::open_file(&path).await.unwrap();
    let conn = db.connect().await.unwrap();
    let items: Vec<_> = (0..queued)
        .map(|i| testkit::seed::new_video(user, i))
        .collect();
    for chunk in items.chunks(1_000) {
        testkit::seed::videos_with_jobs(&conn, chunk).await.unwrap();
    }
    conn.execute("ANALYZE", ()).await.unwrap();
    let q = Queue::new(QueueConfig::default());
    let summary = json!({});
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let started = Instant::now();
        let job = q
            .claim(&conn, "latency", 1)
            .await
            .unwrap()
            .pop()
            .expect("a job");
        let took = started.elapsed();
        if i >= samples / 10 {
            times.push(took); // the first 10% warm the cache
        }
        q.complete(&conn, &job.lease, &summary).await.unwrap();
        testkit::seed::videos_with_jobs(&conn, &[testkit::seed::new_video(user, queued + i)])
            .await
            .unwrap();
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (pct(0.50), pct(0.99))
}
