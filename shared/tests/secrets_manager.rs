//! Secrets from AWS Secrets Manager (moto's): the handlers read their secrets from the secret,
//! fall back to the environment without one, prefer the secret where both are set, accept a
//! rotated key once the TTL has passed, fail their start when the secret cannot be read or used,
//! keep the value in hand when a refresh fails, and never log a secret's value. A function
//! started as Lambda starts it finds its secret through its process environment alone.

mod support;

use std::time::Duration;

use lambda_http::Request;
use mailhooks::config::Settings;
use mailhooks::http::{EventsApi, WebhookReceiver};
use mailhooks::receive::providers::{engagelab, tencent_ses};
use mailhooks::read::events::EventReader;
use mailhooks::startup;
use mailhooks::store::DynamoStore;
use serde_json::{json, Value};
use support::{FaultyProxy, LocalDynamo, SampleEvent, ThreadLogs, ENGAGELAB_TEST_KEY};

/// A TTL short enough to wait out in a test.
const TTL: Duration = Duration::from_secs(1);
const PAST_TTL: Duration = Duration::from_millis(1100);

/// What the handlers log while a test runs (on its thread, which runs all its tasks).
struct Logs(ThreadLogs);

impl Logs {
    /// Every level, the SDK's own lines included.
    fn capture() -> Logs {
        Logs(ThreadLogs::capture(tracing::Level::TRACE, false))
    }

    fn text(&self) -> String {
        self.0.text()
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text().lines().filter(|line| line.contains(needle)).map(str::to_owned).collect()
    }

    fn assert_never_shows(&self, secrets: &[&str]) {
        let text = self.text();
        assert!(!text.is_empty(), "nothing was logged");
        for secret in secrets {
            assert!(!text.contains(secret), "a log line shows a secret value:\n{text}");
        }
    }
}

fn secrets_client() -> aws_sdk_secretsmanager::Client {
    support::secrets_client_for(&LocalDynamo::shared().endpoint)
}

/// A new secret holding `settings`; its ARN.
async fn new_secret(settings: &Value) -> String {
    static SECRETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let number = SECRETS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let output = secrets_client()
        .create_secret()
        .name(format!("mailhooks-test-{}-{number}", std::process::id()))
        .secret_string(settings.to_string())
        .send()
        .await
        .expect("moto creates the secret");
    output.arn().expect("a created secret has an ARN").to_owned()
}

async fn rotate(arn: &str, settings: &Value) {
    secrets_client().put_secret_value().secret_id(arn).secret_string(settings.to_string()).send().await.unwrap();
}

/// An environment of fixed pairs.
fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let pairs = pairs.to_vec();
    move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
}

fn with_secret(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static, arn: &str) -> Settings {
    Settings::with_secret(env, secrets_client(), arn, TTL)
}

fn store() -> DynamoStore {
    let local = LocalDynamo::shared();
    local.store(&local.new_table(), 0)
}

