//! Rows written straight to the database for tests and benchmarks that need many videos with
//! queued jobs at once (the API writes one at a time through `shared::ingest`).

use shared::db::{self, DbError, PooledConnection};
use shared::repo::processing_jobs::{self, NewJob, ProcessingJob};
use shared::repo::video_sources::{self, NewVideoSource, VideoSource};

/// A video and its queued job in one transaction: both rows or neither.
pub async fn video_with_job(
    conn: &PooledConnection,
    video: &NewVideoSource,
    job: &NewJob,
) -> Result<(VideoSource, ProcessingJob), DbError> {
    let mut created =
        videos_with_jobs(conn, std::slice::from_ref(&(video.clone(), job.clone()))).await?;
    created
        .pop()
        .ok_or_else(|| DbError::Corrupt("the insert returned nothing".into()))
}

/// Many videos, each with its job, in one transaction (one commit, one round trip).
pub async fn videos_with_jobs(
    conn: &PooledConnection,
    items: &[(NewVideoSource, NewJob)],
) -> Result<Vec<(VideoSource, ProcessingJob)>, DbError> {
    let now = conn.now();
    let mut steps = Vec::with_capacity(items.len() * 2);
    for (video, job) in items {
        steps.push(video_sources::insert(video, now, None)?);
        steps.push(processing_jobs::insert_for_new_video(job, now)?);
    }
    let results = db::transaction(conn, &steps).await?;
    items
        .iter()
        .zip(results.chunks(2))
        .map(|((video, job), rows)| {
            let video_id = new_id(&rows[0])?;
            let job_id = new_id(&rows[1])?;
            Ok((
                video.stored(video_id, now)?,
                job.stored(job_id, video_id, now),
            ))
        })
        .collect()
}

fn new_id(rows: &[db::OwnedRow]) -> Result<i64, DbError> {
    shared::repo::inserted_id(rows)?
        .ok_or_else(|| DbError::Corrupt("an insert inserted nothing".into()))
}

/// Video `n` of a user: a YouTube link of its own (`n` as the 11-character id) and a queued
/// job with the usual options.
pub fn new_video(user_id: i64, n: usize) -> (NewVideoSource, NewJob) {
    let id = format!("{:011}", n % 100_000_000_000);
    (
        NewVideoSource {
            user_id,
            source_type: Some(shared::model::SourceType::Youtube),
            source_url: Some(format!("https://www.youtube.com/watch?v={id}")),
            youtube_video_id: Some(id.clone()),
            thumbnail_url: Some(format!("https://i.ytimg.com/vi/{id}/hqdefault.jpg")),
            ..Default::default()
        },
        NewJob {
            job_type: shared::model::JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
            payload: serde_json::json!({"video_type": "podcast", "aspect_ratio": "9:16",
                            "clip_length_preset": "auto_0_60", "subtitle": true}),
            max_attempts: 3,
        },
    )
}
