//! The EngageLab webhooks API client and the operators' CLI against a local EngageLab that
//! behaves as EngageLab documents it.

mod fake_engagelab;

use std::time::{Duration, Instant};

use base64::Engine;
use fake_engagelab::{FakeEngageLab, API_KEY, API_USER};
use http::StatusCode;
use mailhooks::auth::Secret;
use mailhooks::engagelab_api::{ApiConfig, BaseUrl, EngageLabApi, EngageLabApiError, WebhookEvent, WebhookSettings};
use mailhooks::engagelab_api::cli::{self, CliError};
use mailhooks::engagelab_api::https_client::{HttpsClient, TransportError};
use serde_json::json;

fn api(engagelab: &FakeEngageLab) -> EngageLabApi {
    let config = ApiConfig::from_env(&engagelab.env()).unwrap();
    EngageLabApi::new(HttpsClient::new().unwrap(), &config)
}

fn settings(url: &str, events: &[WebhookEvent], api_user: Option<&str>) -> WebhookSettings {
    WebhookSettings {
        url: Some(url.to_owned()),
        api_user: api_user.map(str::to_owned),
        events: Some(WebhookEvent::codes(events)),
    }
}

#[tokio::test]
async fn list_pages_through_every_registration() {
    let engagelab = FakeEngageLab::start().await;
    let seeded: Vec<u64> =
        (0..250).map(|n| engagelab.seed(&format!("https://hooks.example/{n}"), &[1, 3], "")).collect();

    let listed = api(&engagelab).list(None).await.unwrap();

    assert_eq!(listed.iter().map(|webhook| webhook.id).collect::<Vec<_>>(), seeded);
    assert_eq!(listed[0].events, [1, 3]);
    assert_eq!(listed[0].api_user, None);
    let pages: Vec<(String, String)> = engagelab
        .requests()
        .iter()
        .map(|request| (request.query["offset"].clone(), request.query["limit"].clone()))
        .collect();
    let expected: Vec<(String, String)> =
        ["0", "100", "200"].iter().map(|offset| (offset.to_string(), "100".to_string())).collect();
    assert_eq!(pages, expected);
}

#[tokio::test]
async fn list_stops_after_a_full_last_page_and_filters_by_api_user() {
    let engagelab = FakeEngageLab::start().await;
    for n in 0..100 {
        engagelab.seed(&format!("https://hooks.example/{n}"), &[1], "a b&c");
    }
    engagelab.seed("https://hooks.example/other", &[1], "other");

    let listed = api(&engagelab).list(Some("a b&c")).await.unwrap();

    assert_eq!(listed.len(), 100);
    let requests = engagelab.requests();
    assert_eq!(requests.len(), 1, "total says one page is all");
    assert_eq!(requests[0].query["api_user"], "a b&c");
}

#[tokio::test]
async fn calls_use_basic_auth_and_the_documented_methods_and_paths() {
    let engagelab = FakeEngageLab::start().await;
    let api = api(&engagelab);

    let added = api.add(&settings("https://hooks.example/a", &[WebhookEvent::Open], Some("ops"))).await.unwrap();
    let changed =
        api.modify(added.id, &WebhookSettings { events: Some(vec![1]), ..WebhookSettings::default() }).await.unwrap();
    let deleted = api.delete(added.id).await.unwrap();

    assert_eq!(
        (added.url.as_str(), added.events.as_slice(), added.api_user.as_deref()),
        ("https://hooks.example/a", &[11][..], Some("ops"))
    );
    assert_eq!((changed, deleted), (1, 1));
    let requests = engagelab.requests();
    let calls: Vec<(String, String)> =
        requests.iter().map(|request| (request.method.clone(), request.path.clone())).collect();
    let id = added.id;
    assert_eq!(
        calls,
        [
            ("POST".to_string(), "/v1/webhooks".to_string()),
            ("PUT".to_string(), format!("/v1/webhooks/{id}")),
            ("DELETE".to_string(), format!("/v1/webhooks/{id}")),
        ]
    );
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{API_USER}:{API_KEY}")));
    assert!(requests.iter().all(|request| request.headers["authorization"] == basic));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&requests[0].body).unwrap(),
        json!({"url": "https://hooks.example/a", "api_user": "ops", "event": [11]})
    );
    assert_eq!(requests[1].body, r#"{"event":[1]}"#, "fields not given are not sent, so EngageLab leaves them");
    assert!(requests[0].headers["content-type"].starts_with("application/json"));
}

