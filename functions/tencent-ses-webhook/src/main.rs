use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::receive::providers::tencent_ses;
use mailhooks::startup;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let receiver = startup::webhook(&tencent_ses::PROVIDER).await?;
    run(service_fn(|request| receiver.handle(request))).await
}
