#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    http_function::serve(auth_register::handler).await
}
