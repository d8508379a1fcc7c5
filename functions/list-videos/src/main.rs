#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    http_function::serve(list_videos::handler).await
}
