//! Dev tooling shared by the tests (and the local stack): an S3-compatible server (s3s-fs)
//! running in-process on a random port, a libSQL server per test (`sqld`), and the sample media.

pub mod proxy;
pub mod seed;
pub mod sqld;
pub mod uploads;
pub mod videos;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use shared::storage::StorageConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub const ACCESS_KEY: &str = "viralclip-dev";
pub const SECRET_KEY: &str = "viralclip-dev-secret-key";
pub const REGION: &str = "us-east-1";

/// A running S3-compatible server storing objects as files under `root`. It stops (and every
/// connection with it) when dropped or [`S3Server::stop`]ped.
pub struct S3Server {
    pub addr: SocketAddr,
    pub root: PathBuf,
    tasks: JoinSet<()>,
}

impl S3Server {
    /// Serves `root` on `addr` (`127.0.0.1:0` for a random port) with the dev credentials,
    /// answering CORS preflights from any origin (a browser PUTs to presigned URLs).
    pub async fn serve(root: &Path, addr: SocketAddr) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        // Browsers PUT to presigned URLs from the page's origin: answer their preflights.
        let cors = tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::Any)
            .allow_methods([
                http::Method::GET,
                http::Method::PUT,
                http::Method::HEAD,
                http::Method::POST,
                http::Method::DELETE,
            ])
            .allow_headers(tower_http::cors::Any)
            .expose_headers([http::header::ETAG])
            .max_age(std::time::Duration::from_secs(3600));
        let service = hyper_util::service::TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .layer(cors)
                .service(builder.build()),
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                connections.spawn(async move {
                    let builder = ConnBuilder::new(TokioExecutor::new());
                    if let Err(e) = builder
                        .serve_connection(TokioIo::new(socket), service)
                        .await
                    {
                        tracing::debug!(error = %e, "s3 connection ended");
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            root: root.to_owned(),
            tasks,
        })
    }

    /// Creates a bucket (a directory for s3s-fs); existing is fine.
    pub fn create_bucket(&self, bucket: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join(bucket))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Client settings for `bucket` on this server.
    pub fn storage_config(&self, bucket: &str) -> StorageConfig {
        StorageConfig {
            endpoint: Some(self.endpoint()),
            bucket: bucket.to_owned(),
            region: REGION.to_owned(),
            static_credentials: Some((ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())),
            session_token: None,
        }
    }

    /// Stops accepting and drops every open connection.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }

    /// Serves the same files on the same address again, after [`S3Server::stop`].
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        *self = Self::serve(&self.root.clone(), self.addr).await?;
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A storage configuration pointing at a port where nothing listens: "storage is down".
pub fn unreachable_storage_config(bucket: &str) -> StorageConfig {
    StorageConfig {
        endpoint: Some("http://127.0.0.1:9".to_owned()),
        bucket: bucket.to_owned(),
        region: REGION.to_owned(),
        static_credentials: Some((ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())),
        session_token: None,
    }
}

/// The bytes of a file in `local/testkit/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

// ---- per-test application fixture -------------------------------------------------------------

use lambda_http::{Body, Request, Response};
use shared::app::{App, AppConfig};
use shared::auth::AuthConfig;
use shared::config::DatabaseUrl;
use shared::db::{Db, PooledConnection};
use shared::ingest::IngestConfig;
use shared::repo::processing_jobs::ProcessingJob;
use shared::repo::video_sources::VideoSource;
use shared::time::Clock;

pub const BUCKET: &str = "viralclip-test";
pub const JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// The database of one test: a fresh SQLite file, or a fresh libSQL server when
/// `TEST_DATABASE=sqld` ([`sqld::on_server`]).
pub enum TestDatabase {
    File(PathBuf),
    Server(sqld::Sqld),
}

impl TestDatabase {
    /// A new database: a file `name` in `dir`, or a server of its own.
    pub fn start(dir: &Path, name: &str) -> Self {
        if sqld::on_server() {
            Self::Server(sqld::Sqld::start())
        } else {
            Self::File(dir.join(name))
        }
    }

    pub fn url(&self) -> DatabaseUrl {
        match self {
            Self::File(path) => DatabaseUrl::File(path.clone()),
            Self::Server(sqld) => sqld.database_url(),
        }
    }

    /// Another handle on the same database (what another process would have).
    pub async fn open(&self) -> shared::db::Db {
        shared::db::Db::open(&self.url())
            .await
            .expect("open the test database")
    }

