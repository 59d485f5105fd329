use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use mailhooks::config::Settings;
use mailhooks::engagelab_api::registration::Registrar;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let registrar = &Registrar::from_settings(Settings::from_env(env).await?).await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = event.context.deadline();
        registrar.current().await.handle(event.payload, deadline).await.map_err(Error::from)
    }))
    .await
}
