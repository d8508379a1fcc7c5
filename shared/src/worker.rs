//! The worker loop: one invocation of the scheduled worker function.
//!
//! Until its deadline it reaps expired leases, claims as many jobs as it has free slots (one
//! statement), runs each on its own task and its own connection, and polls an empty queue every
//! `poll_interval`. It stops taking jobs when less than a job's expected duration (plus a margin)
//! is left, and returns once its jobs are done.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::db::{Db, DbError};
use crate::pipeline::{Pipeline, PipelineError, Progress};
use crate::queue::{ClaimedJob, FailOutcome, Queue};

/// Time kept in hand beyond a job's expected duration before the deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// What one invocation did (also the worker function's response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub claimed: usize,
    pub completed: usize,
    pub retried: usize,
    pub failed: usize,
    /// Jobs this worker finished after losing their lease (their result was discarded).
    pub lease_lost: usize,
    pub reaped_requeued: usize,
    pub reaped_failed: usize,
    /// Database errors met (each logged); jobs involved are recovered through their leases.
    pub errors: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobOutcome {
    Completed,
    Retrying,
    Failed,
    LeaseLost,
    Error,
}

pub struct Worker<P> {
    db: Arc<Db>,
    queue: Queue,
    pipeline: Arc<P>,
    cfg: WorkerConfig,
    id: String,
}

impl<P: Pipeline> Worker<P> {
    pub fn new(db: Arc<Db>, pipeline: P, cfg: WorkerConfig) -> Self {
        let id = format!(
            "worker-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        Self {
            db,
            queue: Queue::new(cfg.queue.clone()),
            pipeline: Arc::new(pipeline),
            cfg,
            id,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
    }

    /// Runs until `deadline` (capped at `max_run` from now), or until idle when
    /// `stop_when_idle` is set.
    pub async fn run_until(&self, deadline: Instant) -> Result<RunReport, DbError> {
        let deadline = deadline.min(Instant::now() + self.cfg.max_run);
        let conn = self.db.connect().await?;
        let needed = self.pipeline.expected_duration() + DEADLINE_MARGIN;
        let mut running: JoinSet<JobOutcome> = JoinSet::new();
        let mut report = RunReport::default();
        let mut last_reap: Option<Instant> = None;
        // Until a claim finds jobs, a read checks for one before the claim's write
        // ([`Queue::has_claimable`]); while claims find jobs, they claim straight away.
        let mut queue_looked_empty = true;

        loop {
            let reap_due = last_reap.is_none_or(|t| t.elapsed() >= self.cfg.poll_interval);
            let time_left = deadline.saturating_duration_since(Instant::now());
            let may_start = time_left > needed;
            let free = self.cfg.concurrency.saturating_sub(running.len());
            let wants_jobs = may_start && free > 0;
            // One read tells both whether a lease expired and whether a claim would find a
            // job: an idle poll is that one read ([`Queue::look`]).
            let look = if reap_due || (wants_jobs && queue_looked_empty) {
                match self.queue.look(&conn).await {
                    Ok(look) => Some(look),
                    Err(e) => {
                        report.errors += 1;
                        tracing::error!(error = %e, "looking at the queue failed");
                        None
                    }
                }
            } else {
                None
            };
            if reap_due {
                last_reap = Some(Instant::now());
                if look.is_some_and(|l| l.expired) {
                    match self.queue.reap_expired(&conn).await {
                        Ok(r) => {
                            report.reaped_requeued += r.requeued.len();
                            report.reaped_failed += r.failed.len();
                        }
                        Err(e) => {
                            report.errors += 1;
                            tracing::error!(error = %e, "reaping expired leases failed");
                        }
                    }
                }
            }
            let mut claimed = 0;
            if wants_jobs {
                // Until a claim finds jobs, the look decides whether to claim; while claims
                // find jobs, they claim straight away. A reap that just ran requeued jobs.
                let worth_claiming =
                    !queue_looked_empty || look.is_some_and(|l| l.claimable || l.expired);
                let outcome = if worth_claiming {
                    self.queue.claim(&conn, &self.id, free).await
                } else {
                    Ok(Vec::new())
                };
                match outcome {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        queue_looked_empty = claimed == 0;
                        report.claimed += claimed;
                        for job in jobs {
                            running.spawn(execute(
                                self.db.clone(),
                                self.queue.clone(),
                                self.pipeline.clone(),
                                job,
                            ));
                        }
                    }
                    Err(e) => {
                        report.errors += 1;
                        tracing::error!(error = %e, "claiming jobs failed");
                    }
                }
            }

            if running.is_empty() && (!may_start || (self.cfg.stop_when_idle && claimed == 0)) {
                break;
            }
            if running.is_empty() {
                // An empty queue: poll again later (never past the point where starting is allowed).
                let wait = self.cfg.poll_interval.min(time_left.saturating_sub(needed));
                tokio::time::sleep(wait).await;
                continue;
            }
            // Jobs run: go round again as soon as one finishes (a free slot), or at the next poll.
            tokio::select! {
                Some(done) = running.join_next() => record(&mut report, done),
                _ = tokio::time::sleep(self.cfg.poll_interval) => {}
            }
            while let Some(done) = running.try_join_next() {
                record(&mut report, done);
            }
        }
        tracing::info!(worker = %self.id, ?report, "worker run finished");
        Ok(report)
    }
}

