//! `devstack`, used by `local/run`:
//!
//! - `devstack s3 <addr> <root-dir> <bucket>`: an S3-compatible store (s3s-fs, the dev
//!   credentials of `testkit`) on `addr`, keeping objects as files under `root-dir`, with
//!   `bucket` created. Runs until SIGINT/SIGTERM.
//! - `devstack migrate <database-url>`: applies the migrations and exits.

use std::process::ExitCode;

use shared::config::DatabaseUrl;
use shared::db::Db;

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
        _ => Err(
            "usage: devstack s3 <addr> <root-dir> <bucket> | devstack migrate <database-url>"
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

async fn serve_s3(addr: &str, root: &str, bucket: &str) -> Result<(), String> {
    let addr = addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?;
    let server = testkit::S3Server::serve(std::path::Path::new(root), addr)
        .await
        .map_err(|e| format!("cannot serve S3 on {addr}: {e}"))?;
    server
        .create_bucket(bucket)
        .map_err(|e| format!("bucket {bucket}: {e}"))?;
    tracing::info!(endpoint = %server.endpoint(), bucket, root, "S3-compatible store ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
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
