use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::startup;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let api = startup::suppressions_api().await?;
    run(service_fn(|request| api.handle(request))).await
}
