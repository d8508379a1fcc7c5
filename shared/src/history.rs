//! `GET /viral-clip/videos`: a user's videos, newest first, with cursor pagination.

use crate::db::PooledConnection;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::error::{ApiError, FieldErrors};
use crate::model::VideoStatus;
use crate::repo::processing_jobs::ProcessingJob;
use crate::repo::video_sources::{self, HistoryPosition, VideoSource};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The query string, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: u32,
    pub after: Option<HistoryPosition>,
    pub status: Option<VideoStatus>,
}

impl HistoryQuery {
    /// From `(name, value)` pairs; unknown parameters are ignored, bad ones are a 422.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let mut query = Self {
            limit: DEFAULT_LIMIT,
            after: None,
            status: None,
        };
        for (name, value) in pairs {
            match name {
                "limit" => match value.trim().parse::<u32>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => query.limit = n,
                    _ => errors.add(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ),
                },
                "cursor" if value.is_empty() => {}
                "cursor" => match decode_cursor(value) {
                    Some(pos) => query.after = Some(pos),
                    None => errors.add(
                        "cursor",
                        "is not a cursor from a previous page (use next_cursor as given)",
                    ),
                },
                "status" if value.is_empty() => {}
                "status" => match VideoStatus::parse(value) {
                    Some(s) => query.status = Some(s),
                    None => errors.add(
                        "status",
                        "must be one of pending, processing, ready, failed",
                    ),
                },
                _ => {}
            }
        }
        errors.into_result()?;
        Ok(query)
    }
}

/// A video with its latest job.
#[derive(Debug, Serialize)]
pub struct HistoryItem {
    #[serde(flatten)]
    pub video: VideoSource,
    pub latest_job: Option<ProcessingJob>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    pub next_cursor: Option<String>,
}

pub fn encode_cursor(pos: &HistoryPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        crate::time::format(pos.created_at),
        pos.id
    ))
}

pub fn decode_cursor(raw: &str) -> Option<HistoryPosition> {
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ts, id) = text.split_once('|')?;
    let id = id.parse::<i64>().ok().filter(|id| *id > 0)?;
    Some(HistoryPosition {
        created_at: crate::time::parse(ts).ok()?,
        id,
    })
}

/// One page of the caller's history.
pub async fn page(
    conn: &PooledConnection,
    user_id: i64,
    query: &HistoryQuery,
) -> Result<HistoryPage, ApiError> {
    let mut rows = video_sources::list_for_user(
        conn,
        user_id,
        query.status,
        query.after.as_ref(),
        query.limit + 1,
    )
    .await?;
    let more = rows.len() > query.limit as usize;
    rows.truncate(query.limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some((video, _))) => Some(encode_cursor(&HistoryPosition {
            created_at: video.created_at,
            id: video.id,
        })),
        _ => None,
    };
    let items = rows
        .into_iter()
        .map(|(video, latest_job)| HistoryItem { video, latest_job })
        .collect();
    Ok(HistoryPage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let pos = HistoryPosition {
            created_at: crate::time::Clock::system().now(),
            id: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(&pos)), Some(pos));
        for bad in [
            "",
            "abc",
            "!!!",
            &URL_SAFE_NO_PAD.encode("2026-01-01T00:00:00.000Z|-1"),
            &URL_SAFE_NO_PAD.encode("nope|1"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_query_is_checked_and_defaults_apply() {
        let q = HistoryQuery::parse([]).unwrap();
        assert_eq!((q.limit, q.after.is_none(), q.status), (20, true, None));
        let q = HistoryQuery::parse([("limit", "100"), ("status", "ready"), ("_", "cache-buster")])
            .unwrap();
        assert_eq!((q.limit, q.status), (100, Some(VideoStatus::Ready)));
        for (k, v) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("status", "done"),
            ("cursor", "zzz"),
        ] {
            let Err(ApiError::Validation(errors)) = HistoryQuery::parse([(k, v)]) else {
                panic!("{k}={v} accepted")
            };
            assert!(errors.get(k).is_some(), "{k}={v}");
        }
    }
}
