//! Cold start: every release binary served one invocation through a local Lambda Runtime API.
//!
//! `local/bench/cold_start.sh` builds the binaries (`cargo build --release`, the profile that
//! ships) and runs this with `cargo bench -p bench --bench cold_start [-- --runs N]`.
//!
//! Each binary polls a Lambda Runtime API of its own (`devstack::gateway::Function`, the one
//! the local stack runs) holding one event; it is started with the Lambda environment variables
//! and the function's own settings, and the time from spawn to its response arriving is the
//! cold start: process start, config, DB open + migration check, S3 client, the first request
//! handled. The process is then killed (as Lambda ends an instance: no clean close). Runs are
//! interleaved across binaries, each round in a new order, so noise spreads evenly; one
//! unmeasured run per binary comes first.
//!
//! The database's state is part of a cold start, so it is set as in a running system: this
//! process keeps a connection open to it, standing in for the worker and the function instances
//! that are warm (each keeps one open for its life). A new instance then joins a WAL that is in
//! use. The rows marked "database idle" start instead on a database nobody has open, left with
//! a WAL by a killed process: SQLite first rebuilds the WAL index by reading that WAL
//! (recovery), as after the whole system was stopped. They are shown, not counted in the target.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bench::{machine, ms, percentile};
use bytes::Bytes;
use devstack::gateway::Function;
use serde_json::{json, Value};

