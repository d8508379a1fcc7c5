//! The ingest routes' settings, read once from the environment.

use std::time::Duration;

use crate::config::{ConfigError, Env};
use crate::quota::Quotas;
use crate::storage::{MAX_PART_BYTES, MIN_PART_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// `MAX_UPLOAD_BYTES` (default 4 MiB): the largest file of a direct upload. A synchronous
    /// Lambda event is at most 6 MiB + 100 bytes and API Gateway base64-encodes a binary body
    /// into it (a third larger), so the largest form this route takes (the file, its fields and
    /// framing, 64 KiB in all) must stay under 4.5 MiB; larger files take the large-upload flow.
    pub max_upload_bytes: u64,
    /// `JOB_MAX_ATTEMPTS` (default 3), stored with each new job.
    pub job_max_attempts: u32,
    /// `UPLOAD_PART_BYTES` (default 8 MiB, at least S3's 5 MiB): a large upload's part size;
    /// files up to this size get one presigned PUT.
    pub upload_part_bytes: u64,
    /// `UPLOAD_URL_TTL_SECONDS` (default 6 h): how long presigned URLs stay valid.
    pub upload_url_ttl: Duration,
    /// `UPLOAD_COMPLETE_GRACE_SECONDS` (default 1 h): how long after its URLs expire an upload
    /// may still be completed; after that the worker's sweep expires it and cleans up.
    pub upload_complete_grace: Duration,
    /// How much work one account may start (`MAX_ACTIVE_JOBS_PER_USER`,
    /// `MAX_NEW_VIDEOS_PER_HOUR`).
    pub quotas: Quotas,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 4 * 1024 * 1024,
            job_max_attempts: 3,
            upload_part_bytes: 8 * 1024 * 1024,
            upload_url_ttl: Duration::from_secs(6 * 3600),
            upload_complete_grace: Duration::from_secs(3600),
            quotas: Quotas::default(),
        }
    }
}

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_upload_bytes: env.int_in(
                "MAX_UPLOAD_BYTES",
                d.max_upload_bytes,
                1024..=64 * 1024 * 1024,
            )?,
            job_max_attempts: env.int_in("JOB_MAX_ATTEMPTS", d.job_max_attempts.into(), 1..=100)?
                as u32,
            upload_part_bytes: env.int_in(
                "UPLOAD_PART_BYTES",
                d.upload_part_bytes,
                MIN_PART_BYTES..=MAX_PART_BYTES,
            )?,
            upload_url_ttl: Duration::from_secs(env.int_in(
                "UPLOAD_URL_TTL_SECONDS",
                d.upload_url_ttl.as_secs(),
                1..=7 * 24 * 3600,
            )?),
            upload_complete_grace: Duration::from_secs(env.int_in(
                "UPLOAD_COMPLETE_GRACE_SECONDS",
                d.upload_complete_grace.as_secs(),
                0..=7 * 24 * 3600,
            )?),
            quotas: Quotas::from_env(env)?,
        })
    }
}
