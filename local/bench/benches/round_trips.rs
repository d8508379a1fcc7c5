//! Round trips per route to a real libSQL server, and latency with and without a network delay:
//! `cargo bench -p bench --bench round_trips` (release mode; prints figures).
//!
//! The functions are called in-process against a `sqld` (JWT auth on) through a counting proxy
//! on loopback; the proxy then holds each request `DELAY` before forwarding it, as a network
//! between a function and its database would. Target: p50 with the delay at most
//! 1.3 × DELAY + the p50 without it.

use std::collections::BTreeMap;
use std::time::Duration;

use bench::round_trips::{budget, Counted};
use bench::{machine, ms, percentile};

const DELAY: Duration = Duration::from_millis(20);
const ROUNDS: usize = 60;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let stack = Counted::start().await;
    stack.every_route(0).await;
    println!(
        "# Round trips per route to a libSQL server (sqld 0.24.32), {}",
        machine()
    );
    println!("# command: cargo bench -p bench --bench round_trips");
    // Rounds with and without the delay alternate, so drift on the machine (Argon2 is CPU-bound
    // on 2 cores) falls on both alike.
    let mut plain: BTreeMap<&'static str, (u64, Vec<Duration>)> = BTreeMap::new();
    let mut delayed: BTreeMap<&'static str, (u64, Vec<Duration>)> = BTreeMap::new();
    for n in 0..ROUNDS {
        for (delay, into) in [(Duration::ZERO, &mut plain), (DELAY, &mut delayed)] {
            stack.proxy.set_delay(delay);
            let first = 1 + 2 * n + usize::from(!delay.is_zero());
            for (route, trips, took) in stack.every_route(first).await {
                let entry = into.entry(route).or_default();
                entry.0 = trips;
                entry.1.push(took);
            }
        }
    }
    stack.proxy.set_delay(Duration::ZERO);
    println!(
        "| route | round trips | budget | p50 | p99 | p50 +{} ms/trip | p99 +{} ms/trip | target p50 | met |",
        DELAY.as_millis(),
        DELAY.as_millis()
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut all_met = true;
    for (route, (trips, times)) in &plain {
        let (_, delayed_times) = &delayed[route];
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        let (d50, d99) = (
            percentile(delayed_times, 0.5),
            percentile(delayed_times, 0.99),
        );
        let target = DELAY.mul_f64(1.3) + p50;
        let met = d50 <= target;
        all_met &= met;
        println!(
            "| {route} | {trips} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            budget(route),
            ms(p50),
            ms(p99),
            ms(d50),
            ms(d99),
            ms(target),
            if met { "yes" } else { "no" }
        );
    }
    let worker = stack.worker(200, 8).await;
    let cold = stack.cold_start_schema().await;
    println!(
        "worker: idle poll {} round trip(s) (budget {}); per job {:.2} (budget {}) besides {:.0} progress reports (each also a heartbeat)",
        worker.idle_poll,
        budget("worker: an idle poll"),
        worker.per_job,
        budget("worker: a job (claim share + completion)"),
        worker.progress_per_job
    );
    println!(
        "cold start: {cold} round trip(s) for the schema (budget {})",
        budget("cold start: the schema check")
    );
    println!(
        "latency target (p50 with +{} ms per trip <= 1.3 x {} ms + p50 without): {}",
        DELAY.as_millis(),
        DELAY.as_millis(),
        if all_met {
            "met on every route"
        } else {
            "NOT met on every route"
        }
    );
}
