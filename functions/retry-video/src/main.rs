#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    http_function::serve(retry_video::handler).await
}
