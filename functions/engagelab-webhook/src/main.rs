use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::config::Settings;
use mailhooks::http::WebhookReceiver;
use mailhooks::receive::providers::engagelab;
use mailhooks::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::from_env(env).await?;
    let store = DynamoStore::from_env(&env).await?;
    let receiver = WebhookReceiver::from_settings(&engagelab::PROVIDER, settings, store).await?;
    run(service_fn(|request| receiver.handle(request))).await
}