fn record(report: &mut RunReport, done: Result<JobOutcome, tokio::task::JoinError>) {
    match done {
        Ok(JobOutcome::Completed) => report.completed += 1,
        Ok(JobOutcome::Retrying) => report.retried += 1,
        Ok(JobOutcome::Failed) => report.failed += 1,
        Ok(JobOutcome::LeaseLost) => report.lease_lost += 1,
        Ok(JobOutcome::Error) => report.errors += 1,
        Err(e) => {
            // A panicking pipeline: its lease expires and the reaper takes the job back.
            report.errors += 1;
            tracing::error!(error = %e, "a job task panicked");
        }
    }
}

/// Runs one claimed job to its end on a connection of its own, heartbeating meanwhile.
async fn execute<P: Pipeline>(
    db: Arc<Db>,
    queue: Queue,
    pipeline: Arc<P>,
    job: ClaimedJob,
) -> JobOutcome {
    let span = tracing::info_span!(
        "job",
        job_id = job.id(),
        attempt = job.attempt(),
        job_type = %job.job_type,
        video_source_id = job.video_source_id,
    );
    async move {
        tracing::info!(pipeline = pipeline.name(), "job started");
        let conn = match db.connect().await {
            Ok(conn) => Arc::new(Mutex::new(conn)),
            Err(e) => {
                tracing::error!(error = %e, "no database connection for the job; its lease will expire");
                return JobOutcome::Error;
            }
        };
        let progress = Progress::new(conn.clone(), queue.clone(), job.lease.clone());
        let every = queue.config().lease / 3;
        let mut beats = tokio::time::interval_at(Instant::now() + every, every);
        beats.set_missed_tick_behavior(MissedTickBehavior::Delay);

        // The pipeline and the heartbeats are polled together: a heartbeat waiting for the
        // connection that a progress report holds across a network round trip must not stop
        // that report from finishing (on a remote database both would wait for ever). Both are
        // dropped before the connection is taken for the job's last write.
        let result = {
            let beating = async {
                loop {
                    beats.tick().await;
                    match progress.heartbeat().await {
                        Ok(()) => {}
                        Err(PipelineError::LeaseLost) => return PipelineError::LeaseLost,
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; will try again"),
                    }
                }
            };
            tokio::select! {
                r = pipeline.run(&job, &progress) => r,
                lost = beating => Err(lost),
            }
        };

        let conn = conn.lock().await;
        let outcome = match result {
            Ok(summary) => match queue.complete(&conn, &job.lease, &summary).await {
                Ok(true) => JobOutcome::Completed,
                Ok(false) => JobOutcome::LeaseLost,
                Err(e) => {
                    tracing::error!(error = %e, "completing the job failed; its lease will expire");
                    JobOutcome::Error
                }
            },
            Err(PipelineError::LeaseLost) => JobOutcome::LeaseLost,
            Err(err) => {
                tracing::warn!(error = %err, retryable = err.is_retryable(), "pipeline failed");
                match queue.fail(&conn, &job, &err.to_string(), err.is_retryable()).await {
                    Ok(FailOutcome::Retrying { run_after }) => {
                        tracing::info!(%run_after, "job re-queued");
                        JobOutcome::Retrying
                    }
                    Ok(FailOutcome::Failed) => JobOutcome::Failed,
                    Ok(FailOutcome::LeaseLost) => JobOutcome::LeaseLost,
                    Err(e) => {
                        tracing::error!(error = %e, "recording the failure failed; its lease will expire");
                        JobOutcome::Error
                    }
                }
            }
        };
        match outcome {
            JobOutcome::LeaseLost => tracing::warn!("the job's lease was lost; result discarded"),
            other => tracing::info!(outcome = ?other, "job finished"),
        }
        outcome
    }
    .instrument(span)
    .await
}
