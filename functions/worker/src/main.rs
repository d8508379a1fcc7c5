use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::config::Env;
use worker::{handler, run_standalone, AppState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = match AppState::from_env(&Env::from_process()).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(error = %e, "worker cannot start");
            return Err(e);
        }
    };
    if std::env::args().any(|a| a == "--standalone") {
        return run_standalone(&state).await;
    }
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move { handler(state, event).await },
    ))
    .await
}
