#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    http_function::serve_with_storage(delete_video::handler).await
}
