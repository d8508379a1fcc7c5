//! The scheduled worker function: each invocation (an EventBridge scheduled event every minute
//! in the cloud, a ticker locally, or a bare `{}`) runs [`shared::worker::Worker`] until its
//! time budget is spent.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lambda_runtime::{Error, LambdaEvent};
use shared::app::{Starting, StartupError};
use shared::config::{ConfigError, DatabaseUrl, Env, WorkerConfig};
use shared::db::Db;
use shared::ingest::upload_end::SweepReport as UploadSweepReport;
use shared::ingest::IngestConfig;
use shared::pipeline::DummyPipeline;
use shared::storage::{LazyStorage, StorageConfig};
use shared::videos::Purged;
use shared::worker::{RunReport, Worker};
use tokio::time::Instant;

/// Built once per cold start.
pub struct AppState {
    pub worker: Worker<DummyPipeline>,
    /// Set when the object store is configured (`S3_BUCKET`): each tick also expires large
    /// uploads nobody completed, cleans up their leftovers, and removes the objects of deleted
    /// videos that their delete request could not remove.
    pub sweep: Option<StoreSweep>,
}

/// The store sweep's database, store and timing.
pub struct StoreSweep {
    pub db: Arc<Db>,
    /// Connected on the first object to remove (most ticks have none).
    pub storage: LazyStorage,
    /// How long after its URLs expire an upload may still be completed.
    pub grace: Duration,
}

/// Uploads cleaned, and deleted videos purged, per tick at most (the rest wait for the next).
const SWEEP_LIMIT: u32 = 100;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub uploads: UploadSweepReport,
    pub deleted_videos: Purged,
}

impl StoreSweep {
    /// One sweep; failures are logged, never fatal to the tick.
    pub async fn run(&self) -> Option<SweepReport> {
        let result = async {
            let conn = self.db.connect().await?;
            let uploads =
                shared::ingest::upload_end::sweep(&conn, &self.storage, self.grace, SWEEP_LIMIT)
                    .await?;
            let deleted_videos =
                shared::videos::purge_deleted(&conn, &self.storage, SWEEP_LIMIT).await?;
            Ok::<_, shared::db::DbError>(SweepReport {
                uploads,
                deleted_videos,
            })
        }
        .await;
        match result {
            Ok(report) => {
                if report != SweepReport::default() {
                    tracing::info!(?report, "store sweep");
                }
                Some(report)
            }
            Err(e) => {
                tracing::error!(error = %e, "store sweep failed");
                None
            }
        }
    }
}

/// The worker's configuration, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    database: DatabaseUrl,
    worker: WorkerConfig,
    step: Duration,
    /// `DUMMY_PIPELINE_FAILS_VIDEO_TYPE`: the dummy pipeline fails videos of this type.
    fails_video_type: Option<String>,
    /// The object store and the upload grace, when `S3_BUCKET` is set.
    store: Option<(StorageConfig, Duration)>,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database = DatabaseUrl::from_env(env)?;
        let worker = WorkerConfig::from_env(env)?;
        let step = env.seconds("DUMMY_PIPELINE_STEP_SECONDS", 0.5, 60.0)?;
        let fails_video_type = env.optional("DUMMY_PIPELINE_FAILS_VIDEO_TYPE");
        let store = match env.optional("S3_BUCKET") {
            Some(_) => Some((
                StorageConfig::from_env(env)?,
                IngestConfig::from_env(env)?.upload_complete_grace,
            )),
            None => None,
        };
        Ok(Self {
            database,
            worker,
            step,
            fails_video_type,
            store,
        })
    }
}

impl AppState {
    /// Reads configuration, opens the database and applies pending migrations.
    pub async fn from_env(env: &Env) -> Result<Self, Error> {
        Ok(Self::open(Settings::from_env(env)?).await?)
    }

