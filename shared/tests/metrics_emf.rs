//! The metrics and log lines of real webhook handler runs against a local DynamoDB (moto): one
//! Embedded Metric Format document per request (namespace, names, units, dimension sets),
//! counts that match what was stored, every outcome, and nothing that identifies a recipient,
//! a message or an event.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Context, Request, RequestExt};
use mailhooks::receive::event::Event;
use mailhooks::http::WebhookReceiver;
use mailhooks::metrics::{Captured, Outcome, METRICS, NAMESPACE};
use mailhooks::receive::providers::Provider;
use mailhooks::store::DynamoStore;
use serde_json::Value;
use support::{FaultyProxy, LocalDynamo, SampleEvent, ThreadLogs};

fn receiver(provider: &'static Provider, store: DynamoStore, metrics: &Captured) -> WebhookReceiver<DynamoStore> {
    WebhookReceiver::from_env(provider, &support::sample_env, store)
        .expect("sample configuration is valid")
        .with_metrics(metrics.clone())
}

fn with_request_id(request: Request, id: &str) -> Request {
    let mut context = Context::default();
    context.request_id = id.to_owned();
    request.with_lambda_context(context)
}

/// The documents of one request, each checked against the EMF specification and the metric
/// table: the namespace, known metrics with their own dimension sets, unit Count, and each
/// metric's dimensions and value present as members of the document.
fn documents_of(metrics: &Captured, already: &mut usize) -> Vec<Value> {
    let lines = metrics.lines();
    let new = lines[*already..].to_vec();
    *already = lines.len();
    new.iter()
        .map(|line| {
            let document: Value = serde_json::from_str(line).expect("a document is one JSON line");
            assert!(document["_aws"]["Timestamp"].as_i64().is_some_and(|ms| ms > 1_700_000_000_000), "{line}");
            for directive in document["_aws"]["CloudWatchMetrics"].as_array().expect("directives") {
                assert_eq!(directive["Namespace"], NAMESPACE, "{line}");
                let [metric] = directive["Metrics"].as_array().unwrap().as_slice() else { panic!("{line}") };
                let name = metric["Name"].as_str().unwrap();
                let (_, dimensions) = METRICS.iter().find(|(known, _)| *known == name).expect("a known metric");
                assert_eq!(metric["Unit"], "Count", "{line}");
                assert_eq!(directive["Dimensions"], serde_json::json!([dimensions]), "{line}");
                for dimension in dimensions {
                    assert!(document[dimension].is_string(), "{line}: no {dimension}");
                }
                assert!(document[name].as_u64().is_some_and(|value| value > 0), "{line}: no value of {name}");
            }
            document
        })
        .collect()
}

/// `metric` summed over the documents, per value of `dimension`.
fn per(documents: &[Value], metric: &str, dimension: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for document in documents.iter().filter(|document| document.get(metric).is_some()) {
        let value = document[metric].as_u64().unwrap();
        *sums.entry(document[dimension].as_str().unwrap().to_owned()).or_default() += value;
    }
    sums
}

fn the_request(documents: &[Value]) -> (String, u64) {
    let requests = per(documents, "Requests", "Outcome");
    assert_eq!(requests.values().sum::<u64>(), 1, "one request counted once: {documents:?}");
    requests.into_iter().next().unwrap()
}

/// What identifies a recipient, a message or an event, which no document or log line carries.
fn identities(events: &[Event]) -> Vec<String> {
    let mut identities = Vec::new();
    for event in events {
        identities.push(event.event_id.clone());
        identities.extend(event.recipient.clone());
        identities.extend(event.message_id.clone().filter(|id| id.len() > 3));
    }
    identities
}

/// Every item of `table`, in key order.
async fn items(local: &LocalDynamo, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let output = local.client().scan().table_name(table).send().await.expect("the table scans");
    assert!(output.last_evaluated_key.is_none(), "one page holds a sample's items");
    let mut items = output.items.unwrap_or_default();
    let key = |item: &HashMap<String, AttributeValue>| {
        ["pk", "sk"].map(|name| item[name].as_s().expect("text keys").clone())
    };
    items.sort_by_key(key);
    items
}

