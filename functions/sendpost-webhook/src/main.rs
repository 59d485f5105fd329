use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::receive::providers::sendpost;
use mailhooks::startup;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let receiver = startup::webhook(&sendpost::PROVIDER).await?;
    run(service_fn(|request| receiver.handle(request))).await
}
