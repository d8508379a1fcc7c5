use lambda_http::{service_fn, Error, Request};
use shared::app::App;
use shared::config::Env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(&Env::from_process())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| {
        auth_login::handler(app, req)
    }))
    .await
}