    /// What `DATABASE_URL` says for it.
    pub fn url_string(&self) -> String {
        match self {
            Self::File(path) => format!("file:{}", path.display()),
            Self::Server(sqld) => sqld.url(),
        }
    }

    /// What `DATABASE_AUTH_TOKEN` says for it (empty for a file).
    pub fn auth_token(&self) -> String {
        match self {
            Self::File(_) => String::new(),
            Self::Server(sqld) => sqld.token().to_owned(),
        }
    }

    pub fn server(&mut self) -> Option<&mut sqld::Sqld> {
        match self {
            Self::File(_) => None,
            Self::Server(sqld) => Some(sqld),
        }
    }
}

/// What every test starts from: a fresh database ([`TestDatabase`], migrated) and a fresh object
/// store in a temporary directory, an adjustable clock that every database handle and app of the
/// test reads its time from, and a connection of the test's own.
pub struct TestEnv {
    /// The test's own connection ([`TestEnv::count`], [`TestEnv::job`], seeding). Declared
    /// first: closed before the database it belongs to.
    pub conn: PooledConnection,
    /// A handle on the test's database, on the test's clock.
    pub db: std::sync::Arc<Db>,
    pub clock: Clock,
    pub s3: S3Server,
    pub database: TestDatabase,
    pub dir: tempfile::TempDir,
    seed_user: tokio::sync::OnceCell<i64>,
}

impl TestEnv {
    /// A fresh store and a fresh database of the kind `TEST_DATABASE` names.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = TestDatabase::start(dir.path(), "app.db");
        Self::with(dir, database).await
    }

    /// A fresh store and the given database (a test that needs a server whatever the run).
    pub async fn start_with(database: TestDatabase) -> Self {
        Self::with(tempfile::tempdir().expect("temp dir"), database).await
    }

    async fn with(dir: tempfile::TempDir, database: TestDatabase) -> Self {
        let s3 = S3Server::serve(&dir.path().join("s3"), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("s3 server");
        s3.create_bucket(BUCKET).expect("bucket");
        let clock = Clock::adjustable();
        let db = database.open().await.with_clock(clock.clone());
        let conn = db.connect().await.expect("a connection");
        shared::migrations::migrate(&conn)
            .await
            .expect("migrations");
        Self {
            conn,
            db: std::sync::Arc::new(db),
            clock,
            s3,
            database,
            dir,
            seed_user: tokio::sync::OnceCell::new(),
        }
    }

    /// Another handle on the test's database, on the test's clock (what another process or
    /// another function's cold start has).
    pub async fn open(&self) -> Db {
        self.database.open().await.with_clock(self.clock.clone())
    }

    pub fn config(&self) -> AppConfig {
        AppConfig {
            database: self.database.url(),
            auth: AuthConfig::new(JWT_SECRET, std::time::Duration::from_secs(3600)).unwrap(),
            storage: Some(self.s3.storage_config(BUCKET)),
            ingest: IngestConfig::default(),
            clock: self.clock.clone(),
        }
    }

    /// The application as a cold start builds it.
    pub async fn app(&self) -> App {
        App::new(self.config()).await.expect("app")
    }

    /// The application with [`Quotas::LIFTED`](shared::quota::Quotas::LIFTED): for tests that
    /// make more videos for one user than the default quotas allow.
    pub async fn app_without_quotas(&self) -> App {
        self.app_with(|c| c.ingest.quotas = shared::quota::Quotas::LIFTED)
            .await
    }

    /// The application with other settings (storage down, a smaller upload limit, …).
    pub async fn app_with(&self, change: impl FnOnce(&mut AppConfig)) -> App {
        let mut cfg = self.config();
        change(&mut cfg);
        App::new(cfg).await.expect("app")
    }

    /// The stored object's bytes, read back from the store's files.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.s3.root.join(BUCKET).join(key)).ok()
    }

    /// Every object key in the bucket.
    pub fn object_keys(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    // s3s-fs keeps its own metadata and upload state in dot-files
                    if !rel.split('/').any(|p| p.starts_with('.')) {
                        out.push(rel);
                    }
                }
            }
        }
        let base = self.s3.root.join(BUCKET);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.sort();
        out
    }

    /// A count from SQL, on the test's database.
    pub async fn count(&self, sql: &str) -> i64 {
        shared::db::query_one(&self.conn, sql, (), |r| shared::db::int(r, 0))
            .await
            .unwrap()
    }

    /// The first column of every row from SQL, as text, on the test's database.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        shared::db::query_all(&self.conn, sql, (), |r| shared::db::text(r, 0))
            .await
            .unwrap()
    }

    /// The user that seeded videos belong to (`seed@viralclip.test`, written straight to the
    /// database on first use): its id.
    pub async fn seed_user(&self) -> i64 {
        *self
            .seed_user
            .get_or_init(|| async {
                shared::repo::users::insert(&self.conn, "seed@viralclip.test", "not-a-real-hash")
                    .await
                    .expect("insert the seed user")
                    .expect("a new user")
                    .id
            })
            .await
    }

    /// `n` videos of the seed user, each with a queued job ([`seed::new_video`]), in batches
    /// of 500.
    pub async fn enqueue(&self, n: usize) -> Vec<(VideoSource, ProcessingJob)> {
        let user_id = self.seed_user().await;
        let items: Vec<_> = (0..n).map(|i| seed::new_video(user_id, i)).collect();
        let mut out = Vec::with_capacity(n);
        for chunk in items.chunks(500) {
            out.extend(seed::videos_with_jobs(&self.conn, chunk).await.unwrap());
        }
        out
    }

    pub async fn job(&self, id: i64) -> ProcessingJob {
        shared::repo::processing_jobs::get(&self.conn, id)
            .await
            .unwrap()
            .expect("the job exists")
    }

    pub async fn video(&self, id: i64) -> VideoSource {
        shared::repo::video_sources::get(&self.conn, id)
            .await
            .unwrap()
            .expect("the video exists")
    }
}

