//! Requests as Lambda function URLs deliver them (the template's `Ingress=FunctionUrl`): the
//! samples of `events/function-url/`, sent to the URL's own path, through each webhook handler
//! into a local DynamoDB (moto), and through both read APIs.

mod support;

use chrono::Utc;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use mailhooks::http::{EventsApi, SuppressionsApi, WebhookReceiver, EVENTS_API_TOKEN};
use mailhooks::receive::providers;
use mailhooks::read::events::EventReader;
use mailhooks::read::suppressions::SuppressionList;
use serde_json::{json, Value};
use support::{repo_root, LocalDynamo, SampleEvent};

/// The token of the read API samples.
const TOKEN: &str = "local-events-token";

fn read_sample(name: &str) -> Request {
    let path = repo_root().join(format!("events/function-url/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    mailhooks::http_event::request_from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// What tells a function URL's request apart: the `$default` route on a `lambda-url` host.
fn assert_function_url_shape(request: &Request, path: &str) {
    assert_eq!(request.uri().path(), path);
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        panic!("a function URL event reads as payload 2.0");
    };
    assert_eq!(context.route_key.as_deref(), Some("$default"));
    assert!(context.domain_name.as_deref().is_some_and(|host| host.contains(".lambda-url.")));
    assert!(request.path_parameters_ref().is_none());
}

fn answer(response: lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    support::status_and_json(response)
}

#[tokio::test]
async fn every_webhook_stores_its_function_url_callback_as_the_same_event() {
    let local = LocalDynamo::shared();
    for provider in providers::ALL {
        let table = local.new_table();
        let receiver = WebhookReceiver::from_env(provider, &support::sample_env, local.store(&table, 30))
            .expect("sample configuration is valid");
        let sample = SampleEvent::function_url(provider);
        let request = sample.request();
        assert_function_url_shape(&request, "/");

        let (status, body) = answer(receiver.handle(request).await.expect("handlers always answer"));
        assert_eq!((status, &body), (200, &json!({"stored": 1, "duplicates": 0})), "{}", provider.name);
        let items = local.client().scan().table_name(&table).send().await.expect("scan works").items.unwrap_or_default();
        let expected = provider.parse(sample.body().as_bytes(), Utc::now()).unwrap();
        let stored: Vec<&str> = items
            .iter()
            .filter(|item| item["pk"].as_s().is_ok_and(|pk| pk.starts_with("MSG#")))
            .filter_map(|item| item.get("event_id").and_then(|id| id.as_s().ok()).map(String::as_str))
            .collect();
        assert_eq!(stored, [expected[0].event_id.as_str()], "{}", provider.name);

        // The same callback through the HTTP API is the same event: a duplicate.
        let through_api = SampleEvent::named(&format!("{}/delivered", provider.name)).request();
        let (status, body) = answer(receiver.handle(through_api).await.expect("handlers always answer"));
        assert_eq!((status, body), (200, json!({"stored": 0, "duplicates": 1})), "{}", provider.name);
    }
}

#[tokio::test]
async fn both_read_apis_answer_their_function_url_samples() {
    let local = LocalDynamo::shared();
    let table = local.table_with_every_sample().await;
    let env = |name: &str| (name == EVENTS_API_TOKEN).then(|| TOKEN.to_owned());

    let events = EventsApi::from_env(&env, EventReader::new(local.client(), &table));
    let request = read_sample("events-api");
    assert_function_url_shape(&request, "/events");
    let (status, body) = answer(events.handle(request).await.expect("handlers always answer"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["recipient"], "12345@gmail.com", "{body}");

    let suppressions = SuppressionsApi::from_env(&env, SuppressionList::new(local.client(), &table));
    let request = read_sample("suppressions-api");
    assert_function_url_shape(&request, "/suppressions/gavin@hooli.com");
    let (status, body) = answer(suppressions.handle(request).await.expect("handlers always answer"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["suppressed"], true, "{body}");
}