/// One cold start to time: the binary, the request its runtime API holds, the status expected.
struct Case {
    /// The row's name: the binary's, or the binary and what its request does.
    label: &'static str,
    binary: &'static str,
    method: &'static str,
    path: &'static str,
    /// What the request carries.
    body: Body,
    /// 0: the worker (a scheduled event, no status).
    status: u16,
    /// The database is in use by the rest of the system (the usual case), or idle with a WAL
    /// left by a killed process.
    database: Database,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Database {
    InUse,
    Idle,
}

#[derive(Clone, Copy)]
enum Body {
    /// No body and no token: refused at the door (401) or a page (200).
    Empty,
    /// `{}` without a token: a 401, or a 422 where no token is needed.
    EmptyJson,
    /// A signed-in YouTube submission: a video row and its queued job written (201).
    Submission,
    /// A signed-in upload of the 3-second fixture: checked, PUT to the store, rows written (201).
    /// The first S3 request of the process, so it also builds the HTTPS client.
    Upload,
}

const fn case(
    label: &'static str,
    method: &'static str,
    path: &'static str,
    body: Body,
    status: u16,
) -> Case {
    Case {
        label,
        binary: label,
        method,
        path,
        body,
        status,
        database: Database::InUse,
    }
}

const CASES: &[Case] = &[
    case("hello-lambda", "GET", "/", Body::Empty, 200),
    case(
        "auth-register",
        "POST",
        "/auth/register",
        Body::EmptyJson,
        422,
    ),
    case("auth-login", "POST", "/auth/login", Body::EmptyJson, 422),
    case(
        "submit-youtube",
        "POST",
        "/viral-clip/video/youtube",
        Body::EmptyJson,
        401,
    ),
    Case {
        label: "submit-youtube, 201 (video + job written)",
        binary: "submit-youtube",
        method: "POST",
        path: "/viral-clip/video/youtube",
        body: Body::Submission,
        status: 201,
        database: Database::InUse,
    },
    case(
        "upload-video",
        "POST",
        "/viral-clip/video/upload",
        Body::Empty,
        401,
    ),
    Case {
        label: "upload-video, 201 (3 s MP4 stored in S3)",
        binary: "upload-video",
        method: "POST",
        path: "/viral-clip/video/upload",
        body: Body::Upload,
        status: 201,
        database: Database::InUse,
    },
    case(
        "create-upload",
        "POST",
        "/viral-clip/video/uploads",
        Body::EmptyJson,
        401,
    ),
    case(
        "complete-upload",
        "POST",
        "/viral-clip/video/uploads/1/complete",
        Body::EmptyJson,
        401,
    ),
    case(
        "abort-upload",
        "DELETE",
        "/viral-clip/video/uploads/1",
        Body::Empty,
        401,
    ),
    case("list-videos", "GET", "/viral-clip/videos", Body::Empty, 401),
    case("get-job", "GET", "/viral-clip/jobs/1", Body::Empty, 401),
    case("get-video", "GET", "/viral-clip/videos/1", Body::Empty, 401),
    case(
        "delete-video",
        "DELETE",
        "/viral-clip/videos/1",
        Body::Empty,
        401,
    ),
    case(
        "retry-video",
        "POST",
        "/viral-clip/videos/1/retry",
        Body::Empty,
        401,
    ),
    case("web-page", "GET", "/viral-clip", Body::Empty, 200),
    case("worker", "", "", Body::Empty, 0),
    Case {
        label: "get-job, database idle (its WAL recovered first)",
        binary: "get-job",
        method: "GET",
        path: "/viral-clip/jobs/1",
        body: Body::Empty,
        status: 401,
        database: Database::Idle,
    },
    Case {
        label: "upload-video, database idle (its WAL recovered first)",
        binary: "upload-video",
        method: "POST",
        path: "/viral-clip/video/upload",
        body: Body::Empty,
        status: 401,
        database: Database::Idle,
    },
];

const JWT_SECRET: &str = "cold-start-secret-cold-start-secret-0123";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s3 = rt
        .block_on(testkit::S3Server::serve(
            &dir.path().join("s3"),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    s3.create_bucket("viralclip").unwrap();
    let env = function_env(dir.path(), &s3.endpoint());
    let with_database = |file: &str| {
        let mut env = env.clone();
        env.push((
            "DATABASE_URL".into(),
            format!("file:{}", dir.path().join(file).display()),
        ));
        env
    };
    // The worker ticks over a database of its own with an empty queue (the 201 rows below queue
    // jobs in cold.db that it would otherwise run).
    let worker_env = with_database("worker.db");
    let idle_env = with_database("idle.db");
    // The rest of the system, holding the databases open (see the top of this file); they are
    // migrated here, as a deploy does. Nothing holds idle.db: the first (unmeasured) run creates
    // and migrates it and is killed, so the migrations' WAL stays there for every measured run
    // to recover (their requests only read).
    let system = rt.block_on(async {
        let mut open = Vec::new();
        for file in ["cold.db", "worker.db"] {
            let db = shared::db::Db::open_file(&dir.path().join(file))
                .await
                .unwrap();
            shared::migrations::migrate(&db.connect().await.unwrap())
                .await
                .unwrap();
            open.push(db);
        }
        open
    });
    // A signed-in user for the requests that write.
    let token = rt.block_on(signed_in_user(&system[0]));

    // Each binary as Lambda runs it: a `bootstrap` file of its own, written in one go, as
    // `cargo lambda build` copies it and Lambda unpacks a deployment package. Started straight
    // from the linker's output instead, the same bytes took 0.2-0.3 ms longer here (more page
    // faults: how the page cache holds a file depends on how it was written).
    let mut bootstraps = BTreeMap::new();
    for case in CASES {
        let bin = release.join(case.binary);
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --release --bins` (local/bench/cold_start.sh does)",
            bin.display()
        );
        let bootstrap = dir
            .path()
            .join("functions")
            .join(case.binary)
            .join("bootstrap");
        if !bootstrap.exists() {
            std::fs::create_dir_all(bootstrap.parent().unwrap()).unwrap();
            std::fs::copy(&bin, &bootstrap).unwrap();
        }
        bootstraps.insert(case.binary, bootstrap);
    }

    let mut functions = BTreeMap::new();
    for case in CASES {
        functions.insert(
            case.label,
            rt.block_on(Function::start(case.binary)).unwrap(),
        );
    }
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    // A fixed seed: the same orders on every run of the benchmark.
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..=runs {
        // Each round in its own order, so no row always follows the same neighbour (a killed
        // process's teardown can overlap the next start; a fixed order once put ~0.3 ms between
        // the same binary in two positions).
        let mut order: Vec<&Case> = CASES.iter().collect();
        rng.shuffle(&mut order);
        for case in order {
            let event = if case.binary == "worker" {
                json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
            } else {
                http_event(case, &token)
            };
            let (took, response) = rt.block_on(cold_start(
                &bootstraps[case.binary],
                if case.database == Database::Idle {
                    &idle_env
                } else if case.binary == "worker" {
                    &worker_env
                } else {
                    &env
                },
                &functions[case.label],
                &event,
            ));
            if case.status != 0 {
                assert_eq!(
                    response["statusCode"].as_u64(),
                    Some(u64::from(case.status)),
                    "{}: {response}",
                    case.label
                );
            }
            if round > 0 {
                times.entry(case.label).or_default().push(took);
            }
        }
    }

    let hello = median(&times["hello-lambda"]);
    println!("# cold start ({runs} runs each, spawn to response, release profile)");
    println!("machine: {}", machine());
    println!();
    println!("| binary | size | median | p90 | min | median / hello-world |");
    println!("|---|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for case in CASES {
        let t = &times[case.label];
        let size = std::fs::metadata(&bootstraps[case.binary]).unwrap().len();
        let ratio = ms(median(t)) / ms(hello);
        // The target is about starting; the rows that write show what a real first request adds,
        // the idle-database rows what a start after the whole system stopped adds.
        if case.binary != "hello-lambda" && case.status != 201 && case.database == Database::InUse {
            worst = worst.max(ratio);
        }
        println!(
            "| {} | {:.1} MiB | {:.1} ms | {:.1} ms | {:.1} ms | {ratio:.2}x |",
            case.label,
            size as f64 / (1024.0 * 1024.0),
            ms(median(t)),
            ms(percentile(t, 0.9)),
            ms(*t.iter().min().unwrap()),
        );
    }
    println!();
    println!(
        "worst median / hello-world: {worst:.2}x (target <= 1.5x: {})",
        if worst <= 1.5 { "met" } else { "MISSED" }
    );
}

fn function_env(dir: &Path, s3_endpoint: &str) -> Vec<(String, String)> {
    [
        ("RUST_LOG", "info"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        // one CA bundle file, as template.yaml sets for Lambda (this machine's Debian path):
        // without it the TLS setup reads every file of /etc/ssl/certs (~4 ms more)
        ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
        (
            "DATABASE_URL",
            &format!("file:{}", dir.join("cold.db").display()),
        ),
        ("JWT_SECRET", JWT_SECRET),
        ("S3_ENDPOINT", s3_endpoint),
        ("S3_BUCKET", "viralclip"),
        ("S3_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", testkit::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", testkit::SECRET_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/cold-start"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start"),
        ("WORKER_STOP_WHEN_IDLE", "true"),
        // every measured 201 adds a pending video for one user, more than the quotas allow
        ("MAX_ACTIVE_JOBS_PER_USER", "1000000"),
        ("MAX_NEW_VIDEOS_PER_HOUR", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A signed-in user in `db` (migrated); their token.
async fn signed_in_user(db: &shared::db::Db) -> String {
    let conn = db.connect().await.unwrap();
    let user = shared::repo::users::insert(&conn, "cold@example.com", "not-a-real-hash")
        .await
        .unwrap()
        .unwrap();
    let auth = shared::auth::Auth::new(
        &shared::auth::AuthConfig::new(JWT_SECRET.as_bytes(), Duration::from_secs(3600)).unwrap(),
    );
    auth.issue(user.id).unwrap().0
}

fn http_event(case: &Case, token: &str) -> Value {
    let (method, path) = (case.method, case.path);
    let mut headers = json!({"host": "api.local", "user-agent": "cold-start"});
    let (content_type, body, base64) = match case.body {
        Body::Empty => (None, Value::Null, false),
        Body::EmptyJson => (
            Some("application/json".to_owned()),
            Value::from("{}"),
            false,
        ),
        Body::Submission => {
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let link = format!("https://www.youtube.com/watch?v=cold{n:07}");
            let body = json!({"youtube_url": link}).to_string();
            (
                Some("application/json".to_owned()),
                Value::from(body),
                false,
            )
        }
        Body::Upload => {
            let video = testkit::fixture("sample-3s.mp4");
            let (content_type, body) = testkit::multipart(&[], &[("file", "cold.mp4", &video)]);
            (Some(content_type), Value::from(BASE64.encode(body)), true)
        }
    };
    if let Some(ct) = content_type {
        headers["content-type"] = Value::from(ct);
    }
    if matches!(case.body, Body::Submission | Body::Upload) {
        headers["authorization"] = Value::from(format!("Bearer {token}"));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "api.local",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "cold-start"},
            "requestId": "cold-start",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_600_000_000u64
        },
        "body": body,
        "isBase64Encoded": base64
    })
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Starts `bin` against `function`'s Runtime API, which holds `event`; returns the time from
/// spawn to the response, and the response.
async fn cold_start(
    bin: &Path,
    env: &[(String, String)],
    function: &Function,
    event: &Value,
) -> (Duration, Value) {
    let started = Instant::now();
    // Only the function's environment, as Lambda starts it (nothing of this shell's, such as
    // SSL_CERT_DIR, which would make the TLS setup read every file of a certificate folder).
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", function.runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &function.name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let event = Bytes::from(serde_json::to_vec(event).unwrap());
    let outcome = function.invoke(event, Duration::from_secs(30)).await;
    let took = started.elapsed();
    child.kill().await.unwrap();
    let name = &function.name;
    let body = outcome
        .unwrap_or_else(|| panic!("{name}: no response within 30 s"))
        .unwrap_or_else(|e| panic!("{name} reported an error: {e}"));
    (took, serde_json::from_slice(&body).unwrap())
}

fn median(t: &[Duration]) -> Duration {
    percentile(t, 0.5)
}