/// A request as API Gateway (HTTP API) would hand it over.
pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Body,
) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.test{path}"));
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).expect("request")
}

/// A `method` request for `{prefix}/{raw_id}` as the router hands it over: the raw id (spaces
/// escaped) in the path and as the path parameter `param`.
pub fn with_path_id(
    method: &str,
    prefix: &str,
    param: &str,
    raw_id: &str,
    token: Option<&str>,
) -> Request {
    use lambda_http::RequestExt;
    let path = format!("{prefix}/{}", raw_id.replace(' ', "%20"));
    let params = std::collections::HashMap::from([(param.to_owned(), raw_id.to_owned())]);
    request(method, &path, token, None, Body::Empty).with_path_parameters(params)
}

/// A JSON request.
pub fn json_request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Request {
    request(
        method,
        path,
        token,
        Some("application/json"),
        Body::from(body.to_string()),
    )
}

/// A multipart/form-data body: text fields, then files (name, file name, bytes).
pub fn multipart(texts: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----viralclip-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in texts {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    for (name, filename, bytes) in files {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: video/mp4\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Status, headers and JSON body of a response.
pub fn read(resp: Response<Body>) -> (u16, lambda_http::http::HeaderMap, serde_json::Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match resp.body() {
        Body::Empty => serde_json::Value::Null,
        other if other.as_ref().is_empty() => serde_json::Value::Null,
        other => serde_json::from_slice(other.as_ref()).expect("JSON body"),
    };
    (status, headers, body)
}

/// Asserts the contract's error shape and returns the body.
#[track_caller]
pub fn assert_error(
    resp: (u16, lambda_http::http::HeaderMap, serde_json::Value),
    status: u16,
    code: &str,
) -> serde_json::Value {
    let (got, headers, body) = resp;
    assert_eq!(got, status, "status; body: {body}");
    assert_eq!(body["error"]["code"], code, "code; body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message; body: {body}"
    );
    if status == 401 {
        assert_eq!(
            headers.get("www-authenticate").map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
    }
    if status == 503 {
        assert!(headers.get("retry-after").is_some(), "Retry-After on 503");
    }
    if status == 429 {
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After on 429");
        assert_eq!(
            body["error"]["details"]["retry_after_seconds"].as_u64(),
            retry_after,
            "the body says the header's wait; body: {body}"
        );
        assert!(body["error"]["details"]["limit"].is_string(), "{body}");
    }
    body
}

/// A registered user: (id, token).
pub async fn user(app: &App, email: &str) -> (i64, String) {
    let conn = app.db.connect().await.unwrap();
    let creds = shared::auth::Credentials {
        email: email.to_owned(),
        password: "correct horse battery".to_owned(),
    };
    let session = shared::auth::register(&conn, &app.auth, creds)
        .await
        .expect("register");
    (session.user.id, session.token)
}

/// Tokens a client must not get in with.
pub mod bad_tokens {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::json;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Signed with the right secret, expired an hour ago.
    pub fn expired(user_id: i64) -> String {
        let claims = json!({"sub": user_id.to_string(), "iat": now() - 7200, "exp": now() - 3600});
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(super::JWT_SECRET),
        )
        .unwrap()
    }

    /// Signed with another secret.
    pub fn forged(user_id: i64) -> String {
        let claims = json!({"sub": user_id.to_string(), "iat": now(), "exp": now() + 3600});
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"not-the-server-secret-not-the-secret"),
        )
        .unwrap()
    }

    /// `alg: none`, no signature.
    pub fn alg_none(user_id: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"sub": user_id.to_string(), "iat": now(), "exp": now() + 3600}).to_string(),
        );
        format!("{header}.{claims}.")
    }

    /// Right secret, but HS512 instead of HS256.
    pub fn other_algorithm(user_id: i64) -> String {
        let claims = json!({"sub": user_id.to_string(), "iat": now(), "exp": now() + 3600});
        encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(super::JWT_SECRET),
        )
        .unwrap()
    }
}

