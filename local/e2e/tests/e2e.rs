//! The whole system as a user meets it: `./local/run` on free ports, real HTTP, a real object
//! store, a stop and a restart. Slow (it starts the stack twice), so it is `#[ignore]`d in a
//! plain `cargo test` and run by `./local/test` with `--ignored`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::storage::{Storage, StorageConfig};

/// The hourly quota of the stack under test: one user of the run reaches it, no other comes near.
const HOURLY_QUOTA: usize = 10;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A running `./local/run`, in a process group of its own.
struct Stack {
    child: Child,
    data_dir: PathBuf,
    env: HashMap<String, String>,
}

impl Stack {
    /// Starts the stack exactly as the README says (`./local/run`), on the given ports, with
    /// the database `TEST_DATABASE` names (`LOCAL_DATABASE=file`, or `sqld` on `db_port`).
    fn start(data_dir: &Path, api_port: u16, s3_port: u16, db_port: u16) -> Self {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let database = if testkit::sqld::on_server() {
            "sqld"
        } else {
            "file"
        };
        let child = Command::new(repo_root().join("local/run"))
            .env("LOCAL_DATABASE", database)
            .env("LOCAL_DB_PORT", db_port.to_string())
            .env("LOCAL_API_PORT", api_port.to_string())
            .env("LOCAL_S3_PORT", s3_port.to_string())
            .env("LOCAL_DATA_DIR", data_dir)
            .env("DUMMY_PIPELINE_FAILS_VIDEO_TYPE", "gaming")
            .env("MAX_NEW_VIDEOS_PER_HOUR", HOURLY_QUOTA.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("./local/run starts");
        let stack_env = data_dir.join("stack.env");
        let mut child = child;
        let started = Instant::now();
        // the first run builds the functions: allow for a cold build
        while !stack_env.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
                panic!("./local/run exited ({status}) before the stack came up:\n{log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(1_500),
                "the stack did not come up; see {}",
                data_dir.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let env = std::fs::read_to_string(&stack_env)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            child,
            data_dir: data_dir.to_owned(),
            env,
        }
    }

    fn api(&self) -> &str {
        &self.env["API_URL"]
    }

    /// Ctrl-C to the whole process group, and wait for every part to be gone.
    fn stop(mut self) {
        let pgid = self.child.id();
        let status = Command::new("kill")
            .args(["-INT", "--", &format!("-{pgid}")])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(130), "./local/run exits 130 on Ctrl-C");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the stack did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !self.data_dir.join("stack.env").exists(),
            "stack.env removed on stop"
        );
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    /// Every exchange with the API, for the OpenAPI check (`E2E_EXCHANGES`).
    exchanges: std::cell::RefCell<Vec<Value>>,
}

