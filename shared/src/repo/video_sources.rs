//! The `video_sources` table.

use chrono::{DateTime, Utc};
use libsql::{Connection, Row};
use serde::Serialize;

use crate::db::{self, DbError};
use crate::model::{SourceType, VideoStatus};

/// A stored video, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoSource {
    pub id: i64,
    pub user_id: i64,
    pub source_type: SourceType,
    pub source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub youtube_video_id: Option<String>,
    pub file_path: Option<String>,
    pub title: Option<String>,
    pub duration_seconds: Option<i64>,
    pub thumbnail_url: Option<String>,
    pub status: VideoStatus,
    pub error_message: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// What an ingest route knows about a new video.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewVideoSource {
    pub user_id: i64,
    pub source_type: Option<SourceType>,
    pub source_url: Option<String>,
    pub youtube_video_id: Option<String>,
    pub file_path: Option<String>,
    pub title: Option<String>,
    pub duration_seconds: Option<i64>,
    pub thumbnail_url: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, user_id, source_type, source_url, youtube_video_id, \
    file_path, title, duration_seconds, thumbnail_url, status, error_message, created_at, updated_at";

pub(crate) fn from_row(r: &Row) -> Result<VideoSource, DbError> {
    let source_type = db::text(r, 2)?;
    let status = db::text(r, 9)?;
    Ok(VideoSource {
        id: db::int(r, 0)?,
        user_id: db::int(r, 1)?,
        source_type: SourceType::parse(&source_type)
            .ok_or_else(|| DbError::Corrupt(format!("source_type {source_type:?}")))?,
        source_url: db::opt_text(r, 3)?,
        youtube_video_id: db::opt_text(r, 4)?,
        file_path: db::opt_text(r, 5)?,
        title: db::opt_text(r, 6)?,
        duration_seconds: db::opt_int(r, 7)?,
        thumbnail_url: db::opt_text(r, 8)?,
        status: VideoStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("video status {status:?}")))?,
        error_message: db::opt_text(r, 10)?,
        created_at: db::timestamp(r, 11)?,
        updated_at: db::timestamp(r, 12)?,
    })
}

/// Inserts a `pending` video (call inside the transaction that also creates its job).
pub async fn insert(
    conn: &Connection,
    new: &NewVideoSource,
    now: DateTime<Utc>,
) -> Result<VideoSource, DbError> {
    let source_type = new
        .source_type
        .ok_or_else(|| DbError::Corrupt("a new video needs its source_type".into()))?;
    let now = crate::time::format(now);
    db::query_one(
        conn,
        &format!(
            "INSERT INTO video_sources (user_id, source_type, source_url, youtube_video_id, file_path,
                 title, duration_seconds, thumbnail_url, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9)
             RETURNING {COLUMNS}"
        ),
        libsql::params![
            new.user_id,
            source_type.as_str(),
            new.source_url.clone(),
            new.youtube_video_id.clone(),
            new.file_path.clone(),
            new.title.clone(),
            new.duration_seconds,
            new.thumbnail_url.clone(),
            now,
        ],
        from_row,
    )
    .await
}

pub async fn get(conn: &Connection, id: i64) -> Result<Option<VideoSource>, DbError> {
    db::query_opt(
        conn,
        &format!("SELECT {COLUMNS} FROM video_sources WHERE id = ?1"),
        [id],
        from_row,
    )
    .await
}
