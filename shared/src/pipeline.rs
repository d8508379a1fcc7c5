//! The processing pipeline a worker runs for a claimed job.
//!
//! A trait, so the AI stages (speech-to-text, segmentation, rendering) replace [`DummyPipeline`]
//! later without touching the queue or the worker, and tests plug in pipelines that fail.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::PooledConnection;
use serde_json::json;
use tokio::sync::Mutex;

use crate::db::DbError;
use crate::queue::{ClaimedJob, Lease, Queue};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Worth another attempt (a network hiccup, a busy service).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (the video is gone, the input is unusable).
    #[error("{0}")]
    Permanent(String),
    /// The job's lease was lost: another worker owns the job now. Stop and write nothing.
    #[error("the job's lease was lost")]
    LeaseLost,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl PipelineError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_) | Self::Db(_))
    }
}

pub trait Pipeline: Send + Sync + 'static {
    /// Shown in logs and in `result_summary`.
    fn name(&self) -> &'static str;

    /// How long one job usually takes: the worker stops taking jobs when less time than this
    /// (plus a margin) is left in its invocation.
    fn expected_duration(&self) -> Duration;

    /// Runs the job. Report progress through `progress` (which also proves the lease is still
    /// ours); the returned JSON becomes the job's `result_summary`.
    fn run<'a>(
        &'a self,
        job: &'a ClaimedJob,
        progress: &'a Progress,
    ) -> impl Future<Output = Result<serde_json::Value, PipelineError>> + Send + 'a;
}

/// A running job's line to the queue: progress reports double as heartbeats.
pub struct Progress {
    conn: Arc<Mutex<PooledConnection>>,
    queue: Queue,
    lease: Lease,
}

impl Progress {
    pub fn new(conn: Arc<Mutex<PooledConnection>>, queue: Queue, lease: Lease) -> Self {
        Self { conn, queue, lease }
    }

    /// Raises the job's progress (0–100; a lower value than stored changes nothing) and extends
    /// the lease. Fails with [`PipelineError::LeaseLost`] when the job is no longer ours.
    pub async fn report(&self, percent: f64) -> Result<(), PipelineError> {
        self.beat(Some(percent)).await
    }

    /// Extends the lease without changing progress.
    pub async fn heartbeat(&self) -> Result<(), PipelineError> {
        self.beat(None).await
    }

    async fn beat(&self, percent: Option<f64>) -> Result<(), PipelineError> {
        let conn = self.conn.lock().await;
        if self.queue.heartbeat(&conn, &self.lease, percent).await? {
            Ok(())
        } else {
            Err(PipelineError::LeaseLost)
        }
    }
}

/// The placeholder pipeline of this phase: a few timed steps (about 2 s in all), reporting
/// progress after each, then a summary. No AI yet.
#[derive(Debug, Clone)]
pub struct DummyPipeline {
    pub step: Duration,
    /// Jobs whose clip options name this `video_type` fail for good at their first step
    /// (`DUMMY_PIPELINE_FAILS_VIDEO_TYPE`; none by default): how a failure, and trying it again,
    /// is seen before a real pipeline can fail.
    pub fails_video_type: Option<String>,
}

impl DummyPipeline {
    pub const STEPS: [&'static str; 4] = [
        "fetch_source",
        "transcribe",
        "find_highlights",
        "render_clips",
    ];

    /// Steps of `step`, failing nothing.
    pub fn with_step(step: Duration) -> Self {
        Self {
            step,
            fails_video_type: None,
        }
    }
}

impl Default for DummyPipeline {
    fn default() -> Self {
        Self::with_step(Duration::from_millis(500))
    }
}

impl Pipeline for DummyPipeline {
    fn name(&self) -> &'static str {
        "dummy"
    }

    fn expected_duration(&self) -> Duration {
        self.step * Self::STEPS.len() as u32
    }

    async fn run<'a>(
        &'a self,
        job: &'a ClaimedJob,
        progress: &'a Progress,
    ) -> Result<serde_json::Value, PipelineError> {
        let started = Instant::now();
        let n = Self::STEPS.len();
        for (i, step) in Self::STEPS.iter().enumerate() {
            tokio::time::sleep(self.step).await;
            let video_type = job.payload.get("video_type").and_then(|v| v.as_str());
            if i == 0 && video_type.is_some() && video_type == self.fails_video_type.as_deref() {
                return Err(PipelineError::Permanent(format!(
                    "the dummy pipeline fails every {} video (DUMMY_PIPELINE_FAILS_VIDEO_TYPE)",
                    video_type.unwrap_or_default()
                )));
            }
            tracing::info!(step, "pipeline step done");
            if i + 1 < n {
                // the last step's 100 is written by the completion itself
                progress.report(100.0 * (i + 1) as f64 / n as f64).await?;
            }
        }
        Ok(json!({
            "pipeline": self.name(),
            "steps": Self::STEPS,
            "attempt": job.attempt(),
            "config": job.payload,
            "clips": [],
            "elapsed_ms": started.elapsed().as_millis() as u64,
        }))
    }
}