#[tokio::test]
async fn every_sample_is_counted_by_what_it_stored() {
    let local = LocalDynamo::shared();
    let metrics = Captured::default();
    let mut read = 0;
    let samples = SampleEvent::all();
    let tables = local.new_tables(samples.len());
    let mut retried = 0;
    for (sample, table) in samples.iter().zip(tables) {
        let receiver = receiver(sample.provider(), local.store(&table, 30), &metrics);
        let now = chrono::Utc::now();
        let expected = sample.provider().parse(sample.body().as_bytes(), now).unwrap();
        let request = sample.signed_event(sample.body());

        let response =
            receiver.handle(with_request_id(support::request_from_event(&request), "req-first")).await.unwrap();
        let (status, body) = support::status_and_json(response);
        assert_eq!(status, 200, "{}: {body}", sample.name());
        let documents = documents_of(&metrics, &mut read);
        assert_eq!(the_request(&documents), ("stored".to_owned(), 1), "{}", sample.name());

        let mut stored_types = BTreeMap::new();
        for event in &expected {
            *stored_types.entry(event.event_type.as_str().to_owned()).or_default() += 1;
        }
        assert_eq!(per(&documents, "Events", "EventType"), stored_types, "{}", sample.name());
        let suppressed: HashSet<&str> = expected
            .iter()
            .filter(|event| {
                matches!(mailhooks::store::suppressions::trigger(event), Some(mailhooks::store::suppressions::Trigger::Suppress(_)))
            })
            .filter_map(|event| event.recipient.as_deref())
            .collect();
        let suppressions: u64 = per(&documents, "Suppressions", "Reason").values().sum();
        assert_eq!(suppressions, suppressed.len() as u64, "{}", sample.name());
        // One document, unless a batch mixes event types or suppression reasons.
        let reasons = per(&documents, "Suppressions", "Reason").len();
        assert_eq!(documents.len(), stored_types.len().max(reasons).max(1), "{}", sample.name());
        assert!(documents.iter().all(|document| document["Provider"] == sample.provider().name));
        assert!(documents.iter().all(|document| document["request_id"] == "req-first"));
        for line in &metrics.lines()[read - documents.len()..] {
            for identity in identities(&expected) {
                assert!(!line.contains(&identity), "{}: a document names {identity}: {line}", sample.name());
            }
        }

        // The provider's retry, the very same request: a duplicate, with no event and no
        // suppression counted again, and nothing written. An event without a time of its own
        // occurs when it is received, so its retry is a new event by design: those samples
        // are left out here.
        if expected.iter().any(|event| event.occurred_at == now) {
            continue;
        }
        retried += 1;
        let stored = items(local, &table).await;
        let response = receiver.handle(support::request_from_event(&request)).await.unwrap();
        let (status, body) = support::status_and_json(response);
        assert_eq!(status, 200);
        assert_eq!(body, serde_json::json!({"stored": 0, "duplicates": expected.len()}), "{}", sample.name());
        let documents = documents_of(&metrics, &mut read);
        assert_eq!(the_request(&documents), ("duplicate".to_owned(), 1), "{}", sample.name());
        assert_eq!(per(&documents, "Events", "EventType").values().sum::<u64>(), 0, "{}", sample.name());
        assert!(per(&documents, "Suppressions", "Reason").is_empty(), "{}", sample.name());
        assert_eq!(items(local, &table).await, stored, "{}: the retry wrote nothing", sample.name());
    }
    assert!(retried * 4 >= samples.len() * 3, "most samples are retried: {retried} of {}", samples.len());
}

