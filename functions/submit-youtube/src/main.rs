#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    http_function::serve(submit_youtube::handler).await
}
