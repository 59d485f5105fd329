//! The webhook handlers against a local DynamoDB (moto): every sample event of `events/`
//! stored with the documented attributes, exactly once, and a 500 while DynamoDB is away.

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::Request;
use mailhooks::http::WebhookReceiver;
use mailhooks::receive::providers::{self, Provider};
use mailhooks::store::{DynamoStore, EventStore};
use serde_json::Value;
use support::{FaultyProxy, LocalDynamo, SampleEvent};

fn receiver(provider: &'static Provider, store: DynamoStore) -> WebhookReceiver<DynamoStore> {
    WebhookReceiver::from_env(provider, &support::sample_env, store).expect("sample configuration is valid")
}

async fn call<S: EventStore>(receiver: &WebhookReceiver<S>, request: Request) -> (u16, Value) {
    let response = receiver.handle(request).await.expect("handlers always answer");
    support::status_and_json(response)
}

/// Every event item (`MSG#` keys; suppression items share the table).
async fn all_items(local: &LocalDynamo, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    all_items_under(local, table, "MSG#").await
}

async fn all_items_under(local: &LocalDynamo, table: &str, pk_prefix: &str) -> Vec<HashMap<String, AttributeValue>> {
    let output = local.client().scan().table_name(table).send().await.expect("scan works");
    let mut items = output.items.unwrap_or_default();
    items.retain(|item| text(item, "pk").is_some_and(|pk| pk.starts_with(pk_prefix)));
    items
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

#[tokio::test]
async fn every_sample_event_is_stored_once_with_its_attributes() {
    let local = LocalDynamo::shared();
    let samples = SampleEvent::all();
    let tables = local.new_tables(samples.len());
    for (sample, table) in samples.iter().zip(tables) {
        let receiver = receiver(sample.provider(), local.store(&table, 30));
        let (status, body) = call(&receiver, sample.request()).await;
        assert_eq!(status, 200, "{}: {body}", sample.name());
        let expected = sample.provider().parse(sample.body().as_bytes(), chrono::Utc::now()).unwrap();
        assert_eq!(body["stored"], expected.len(), "{}", sample.name());
        assert_eq!(body["duplicates"], 0, "{}", sample.name());

        let items = all_items(local, &table).await;
        assert_eq!(items.len(), expected.len(), "{}", sample.name());
        for event in &expected {
            let item = items
                .iter()
                .find(|item| text(item, "event_id") == Some(&event.event_id))
                .unwrap_or_else(|| panic!("{}: event {} not stored", sample.name(), event.event_id));
            assert_item_matches(item, event, sample.name());
        }
        // Hard bounces, complaints, unsubscribes and invalid addresses suppress at once.
        let suppressions = all_items_under(local, &table, "SUPP#").await;
        let suppresses_at_once = |event: &mailhooks::receive::event::Event| {
            matches!(mailhooks::store::suppressions::trigger(event), Some(mailhooks::store::suppressions::Trigger::Suppress(_)))
        };
        for event in &expected {
            let recipient = event.recipient.as_deref().unwrap_or_default();
            let suppresses =
                expected.iter().any(|other| other.recipient.as_deref() == Some(recipient) && suppresses_at_once(other));
            let suppression = suppressions.iter().find(|item| text(item, "recipient") == Some(recipient));
            let suppressed = suppression.and_then(|item| item.get("suppressed")) == Some(&AttributeValue::Bool(true));
            assert_eq!(suppressed, suppresses, "{}: suppression of {recipient}", sample.name());
        }
    }
}

fn assert_item_matches(item: &HashMap<String, AttributeValue>, event: &mailhooks::receive::event::Event, sample: &str) {
    let keys = mailhooks::store::keys::EventKeys::of(event);
    assert_eq!(text(item, "pk"), Some(keys.pk.as_str()), "{sample}");
    assert_eq!(text(item, "gsi1pk"), keys.gsi1pk.as_deref(), "{sample}");
    // A payload without a timestamp occurs when it is received, which the handler's clock
    // decides; the sort key then differs from this test's parse in its time only.
    let has_own_time = event.occurred_at != event.received_at;
    if has_own_time {
        assert_eq!(text(item, "sk"), Some(keys.sk.as_str()), "{sample}");
        assert_eq!(text(item, "gsi2pk"), Some(keys.gsi2pk.as_str()), "{sample}");
        assert_eq!(text(item, "occurred_at"), Some(event.occurred_at_text().as_str()), "{sample}");
    } else {
        assert_eq!(text(item, "occurred_at"), text(item, "received_at"), "{sample}");
    }
    // Both event indexes sort on the table's own `sk`: no copy of it under another name.
    for copy in ["gsi1sk", "gsi2sk"] {
        assert!(!item.contains_key(copy), "{sample}: {copy}");
    }
    assert_eq!(text(item, "provider"), Some(event.provider.as_str()), "{sample}");
    assert_eq!(text(item, "event_type"), Some(event.event_type.as_str()), "{sample}");
    assert_eq!(text(item, "provider_event"), event.provider_event.as_deref(), "{sample}");
    assert_eq!(text(item, "message_id"), event.message_id.as_deref(), "{sample}");
    assert_eq!(text(item, "recipient"), event.recipient.as_deref(), "{sample}");
    assert!(item.contains_key("received_at"), "{sample}");
    let raw = mailhooks::store::raw_codec::decode_raw(&item["raw"], item).expect("raw decodes");
    assert_eq!(raw, event.raw, "{sample}: raw is kept exactly as received");
    assert!(item.contains_key("expires_at"), "{sample}: RETENTION_DAYS=30 sets the TTL");
    for (name, value) in item {
        if let AttributeValue::S(text) = value {
            assert!(!text.is_empty(), "{sample}: {name} is an empty string");
        }
    }
}

#[tokio::test]
async fn rest_api_alb_and_base64_requests_are_understood() {
    let local = LocalDynamo::shared();
    let names = ["engagelab/delivered", "sendpost/delivered", "tencent_ses/delivered"];
    for (name, table) in names.into_iter().zip(local.new_tables(names.len())) {
        let sample = SampleEvent::named(name);
        let receiver = receiver(sample.provider(), local.store(&table, 0));
        let expected = sample.provider().parse(sample.body().as_bytes(), chrono::Utc::now()).unwrap().len();
        for (form, request) in
            [("REST API", sample.as_rest_api()), ("ALB", sample.as_alb()), ("base64", sample.base64_encoded())]
        {
            let (status, body) = call(&receiver, request).await;
            assert_eq!(status, 200, "{name} via {form}: {body}");
            assert_eq!(body["stored"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap(), expected as u64);
        }
        assert_eq!(all_items(local, &table).await.len(), expected, "{name}");
    }
}

#[tokio::test]
async fn the_same_request_three_times_stores_one_item() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let sample = SampleEvent::named("engagelab/delivered");
    let receiver = receiver(sample.provider(), local.store(&table, 0));
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(call(&receiver, sample.request()).await);
    }
    assert_eq!(answers[0], (200, serde_json::json!({"stored": 1, "duplicates": 0})));
    assert_eq!(answers[1], (200, serde_json::json!({"stored": 0, "duplicates": 1})));
    assert_eq!(answers[2], (200, serde_json::json!({"stored": 0, "duplicates": 1})));
    let items = all_items(local, &table).await;
    assert_eq!(items.len(), 1);
    assert!(!items[0].contains_key("expires_at"), "RETENTION_DAYS=0 keeps events forever");
}

