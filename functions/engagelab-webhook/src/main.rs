use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::receive::providers::engagelab;
use mailhooks::startup;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let receiver = startup::webhook(&engagelab::PROVIDER).await?;
    run(service_fn(|request| receiver.handle(request))).await
}
