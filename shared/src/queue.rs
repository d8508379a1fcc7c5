//! The durable job queue: `processing_jobs` is the queue.
//!
//! The promises of `queue.md`, and how each is kept:
//! 1. **No double claim** — [`Queue::claim`] is one `UPDATE … WHERE id IN (SELECT … LIMIT n) AND
//!    status = 'queued' RETURNING …` statement: atomic on a local file and over a remote libSQL
//!    connection alike. It can take several jobs at once (one commit for all), each with its own
//!    random lease token.
//! 2. **Nothing lost** — a claim sets `lease_expires_at`; [`Queue::heartbeat`] extends it while the
//!    job runs; [`Queue::reap`] puts jobs with an expired lease back to `queued` (the attempt stays
//!    counted) or, once `attempts` reached `max_attempts`, to `failed` with an `error_message`.
//! 3. **Exactly one finisher** — heartbeat, complete and fail all require the claim's
//!    `lease_token` and `status = 'running'`. Reaping clears the token and every claim draws a
//!    new one, so a worker that lost its lease changes nothing (`Ok(false)` / `LeaseLost`).
//! 4. **Retry with back-off** — [`Queue::fail`] re-queues with `run_after` = now + an
//!    exponential delay with jitter (see [`Queue::retry_delay`]) and keeps the error.
//! 5. **Consistent video status** — triggers of migration 0001 move the video with its job in
//!    the same statement: running → `processing`, completed → `ready`, failed → `failed`;
//!    another trigger makes `ready` final.
//! 6. **Progress only rises** — writes use `max(progress, ?)`, and a trigger refuses a decrease.

use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::Serialize;

use crate::config::QueueConfig;
use crate::db::{self, retry_busy, DbError, PooledConnection};
use crate::repo::processing_jobs::{self, NewJob, ProcessingJob};

/// Proof of a claim: only its holder may heartbeat, complete or fail the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: i64,
    pub token: String,
    /// Which attempt this claim is (1 for the first claim).
    pub attempt: i64,
}

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub lease: Lease,
    pub video_source_id: i64,
    pub job_type: String,
    pub payload: serde_json::Value,
    pub max_attempts: i64,
    /// Progress already reached by an earlier attempt (progress never goes back).
    pub progress: f64,
    pub lease_expires_at: DateTime<Utc>,
}

impl ClaimedJob {
    pub fn id(&self) -> i64 {
        self.lease.job_id
    }

    pub fn attempt(&self) -> i64 {
        self.lease.attempt
    }

    pub fn is_last_attempt(&self) -> bool {
        self.lease.attempt >= self.max_attempts
    }
}

/// What [`Queue::fail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back in the queue, claimable from `run_after`.
    Retrying { run_after: DateTime<Utc> },
    /// Failed for good (job and video `failed`).
    Failed,
    /// The lease was no longer ours: nothing changed.
    LeaseLost,
}

/// What [`Queue::reap`] did with expired leases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reaped {
    pub requeued: Vec<i64>,
    pub failed: Vec<i64>,
}

/// Longest error message kept per job.
const MAX_ERROR_CHARS: usize = 2_000;

#[derive(Debug, Clone)]
pub struct Queue {
    cfg: QueueConfig,
}