#[tokio::test]
async fn soft_bounces_count_one_suppression_when_the_threshold_is_reached() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let metrics = Captured::default();
    let mut read = 0;
    let sample = SampleEvent::named("sendpost/soft_bounced");
    let receiver = receiver(sample.provider(), local.store(&table, 30), &metrics);
    let mut event: Value = serde_json::from_str(sample.body()).unwrap();
    let mut suppressions = Vec::new();
    for message in 0..4 {
        event["event"]["messageID"] = format!("soft-{message}").into();
        event["event"]["eventID"] = format!("soft-event-{message}").into();
        let response = receiver.handle(sample.signed_request(&event.to_string())).await.unwrap();
        assert_eq!(support::status_and_json(response).0, 200);
        suppressions.push(per(&documents_of(&metrics, &mut read), "Suppressions", "Reason"));
    }
    let reached = BTreeMap::from([("soft_bounces".to_owned(), 1)]);
    assert_eq!(suppressions, [BTreeMap::new(), BTreeMap::new(), reached, BTreeMap::new()]);
}

#[tokio::test]
async fn each_refusal_and_failure_is_one_document_with_its_outcome() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let metrics = Captured::default();
    let mut read = 0;
    let sample = SampleEvent::named("engagelab/delivered");
    let provider = sample.provider();

    let wrong_key = |name: &str| (name == "ENGAGELAB_APP_KEY").then(|| "another-key".to_owned());
    let refusing = WebhookReceiver::from_env(provider, &wrong_key, local.store(&table, 30))
        .unwrap()
        .with_metrics(metrics.clone());
    let accepting = receiver(provider, local.store(&table, 30), &metrics);
    let proxy = FaultyProxy::start(local).await;
    proxy.set_down(true);
    let unreachable_store = DynamoStore::new(support::client_for(&proxy.endpoint()), &table, 30);
    let unreachable = receiver(provider, unreachable_store, &metrics);

    let too_large = "x".repeat(mailhooks::http::MAX_BODY_BYTES + 1);
    let cases: [(&WebhookReceiver<DynamoStore>, Request, u16, Outcome); 5] = [
        (&refusing, sample.request(), 401, Outcome::Unauthorized),
        (&accepting, sample.signed_request("{not json"), 400, Outcome::BadRequest),
        (&accepting, sample.signed_request(&too_large), 413, Outcome::TooLarge),
        (&unreachable, sample.request(), 500, Outcome::StorageFailed),
        (&accepting, sample.request(), 200, Outcome::Stored),
    ];
    for (receiver, request, status, outcome) in cases {
        let response = receiver.handle(request).await.unwrap();
        assert_eq!(support::status_and_json(response).0, status, "{outcome:?}");
        let documents = documents_of(&metrics, &mut read);
        assert_eq!(documents.len(), 1, "{outcome:?}: {documents:?}");
        assert_eq!(the_request(&documents), (outcome.as_str().to_owned(), 1));
        let has_events = documents[0].get("Events").is_some();
        assert_eq!(has_events, outcome == Outcome::Stored, "{outcome:?}");
    }
}

#[tokio::test]
async fn each_request_logs_one_short_line_with_its_request_id_and_no_identities() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let metrics = Captured::default();
    let sample = SampleEvent::named("sendpost/hard_bounced");
    let expected = sample.provider().parse(sample.body().as_bytes(), chrono::Utc::now()).unwrap();
    let stored = receiver(sample.provider(), local.store(&table, 30), &metrics);
    let proxy = FaultyProxy::start(local).await;
    proxy.set_down(true);
    let store = DynamoStore::new(support::client_for(&proxy.endpoint()), &table, 30);
    let failing = receiver(sample.provider(), store, &metrics);

    for (receiver, id) in [(&stored, "req-stored"), (&failing, "req-failed"), (&stored, "req-retry")] {
        let logs = ThreadLogs::capture(tracing::Level::INFO, true);
        receiver.handle(with_request_id(sample.request(), id)).await.unwrap();
        let text = logs.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{id}: {text}");
        let line: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["fields"]["request_id"], id, "{text}");
        assert!(lines[0].len() < 400, "{id}: a long log line: {text}");
        for identity in identities(&expected) {
            assert!(!text.contains(&identity), "{id}: the log names {identity}: {text}");
        }
        assert!(!text.contains(support::SENDPOST_TEST_KEY), "{text}");
        assert!(!text.contains(sample.body()), "{text}");
    }
}