/// Status, headers and raw body bytes of a response.
pub fn read_raw(resp: Response<Body>) -> (u16, lambda_http::http::HeaderMap, Vec<u8>) {
    (
        resp.status().as_u16(),
        resp.headers().clone(),
        resp.body().as_ref().to_vec(),
    )
}

/// A video of `extra` more bytes: the file's `mdat` (which must come before `moov`, as in
/// `moov-at-end-2s.mp4`) padded with zeros, so chunk offsets stay right and `moov` ends up
/// `extra` bytes further from the start.
pub fn pad_mdat(file: &[u8], extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + extra);
    let mut offset = 0usize;
    while offset < file.len() {
        let b = shared::media::box_at(&file[offset..], offset as u64, (file.len() - offset) as u64)
            .expect("a valid box")
            .expect("a whole header");
        let end = offset + (b.header_len + b.body_len) as usize;
        if b.kind.as_ref() == b"mdat" {
            assert_eq!(b.header_len, 8, "a 32-bit mdat header");
            let size = u32::try_from(end - offset + extra).expect("under 4 GiB");
            out.extend(size.to_be_bytes());
            out.extend(b"mdat");
            out.extend(&file[offset + 8..end]);
            out.resize(out.len() + extra, 0);
        } else {
            out.extend(&file[offset..end]);
        }
        offset = end;
    }
    out
}

/// Runs the dummy pipeline over every queued job of the test's database until none is left.
pub async fn drain_queue(env: &TestEnv) -> shared::worker::RunReport {
    let db = env.open().await;
    let cfg = shared::config::WorkerConfig::from_env(&shared::config::Env::from_pairs([
        ("WORKER_STOP_WHEN_IDLE", "true"),
        ("POLL_INTERVAL_SECONDS", "0.05"),
    ]))
    .unwrap();
    let pipeline = shared::pipeline::DummyPipeline::with_step(std::time::Duration::from_millis(5));
    let worker = shared::worker::Worker::new(std::sync::Arc::new(db), pipeline, cfg);
    worker
        .run_until(tokio::time::Instant::now() + std::time::Duration::from_secs(20))
        .await
        .expect("worker run")
}

/// A plain HTTP PUT of `body` to a (presigned) URL, as a browser or curl would send it:
/// (status, ETag header).
pub async fn put_url(url: &str, body: Vec<u8>) -> (u16, Option<String>) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent.put(&url).send(&body[..]).expect("the store answers");
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (resp.status().as_u16(), etag)
    })
    .await
    .expect("PUT task")
}

/// Another process's writer: takes the write lock of `database` (`BEGIN IMMEDIATE`) on an OS
/// thread of its own, so nothing the test's tasks do can delay its release, and holds it for
/// `hold`. Returns once the lock is held; the thread's result is the instant it let go.
pub fn hold_write_lock(
    database: DatabaseUrl,
    hold: std::time::Duration,
) -> std::thread::JoinHandle<std::time::Instant> {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let db = Db::open(&database).await.unwrap();
            let conn = db.connect().await.unwrap();
            shared::db::execute(&conn, "BEGIN IMMEDIATE", ())
                .await
                .unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(hold);
            let releasing = std::time::Instant::now();
            shared::db::execute(&conn, "COMMIT", ()).await.unwrap();
            releasing
        })
    });
    locked_rx.recv().expect("the lock is taken");
    holder
}