impl Client {
    fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            agent,
            base: base.to_owned(),
            exchanges: Default::default(),
        }
    }

    /// Records an exchange and returns (status, JSON body or the text).
    fn record(
        &self,
        method: &str,
        path: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> (u16, Value) {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let mut headers = serde_json::Map::new();
        for name in ["www-authenticate", "retry-after"] {
            if let Some(v) = header(name) {
                headers.insert(name.to_owned(), v.into());
            }
        }
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        self.exchanges.borrow_mut().push(json!({
            "method": method, "path": path, "status": status,
            "content_type": content_type, "headers": headers, "body": body,
        }));
        (status, body)
    }

    /// Appends the recorded exchanges to the file named by `E2E_EXCHANGES`, if set.
    fn save_exchanges(&self) {
        let Ok(path) = std::env::var("E2E_EXCHANGES") else {
            return;
        };
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        for ex in self.exchanges.borrow().iter() {
            writeln!(file, "{ex}").unwrap();
        }
    }

    fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                if let Some(auth) = &auth {
                    req = req.header("authorization", auth);
                }
                req.call()
            }
            (_, body) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(auth) = &auth {
                    req = req.header("authorization", auth);
                }
                req.send(body.unwrap_or(json!({})).to_string())
            }
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        self.record(method, path, resp)
    }

    fn upload(&self, token: &str, file_name: &str, bytes: &[u8]) -> (u16, Value) {
        let (content_type, body) =
            testkit::multipart(&[("aspect_ratio", "1:1")], &[("file", file_name, bytes)]);
        let resp = self
            .agent
            .post(&format!("{}/viral-clip/video/upload", self.base))
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", &content_type)
            .send(&body[..])
            .unwrap();
        self.record("POST", "/viral-clip/video/upload", resp)
    }

    /// A raw body with a content type of the caller's choosing.
    fn raw(&self, path: &str, token: Option<&str>, content_type: &str, body: &str) -> (u16, Value) {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let resp = req.send(body).unwrap();
        self.record("POST", path, resp)
    }

    fn delete(&self, path: &str, token: &str) -> u16 {
        let resp = self
            .agent
            .delete(&format!("{}{path}", self.base))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        self.record("DELETE", path, resp).0
    }

    fn register(&self, email: &str) -> (i64, String) {
        let (status, body) = self.json(
            "POST",
            "/auth/register",
            None,
            Some(json!({"email": email, "password": "correct horse battery"})),
        );
        assert_eq!(status, 201, "{body}");
        (
            body["user"]["id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }
}

/// Polls `GET path` until the video has `status` (within 30 s); its body.
fn wait_for_status(client: &Client, path: &str, token: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, video) = client.json("GET", path, Some(token), None);
        assert_eq!(code, 200, "{video}");
        if video["status"] == status {
            return video;
        }
        assert!(
            Instant::now() < deadline,
            "not {status} within 30 s: {video}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "starts the whole local stack twice; run by ./local/test"]
fn the_local_stack_ingests_processes_stores_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (api_port, s3_port, db_port) = (free_port(), free_port(), free_port());
    let stack = Stack::start(&data_dir, api_port, s3_port, db_port);
    let client = Client::new(stack.api());
    let video = testkit::fixture("sample-3s.mp4");

    // Two users; A submits a link and uploads a file, B submits a link.
    let (a, token_a) = client.register("ada@example.com");
    let (_b, token_b) = client.register("bob@example.com");
    let (status, link_a) = client.json(
        "POST",
        "/viral-clip/video/youtube",
        Some(&token_a),
        Some(json!({"youtube_url": "https://youtu.be/dQw4w9WgXcQ", "video_type": "podcast"})),
    );
    assert_eq!(status, 201, "{link_a}");
    let (status, upload_a) = client.upload(&token_a, "talk.mp4", &video);
    assert_eq!(status, 201, "{upload_a}");
    let (status, link_b) = client.json(
        "POST",
        "/viral-clip/video/youtube",
        Some(&token_b),
        Some(json!({"youtube_url": "https://www.youtube.com/shorts/aaaaaaaaaaa"})),
    );
    assert_eq!(status, 201, "{link_b}");

    // A's history: A's two videos only, newest first.
    let (status, history) = client.json("GET", "/viral-clip/videos", Some(&token_a), None);
    assert_eq!(status, 200, "{history}");
    let ids: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            upload_a["video_source"]["id"].as_i64().unwrap(),
            link_a["video_source"]["id"].as_i64().unwrap()
        ]
    );
    assert!(history["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["user_id"] == a));

    // The worker, driven by the stack's ticker, finishes every job within 15 s.
    let jobs = [
        (&token_a, &link_a),
        (&token_a, &upload_a),
        (&token_b, &link_b),
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    for (token, created) in jobs {
        let path = format!("/viral-clip/jobs/{}", created["processing_job"]["id"]);
        loop {
            let (status, job) = client.json("GET", &path, Some(token), None);
            assert_eq!(status, 200, "{job}");
            if job["status"] == "completed" {
                assert_eq!(job["progress"], 100.0);
                assert_eq!(job["result_summary"]["pipeline"], "dummy");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job not completed within 15 s: {job}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let (_, history) = client.json("GET", "/viral-clip/videos", Some(&token_a), None);
    for item in history["items"].as_array().unwrap() {
        assert_eq!(item["status"], "ready", "{item}");
        assert_eq!(item["latest_job"]["status"], "completed");
    }

    // The upload sits in the object store at videos/<A>/<uuid>.mp4, byte for byte.
    let key = upload_a["video_source"]["file_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        key.starts_with(&format!("videos/{a}/")) && key.ends_with(".mp4"),
        "{key}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = StorageConfig {
        endpoint: Some(stack.env["S3_ENDPOINT"].clone()),
        bucket: stack.env["S3_BUCKET"].clone(),
        region: stack.env["S3_REGION"].clone(),
        static_credentials: Some((
            stack.env["AWS_ACCESS_KEY_ID"].clone(),
            stack.env["AWS_SECRET_ACCESS_KEY"].clone(),
        )),
        session_token: None,
    };
    let stored = rt.block_on(async {
        let storage = Storage::connect(&cfg).await;
        let got = storage
            .client()
            .get_object()
            .bucket(storage.bucket())
            .key(&key)
            .send()
            .await
            .expect("object");
        got.body.collect().await.unwrap().into_bytes().to_vec()
    });
    assert_eq!(stored, video);

    // A large upload through the router's path parameters: started, aborted (DELETE), refused.
    let (status, started) = client.json(
        "POST",
        "/viral-clip/video/uploads",
        Some(&token_b),
        Some(json!({"filename": "big.mp4", "size_bytes": 100 * 1024 * 1024})),
    );
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["multipart"], true);
    let upload = started["upload_id"].as_i64().unwrap();
    let path = format!("/viral-clip/video/uploads/{upload}");
    assert_eq!(client.delete(&path, &token_a), 404, "not A's upload");
    assert_eq!(client.delete(&path, &token_b), 204);
    let (status, refused) = client.json("POST", &format!("{path}/complete"), Some(&token_b), None);
    assert_eq!(status, 409, "{refused}");

    // A large upload in one presigned PUT, completed through the router.
    let (status, started) = client.json(
        "POST",
        "/viral-clip/video/uploads",
        Some(&token_b),
        Some(
            json!({"filename": "clip.mp4", "size_bytes": video.len(), "content_type": "video/mp4"}),
        ),
    );
    assert_eq!(status, 201, "{started}");
    let put = client
        .agent
        .put(started["parts"][0]["url"].as_str().unwrap())
        .send(&video[..])
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let path = format!(
        "/viral-clip/video/uploads/{}/complete",
        started["upload_id"]
    );
    let (status, done) = client.json("POST", &path, Some(&token_b), None);
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["video_source"]["duration_seconds"], 3);

    // One video at a time: a failed one looked at and tried again, an uploaded one deleted
    // with its object. (The stack's dummy pipeline fails every "gaming" video.)
    let (status, gaming) = client.json(
        "POST",
        "/viral-clip/video/youtube",
        Some(&token_b),
        Some(json!({"youtube_url": "https://youtu.be/bbbbbbbbbbb", "video_type": "gaming"})),
    );
    assert_eq!(status, 201, "{gaming}");
    let one = format!("/viral-clip/videos/{}", gaming["video_source"]["id"]);
    let failed = wait_for_status(&client, &one, &token_b, "failed");
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1, "{failed}");
    assert!(failed["error_message"].as_str().unwrap().contains("gaming"));
    let (status, retried) = client.json("POST", &format!("{one}/retry"), Some(&token_b), None);
    assert_eq!(status, 201, "{retried}");
    assert_eq!(retried["video_source"]["status"], "pending");
    assert_eq!(retried["processing_job"]["payload"]["video_type"], "gaming");
    let (status, _) = client.json("POST", &format!("{one}/retry"), Some(&token_b), None);
    assert_eq!(status, 409, "only a failed video is tried again");
    let failed_again = wait_for_status(&client, &one, &token_b, "failed");
    assert_eq!(
        failed_again["jobs"].as_array().unwrap().len(),
        2,
        "{failed_again}"
    );
    let (status, _) = client.json("GET", &one, Some(&token_a), None);
    assert_eq!(status, 404, "another user's video");

    let clip = format!("/viral-clip/videos/{}", done["video_source"]["id"]);
    let clip_key = done["video_source"]["file_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(client.delete(&clip, &token_a), 404, "another user's video");
    assert_eq!(client.delete(&clip, &token_b), 204);
    assert_eq!(client.json("GET", &clip, Some(&token_b), None).0, 404);
    assert_eq!(client.delete(&clip, &token_b), 404, "deleted already");
    let clip_job = format!("/viral-clip/jobs/{}", done["processing_job"]["id"]);
    assert_eq!(client.json("GET", &clip_job, Some(&token_b), None).0, 404);
    let left = rt.block_on(async {
        let storage = Storage::connect(&cfg).await;
        storage
            .client()
            .head_object()
            .bucket(storage.bucket())
            .key(&clip_key)
            .send()
            .await
    });
    assert!(left.is_err(), "the deleted video's object left the store");

    // The error answers, as a client meets them (and as openapi.yaml describes them).
    let cases: Vec<(u16, (u16, Value))> = vec![
        (409, client.json("POST", "/auth/register", None,
            Some(json!({"email": "ADA@example.com", "password": "correct horse battery"})))),
        (401, client.json("POST", "/auth/login", None,
            Some(json!({"email": "ada@example.com", "password": "wrong password"})))),
        (422, client.json("POST", "/auth/register", None, Some(json!({"email": "nope", "password": "x"})))),
        (401, client.json("GET", "/viral-clip/videos", None, None)),
        (401, client.json("GET", "/viral-clip/videos", Some("not-a-token"), None)),
        (422, client.json("GET", "/viral-clip/videos?status=done", Some(&token_a), None)),
        (422, client.json("GET", "/viral-clip/videos?limit=0", Some(&token_a), None)),
        (200, client.json("GET", "/viral-clip/videos?status=ready&limit=1", Some(&token_a), None)),
        (404, client.json("GET", "/viral-clip/jobs/999999", Some(&token_a), None)),
        (404, client.json("GET", "/viral-clip/videos/abc", Some(&token_a), None)),
        (404, client.json("POST", "/viral-clip/videos/999999/retry", Some(&token_a), None)),
        (409, client.json("POST", &format!("/viral-clip/videos/{}/retry", link_a["video_source"]["id"]), Some(&token_a), None)),
        (404, client.json("GET", &format!("/viral-clip/jobs/{}", link_b["processing_job"]["id"]), Some(&token_a), None)),
        (422, client.json("POST", "/viral-clip/video/youtube", Some(&token_a),
            Some(json!({"youtube_url": "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ", "colour": 1})))),
        (400, client.raw("/viral-clip/video/youtube", Some(&token_a), "application/json", "{not json")),
        (400, client.raw("/viral-clip/video/youtube", Some(&token_a), "text/plain", "hello")),
        (415, client.upload(&token_a, "notes.mp4", b"just some text, not a video at all")),
        (422, client.json("POST", "/viral-clip/video/uploads", Some(&token_a), Some(json!({"filename": ""})))),
        (413, client.json("POST", "/viral-clip/video/uploads", Some(&token_a),
            Some(json!({"filename": "huge.mp4", "size_bytes": 20u64 << 30})))),
        (404, client.json("POST", "/viral-clip/video/uploads/999999/complete", Some(&token_a), None)),
    ];
    for (want, (status, body)) in &cases {
        assert_eq!(status, want, "{body}");
        if *want >= 400 {
            assert!(body["error"]["code"].is_string(), "{body}");
        }
    }

    // The abuse limits: a guessed password is throttled per email, a busy account by its quota.
    let guess = json!({"email": "bob@example.com", "password": "a wrong guess"});
    for _ in 0..5 {
        let (status, body) = client.json("POST", "/auth/login", None, Some(guess.clone()));
        assert_eq!(status, 401, "{body}");
    }
    let (status, throttled) = client.json("POST", "/auth/login", None, Some(guess));
    assert_eq!(status, 429, "{throttled}");
    assert_eq!(throttled["error"]["details"]["limit"], "sign_in_failures");
    let bobs_password = json!({"email": "bob@example.com", "password": "correct horse battery"});
    let (status, _) = client.json("POST", "/auth/login", None, Some(bobs_password.clone()));
    assert_eq!(status, 429, "the right password waits too");
    let (_, token_q) = client.register("quota@example.com");
    for n in 0..HOURLY_QUOTA {
        let link = json!({"youtube_url": format!("https://youtu.be/quota{n:06}")});
        let (status, body) = client.json(
            "POST",
            "/viral-clip/video/youtube",
            Some(&token_q),
            Some(link),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (status, over) = client.json(
        "POST",
        "/viral-clip/video/youtube",
        Some(&token_q),
        Some(json!({"youtube_url": "https://youtu.be/onemoreplea"})),
    );
    assert_eq!(status, 429, "{over}");
    assert_eq!(over["error"]["details"]["limit"], "videos_per_hour");
    assert!(
        over["error"]["details"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            > 3000,
        "{over}"
    );
    let (status, over) = client.json(
        "POST",
        "/viral-clip/video/uploads",
        Some(&token_q),
        Some(
            json!({"filename": "big.mp4", "size_bytes": 50u64 << 20, "content_type": "video/mp4"}),
        ),
    );
    assert_eq!(
        status, 429,
        "an upload is refused before its bytes are sent: {over}"
    );
    let (_, listed) = client.json("GET", "/viral-clip/videos?limit=100", Some(&token_q), None);
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        HOURLY_QUOTA,
        "nothing refused was written"
    );
    client.save_exchanges();

    // Stop and start again: the history is still there, and the session still works.
    stack.stop();
    let stack = Stack::start(&data_dir, api_port, s3_port, db_port);
    let client = Client::new(stack.api());
    let (status, again) = client.json("GET", "/viral-clip/videos", Some(&token_a), None);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["items"], history["items"],
        "the same history after a restart"
    );
    let (status, login) = client.json(
        "POST",
        "/auth/login",
        None,
        Some(json!({"email": "ada@example.com", "password": "correct horse battery"})),
    );
    assert_eq!(status, 200, "{login}");
    let (status, _) = client.json("POST", "/auth/login", None, Some(bobs_password));
    assert_eq!(
        status, 429,
        "the throttle is in the database: it outlives a restart"
    );
    client.save_exchanges();
    stack.stop();
}