/// A Tencent SES callback carrying `token` as `?token=`, as Tencent sends it.
fn tencent_request(token: &str) -> Request {
    let path = support::repo_root().join("events/tencent_ses/delivered.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["queryStringParameters"] = json!({ "token": token });
    event["rawQueryString"] = format!("token={token}").into();
    support::request_from_event(&event)
}

async fn status<S: mailhooks::store::EventStore>(receiver: &WebhookReceiver<S>, request: Request) -> u16 {
    receiver.handle(request).await.expect("handlers always answer").status().as_u16()
}

#[tokio::test]
async fn the_engagelab_webhook_verifies_with_the_key_in_the_secret() {
    let logs = Logs::capture();
    let arn = new_secret(&json!({ "ENGAGELAB_APP_KEY": ENGAGELAB_TEST_KEY, "ENGAGELAB_API_KEY": "api-key-1" })).await;
    let receiver = WebhookReceiver::from_settings(&engagelab::PROVIDER, with_secret(env(&[]), &arn), store())
        .await
        .expect("the secret is readable");
    let sample = SampleEvent::named("engagelab/delivered");
    let response = receiver.handle(sample.request()).await.unwrap();
    let (code, body) = support::status_and_json(response);
    assert_eq!((code, body["stored"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(status(&receiver, sample.with_body(sample.body())).await, 401, "a stale signature is refused");
    logs.assert_never_shows(&[ENGAGELAB_TEST_KEY, "api-key-1"]);
}

#[tokio::test]
async fn without_a_secret_the_environment_is_used() {
    let config = mailhooks::config::sdk_config().await;
    let settings = Settings::from_env(env(&[("TENCENT_SES_WEBHOOK_TOKEN", "env-token")]), &config).unwrap();
    let receiver = WebhookReceiver::from_settings(&tencent_ses::PROVIDER, settings, store()).await.unwrap();
    assert_eq!(status(&receiver, tencent_request("env-token")).await, 200);
    assert_eq!(status(&receiver, tencent_request("other-token")).await, 401);
}

#[tokio::test]
async fn the_secret_wins_over_the_environment_and_the_log_says_so_once() {
    let logs = Logs::capture();
    let arn = new_secret(&json!({ "TENCENT_SES_WEBHOOK_TOKEN": "secret-token" })).await;
    let settings = with_secret(env(&[("TENCENT_SES_WEBHOOK_TOKEN", "env-token")]), &arn);
    let receiver = WebhookReceiver::from_settings(&tencent_ses::PROVIDER, settings, store()).await.unwrap();
    assert_eq!(status(&receiver, tencent_request("secret-token")).await, 200);
    assert_eq!(status(&receiver, tencent_request("env-token")).await, 401);
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(status(&receiver, tencent_request("secret-token")).await, 200, "read again, still the secret's");

    let said = logs.lines_with("set both in the secret and in the environment");
    assert_eq!(said.len(), 1, "{}", logs.text());
    assert!(said[0].contains("TENCENT_SES_WEBHOOK_TOKEN"), "{}", said[0]);
    logs.assert_never_shows(&["secret-token", "env-token"]);
}

#[tokio::test]
async fn a_key_rotated_in_the_secret_is_accepted_after_the_ttl_and_the_old_one_refused() {
    let logs = Logs::capture();
    let arn = new_secret(&json!({ "TENCENT_SES_WEBHOOK_TOKEN": "old-token" })).await;
    let receiver =
        WebhookReceiver::from_settings(&tencent_ses::PROVIDER, with_secret(env(&[]), &arn), store()).await.unwrap();
    assert_eq!(status(&receiver, tencent_request("old-token")).await, 200);

    rotate(&arn, &json!({ "TENCENT_SES_WEBHOOK_TOKEN": "new-token" })).await;
    assert_eq!(status(&receiver, tencent_request("old-token")).await, 200, "within the TTL the value in hand serves");
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(status(&receiver, tencent_request("new-token")).await, 200, "the first request after the TTL");
    assert_eq!(status(&receiver, tencent_request("old-token")).await, 401);
    logs.assert_never_shows(&["old-token", "new-token"]);
}

#[tokio::test]
async fn an_unreadable_secret_fails_the_start_with_a_clear_message() {
    let proxy = FaultyProxy::start(LocalDynamo::shared()).await;
    let arn = new_secret(&json!({ "TENCENT_SES_WEBHOOK_TOKEN": "some-token" })).await;
    proxy.set_down(true);
    let settings = Settings::with_secret(env(&[]), support::secrets_client_for(&proxy.endpoint()), &arn, TTL);
    let error = WebhookReceiver::from_settings(&tencent_ses::PROVIDER, settings, store()).await.err().unwrap();
    let message = error.to_string();
    assert!(message.starts_with("the secret named by MAILHOOKS_SECRET_ARN could not be read"), "{message}");

    let missing = with_secret(env(&[]), &format!("{arn}-gone"));
    let error = WebhookReceiver::from_settings(&tencent_ses::PROVIDER, missing, store()).await.err().unwrap();
    assert!(error.to_string().contains("could not be read"), "{error}");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_value_in_hand_and_is_logged_once() {
    let logs = Logs::capture();
    let proxy = FaultyProxy::start(LocalDynamo::shared()).await;
    let arn = new_secret(&json!({ "TENCENT_SES_WEBHOOK_TOKEN": "kept-token" })).await;
    let settings = Settings::with_secret(env(&[]), support::secrets_client_for(&proxy.endpoint()), &arn, TTL);
    let receiver = WebhookReceiver::from_settings(&tencent_ses::PROVIDER, settings, store()).await.unwrap();

    proxy.set_down(true);
    for _ in 0..3 {
        tokio::time::sleep(PAST_TTL).await;
        let started = std::time::Instant::now();
        assert_eq!(status(&receiver, tencent_request("kept-token")).await, 200);
        assert!(started.elapsed() < Duration::from_millis(1500), "a refresh is bounded: {:?}", started.elapsed());
    }
    let failures = logs.lines_with("secret refresh failed");
    assert_eq!(failures.len(), 1, "{}", logs.text());
    assert_eq!(failures[0].lines().count(), 1);

    proxy.set_down(false);
    rotate(&arn, &json!({ "TENCENT_SES_WEBHOOK_TOKEN": "next-token" })).await;
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(status(&receiver, tencent_request("next-token")).await, 200, "read again once it answers");
    assert_eq!(logs.lines_with("the secret was read again").len(), 1, "{}", logs.text());
    logs.assert_never_shows(&["kept-token", "next-token"]);
}

#[tokio::test]
async fn a_malformed_secret_fails_the_start_naming_the_key_never_its_value() {
    let logs = Logs::capture();
    let reader = || EventReader::new(LocalDynamo::shared().client(), "unused");

    let arn = new_secret(&json!({ "EVENTS_API_TOKEN": 987654321 })).await;
    let error = EventsApi::from_settings(with_secret(env(&[]), &arn), reader()).await.err().unwrap().to_string();
    assert!(error.contains("EVENTS_API_TOKEN") && error.contains("not as a string"), "{error}");
    assert!(!error.contains("987654321"), "{error}");

    let arn = new_secret(&json!({ "SENDPOST_API_KEY": "sendpost-key-1" })).await;
    let error = EventsApi::from_settings(with_secret(env(&[]), &arn), reader()).await.err().unwrap().to_string();
    assert!(error.contains("has no EVENTS_API_TOKEN"), "{error}");

    let arn = new_secret(&json!(["EVENTS_API_TOKEN", "listed-token"])).await;
    let error = EventsApi::from_settings(with_secret(env(&[]), &arn), reader()).await.err().unwrap().to_string();
    assert!(error.contains("not a JSON object") && !error.contains("listed-token"), "{error}");

    let arn = new_secret(&json!({ "ENGAGELAB_WEBHOOK_TOKEN": ["array-token"] })).await;
    let error = WebhookReceiver::from_settings(&engagelab::PROVIDER, with_secret(env(&[]), &arn), store())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("ENGAGELAB_WEBHOOK_TOKEN") && !error.contains("array-token"), "{error}");
    assert!(!logs.text().contains("sendpost-key-1") && !logs.text().contains("listed-token"));
}

#[tokio::test]
async fn the_events_api_reads_its_bearer_token_from_the_secret() {
    let logs = Logs::capture();
    let arn = new_secret(&json!({ "EVENTS_API_TOKEN": "bearer-from-secret" })).await;
    let local = LocalDynamo::shared();
    let reader = EventReader::new(local.client(), local.new_table());
    let api = EventsApi::from_settings(with_secret(env(&[("EVENTS_API_TOKEN", "")]), &arn), reader).await.unwrap();
    let get = |authorization: &str| {
        let headers = json!({ "host": "localhost", "authorization": authorization });
        support::request_from_event(&support::http_api_event("GET", "/events", "recipient=a@example.com", headers))
    };
    let (code, body) = support::status_and_json(api.handle(get("Bearer bearer-from-secret")).await.unwrap());
    assert_eq!(code, 200, "{body}");
    let (code, _) = support::status_and_json(api.handle(get("Bearer wrong")).await.unwrap());
    assert_eq!(code, 401);
    logs.assert_never_shows(&["bearer-from-secret"]);
}

/// Held by the tests that set the process's environment, which a function's start reads.
static PROCESS_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process environment of a deployed Tencent SES function, with moto for AWS: the secret
/// named by `MAILHOOKS_SECRET_ARN` is reached at `AWS_ENDPOINT_URL_SECRETS_MANAGER` by the
/// client the function builds itself. The environment also sets the Tencent token, which the
/// secret's must win over.
fn deployed_environment(secret_arn: &str, secrets_endpoint: &str, table: &str) {
    std::env::remove_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    std::env::remove_var("RAW_BUCKET");
    for (name, value) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_endpoint),
        ("AWS_ENDPOINT_URL_DYNAMODB", &LocalDynamo::shared().endpoint),
        ("MAILHOOKS_SECRET_ARN", secret_arn),
        ("SECRETS_TTL_SECS", "300"),
        ("EVENTS_TABLE", table),
        ("TENCENT_SES_WEBHOOK_TOKEN", "environment-token"),
    ] {
        std::env::set_var(name, value);
    }
}

#[tokio::test]
async fn a_started_function_reads_the_secret_its_environment_names() {
    let _environment = PROCESS_ENV.lock().await;
    let local = LocalDynamo::shared();
    let arn = new_secret(&json!({ "TENCENT_SES_WEBHOOK_TOKEN": "token-from-the-secret" })).await;
    let table = local.new_table();
    deployed_environment(&arn, &local.endpoint, &table);

    let receiver = startup::webhook(&tencent_ses::PROVIDER).await.expect("the function starts");
    assert_eq!(status(&receiver, tencent_request("token-from-the-secret")).await, 200);
    assert_eq!(status(&receiver, tencent_request("environment-token")).await, 401, "the secret wins");
    let stored = local.client().scan().table_name(&table).send().await.unwrap();
    assert_eq!(stored.count, 1, "stored in the table its environment names");
}

#[tokio::test]
async fn a_function_that_cannot_read_its_secret_prints_why_it_did_not_start() {
    let _environment = PROCESS_ENV.lock().await;
    let local = LocalDynamo::shared();
    let arn = new_secret(&json!({ "TENCENT_SES_WEBHOOK_TOKEN": "some-token" })).await;
    let proxy = FaultyProxy::start(local).await;
    proxy.set_down(true);
    deployed_environment(&arn, &proxy.endpoint(), &local.new_table());

    let Err(error) = startup::webhook(&tencent_ses::PROVIDER).await else { panic!("started without its secret") };
    // What `main` returns, as Rust prints it when `main` fails, into Lambda's log.
    let returned: lambda_http::Error = error.into();
    let printed = format!("Error: {returned:?}");
    let expected = "Error: could not start: the secret named by MAILHOOKS_SECRET_ARN could not be read: ";
    assert!(printed.starts_with(expected), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
    assert!(!printed.contains("SecretUnreadable") && !printed.contains('{'), "a Debug form, not the message: {printed}");
    assert!(!printed.contains("some-token"));
}
