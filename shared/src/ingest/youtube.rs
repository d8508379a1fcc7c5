//! `POST /viral-clip/video/youtube`: a YouTube link and clip options become a video and its job.

use serde_json::{Map, Value};

use super::config::IngestConfig;
use super::create::{create, digest, new_job, Outcome, Record};
use crate::clip_config::ClipConfig;
use crate::db::PooledConnection;
use crate::error::ApiError;
use crate::http::Fields;
use crate::model::SourceType;
use crate::repo::idempotency_keys::IdempotencyKey;
use crate::repo::video_sources::NewVideoSource;
use crate::youtube::YoutubeLink;

pub const ROUTE: &str = "POST /viral-clip/video/youtube";

/// The route's body.
#[derive(Debug, Clone, PartialEq)]
pub struct YoutubeSubmission {
    pub link: YoutubeLink,
    pub config: ClipConfig,
}

impl YoutubeSubmission {
    /// Reads the JSON object; a 422 names every bad or unknown field.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body);
        let raw = fields.required_string("youtube_url");
        let link = raw.and_then(|raw| match YoutubeLink::parse(&raw) {
            Ok(link) => Some(link),
            Err(msg) => {
                fields.errors.add("youtube_url", msg);
                None
            }
        });
        let config = ClipConfig::from_json(&mut fields);
        fields.finish()?;
        let link = link.ok_or_else(|| ApiError::field("youtube_url", "is required"))?;
        Ok(Self { link, config })
    }
}

/// The video (pending) and its job (queued); with an `Idempotency-Key`, a repeat gets the first
/// answer.
pub async fn submit(
    conn: &PooledConnection,
    cfg: &IngestConfig,
    user_id: i64,
    submission: &YoutubeSubmission,
    idempotency_key: Option<String>,
) -> Result<Outcome, ApiError> {
    let canonical = submission.link.canonical_url();
    let payload = submission.config.to_payload();
    let key = idempotency_key.map(|key| IdempotencyKey {
        user_id,
        route: ROUTE,
        key,
        request_hash: digest(&[canonical.as_bytes(), payload.to_string().as_bytes()]),
    });
    let video = NewVideoSource {
        user_id,
        source_type: Some(SourceType::Youtube),
        source_url: Some(canonical),
        youtube_video_id: Some(submission.link.id().to_string()),
        thumbnail_url: Some(submission.link.thumbnail_url()),
        ..Default::default()
    };
    let record = Record {
        key: key.as_ref(),
        upload: None,
    };
    create(conn, &cfg.quotas, &video, &new_job(cfg, payload), record).await
}
