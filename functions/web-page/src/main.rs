use lambda_http::{service_fn, Error, Request};
use shared::config::Env;
use web_page::Page;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let page = Page::from_env(&Env::from_process())
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let page = &page;
    lambda_http::run(service_fn(move |req: Request| web_page::handler(page, req))).await
}
