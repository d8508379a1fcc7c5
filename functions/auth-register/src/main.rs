use lambda_http::{service_fn, Body, Error, Request};
use shared::app::Starting;
use shared::config::Env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // The database (and S3 client) open while the runtime asks for the first event.
    let starting = Starting::from_env(&Env::from_process())
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let starting = &starting;
    lambda_http::run(service_fn(move |req: Request| async move {
        match starting.ready().await {
            Ok(app) => auth_register::handler(&app, req).await,
            Err(e) => Ok(shared::http::finish(Err(e)).map(Body::from)),
        }
    }))
    .await
}
