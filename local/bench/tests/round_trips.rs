//! On a libSQL server every statement is a network round trip: each route stays within its
//! budget (`bench::round_trips::BUDGETS`), counted at a proxy in front of a real `sqld`.

use bench::round_trips::{budget, Counted};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_libsql_server_every_route_stays_within_its_round_trip_budget() {
    // Arrange: the functions reach sqld through a counting proxy; one run of every route warms up.
    let stack = Counted::start().await;
    stack.every_route(0).await;

    // Act
    let routes = stack.every_route(1).await;
    let worker = stack.worker(8, 4).await;
    let cold = stack.cold_start_schema().await;

    // Assert
    let mut over = Vec::new();
    for (route, trips, _) in &routes {
        if *trips > budget(route) {
            over.push(format!("{route}: {trips} (budget {})", budget(route)));
        }
    }
    if worker.idle_poll > budget("worker: an idle poll") {
        over.push(format!("idle poll: {}", worker.idle_poll));
    }
    if worker.per_job > budget("worker: a job (claim share + completion)") as f64 {
        over.push(format!("per job: {:.2}", worker.per_job));
    }
    if cold > budget("cold start: the schema check") {
        over.push(format!("cold start: {cold}"));
    }
    assert!(
        over.is_empty(),
        "over budget: {over:#?}\nall: {routes:#?} {worker:?}"
    );
}
