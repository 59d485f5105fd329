use lambda_http::{run, service_fn, tracing, Error};
use mailhooks::http::SuppressionsApi;
use mailhooks::suppression::SuppressionList;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let list = SuppressionList::from_env(&env).await?;
    let api = SuppressionsApi::from_env(&env, list);
    run(service_fn(|request| api.handle(request))).await
}
