//! Test helpers: a fresh migrated database per test (a SQLite file, or a libSQL server with
//! `TEST_DATABASE=sqld`), a user, and jobs to work on.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::json;
use shared::db::Db;
use shared::db::PooledConnection;
use shared::repo::processing_jobs::{NewJob, ProcessingJob};
use shared::repo::video_sources::{NewVideoSource, VideoSource};
use shared::repo::{self, users};

pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub database: testkit::TestDatabase,
    pub db: Arc<Db>,
    pub conn: PooledConnection,
    pub user_id: i64,
}

impl TestDb {
    /// A new database in its own temporary directory (or server), migrated, with one user.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = testkit::TestDatabase::start(dir.path(), "test.db");
        let db = database.open().await;
        let conn = db.connect().await.unwrap();
        shared::migrations::migrate(&conn).await.unwrap();
        let user = users::insert(&conn, "ada@example.com", "not-a-real-hash")
            .await
            .unwrap()
            .unwrap();
        Self {
            dir,
            database,
            db: Arc::new(db),
            conn,
            user_id: user.id,
        }
    }

    /// What `DATABASE_URL` says for it.
    pub fn url(&self) -> String {
        self.database.url_string()
    }

    /// Another database handle on the same database (what another process would have).
    pub async fn reopen(&self) -> Db {
        self.database.open().await
    }

    pub fn new_video(&self, n: usize) -> (NewVideoSource, NewJob) {
        new_video(self.user_id, n)
    }

    /// `n` videos, each with a queued job, in batches of 500.
    pub async fn enqueue(&self, n: usize) -> Vec<(VideoSource, ProcessingJob)> {
        let items: Vec<_> = (0..n).map(|i| self.new_video(i)).collect();
        let mut out = Vec::with_capacity(n);
        for chunk in items.chunks(500) {
            out.extend(
                testkit::seed::videos_with_jobs(&self.conn, chunk)
                    .await
                    .unwrap(),
            );
        }
        out
    }

    pub async fn job(&self, id: i64) -> ProcessingJob {
        repo::processing_jobs::get(&self.conn, id)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn video(&self, id: i64) -> VideoSource {
        repo::video_sources::get(&self.conn, id)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        shared::db::query_one(&self.conn, sql, (), |r| shared::db::int(r, 0))
            .await
            .unwrap()
    }
}

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
            payload: json!({"video_type": "podcast", "aspect_ratio": "9:16",
                            "clip_length_preset": "auto_0_60", "subtitle": true}),
            max_attempts: 3,
        },
    )
}