#[tokio::test]
async fn a_batch_stores_every_element() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let sample = SampleEvent::named("tencent_ses/batch");
    let receiver = receiver(sample.provider(), local.store(&table, 0));
    let (status, body) = call(&receiver, sample.request()).await;
    assert_eq!(status, 200, "{body}");
    let elements = serde_json::from_str::<Vec<Value>>(sample.body()).unwrap().len();
    assert!(elements >= 2);
    assert_eq!(body["stored"], elements);
    assert_eq!(all_items(local, &table).await.len(), elements);
}

#[tokio::test]
async fn refused_requests_write_nothing() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let sample = SampleEvent::named("sendpost/delivered");
    let receiver = receiver(sample.provider(), local.store(&table, 0));

    let (status, body) = call(&receiver, sample.with_body(&sample.body().replacen("hooli", "hoolj", 1))).await;
    assert_eq!(status, 401, "a body changed after signing: {body}");
    let (status, body) = call(&receiver, sample.signed_request("{\"event\": ")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"), "{body}");
    let (status, _) = call(&receiver, sample.signed_request(&"x".repeat(mailhooks::http::MAX_BODY_BYTES + 1))).await;
    assert_eq!(status, 413);
    assert!(all_items(local, &table).await.is_empty());
}

#[tokio::test]
async fn storage_outage_answers_500_and_the_retry_stores_everything_once() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let proxy = FaultyProxy::start(local).await;
    let sample = SampleEvent::named("engagelab/target_two_recipients");
    let receiver = receiver(sample.provider(), DynamoStore::new(support::client_for(&proxy.endpoint()), &table, 0));

    proxy.set_down(true);
    let (status, body) = call(&receiver, sample.request()).await;
    assert_eq!((status, body), (500, serde_json::json!({"error": "storage unavailable"})));

    proxy.set_down(false);
    let (status, body) = call(&receiver, sample.request()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap(), 2);
    let (_, again) = call(&receiver, sample.request()).await;
    assert_eq!(again, serde_json::json!({"stored": 0, "duplicates": 2}));
    assert_eq!(all_items(local, &table).await.len(), 2);
}

#[tokio::test]
async fn every_provider_has_sample_events() {
    for provider in providers::ALL {
        let count = SampleEvent::all().iter().filter(|sample| sample.provider().name == provider.name).count();
        assert!(count > 0, "events/ has no sample for {}", provider.name);
    }
}
