//! The round trips each route makes to a libSQL server, counted at a proxy in front of a real
//! `sqld`: the budget test (`tests/round_trips.rs`) and the latency bench
//! (`benches/round_trips.rs`) run these scenarios.

use std::time::{Duration, Instant};

use lambda_http::Body;
use serde_json::json;
use shared::app::App;
use shared::config::{DatabaseUrl, Env, WorkerConfig};
use shared::db::Db;
use shared::pipeline::DummyPipeline;
use shared::worker::Worker;
use testkit::proxy::CountingProxy;
use testkit::sqld::Sqld;
use testkit::{json_request, multipart, read, request, TestDatabase, TestEnv};

/// Most round trips a warm request of each route may make.
pub const BUDGETS: &[(&str, u64)] = &[
    ("POST /auth/register", 1),
    ("POST /auth/login", 1),
    // the read, then the failure's count
    ("POST /auth/login (a wrong password)", 2),
    ("POST /auth/login (throttled: no hash)", 1),
    ("POST /viral-clip/video/youtube", 1),
    ("POST /viral-clip/video/youtube (Idempotency-Key)", 1),
    ("POST /viral-clip/video/youtube (a replay)", 1),
    ("GET /viral-clip/videos", 1),
    ("GET /viral-clip/jobs/{id}", 1),
    ("GET /viral-clip/videos/{id}", 1),
    // a read (the video, its last job, its key), then the transaction
    ("POST /viral-clip/videos/{id}/retry", 2),
    ("DELETE /viral-clip/videos/{id} (a link)", 1),
    // the mark, the object's removal, then the record that it is gone
    ("DELETE /viral-clip/videos/{id} (an upload)", 2),
    // Two routes write before and after the object store: the upload's intent (no object
    // without its row) and a completion's claim (one completer checks the object at a time).
    ("POST /viral-clip/video/upload", 2),
    ("POST /viral-clip/video/uploads", 1),
    ("POST /viral-clip/video/uploads/{id}/complete", 2),
    ("DELETE /viral-clip/video/uploads/{id}", 1),
    ("worker: an idle poll", 1),
    // its share of the claim and of the polls while it ran, and its completion
    ("worker: a job (claim share + completion)", 3),
    ("cold start: the schema check", 1),
];

/// The budget of `route`.
pub fn budget(route: &str) -> u64 {
    BUDGETS
        .iter()
        .find(|(r, _)| *r == route)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no budget for {route}"))
}

/// A stack whose functions reach a real `sqld` (JWT auth on) through a [`CountingProxy`].
pub struct Counted {
    pub env: TestEnv,
    pub proxy: CountingProxy,
    pub app: App,
}

impl Counted {
    pub async fn start() -> Self {
        let dir_env = TestEnv::start_with(TestDatabase::Server(Sqld::start())).await;
        let (upstream, auth_token) = match dir_env.database.url() {
            DatabaseUrl::Remote { url, auth_token } => (url, auth_token),
            DatabaseUrl::File(_) => unreachable!("a server"),
        };
        let proxy = CountingProxy::start(&upstream).await;
        let url = proxy.url();
        let app = dir_env
            .app_with(|c| {
                c.database = DatabaseUrl::Remote {
                    url: url.clone(),
                    auth_token: auth_token.clone(),
                };
                // one wrong password throttles an email: each round meets both answers once
                c.auth.sign_in.max_failures = 1;
            })
            .await;
        Self {
            env: dir_env,
            proxy,
            app,
        }
    }

    /// The database as the functions see it (through the proxy).
    fn app_database_url(&self) -> DatabaseUrl {
        match self.env.database.url() {
            DatabaseUrl::Remote { auth_token, .. } => DatabaseUrl::Remote {
                url: self.proxy.url(),
                auth_token,
            },
            file => file,
        }
    }

    /// Round trips `op` made.
    async fn count<T>(&self, op: impl std::future::Future<Output = T>) -> (u64, T) {
        let before = self.proxy.requests();
        let out = op.await;
        (self.proxy.requests() - before, out)
    }

