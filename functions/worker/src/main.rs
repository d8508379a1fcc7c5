use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::config::Env;
use worker::{handler, run_standalone, AppState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let env = Env::from_process();
    if std::env::args().any(|a| a == "--standalone") {
        let state = AppState::from_env(&env)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "worker cannot start"))?;
        return run_standalone(&state).await;
    }
    // The database (and S3 client) open while the runtime asks for the first event.
    let starting = AppState::starting(&env)
        .inspect_err(|e| tracing::error!(error = %e, "worker cannot start"))?;
    let starting = &starting;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handler(&*starting.ready().await?, event).await
        },
    ))
    .await
}
