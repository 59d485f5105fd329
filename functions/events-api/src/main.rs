use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::config::Settings;
use mailhooks::http::EventsApi;
use mailhooks::read::events::EventReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::from_env(env).await?;
    let reader = EventReader::from_env(&env).await?;
    let api = EventsApi::from_settings(settings, reader).await?;
    run(service_fn(|request| api.handle(request))).await
}