#[tokio::test]
async fn error_answers_carry_engagelab_status_and_message() {
    let engagelab = FakeEngageLab::start().await;
    let config = ApiConfig {
        api_user: API_USER.to_owned(),
        api_key: Secret::new("wrong-key"),
        base_url: BaseUrl::parse(&engagelab.base_url).unwrap(),
    };
    let wrong_key = EngageLabApi::new(HttpsClient::new().unwrap(), &config);

    let error = wrong_key.list(None).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(error.to_string(), "EngageLab answered 401 Unauthorized: invalid api_user or api_key (code 40101)");

    let error = api(&engagelab).modify(999, &settings("https://x.example", &[], None)).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");

    engagelab.fail_with(500, json!({"code": 50000, "message": "internal error"}));
    let error = api(&engagelab).delete(1).await.unwrap_err();
    assert!(
        matches!(&error, EngageLabApiError::Api { status, message } if *status == StatusCode::INTERNAL_SERVER_ERROR && message == "internal error (code 50000)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_success_status_with_an_unexpected_body_is_an_error_quoting_it() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.fail_with(200, json!({"code": 42, "message": "quota exceeded"}));

    let error = api(&engagelab).add(&settings("https://x.example", &[], None)).await.unwrap_err();

    assert!(matches!(error, EngageLabApiError::UnexpectedAnswer { .. }), "{error}");
    assert!(error.to_string().contains("quota exceeded"), "{error}");
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.delay(Duration::from_secs(10));
    let started = Instant::now();

    let error = api(&engagelab).with_timeout(Duration::from_millis(300)).list(None).await.unwrap_err();

    assert!(matches!(error, EngageLabApiError::Transport(TransportError::Timeout(_))), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(error.status(), None);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = ApiConfig {
        api_user: API_USER.to_owned(),
        api_key: Secret::new(API_KEY),
        base_url: BaseUrl::parse(&format!("http://{closed}")).unwrap(),
    };

    let error = EngageLabApi::new(HttpsClient::new().unwrap(), &config).list(None).await.unwrap_err();

    assert!(matches!(error, EngageLabApiError::Transport(TransportError::Failed(_))), "{error}");
}

async fn cli(engagelab: &FakeEngageLab, token: Option<&str>, args: &[&str]) -> Result<String, CliError> {
    let api_env = engagelab.env();
    let env = move |name: &str| match name {
        "ENGAGELAB_WEBHOOK_TOKEN" => token.map(str::to_owned),
        _ => api_env(name),
    };
    let mut out = Vec::new();
    let arguments = std::iter::once("engagelab-webhooks").chain(args.iter().copied());
    cli::run(arguments, &env, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn cli_adds_lists_updates_and_deletes_without_printing_secrets() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.seed("https://any:basic-password@hooks.example/manual", &[1], "");

    let added = cli(
        &engagelab,
        Some("cli-token"),
        &["add", "--url", "https://hooks.example/engagelab", "--events", "deliver,open", "--api-user", "ops"],
    )
    .await
    .unwrap();
    let id = engagelab.webhooks()[1]["id"].as_u64().unwrap();
    assert!(added.starts_with(&format!("added webhook {id}\n")), "{added}");
    assert_eq!(engagelab.webhooks()[1]["url"], "https://hooks.example/engagelab?token=cli-token");

    let listed = cli(&engagelab, None, &["list"]).await.unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[0], "id\tapi_user\tevents\turl");
    assert_eq!(lines[2], format!("{id}\tops\tdeliver,open\thttps://hooks.example/engagelab?token=<redacted>"));
    assert!(lines[1].ends_with("\thttps://any:<redacted>@hooks.example/manual"), "{listed}");

    let updated = cli(&engagelab, None, &["update", &id.to_string(), "--events", "click"]).await.unwrap();
    assert_eq!(updated, format!("updated webhook {id}\n"));
    assert_eq!(engagelab.webhook(id).unwrap()["event"], json!([10]));
    assert_eq!(
        engagelab.webhook(id).unwrap()["url"],
        "https://hooks.example/engagelab?token=cli-token",
        "URL left as it was"
    );

    let deleted = cli(&engagelab, None, &["delete", &id.to_string()]).await.unwrap();
    assert_eq!(deleted, format!("deleted webhook {id}\n"));
    let again = cli(&engagelab, None, &["delete", &id.to_string()]).await.unwrap();
    assert_eq!(again, format!("webhook {id} was already gone\n"));

    for output in [added, listed] {
        assert!(
            !output.contains(API_KEY) && !output.contains("cli-token") && !output.contains("basic-password"),
            "{output}"
        );
    }
}

#[tokio::test]
async fn cli_refuses_bad_input_before_calling_engagelab() {
    let engagelab = FakeEngageLab::start().await;

    assert!(matches!(
        cli(&engagelab, None, &["add", "--url", "https://x.example", "--events", "bounce"]).await,
        Err(CliError::Events(_))
    ));
    assert!(matches!(cli(&engagelab, None, &["update", "5"]).await, Err(CliError::NothingToUpdate)));
    assert!(matches!(cli(&engagelab, None, &["delete", "five"]).await, Err(CliError::Usage(_))));
    assert!(
        matches!(cli(&engagelab, None, &["list", "--api-key", "k"]).await, Err(CliError::Usage(_))),
        "no flag takes the key"
    );
    assert!(engagelab.requests().is_empty());

    let mut out = Vec::new();
    let no_key = |name: &str| (name == "ENGAGELAB_API_USER").then(|| API_USER.to_owned());
    let error = cli::run(["engagelab-webhooks", "list"], &no_key, &mut out).await.unwrap_err();
    assert_eq!(error.to_string(), "ENGAGELAB_API_KEY must be set");
}

#[tokio::test]
async fn cli_reports_engagelab_errors() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.fail_with(500, json!({"code": 50000, "message": "internal error"}));

    let error = cli(&engagelab, None, &["list"]).await.unwrap_err();

    assert_eq!(error.to_string(), "EngageLab answered 500 Internal Server Error: internal error (code 50000)");
}