    /// Runs every route once, as a client would, and returns (route, round trips, time taken).
    pub async fn every_route(&self, n: usize) -> Vec<(&'static str, u64, Duration)> {
        let app = &self.app;
        let mut out = Vec::new();
        macro_rules! measure {
            ($route:expr, $status:expr, $call:expr) => {{
                let started = Instant::now();
                let (trips, resp) = self.count($call).await;
                let took = started.elapsed();
                let (status, _, body) = read(resp.unwrap());
                assert_eq!(status, $status, "{}: {body}", $route);
                out.push(($route, trips, took));
                body
            }};
        }
        let email = format!("user{n}@example.com");
        let creds = json!({"email": email, "password": "correct horse battery"});
        // each round is a new user (so no round meets a quota of the rounds before it)
        let registered = measure!(
            "POST /auth/register",
            201,
            auth_register::handler(app, json_request("POST", "/auth/register", None, &creds))
        );
        let token = registered["token"].as_str().unwrap().to_owned();
        let token = token.as_str();
        measure!(
            "POST /auth/login",
            200,
            auth_login::handler(app, json_request("POST", "/auth/login", None, &creds))
        );
        let guess = json!({"email": format!("guessed{n}@example.com"), "password": "a guess"});
        measure!(
            "POST /auth/login (a wrong password)",
            401,
            auth_login::handler(app, json_request("POST", "/auth/login", None, &guess))
        );
        measure!(
            "POST /auth/login (throttled: no hash)",
            429,
            auth_login::handler(app, json_request("POST", "/auth/login", None, &guess))
        );
        let link = json!({"youtube_url": format!("https://youtu.be/{n:011}")});
        let created = measure!(
            "POST /viral-clip/video/youtube",
            201,
            submit_youtube::handler(
                app,
                json_request("POST", "/viral-clip/video/youtube", Some(token), &link)
            )
        );
        let keyed = || {
            let mut req = json_request("POST", "/viral-clip/video/youtube", Some(token), &link);
            req.headers_mut()
                .insert("idempotency-key", format!("key-{n}").parse().unwrap());
            req
        };
        measure!(
            "POST /viral-clip/video/youtube (Idempotency-Key)",
            201,
            submit_youtube::handler(app, keyed())
        );
        measure!(
            "POST /viral-clip/video/youtube (a replay)",
            201,
            submit_youtube::handler(app, keyed())
        );
        measure!(
            "GET /viral-clip/videos",
            200,
            list_videos::handler(
                app,
                request(
                    "GET",
                    "/viral-clip/videos?limit=20",
                    Some(token),
                    None,
                    Body::Empty
                )
            )
        );
        let job_id = created["processing_job"]["id"].as_i64().unwrap();
        measure!(
            "GET /viral-clip/jobs/{id}",
            200,
            get_job::handler(
                app,
                request(
                    "GET",
                    &format!("/viral-clip/jobs/{job_id}"),
                    Some(token),
                    None,
                    Body::Empty
                )
            )
        );
        let video_id = created["video_source"]["id"].as_i64().unwrap();
        let one = format!("/viral-clip/videos/{video_id}");
        measure!(
            "GET /viral-clip/videos/{id}",
            200,
            get_video::handler(app, request("GET", &one, Some(token), None, Body::Empty))
        );
        shared::db::execute(
            &self.env.conn,
            "UPDATE processing_jobs SET status = 'failed', error_message = 'failed for the count',
                    finished_at = updated_at
              WHERE video_source_id = ?1",
            [video_id],
        )
        .await
        .unwrap();
        measure!(
            "POST /viral-clip/videos/{id}/retry",
            201,
            retry_video::handler(
                app,
                request(
                    "POST",
                    &format!("{one}/retry"),
                    Some(token),
                    None,
                    Body::Empty
                )
            )
        );
        measure!(
            "DELETE /viral-clip/videos/{id} (a link)",
            204,
            delete_video::handler(app, request("DELETE", &one, Some(token), None, Body::Empty))
        );
        let video = testkit::fixture("sample-3s.mp4");
        let (content_type, form) = multipart(&[], &[("file", "talk.mp4", &video)]);
        let uploaded = measure!(
            "POST /viral-clip/video/upload",
            201,
            upload_video::handler(
                app,
                request(
                    "POST",
                    "/viral-clip/video/upload",
                    Some(token),
                    Some(&content_type),
                    Body::from(form)
                )
            )
        );
        let uploaded = format!("/viral-clip/videos/{}", uploaded["video_source"]["id"]);
        measure!(
            "DELETE /viral-clip/videos/{id} (an upload)",
            204,
            delete_video::handler(
                app,
                request("DELETE", &uploaded, Some(token), None, Body::Empty)
            )
        );
        let plan =
            json!({"filename": "big.mp4", "size_bytes": video.len(), "content_type": "video/mp4"});
        let started = measure!(
            "POST /viral-clip/video/uploads",
            201,
            create_upload::handler(
                app,
                json_request("POST", "/viral-clip/video/uploads", Some(token), &plan)
            )
        );
        let url = started["parts"][0]["url"].as_str().unwrap().to_owned();
        testkit::put_url(&url, video.clone()).await;
        let upload_id = started["upload_id"].as_i64().unwrap();
        measure!(
            "POST /viral-clip/video/uploads/{id}/complete",
            201,
            complete_upload::handler(
                app,
                json_request(
                    "POST",
                    &format!("/viral-clip/video/uploads/{upload_id}/complete"),
                    Some(token),
                    &json!({})
                )
            )
        );
        let started = create_upload::handler(
            app,
            json_request("POST", "/viral-clip/video/uploads", Some(token), &plan),
        )
        .await
        .unwrap();
        let (_, _, started) = read(started);
        let upload_id = started["upload_id"].as_i64().unwrap();
        measure!(
            "DELETE /viral-clip/video/uploads/{id}",
            204,
            abort_upload::handler(
                app,
                request(
                    "DELETE",
                    &format!("/viral-clip/video/uploads/{upload_id}"),
                    Some(token),
                    None,
                    Body::Empty
                )
            )
        );
        out
    }

