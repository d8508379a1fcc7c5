use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    lambda_http::run(service_fn(|req: Request| async move {
        web_page::handler(req).await
    }))
    .await
}
