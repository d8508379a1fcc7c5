//! Memory of completing a large upload: `cargo bench -p bench --bench large_upload [-- --size-mib N]`
//! (default 1024 MiB; prints figures).
//!
//! A video of N MiB with `moov` at the end goes up through presigned multipart PUTs to the
//! in-process S3-compatible server, exactly as a browser sends it. Then the process's peak RSS
//! is reset (`/proc/self/clear_refs`) and `POST …/complete` runs: the store joins the parts,
//! the handler checks size and leading bytes and reads `mvhd` with ranged GETs. The peak RSS
//! during completion shows whether anything buffered the object.

use std::time::Instant;

use serde_json::json;
use testkit::{json_request, put_url, read, request, user, TestEnv};

const MIB: usize = 1024 * 1024;

/// (VmRSS, VmHWM) of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut size_mib = 1024usize;
    while let Some(a) = args.next() {
        if a == "--size-mib" {
            size_mib = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--size-mib N");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(size_mib));
}

async fn run(size_mib: usize) {
    let env = TestEnv::start().await;
    let app = env.app().await;
    let (_, token) = user(&app, "bench@example.com").await;
    let size = size_mib * MIB;

    // Arrange: the parts go up (the whole file is built in memory here, then freed).
    let started = {
        let base = testkit::fixture("moov-at-end-2s.mp4");
        let file = testkit::pad_mdat(&base, size - base.len());
        let body = json!({"filename": "big.mp4", "size_bytes": size, "content_type": "video/mp4"});
        let req = json_request("POST", "/viral-clip/video/uploads", Some(&token), &body);
        let (status, _, started) = read(create_upload::handler(&app, req).await.unwrap());
        assert_eq!(status, 201, "{started}");
        let part_size = started["part_size"].as_u64().unwrap() as usize;
        let upload_started = Instant::now();
        for part in started["parts"].as_array().unwrap() {
            let n = part["part_number"].as_u64().unwrap() as usize;
            let chunk = file[(n - 1) * part_size..(n * part_size).min(size)].to_vec();
            let (status, _) = put_url(part["url"].as_str().unwrap(), chunk).await;
            assert_eq!(status, 200);
        }
        println!(
            "# large upload: {size_mib} MiB in {} parts of {} MiB, PUT in {:.1} s",
            started["parts"].as_array().unwrap().len(),
            part_size / MIB,
            upload_started.elapsed().as_secs_f64()
        );
        started
    };

    // Act: completion, with the peak RSS reset just before.
    let (rss_before, _) = rss_kib();
    let reset = reset_peak_rss();
    let id = started["upload_id"].as_i64().unwrap();
    let req = request(
        "POST",
        &format!("/viral-clip/video/uploads/{id}/complete"),
        Some(&token),
        None,
        lambda_http::Body::Empty,
    );
    let t = Instant::now();
    let (status, _, body) = read(complete_upload::handler(&app, req).await.unwrap());
    let took = t.elapsed();
    let (rss_after, peak) = rss_kib();

    // Assert and report
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["video_source"]["duration_seconds"], 2);
    let key = body["video_source"]["file_path"].as_str().unwrap();
    let storage = shared::storage::Storage::connect(&env.s3.storage_config(testkit::BUCKET)).await;
    let (_, stats) = shared::ingest::upload_complete::probe(&storage, key, size as u64)
        .await
        .unwrap();
    println!(
        "complete: {:.2} s (store joins {size_mib} MiB of parts + checks); ranged reads: {} requests, {} KiB",
        took.as_secs_f64(),
        stats.requests,
        stats.bytes / 1024
    );
    println!(
        "RSS before completion {} MiB; peak during completion {} MiB{}; after {} MiB",
        rss_before / 1024,
        peak / 1024,
        if reset {
            ""
        } else {
            " (peak not reset: clear_refs unavailable)"
        },
        rss_after / 1024
    );
    let growth = peak.saturating_sub(rss_before) / 1024;
    println!(
        "peak growth during completion: {growth} MiB for a {size_mib} MiB object ({:.2}%)",
        growth as f64 * 100.0 / size_mib as f64
    );
    assert!(
        growth < 64,
        "completion must not buffer the object: peak grew {growth} MiB"
    );
}
