use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use mailhooks::startup;
use serde_json::Value;

// Lambda hands an instance one request at a time: a second worker thread would only add
// cross-thread wake-ups to every request (docs/benchmarks.md, "CPU per invocation").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    startup::init_logs();
    let registrar = &startup::engagelab_registration().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = event.context.deadline();
        registrar.current().await.handle(event.payload, deadline).await.map_err(Error::from)
    }))
    .await
}
