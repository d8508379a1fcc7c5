//! Hello world on `lambda_http`: what a Rust HTTP function costs to start before it does
//! anything. `local/bench/benches/cold_start.rs` measures ours against it.

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>("hello")
    }))
    .await
}
