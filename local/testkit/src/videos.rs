//! Videos made through the API's own flows (`shared::ingest`, without their HTTP framing) for
//! the tests of the routes on one video, and a job failed for good as the worker fails one.

use serde_json::{json, Value};
use shared::app::App;
use shared::config::QueueConfig;
use shared::db::PooledConnection;
use shared::ingest::upload_complete::Completion;
use shared::ingest::youtube::{self, YoutubeSubmission};
use shared::queue::{FailOutcome, Queue};

use crate::{fixture, put_url, uploads};

/// A YouTube video of `user_id` (link `https://youtu.be/<youtube_id>`, clip options `options`):
/// the 201 body, `{"video_source", "processing_job"}`.
pub async fn linked(app: &App, user_id: i64, youtube_id: &str, options: Value) -> Value {
    let mut body = options.as_object().cloned().unwrap_or_default();
    body.insert(
        "youtube_url".into(),
        json!(format!("https://youtu.be/{youtube_id}")),
    );
    let submission = YoutubeSubmission::parse(body).expect("a valid submission");
    let conn = app.db.connect().await.unwrap();
    let outcome = youtube::submit(&conn, &app.ingest, user_id, &submission, None)
        .await
        .expect("the link is accepted");
    serde_json::from_str(outcome.body()).unwrap()
}

/// An uploaded video of `user_id` (the 3-second sample, through a large upload): the 201 body.
pub async fn uploaded(app: &App, user_id: i64) -> Value {
    let file = fixture("sample-3s.mp4");
    let started = uploads::start(app, user_id, "sample.mp4", file.len()).await;
    put_url(started["parts"][0]["url"].as_str().unwrap(), file).await;
    match uploads::complete(app, user_id, uploads::id(&started)).await {
        Ok(Completion::Done(outcome)) => serde_json::from_str(outcome.body()).unwrap(),
        Ok(Completion::Refused { status, body }) => panic!("{status}: {body}"),
        Err(e) => panic!("the upload completes: {e}"),
    }
}

/// The video id and job id of a 201 body.
pub fn ids(created: &Value) -> (i64, i64) {
    (
        created["video_source"]["id"].as_i64().expect("video id"),
        created["processing_job"]["id"].as_i64().expect("job id"),
    )
}

/// Claims the next queued job and fails it for good, as the worker does after a permanent
/// pipeline error: job and video `failed`. Returns the job's id.
pub async fn fail_next(conn: &PooledConnection, error: &str) -> i64 {
    let queue = Queue::new(QueueConfig::default());
    let job = queue
        .claim(conn, "test-worker", 1)
        .await
        .unwrap()
        .pop()
        .expect("a queued job");
    assert_eq!(
        queue.fail(conn, &job, error, false).await.unwrap(),
        FailOutcome::Failed
    );
    job.id()
}
