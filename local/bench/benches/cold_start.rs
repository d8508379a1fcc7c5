//! Cold start: every release binary served one invocation through a local Lambda Runtime API.
//!
//! `local/bench/cold_start.sh` builds the binaries (`cargo build --release`, the profile that
//! ships) and runs this with `cargo bench -p bench --bench cold_start [-- --runs N]`.
//!
//! Each binary polls a Lambda Runtime API of its own (`devstack::gateway::Function`, the one
//! the local stack runs) holding one event; it is started with the Lambda environment variables
//! and the function's own settings, and the time from spawn to its response arriving is the
//! cold start: process start, config, DB open + migration check, S3 client, the first request
//! handled. The process is then killed. Runs are interleaved across binaries so noise spreads
//! evenly; one unmeasured run per binary comes first.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bench::{machine, ms, percentile};
use bytes::Bytes;
use devstack::gateway::Function;
use serde_json::{json, Value};

/// (binary, method, path, body, the status its response must carry)
const FUNCTIONS: &[(&str, &str, &str, &str, u16)] = &[
    ("hello-lambda", "GET", "/", "", 200),
    ("auth-register", "POST", "/auth/register", "{}", 422),
    ("auth-login", "POST", "/auth/login", "{}", 422),
    (
        "submit-youtube",
        "POST",
        "/viral-clip/video/youtube",
        "{}",
        401,
    ),
    ("upload-video", "POST", "/viral-clip/video/upload", "", 401),
    (
        "create-upload",
        "POST",
        "/viral-clip/video/uploads",
        "{}",
        401,
    ),
    (
        "complete-upload",
        "POST",
        "/viral-clip/video/uploads/1/complete",
        "{}",
        401,
    ),
    (
        "abort-upload",
        "DELETE",
        "/viral-clip/video/uploads/1",
        "",
        401,
    ),
    ("list-videos", "GET", "/viral-clip/videos", "", 401),
    ("get-job", "GET", "/viral-clip/jobs/1", "", 401),
    ("web-page", "GET", "/viral-clip", "", 200),
    ("worker", "", "", "", 0),
];

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

    for (name, ..) in FUNCTIONS {
        let bin = release.join(name);
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --release --workspace --bins` (local/bench/cold_start.sh does)",
            bin.display()
        );
    }

    let mut functions = BTreeMap::new();
    for (name, ..) in FUNCTIONS {
        functions.insert(*name, rt.block_on(Function::start(name)).unwrap());
    }
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for round in 0..=runs {
        for (name, method, path, body, status) in FUNCTIONS {
            let event = if name == &"worker" {
                json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
            } else {
                http_event(method, path, body)
            };
            let (took, response) = rt.block_on(cold_start(
                &release.join(name),
                &env,
                &functions[name],
                &event,
            ));
            if name != &"worker" {
                assert_eq!(
                    response["statusCode"].as_u64(),
                    Some(u64::from(*status)),
                    "{name}: {response}"
                );
            }
            if round > 0 {
                times.entry(name).or_default().push(took);
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
    for (name, ..) in FUNCTIONS {
        let t = &times[name];
        let size = std::fs::metadata(release.join(name)).unwrap().len();
        let ratio = ms(median(t)) / ms(hello);
        if *name != "hello-lambda" {
            worst = worst.max(ratio);
        }
        println!(
            "| {name} | {:.1} MiB | {:.1} ms | {:.1} ms | {:.1} ms | {ratio:.2}x |",
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
        ("JWT_SECRET", "cold-start-secret-cold-start-secret-0123"),
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
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn http_event(method: &str, path: &str, body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.local", "user-agent": "cold-start"},
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
        "body": if body.is_empty() { Value::Null } else { Value::from(body) },
        "isBase64Encoded": false
    })
}

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
