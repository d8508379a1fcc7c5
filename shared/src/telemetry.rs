//! Structured JSON logs for every function (CloudWatch and `cargo lambda watch` alike).

/// Installs a JSON `tracing` subscriber filtered by `RUST_LOG` (default `info`). Spans' fields
/// (job id, attempt, …) appear on every line logged inside them. Safe to call twice.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
