use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::config::Settings;
use mailhooks::http::SuppressionsApi;
use mailhooks::read::suppressions::SuppressionList;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::from_env(env).await?;
    let list = SuppressionList::from_env(&env).await?;
    let api = SuppressionsApi::from_settings(settings, list).await?;
    run(service_fn(|request| api.handle(request))).await
}
