use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::http::WebhookReceiver;
use mailhooks::providers::sendpost;
use mailhooks::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let store = DynamoStore::from_env(&env).await?;
    let receiver = WebhookReceiver::from_env(&sendpost::PROVIDER, &env, store)?;
    run(service_fn(|request| receiver.handle(request))).await
}
