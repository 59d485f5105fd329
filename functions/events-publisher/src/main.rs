use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use mailhooks::fan_out::{Publisher, StreamBatch};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let publisher = &Publisher::from_env(&env).await?;
    run(service_fn(move |event: LambdaEvent<StreamBatch>| async move {
        publisher.handle(event.payload, event.context.deadline()).await.map_err(Error::from)
    }))
    .await
}
