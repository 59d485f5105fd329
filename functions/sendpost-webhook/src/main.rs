use lambda_http::{service_fn, Error};
use mailhooks::http_event::run;
use mailhooks::receive::providers::sendpost;
use mailhooks::startup;

// Lambda hands an instance one request at a time: a second worker thread would only add
// cross-thread wake-ups to every request (docs/benchmarks.md, "CPU per invocation").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    startup::init_logs();
    let receiver = startup::webhook(&sendpost::PROVIDER).await?;
    run(service_fn(|request| receiver.handle(request))).await
}
