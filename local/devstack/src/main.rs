//! `devstack`, used by `local/run`:
//!
//! - `devstack s3 <addr> <root-dir> <bucket>`: an S3-compatible store (s3s-fs, the dev
//!   credentials of `testkit`) on `addr`, keeping objects as files under `root-dir`, with
//!   `bucket` created. Runs until SIGINT/SIGTERM.
//! - `devstack migrate <database-url>`: applies the migrations and exits.
//! - `devstack gateway <addr> <bin-dir> <env-file> <Cargo.toml>`: API Gateway and Lambda on
//!   `addr` (see `gateway.rs`): the routes of Cargo.toml's router table, each function run from
//!   `bin-dir` with the settings of `env-file` (KEY=VALUE lines), `GATEWAY_INSTANCES` (2)
//!   processes each, `GATEWAY_TIMEOUT_SECONDS` (30) per HTTP request. Runs until SIGINT/SIGTERM.

use devstack::gateway;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shared::config::DatabaseUrl;
use shared::db::Db;

/// A local libSQL server's auth, made once per data directory (so the token survives restarts):
/// `<dir>/sqld-jwt.pem`, the Ed25519 public key `sqld --auth-jwt-key-file` takes, and
/// `<dir>/sqld-token`, a read-write JWT signed with it.
fn sqld_auth(dir: &str) -> Result<(), String> {
    let dir = std::path::Path::new(dir);
    let (pem, token) = (dir.join("sqld-jwt.pem"), dir.join("sqld-token"));
    if pem.exists() && token.exists() {
        return Ok(());
    }
    let (public_key, jwt) = testkit::sqld::key_and_token();
    std::fs::write(&pem, public_key).map_err(|e| format!("{}: {e}", pem.display()))?;
    std::fs::write(&token, jwt).map_err(|e| format!("{}: {e}", token.display()))?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["s3", addr, root, bucket] => serve_s3(addr, root, bucket).await,
        ["migrate", url] => migrate(url).await,
        ["sqld-auth", dir] => sqld_auth(dir),
        ["sqld-bin"] => {
            println!("{}", testkit::sqld::binary().display());
            Ok(())
        }
        ["gateway", addr, bin_dir, env_file, cargo_toml] => {
            serve_gateway(addr, bin_dir, env_file, cargo_toml).await
        }
        _ => Err(
            "usage: devstack s3 <addr> <root-dir> <bucket> | devstack migrate <database-url> \
             | devstack gateway <addr> <bin-dir> <env-file> <Cargo.toml> \
             | devstack sqld-auth <dir> | devstack sqld-bin"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devstack: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn until_stopped() -> Result<(), String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

async fn serve_gateway(
    addr: &str,
    bin_dir: &str,
    env_file: &str,
    cargo_toml: &str,
) -> Result<(), String> {
    let number = |name: &str, default: u64| -> Result<u64, String> {
        std::env::var(name).ok().map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("{name}={v}: {e}"))
        })
    };
    let instances = number("GATEWAY_INSTANCES", 2)?.max(1) as usize;
    let http_timeout = Duration::from_secs(number("GATEWAY_TIMEOUT_SECONDS", 30)?);
    let routes = gateway::routes_from_cargo_toml(
        &std::fs::read_to_string(cargo_toml).map_err(|e| format!("{cargo_toml}: {e}"))?,
    )?;
    let env: Vec<(String, String)> = std::fs::read_to_string(env_file)
        .map_err(|e| format!("{env_file}: {e}"))?
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect();
    let mut names: Vec<String> = routes.iter().map(|r| r.function.clone()).collect();
    names.push("worker".into());
    names.sort();
    names.dedup();
    let mut functions = std::collections::HashMap::new();
    for name in names {
        let function = gateway::Function::start(&name)
            .await
            .map_err(|e| format!("runtime API for {name}: {e}"))?;
        gateway::supervise(
            &function,
            std::path::Path::new(bin_dir).join(&name),
            env.clone(),
            instances,
        );
        functions.insert(name, function);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        addr,
        instances,
        functions = functions.len(),
        "gateway ready"
    );
    let gateway = Arc::new(gateway::Gateway {
        routes,
        functions,
        http_timeout,
        invoke_timeout: Duration::from_secs(900),
    });
    tokio::select! {
        _ = gateway.serve(listener) => {}
        r = until_stopped() => r?,
    }
    tracing::info!("gateway stopped");
    Ok(())
}

async fn serve_s3(addr: &str, root: &str, bucket: &str) -> Result<(), String> {
    let addr = addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?;
    let server = testkit::S3Server::serve(std::path::Path::new(root), addr)
        .await
        .map_err(|e| format!("cannot serve S3 on {addr}: {e}"))?;
    server
        .create_bucket(bucket)
        .map_err(|e| format!("bucket {bucket}: {e}"))?;
    tracing::info!(endpoint = %server.endpoint(), bucket, root, "S3-compatible store ready");
    until_stopped().await?;
    tracing::info!("S3-compatible store stopped");
    Ok(())
}

async fn migrate(url: &str) -> Result<(), String> {
    let url = DatabaseUrl::parse(url, std::env::var("DATABASE_AUTH_TOKEN").ok())
        .map_err(|e| e.to_string())?;
    let db = Db::open(&url).await.map_err(|e| e.to_string())?;
    let conn = db.connect().await.map_err(|e| e.to_string())?;
    let applied = shared::migrations::migrate(&conn)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(?applied, "migrations applied");
    Ok(())
}