impl Queue {
    pub fn new(cfg: QueueConfig) -> Self {
        Self { cfg }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    /// Enqueues a job for an existing video, committed on its own: `queued`, progress 0,
    /// claimable now. One INSERT, prepared once per connection. (A new video and its first job
    /// are written together by the API's ingest, through the same insert.)
    pub async fn enqueue(
        &self,
        conn: &PooledConnection,
        video_source_id: i64,
        job: &NewJob,
    ) -> Result<ProcessingJob, DbError> {
        retry_busy(|| processing_jobs::insert(conn, video_source_id, job, conn.now())).await
    }

    /// Claims up to `limit` claimable jobs (lowest turn first: users take turns) in one statement; each gets
    /// its own lease of [`QueueConfig::lease`]. The jobs' videos become `processing`.
    pub async fn claim(
        &self,
        conn: &PooledConnection,
        worker_id: &str,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, DbError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = conn.now();
        let expires = crate::time::truncate(now + self.cfg.lease);
        let (now_s, expires_s) = (crate::time::format(now), crate::time::format(expires));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut jobs = retry_busy(|| {
            let params = (
                expires_s.clone(),
                worker_id.to_owned(),
                now_s.clone(),
                limit,
            );
            async move {
                db::query_all(conn, CLAIM_SQL, params, |r| {
                    Ok(ClaimedJob {
                        lease: Lease {
                            job_id: db::int(r, 0)?,
                            token: db::text(r, 6)?,
                            attempt: db::int(r, 4)?,
                        },
                        video_source_id: db::int(r, 1)?,
                        job_type: db::text(r, 2)?,
                        payload: db::json(r, 3)?,
                        max_attempts: db::int(r, 5)?,
                        progress: db::real(r, 7)?,
                        lease_expires_at: expires,
                    })
                })
                .await
            }
        })
        .await?;
        jobs.sort_by_key(|j| j.lease.job_id);
        Ok(jobs)
    }

    /// Extends the lease (and raises progress, if given). `Ok(false)`: the lease is lost — stop.
    pub async fn heartbeat(
        &self,
        conn: &PooledConnection,
        lease: &Lease,
        progress: Option<f64>,
    ) -> Result<bool, DbError> {
        let now = conn.now();
        let progress = progress
            .filter(|p| p.is_finite())
            .map(|p| p.clamp(0.0, 100.0));
        let params = (
            crate::time::format(now + self.cfg.lease),
            crate::time::format(now),
            progress,
            lease.job_id,
            lease.token.clone(),
        );
        let changed = retry_busy(|| {
            let params = params.clone();
            async move {
                db::execute(
                    conn,
                    "UPDATE processing_jobs
                            SET lease_expires_at = ?1, updated_at = ?2,
                                progress = max(progress, coalesce(?3, progress))
                          WHERE id = ?4 AND lease_token = ?5 AND status = 'running'",
                    params,
                )
                .await
            }
        })
        .await?;
        Ok(changed == 1)
    }

    /// Completes a job: `completed`, progress 100, `result_summary` set, video `ready` — one
    /// statement. `Ok(false)`: the lease was lost and nothing changed.
    pub async fn complete(
        &self,
        conn: &PooledConnection,
        lease: &Lease,
        result_summary: &serde_json::Value,
    ) -> Result<bool, DbError> {
        let summary = result_summary.to_string();
        let now = crate::time::format(conn.now());
        let changed = retry_busy(|| {
            let params = (
                summary.clone(),
                now.clone(),
                lease.job_id,
                lease.token.clone(),
            );
            async move { db::execute(conn, COMPLETE_SQL, params).await }
        })
        .await?;
        Ok(changed == 1)
    }

    /// Records a failed attempt. A `retryable` error with attempts left re-queues the job with
    /// back-off; otherwise job and video become `failed`. The error is kept either way.
    pub async fn fail(
        &self,
        conn: &PooledConnection,
        job: &ClaimedJob,
        error: &str,
        retryable: bool,
    ) -> Result<FailOutcome, DbError> {
        let now = conn.now();
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let lease = &job.lease;
        let (sql, params, outcome) = if retryable && !job.is_last_attempt() {
            let run_after = crate::time::truncate(now + self.retry_delay(lease.attempt));
            let params = (
                crate::time::format(run_after),
                error,
                crate::time::format(now),
                lease.job_id,
                lease.token.clone(),
            );
            (RETRY_SQL, params, FailOutcome::Retrying { run_after })
        } else {
            let error = format!("attempt {} of {}: {error}", lease.attempt, job.max_attempts);
            let params = (
                crate::time::format(now),
                error,
                crate::time::format(now),
                lease.job_id,
                lease.token.clone(),
            );
            (FAIL_SQL, params, FailOutcome::Failed)
        };
        let changed = retry_busy(|| {
            let params = params.clone();
            async move { db::execute(conn, sql, params).await }
        })
        .await?;
        Ok(if changed == 1 {
            outcome
        } else {
            FailOutcome::LeaseLost
        })
    }

    /// Whether a claim now would find a job: one read of the claim's partial index, no write
    /// lock. A worker that found the queue empty asks this before claiming again, so polling an
    /// idle queue never takes SQLite's write lock from the API's writers (and skips preparing
    /// the claim's UPDATE with its triggers).
    pub async fn has_claimable(&self, conn: &PooledConnection) -> Result<bool, DbError> {
        Ok(self.look(conn).await?.claimable)
    }

    /// What an idle poll needs to know, in one read (one round trip) of the claim's and the
    /// reaper's partial indexes: is any lease expired, is any job claimable?
    pub async fn look(&self, conn: &PooledConnection) -> Result<Look, DbError> {
        let now = crate::time::format(conn.now());
        retry_busy(|| {
            let now = now.clone();
            async move {
                db::query_one(conn, LOOK_SQL, [now], |r| {
                    Ok(Look {
                        expired: db::int(r, 0)? != 0,
                        claimable: db::int(r, 1)? != 0,
                    })
                })
                .await
            }
        })
        .await
    }

    /// Returns jobs whose lease expired to the queue, or fails them when no attempt is left.
    /// A read comes first: with no expired lease (the usual case) no write lock is taken.
    pub async fn reap(&self, conn: &PooledConnection) -> Result<Reaped, DbError> {
        if !self.look(conn).await?.expired {
            return Ok(Reaped::default());
        }
        self.reap_expired(conn).await
    }

    /// [`Queue::reap`] without its read, for a caller that has just [looked](Queue::look).
    pub async fn reap_expired(&self, conn: &PooledConnection) -> Result<Reaped, DbError> {
        let now = crate::time::format(conn.now());
        let rows = retry_busy(|| {
            let now = now.clone();
            async move {
                db::query_all(conn, REAP_SQL, [now], |r| {
                    Ok((db::int(r, 0)?, db::text(r, 1)?))
                })
                .await
            }
        })
        .await?;
        let mut reaped = Reaped::default();
        for (id, status) in rows {
            if status == "failed" {
                reaped.failed.push(id);
            } else {
                reaped.requeued.push(id);
            }
        }
        reaped.requeued.sort_unstable();
        reaped.failed.sort_unstable();
        if !reaped.requeued.is_empty() || !reaped.failed.is_empty() {
            tracing::warn!(requeued = ?reaped.requeued, failed = ?reaped.failed, "reaped expired leases");
        }
        Ok(reaped)
    }

    /// The delay before retry number `attempt` + 1: `retry_base · 2^(attempt-1)`, capped at
    /// `retry_max`, with "equal jitter" (uniform in [d/2, d]). Consecutive delays never shrink
    /// (below the cap), and workers failing together do not retry in lock-step.
    pub fn retry_delay(&self, attempt: i64) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(30);
        let full = self
            .cfg
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.cfg.retry_max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The claim: the claimable jobs of the lowest turns (migration 0005: users take turns, one job
/// each). The subquery walks the partial index `processing_jobs_turns` (named, so the planner
/// never sorts the queue instead), skipping only jobs still in back-off; the outer
/// `status = 'queued'` re-check keeps it correct whatever the isolation of a remote server.
pub const CLAIM_SQL: &str = "UPDATE processing_jobs
    SET status = 'running', attempts = attempts + 1,
        lease_token = lower(hex(randomblob(16))), lease_expires_at = ?1,
        worker_id = ?2, updated_at = ?3
  WHERE id IN (SELECT id FROM processing_jobs INDEXED BY processing_jobs_turns
                WHERE status = 'queued' AND run_after <= ?3
                ORDER BY turn, id
                LIMIT ?4)
    AND status = 'queued'
  RETURNING id, video_source_id, job_type, payload, attempts, max_attempts, lease_token, progress";

const COMPLETE_SQL: &str = "UPDATE processing_jobs
    SET status = 'completed', progress = 100.0, result_summary = ?1, error_message = NULL,
        lease_token = NULL, lease_expires_at = NULL, finished_at = ?2, updated_at = ?2
  WHERE id = ?3 AND lease_token = ?4 AND status = 'running'";

const RETRY_SQL: &str = "UPDATE processing_jobs
    SET status = 'queued', run_after = ?1, error_message = ?2,
        lease_token = NULL, lease_expires_at = NULL, updated_at = ?3
  WHERE id = ?4 AND lease_token = ?5 AND status = 'running'";

const FAIL_SQL: &str = "UPDATE processing_jobs
    SET status = 'failed', finished_at = ?1, error_message = ?2,
        lease_token = NULL, lease_expires_at = NULL, updated_at = ?3
  WHERE id = ?4 AND lease_token = ?5 AND status = 'running'";

/// Reads of the claim's and the reaper's partial indexes: is there anything to write?
pub const CLAIMABLE_SQL: &str = "SELECT EXISTS (SELECT 1 FROM processing_jobs
    WHERE status = 'queued' AND run_after <= ?1)";
pub const EXPIRED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM processing_jobs
    WHERE status = 'running' AND lease_expires_at < ?1)";
/// Both in one statement ([`Queue::look`]).
pub const LOOK_SQL: &str = "SELECT
    EXISTS (SELECT 1 FROM processing_jobs WHERE status = 'running' AND lease_expires_at < ?1),
    EXISTS (SELECT 1 FROM processing_jobs WHERE status = 'queued' AND run_after <= ?1)";

/// What [`Queue::look`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub expired: bool,
    pub claimable: bool,
}

