#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    http_function::serve(get_video::handler).await
}