    /// The worker's round trips: an idle poll, and per job (beside its progress reports, each
    /// also a heartbeat) with `jobs` queued and `concurrency` at a time.
    pub async fn worker(&self, jobs: usize, concurrency: usize) -> WorkerTrips {
        let db = std::sync::Arc::new(Db::open(&self.app_database_url()).await.unwrap());
        let cfg = WorkerConfig::from_env(&Env::from_pairs([
            ("WORKER_STOP_WHEN_IDLE", "true"),
            ("POLL_INTERVAL_SECONDS", "0.05"),
            ("WORKER_CONCURRENCY", &concurrency.to_string()),
        ]))
        .unwrap();
        let step = Duration::from_millis(1);
        let worker = Worker::new(db.clone(), DummyPipeline::with_step(step), cfg.clone());
        // drain what the routes queued, then an idle run: one look
        worker
            .run_until(tokio::time::Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        let (idle, _) = self
            .count(worker.run_until(tokio::time::Instant::now() + Duration::from_secs(60)))
            .await;
        let conn = self.app.db.connect().await.unwrap();
        let (user_id, _) = testkit::user(&self.app, &format!("worker{jobs}@example.com")).await;
        for chunk in (0..jobs).collect::<Vec<_>>().chunks(200) {
            let items: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let id = format!("{i:011}");
                    (
                        shared::repo::video_sources::NewVideoSource {
                            user_id,
                            source_type: Some(shared::model::SourceType::Youtube),
                            source_url: Some(format!("https://www.youtube.com/watch?v={id}")),
                            youtube_video_id: Some(id),
                            ..Default::default()
                        },
                        shared::repo::processing_jobs::NewJob {
                            job_type: shared::model::JOB_TYPE_TRANSCRIPTION_AND_CLIPPING.into(),
                            payload: json!({}),
                            max_attempts: 3,
                        },
                    )
                })
                .collect();
            testkit::seed::videos_with_jobs(&conn, &items)
                .await
                .unwrap();
        }
        let (trips, report) = self
            .count(worker.run_until(tokio::time::Instant::now() + Duration::from_secs(600)))
            .await;
        let report = report.unwrap();
        assert_eq!(report.completed, jobs, "{report:?}");
        let progress = (DummyPipeline::STEPS.len() - 1) as u64 * jobs as u64;
        WorkerTrips {
            idle_poll: idle,
            per_job: (trips.saturating_sub(progress)) as f64 / jobs as f64,
            progress_per_job: progress as f64 / jobs as f64,
        }
    }

    /// A cold start's round trips for the schema, once the schema is current.
    pub async fn cold_start_schema(&self) -> u64 {
        let url = self.app_database_url();
        let (trips, _) = self
            .count(async {
                let db = Db::open(&url).await.unwrap();
                shared::migrations::migrate(&db.connect().await.unwrap())
                    .await
                    .unwrap()
            })
            .await;
        trips
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerTrips {
    pub idle_poll: u64,
    /// Besides progress reports: the job's share of its claim, and its completion.
    pub per_job: f64,
    pub progress_per_job: f64,
}