    /// The state opening in the background while the runtime asks for the first event
    /// ([`Starting`]); a bad configuration is an error at once.
    pub fn starting(env: &Env) -> Result<Starting<Self>, ConfigError> {
        let settings = Settings::from_env(env)?;
        Ok(Starting::spawn(move || Self::open(settings.clone())))
    }

    /// Opens the database (applying pending migrations); the object store is connected when
    /// the upload sweep first has something to clean.
    pub async fn open(settings: Settings) -> Result<Self, StartupError> {
        let db = Db::open(&settings.database).await?;
        shared::migrations::migrate(&db.connect().await?).await?;
        let db = Arc::new(db);
        let sweep = settings.store.map(|(storage, grace)| StoreSweep {
            db: db.clone(),
            storage: LazyStorage::on_first_use(storage),
            grace,
        });
        let worker = Worker::new(
            db,
            DummyPipeline {
                step: settings.step,
                fails_video_type: settings.fails_video_type,
            },
            settings.worker,
        );
        tracing::info!(worker = worker.id(), config = ?worker.config(), sweeps_the_store = sweep.is_some(), "worker ready");
        Ok(Self { worker, sweep })
    }
}

/// One invocation. The event's content does not matter (a scheduled event or `{}`); the time
/// budget is the invocation's deadline, capped by `WORKER_MAX_RUN_SECONDS`.
pub async fn handler(
    state: &AppState,
    event: LambdaEvent<serde_json::Value>,
) -> Result<RunReport, Error> {
    let trigger = event
        .payload
        .get("detail-type")
        .and_then(|v| v.as_str())
        .unwrap_or("direct");
    let deadline = deadline_of(&event.context);
    tracing::info!(
        trigger,
        request_id = %event.context.request_id,
        deadline_ms = event.context.deadline,
        budget_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
        "worker invoked"
    );
    if let Some(sweep) = &state.sweep {
        sweep.run().await;
    }
    Ok(state.worker.run_until(deadline).await?)
}

/// The invocation's deadline as an `Instant`; far away when the platform gave none (the
/// worker's own cap then applies). A "deadline" that is no plausible epoch time (before
/// 2001 — `cargo lambda watch` sends its timeout, e.g. 600000, in this header) counts as none.
fn deadline_of(ctx: &lambda_runtime::Context) -> Instant {
    const PLAUSIBLE_EPOCH_MS: u64 = 978_307_200_000; // 2001-01-01
    let far = Instant::now() + Duration::from_secs(24 * 3600);
    if ctx.deadline < PLAUSIBLE_EPOCH_MS {
        return far;
    }
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(ctx.deadline);
    match deadline.duration_since(SystemTime::now()) {
        Ok(left) => Instant::now() + left,
        Err(_) => Instant::now(), // already past: take no job
    }
}

/// Without the Lambda runtime: invocation after invocation, forever (`worker --standalone`).
/// For running the queue as a plain process (and for the tests that kill one).
pub async fn run_standalone(state: &AppState) -> Result<(), Error> {
    loop {
        if let Some(sweep) = &state.sweep {
            sweep.run().await;
        }
        let report = state
            .worker
            .run_until(Instant::now() + state.worker.config().max_run)
            .await?;
        if report.claimed == 0 {
            tokio::time::sleep(state.worker.config().poll_interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_deadline_leaves_no_time_and_a_missing_or_implausible_one_means_the_cap_applies() {
        let mut ctx = lambda_runtime::Context::default();
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        ctx.deadline = now_ms - 1_000; // a second ago
        assert!(deadline_of(&ctx) <= Instant::now());
        for none in [0, 600_000] {
            // absent, or cargo lambda watch's timeout in place of a deadline
            ctx.deadline = none;
            assert!(deadline_of(&ctx) > Instant::now() + Duration::from_secs(3600));
        }
        let in_30s = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            + Duration::from_secs(30);
        ctx.deadline = in_30s.as_millis() as u64;
        let left = deadline_of(&ctx).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(28) && left <= Duration::from_secs(30),
            "{left:?}"
        );
    }
}
