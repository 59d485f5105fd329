use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mailhooks::fan_out::StreamBatch;
use mailhooks::startup;

// Lambda hands an instance one request at a time: a second worker thread would only add
// cross-thread wake-ups to every request (docs/benchmarks.md, "CPU per invocation").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    startup::init_logs();
    let publisher = &startup::events_publisher().await?;
    run(service_fn(move |event: LambdaEvent<StreamBatch>| async move {
        publisher.handle(event.payload, event.context.deadline()).await.map_err(Error::from)
    }))
    .await
}
