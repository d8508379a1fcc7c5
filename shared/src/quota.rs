//! Per-user quotas: how much work one account may start. Checked inside the writes that start
//! it (migration 0006's `quota_checks`), as their first step, so the check costs no round trip
//! of its own and two requests at once cannot both slip under a limit (the writes are
//! serialised by the database's write lock).
//!
//! - At most [`Quotas::active_jobs`] videos waiting or processing at once (each has its one
//!   queued or running job): a new video, an upload's start and a retry are refused above it.
//! - At most [`Quotas::videos_per_hour`] new videos in any hour, deleted ones included: a new
//!   video and an upload's start are refused above it (a retry is not a new video).
//!
//! A refused write writes nothing and answers `429 rate_limited` with `Retry-After`.

use chrono::{DateTime, Utc};

use crate::config::{ConfigError, Env};
use crate::db::{self, DbError, PooledConnection};
use crate::error::ApiError;
use crate::repo::idempotency_keys::IdempotencyKey;

/// `Retry-After` when the limit of videos at once is reached: there is no telling when one of
/// them finishes, so about the time a short job takes.
pub const ACTIVE_RETRY_AFTER_SECONDS: u64 = 60;

const HOUR: chrono::Duration = chrono::Duration::hours(1);

/// What the trigger of migration 0006 raises, per limit.
const ACTIVE_MESSAGE: &str = "quota: queued or running jobs";
const HOURLY_MESSAGE: &str = "quota: new videos per hour";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// `MAX_ACTIVE_JOBS_PER_USER` (default 20): videos waiting or processing at once.
    pub active_jobs: u32,
    /// `MAX_NEW_VIDEOS_PER_HOUR` (default 60): new videos in any hour.
    pub videos_per_hour: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            active_jobs: 20,
            videos_per_hour: 60,
        }
    }
}

impl Quotas {
    /// Limits no test or benchmark reaches (what a load test of one account runs with).
    pub const LIFTED: Self = Self {
        active_jobs: 1_000_000,
        videos_per_hour: 1_000_000,
    };

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            active_jobs: env.int_in(
                "MAX_ACTIVE_JOBS_PER_USER",
                d.active_jobs.into(),
                1..=1_000_000,
            )? as u32,
            videos_per_hour: env.int_in(
                "MAX_NEW_VIDEOS_PER_HOUR",
                d.videos_per_hour.into(),
                1..=1_000_000,
            )? as u32,
        })
    }

    /// The first step of a write that starts work for `user_id`: `new_video` (a video or an
    /// upload that becomes one) counts against both limits, a retry only against the videos at
    /// once. It checks nothing when `unless_key` is recorded already: that request is a repeat,
    /// which gets its first answer.
    pub fn check(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
        new_video: bool,
        unless_key: Option<&IdempotencyKey>,
    ) -> Result<db::Stmt, DbError> {
        let (key_user, key_route, key) = IdempotencyKey::columns(unless_key);
        let max_new = new_video.then_some(i64::from(self.videos_per_hour));
        db::Stmt::new(
            "INSERT INTO quota_checks (user_id, max_active, max_new, since)
             SELECT ?1, ?2, ?3, ?4
              WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys
                                 WHERE user_id = ?5 AND route = ?6 AND key = ?7)",
            libsql::params![
                user_id,
                i64::from(self.active_jobs),
                max_new,
                crate::time::format(now - HOUR),
                key_user,
                key_route,
                key,
            ],
        )
    }

    /// A write's database error as the API answers it: a [`Quotas::check`] that refused is a 429
    /// naming the limit (for the hourly one, a read says when the next video may come); any other
    /// error as [`ApiError::from_write`] has it.
    pub async fn refusal(&self, conn: &PooledConnection, user_id: i64, e: DbError) -> ApiError {
        let text = e.to_string();
        if text.contains(ACTIVE_MESSAGE) {
            self.too_many_at_once()
        } else if text.contains(HOURLY_MESSAGE) {
            match self.next_hourly_slot(conn, user_id).await {
                Ok(seconds) => self.too_many_this_hour(seconds),
                Err(e) => e.into(),
            }
        } else {
            ApiError::from_write(e)
        }
    }

    fn too_many_at_once(&self) -> ApiError {
        let n = self.active_jobs;
        ApiError::RateLimited {
            message: format!(
                "you have {n} video{} waiting or processing, the most at once; add more when one \
                 of them is done",
                plural(n)
            ),
            limit: "active_jobs",
            retry_after_seconds: ACTIVE_RETRY_AFTER_SECONDS,
        }
    }

    fn too_many_this_hour(&self, seconds: u64) -> ApiError {
        let n = self.videos_per_hour;
        let minutes = seconds.div_ceil(60);
        ApiError::RateLimited {
            message: format!(
                "you have added {n} video{} in the last hour, the most per hour; you can add \
                 another in {minutes} minute{}",
                plural(n),
                plural(minutes as u32)
            ),
            limit: "videos_per_hour",
            retry_after_seconds: seconds,
        }
    }

    /// Seconds until the user's videos of the last hour are fewer than the limit: when the one
    /// that brings them under it is an hour old (at least 1).
    async fn next_hourly_slot(
        &self,
        conn: &PooledConnection,
        user_id: i64,
    ) -> Result<u64, DbError> {
        let now = conn.now();
        let leaves = db::query_opt(
            conn,
            "SELECT created_at FROM video_sources INDEXED BY video_sources_user_created
              WHERE user_id = ?1 AND created_at > ?2
              ORDER BY created_at DESC LIMIT 1 OFFSET ?3",
            libsql::params![
                user_id,
                crate::time::format(now - HOUR),
                i64::from(self.videos_per_hour) - 1
            ],
            |r| db::timestamp(r, 0),
        )
        .await?;
        Ok(leaves.map_or(1, |t| seconds_until(t + HOUR, now)))
    }
}

/// Whole seconds from `now` until `at`, rounded up, at least 1.
pub fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let ms = (at - now).num_milliseconds().max(0) as u64;
    ms.div_ceil(1000).max(1)
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_until_rounds_up_and_is_never_zero() {
        let now = DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1), now),
            1
        );
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1001), now),
            2
        );
        assert_eq!(seconds_until(now - chrono::Duration::seconds(5), now), 1);
    }

    #[test]
    fn the_messages_name_the_limit_and_when_to_come_back() {
        let q = Quotas {
            active_jobs: 3,
            videos_per_hour: 1,
        };
        let at_once = q.too_many_at_once();
        assert!(at_once
            .to_string()
            .contains("3 videos waiting or processing"));
        assert_eq!(
            at_once.retry_after_seconds(),
            Some(ACTIVE_RETRY_AFTER_SECONDS)
        );
        let hourly = q.too_many_this_hour(61);
        assert!(
            hourly.to_string().contains("1 video in the last hour")
                && hourly.to_string().contains("in 2 minutes"),
            "{hourly}"
        );
        assert_eq!(
            hourly.body()["error"]["details"]["limit"],
            "videos_per_hour"
        );
    }
}