/// The reaper's write: every expired lease back to the queue, or failed when no attempt is left.
pub const REAP_SQL: &str = "UPDATE processing_jobs
    SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
        error_message = 'attempt ' || attempts || ' of ' || max_attempts
            || ': the worker stopped before finishing (its lease expired)',
        finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END,
        run_after = ?1, lease_token = NULL, lease_expires_at = NULL, updated_at = ?1
  WHERE status = 'running' AND lease_expires_at < ?1
  RETURNING id, status";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_within_bounds() {
        let q = Queue::new(QueueConfig {
            retry_base: Duration::from_secs(4),
            retry_max: Duration::from_secs(60),
            ..QueueConfig::default()
        });
        for _ in 0..200 {
            let d1 = q.retry_delay(1);
            let d2 = q.retry_delay(2);
            let d3 = q.retry_delay(3);
            assert!(
                d1 >= Duration::from_secs(2) && d1 <= Duration::from_secs(4),
                "{d1:?}"
            );
            assert!(
                d2 >= Duration::from_secs(4) && d2 <= Duration::from_secs(8),
                "{d2:?}"
            );
            assert!(
                d3 >= Duration::from_secs(8) && d3 <= Duration::from_secs(16),
                "{d3:?}"
            );
            assert!(d1 <= d2 && d2 <= d3);
            assert!(q.retry_delay(40) <= Duration::from_secs(60), "capped");
        }
    }
}
