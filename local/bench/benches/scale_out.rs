//! Scale-out: 8 worker processes (`worker --standalone`, the shipped binary) drain 2,000 queued
//! jobs from one database, a SQLite file and then a libSQL server (`sqld`, JWT auth on). Every
//! job must end `completed` after exactly one claim (`attempts` = 1).
//!
//! `local/bench/scale_out.sh` (builds the release worker, then
//! `WORKER_BIN=target/release/worker cargo bench -p bench --bench scale_out`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bench::machine;
use serde_json::json;
use shared::db::{self, Db};
use shared::repo::{self, processing_jobs::NewJob, video_sources::NewVideoSource};
use testkit::sqld::Sqld;
use testkit::TestDatabase;

const JOBS: usize = 2_000;
const PROCESSES: usize = 8;
/// Jobs each process runs at once (`WORKER_CONCURRENCY`): the shipped default.
const CONCURRENCY: &str = "4";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bin = std::env::var("WORKER_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/worker").to_owned()
    });
    println!(
        "# Scale-out: {PROCESSES} worker processes (WORKER_CONCURRENCY={CONCURRENCY}) drain {JOBS} jobs, {}",
        machine()
    );
    println!("# command: local/bench/scale_out.sh");
    println!("| database | processes | jobs | drained in | jobs/s | claims per job | processes that took jobs |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for server in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let database = if server {
            TestDatabase::Server(Sqld::start())
        } else {
            TestDatabase::File(dir.path().join("scale.db"))
        };
        rt.block_on(run(
            &bin,
            &database,
            if server {
                "libSQL server (sqld)"
            } else {
                "SQLite file"
            },
        ));
    }
}

async fn run(bin: &str, database: &TestDatabase, label: &str) {
    let db = database.open().await;
    let conn = db.connect().await.unwrap();
    shared::migrations::migrate(&conn).await.unwrap();
    let user = repo::users::insert(&conn, "scale@example.com", "x")
        .await
        .unwrap()
        .unwrap();
    let items: Vec<_> = (0..JOBS)
        .map(|i| {
            let id = format!("{i:011}");
            (
                NewVideoSource {
                    user_id: user.id,
                    source_type: Some(shared::model::SourceType::Youtube),
                    source_url: Some(format!("https://www.youtube.com/watch?v={id}")),
                    youtube_video_id: Some(id),
                    ..Default::default()
                },
                NewJob {
                    job_type: shared::model::JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
                    payload: json!({"video_type": "auto"}),
                    max_attempts: 3,
                },
            )
        })
        .collect();
    for chunk in items.chunks(250) {
        testkit::seed::videos_with_jobs(&conn, chunk).await.unwrap();
    }

    let started = Instant::now();
    let mut workers: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new(bin)
                .arg("--standalone")
                .env("DATABASE_URL", database.url_string())
                .env("DATABASE_AUTH_TOKEN", database.auth_token())
                .env("WORKER_CONCURRENCY", CONCURRENCY)
                .env("DUMMY_PIPELINE_STEP_SECONDS", "0.001")
                .env("POLL_INTERVAL_SECONDS", "0.05")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("{bin}: {e} (build it: cargo build --release -p worker)")
                })
        })
        .collect();
    let done = loop {
        let done = count(
            &db,
            "SELECT count(*) FROM processing_jobs WHERE status = 'completed'",
        )
        .await;
        if done as usize == JOBS || started.elapsed() > Duration::from_secs(600) {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert_eq!(done as usize, JOBS, "{label}: every job completed");
    let claims = count(&db, "SELECT sum(attempts) FROM processing_jobs").await;
    assert_eq!(
        claims as usize, JOBS,
        "{label}: each job claimed exactly once"
    );
    let not_once = count(
        &db,
        "SELECT count(*) FROM processing_jobs WHERE attempts <> 1",
    )
    .await;
    assert_eq!(not_once, 0, "{label}: each job claimed exactly once");
    let took_part = count(&db, "SELECT count(DISTINCT worker_id) FROM processing_jobs").await;
    println!(
        "| {label} | {PROCESSES} | {JOBS} | {:.2} s | {:.0} | {:.2} | {took_part} |",
        took.as_secs_f64(),
        JOBS as f64 / took.as_secs_f64(),
        claims as f64 / JOBS as f64
    );
}

async fn count(db: &Db, sql: &str) -> i64 {
    let conn = db.connect().await.unwrap();
    db::query_one(&conn, sql, (), |r| db::int(r, 0))
        .await
        .unwrap()
}
