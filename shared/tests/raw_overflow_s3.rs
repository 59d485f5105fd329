//! Large inbound mail without loss, against the local emulator's S3 and
//! DynamoDB: an EngageLab `route` event of 5 MB, signed as EngageLab signs it, goes through the
//! real `WebhookReceiver`; its `raw` lands in the overflow bucket and the item points at it; a
//! 300 KB one stays in its item, compressed; `GET /events?include_raw=true` returns `raw` whole,
//! in pages whose `raw` fits one Lambda answer, and a `raw` that fits none by its object's key.

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::http::{EventsApi, WebhookReceiver, EVENTS_API_TOKEN, MAX_BODY_BYTES};
use mailhooks::store::raw_object::{answer_bytes, RawObjectRef, RawObjects, ANSWER_BYTES};
use mailhooks::read::events::EventReader;
use mailhooks::store::keys::item_size;
use mailhooks::store::{DynamoStore, EventStore, MAX_ITEM_BYTES};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{FaultyProxy, LocalDynamo, SampleEvent};

const TOKEN: &str = "local-events-token";

fn receiver(store: DynamoStore) -> WebhookReceiver<DynamoStore> {
    let sample = SampleEvent::named("engagelab/route");
    WebhookReceiver::from_env(sample.provider(), &support::sample_env, store).expect("sample configuration is valid")
}

/// A new table and overflow bucket, and the receiver storing into them, its events kept
/// `retention_days`.
fn receiver_with_new_table_and_bucket(
    local: &LocalDynamo,
    retention_days: u32,
) -> (String, String, WebhookReceiver<DynamoStore>) {
    let (table, bucket) = (local.new_table(), local.new_bucket());
    let receiver = receiver(local.store(&table, retention_days).with_raw_objects(local.raw_objects(&bucket)));
    (table, bucket, receiver)
}

async fn post<S: EventStore>(receiver: &WebhookReceiver<S>, body: &str) -> (u16, Value) {
    let request = SampleEvent::named("engagelab/route").signed_request(body);
    support::status_and_json(receiver.handle(request).await.expect("handlers always answer"))
}

/// Pseudo-random base64 lines, as an attachment in a MIME message: compresses to about 3/4.
fn base64_lines(bytes: usize, mut state: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes + 2);
    while text.len() < bytes {
        for _ in 0..76 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(char::from(ALPHABET[(state % 64) as usize]));
        }
        text.push_str("\r\n");
    }
    text.truncate(bytes);
    text
}

/// Mail-like prose that compresses well.
fn prose(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 80);
    let mut line = 0_u32;
    while text.len() < bytes {
        line += 1;
        text.push_str(&format!("<p>Line {line}: the work plan for next month, item {} of the list.</p>\n", line * 7 % 1000));
    }
    text.truncate(bytes);
    text
}

/// The `route` sample with a raw_message, html and text of the given sizes (unique per `seed`).
fn route_body(raw_message: String, html: String, text: String) -> String {
    let sample = SampleEvent::named("engagelab/route");
    let mut body: Value = serde_json::from_str(sample.body()).unwrap();
    let data = &mut body["response"]["response_data"];
    data["raw_message"] = raw_message.into();
    data["html"] = html.into();
    data["text"] = text.into();
    body.to_string()
}

/// A route event with an attachment of `attachment_bytes`, too large for its item however
/// it compresses (`seed` makes each test's event distinct).
fn overflowing_route(attachment_bytes: usize, seed: u64) -> String {
    route_body(base64_lines(attachment_bytes, seed), prose(200_000), prose(100_000))
}

/// A 5 MB route event: the largest inbound mail `GET /events` still answers whole.
fn five_megabyte_route(seed: u64) -> String {
    let body = overflowing_route(4_700_000, seed);
    assert!((5_000_000..=MAX_BODY_BYTES).contains(&body.len()), "{} bytes", body.len());
    body
}

/// A 2 MB route event: two fit in one answer with their `raw`, three do not.
fn two_megabyte_route(seed: u64) -> String {
    let body = overflowing_route(1_700_000, seed);
    assert!((2_000_000..2_100_000).contains(&body.len()), "{} bytes", body.len());
    body
}

/// The event the store receives for `body`: its id and `raw`.
fn parsed(body: &str) -> mailhooks::receive::event::Event {
    let sample = SampleEvent::named("engagelab/route");
    let mut events = sample.provider().parse(body.as_bytes(), chrono::Utc::now()).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

async fn event_items(local: &LocalDynamo, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let output = local.client().scan().table_name(table).send().await.expect("scan works");
    let mut items = output.items.unwrap_or_default();
    items.retain(|item| item.get("pk").and_then(|pk| pk.as_s().ok()).is_some_and(|pk| pk.starts_with("MSG#")));
    items
}

async fn object_keys(local: &LocalDynamo, bucket: &str) -> Vec<String> {
    let output = local.s3_client().list_objects_v2().bucket(bucket).send().await.expect("list works");
    output.contents.unwrap_or_default().into_iter().filter_map(|object| object.key).collect()
}

async fn object(local: &LocalDynamo, bucket: &str, key: &str) -> Vec<u8> {
    let output = local.s3_client().get_object().bucket(bucket).key(key).send().await.expect("object exists");
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

fn events_api(local: &LocalDynamo, table: &str, bucket: &str) -> EventsApi {
    let env = |name: &str| (name == EVENTS_API_TOKEN).then(|| TOKEN.to_owned());
    EventsApi::from_env(&env, EventReader::new(local.client(), table).with_raw_objects(local.raw_objects(bucket)))
}

/// `GET /events?{query}` as API Gateway (HTTP API, payload 2.0) delivers it.
async fn get(api: &EventsApi, query: &str) -> (u16, Value) {
    let headers = json!({"host": "localhost", "authorization": format!("Bearer {TOKEN}")});
    let request = support::request_from_event(&support::http_api_event("GET", "/events", query, headers));
    support::status_and_json(api.handle(request).await.expect("handlers always answer"))
}

/// The event as `GET /events?include_raw=true` answers it, by message and by recipient (the
/// table, and an index whose entries leave `raw` and `raw_object` out).
async fn read_back_with_raw(api: &EventsApi, event: &mailhooks::receive::event::Event) -> Vec<Value> {
    let message = format!("message_id={}&provider=engagelab", event.message_id.as_deref().unwrap());
    let recipient = format!("recipient={}", event.recipient.as_deref().unwrap().replace('@', "%40"));
    let mut answered = Vec::new();
    for selector in [message, recipient] {
        let (status, body) = get(api, &format!("{selector}&include_raw=true")).await;
        assert_eq!(status, 200, "{selector}: {body}");
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{selector}");
        assert_eq!(events[0]["event_id"], event.event_id.as_str());
        answered.push(events[0].clone());
        let (_, without) = get(api, &selector).await;
        assert!(without["events"][0].get("raw").is_none() && without["events"][0].get("raw_object").is_none());
    }
    answered
}

/// Checks that `GET /events?include_raw=true` answers the event's `raw` whole, both ways.
async fn assert_read_back_whole(api: &EventsApi, event: &mailhooks::receive::event::Event) {
    let expected: Value = serde_json::from_str(&event.raw).unwrap();
    for answered in read_back_with_raw(api, event).await {
        assert!(*answered_raw(&answered) == expected, "{}: raw answered whole", event.event_id);
    }
}

/// Checks that `GET /events?include_raw=true` answers the event with its object's key instead
/// of `raw`, both ways.
async fn assert_read_back_by_key(api: &EventsApi, event: &mailhooks::receive::event::Event, reference: &RawObjectRef) {
    let expected = json!({"key": reference.key, "sha256": reference.sha256, "bytes": reference.bytes});
    for answered in read_back_with_raw(api, event).await {
        assert!(answered.get("raw").is_none(), "{}: no raw", event.event_id);
        assert_eq!(answered["raw_object"], expected);
    }
}

/// `raw` as answered, checked to come without the store's `raw_object`.
fn answered_raw(event: &Value) -> &Value {
    assert!(event.get("raw_object").is_none(), "raw_object is the store's, not the event's: {}", event["event_id"]);
    &event["raw"]
}

#[tokio::test]
async fn a_5_mb_route_event_is_stored_once_with_its_raw_in_s3_and_read_back_whole() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 30);
    let body = five_megabyte_route(1);
    let event = parsed(&body);

    let (status, answer) = post(&receiver, &body).await;
    assert_eq!((status, answer), (200, json!({"stored": 1, "duplicates": 0})));

    let items = event_items(local, &table).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert!(item.get("raw").is_none(), "raw is in the object, not also in the item");
    let reference = RawObjectRef::from_attribute(&item["raw_object"]).expect("raw_object is {key, sha256, bytes}");
    assert_eq!(reference.key, format!("raw/engagelab/{}/{}", event.event_id, reference.sha256));
    assert_eq!(reference.bytes, event.raw.len() as u64);
    assert!(item_size(item) < 2048, "the item keeps only the reference: {} bytes", item_size(item));

    assert_eq!(object_keys(local, &bucket).await, vec![reference.key.clone()]);
    let stored = object(local, &bucket, &reference.key).await;
    assert_eq!(hex::encode(Sha256::digest(&stored)), reference.sha256);
    assert_eq!(stored, event.raw.as_bytes(), "the object is the provider's event exactly as received");

    // EngageLab's retry: a duplicate; the object is rewritten with the same bytes, not added.
    let (status, answer) = post(&receiver, &body).await;
    assert_eq!((status, answer), (200, json!({"stored": 0, "duplicates": 1})));
    assert_eq!(event_items(local, &table).await.len(), 1);
    assert_eq!(object_keys(local, &bucket).await, vec![reference.key.clone()]);
    assert_eq!(hex::encode(Sha256::digest(object(local, &bucket, &reference.key).await)), reference.sha256);

    assert!(answer_bytes(&event.raw) <= ANSWER_BYTES, "it fits one answer");
    assert_read_back_whole(&events_api(local, &table, &bucket), &event).await;
}

#[tokio::test]
async fn a_raw_no_answer_can_carry_goes_to_s3_even_when_it_compresses_small_and_is_answered_by_key() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 30);
    // 3.1 MB of escaped quotes: each `\"` takes four bytes once Lambda's answer escapes it again.
    let body = route_body("\"".repeat(1_550_000), prose(1_000), prose(1_000));
    let event = parsed(&body);
    assert!(answer_bytes(&event.raw) > ANSWER_BYTES, "{} bytes answered", answer_bytes(&event.raw));
    let compressed = mailhooks::store::raw_codec::encode_raw(&event.provider, &event.raw, &HashMap::new());
    assert!(matches!(&compressed, AttributeValue::B(blob) if blob.as_ref().len() < MAX_ITEM_BYTES / 2), "it would fit");

    assert_eq!(post(&receiver, &body).await, (200, json!({"stored": 1, "duplicates": 0})));
    let items = event_items(local, &table).await;
    assert!(!items[0].contains_key("raw"));
    let reference = RawObjectRef::from_attribute(&items[0]["raw_object"]).expect("kept in an object");
    assert!(reference.bytes <= ANSWER_BYTES, "only reading it shows that it cannot be answered");
    assert_eq!(object(local, &bucket, &reference.key).await, event.raw.as_bytes());
    assert_read_back_by_key(&events_api(local, &table, &bucket), &event, &reference).await;
}

#[tokio::test]
async fn a_6_mb_mail_is_answered_by_key_without_its_object_being_read() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 30);
    let body = overflowing_route(5_700_000, 30);
    assert!(body.len() <= MAX_BODY_BYTES);
    let event = parsed(&body);
    assert_eq!(post(&receiver, &body).await, (200, json!({"stored": 1, "duplicates": 0})));
    let items = event_items(local, &table).await;
    let reference = RawObjectRef::from_attribute(&items[0]["raw_object"]).expect("kept in an object");
    assert!(reference.bytes > ANSWER_BYTES, "too large by its size alone");
    // Its size says it cannot be answered: reading it would fail now that it is gone.
    local.s3_client().delete_object().bucket(&bucket).key(&reference.key).send().await.unwrap();
    assert_read_back_by_key(&events_api(local, &table, &bucket), &event, &reference).await;
}

#[tokio::test]
async fn pages_with_raw_end_before_one_answer_is_full_and_the_next_page_resumes_there() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 30);
    let mut expected = HashMap::new();
    for seed in 10..13 {
        let body = two_megabyte_route(seed);
        let event = parsed(&body);
        assert_eq!(post(&receiver, &body).await.0, 200);
        expected.insert(event.event_id.clone(), serde_json::from_str::<Value>(&event.raw).unwrap());
    }
    let small = SampleEvent::named("engagelab/route");
    assert_eq!(post(&receiver, small.body()).await.0, 200);
    let small_event = parsed(small.body());
    expected.insert(small_event.event_id.clone(), serde_json::from_str(&small_event.raw).unwrap());
    assert_eq!(object_keys(local, &bucket).await.len(), 3, "the three 2 MB events overflow");

    let api = events_api(local, &table, &bucket);
    let message = format!("message_id={}&provider=engagelab", small_event.message_id.as_deref().unwrap());
    let recipient = format!("recipient={}", small_event.recipient.as_deref().unwrap().replace('@', "%40"));
    // Eight shards, so a page cut short must say where each lane resumes.
    let day = format!("event_type=inbound&date={}", small_event.occurred_at.format("%Y-%m-%d"));
    for selector in [message, recipient, day] {
        let (_, without_raw) = get(&api, &selector).await;
        assert_eq!(without_raw["events"].as_array().unwrap().len(), 4, "{selector}: one page without raw");

        let mut seen = HashMap::new();
        let mut pages = Vec::new();
        let mut query = format!("{selector}&include_raw=true&order=asc");
        loop {
            let (status, page) = get(&api, &query).await;
            assert_eq!(status, 200, "{selector}: {page}");
            let events = page["events"].as_array().unwrap();
            let raw_bytes: u64 = events.iter().map(|event| answer_bytes(&answered_raw(event).to_string())).sum();
            assert!(raw_bytes <= ANSWER_BYTES, "{selector}: {raw_bytes} bytes of raw");
            pages.push(events.len());
            for event in events {
                let id = event["event_id"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone(), answered_raw(event).clone()).is_none(), "{selector}: {id} twice");
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => query = format!("{selector}&include_raw=true&order=asc&cursor={cursor}"),
                None => break,
            }
        }
        assert!(pages.len() >= 2 && pages.iter().all(|&events| (1..=3).contains(&events)), "{selector}: {pages:?}");
        assert!(seen == expected, "{selector}: every event once, each with its whole raw");
    }
}

#[tokio::test]
async fn a_retry_whose_json_differs_only_in_spacing_leaves_the_stored_raw_readable() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 30);
    let body = two_megabyte_route(20);
    let respaced = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let (event, retried) = (parsed(&body), parsed(&respaced));
    assert_eq!(event.event_id, retried.event_id, "one event, sent twice in other spacing");
    assert_ne!(event.raw, retried.raw);

    assert_eq!(post(&receiver, &body).await, (200, json!({"stored": 1, "duplicates": 0})));
    assert_eq!(post(&receiver, &respaced).await, (200, json!({"stored": 0, "duplicates": 1})));
    // The retry's copy is its own object (expired later by the lifecycle), not a replacement
    // of the one whose checksum the item holds.
    assert_eq!(object_keys(local, &bucket).await.len(), 2);
    assert_read_back_whole(&events_api(local, &table, &bucket), &event).await;
}

#[tokio::test]
async fn a_300_kb_route_event_stays_in_its_item_compressed() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 30);
    let body = route_body(prose(150_000), prose(100_000), prose(50_000));
    assert!((300_000..320_000).contains(&body.len()), "{} bytes", body.len());
    let event = parsed(&body);

    let (status, answer) = post(&receiver, &body).await;
    assert_eq!((status, answer), (200, json!({"stored": 1, "duplicates": 0})));
    let items = event_items(local, &table).await;
    assert_eq!(items.len(), 1);
    let AttributeValue::B(blob) = &items[0]["raw"] else { panic!("raw is compressed") };
    assert!(blob.as_ref().len() < event.raw.len() / 4, "{} bytes compressed", blob.as_ref().len());
    assert!(!items[0].contains_key("raw_object"));
    assert!(item_size(&items[0]) <= MAX_ITEM_BYTES);
    assert!(object_keys(local, &bucket).await.is_empty(), "nothing overflows");

    assert_read_back_whole(&events_api(local, &table, &bucket), &event).await;
}

#[tokio::test]
async fn an_s3_outage_during_an_overflow_answers_500_stores_nothing_and_the_retry_stores_it() {
    let local = LocalDynamo::shared();
    let (table, bucket) = (local.new_table(), local.new_bucket());
    let proxy = FaultyProxy::start(local).await;
    let s3 = RawObjects::new(support::s3_client_for(&proxy.endpoint()), &bucket);
    let receiver = receiver(local.store(&table, 0).with_raw_objects(s3));
    let body = five_megabyte_route(2);

    proxy.set_down(true);
    let (status, answer) = post(&receiver, &body).await;
    assert_eq!((status, answer), (500, json!({"error": "storage unavailable"})));
    assert!(event_items(local, &table).await.is_empty(), "no item may point at a missing object");
    assert!(object_keys(local, &bucket).await.is_empty());

    proxy.set_down(false);
    let (status, answer) = post(&receiver, &body).await;
    assert_eq!((status, answer), (200, json!({"stored": 1, "duplicates": 0})));
    let items = event_items(local, &table).await;
    assert_eq!(items.len(), 1);
    let reference = RawObjectRef::from_attribute(&items[0]["raw_object"]).unwrap();
    assert_eq!(hex::encode(Sha256::digest(object(local, &bucket, &reference.key).await)), reference.sha256);
}

#[tokio::test]
async fn an_overflow_without_a_bucket_is_a_500_never_a_silent_loss() {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let receiver = receiver(local.store(&table, 0));
    let (status, answer) = post(&receiver, &five_megabyte_route(3)).await;
    assert_eq!((status, answer), (500, json!({"error": "storage unavailable"})));
    assert!(event_items(local, &table).await.is_empty());
    // A small event still needs no bucket.
    let sample = SampleEvent::named("engagelab/route");
    let (status, _) = post(&receiver, sample.body()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_damaged_object_is_an_error_not_wrong_data() {
    let local = LocalDynamo::shared();
    let (table, bucket, receiver) = receiver_with_new_table_and_bucket(local, 0);
    let body = two_megabyte_route(4);
    let event = parsed(&body);
    assert_eq!(post(&receiver, &body).await.0, 200);
    let key = RawObjectRef::of("engagelab", &event.event_id, event.raw.as_bytes()).key;
    let mut damaged = event.raw.clone().into_bytes();
    damaged[1000] ^= 1;
    local
        .s3_client()
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(damaged.into())
        .send()
        .await
        .unwrap();

    let api = events_api(local, &table, &bucket);
    let selector = format!("message_id={}&provider=engagelab", event.message_id.as_deref().unwrap());
    let (status, answer) = get(&api, &format!("{selector}&include_raw=true")).await;
    assert_eq!(status, 500, "{answer}");
    assert!(!answer.to_string().contains(&key), "the cause is logged, not answered: {answer}");
    // Without raw the event is still readable.
    let (status, answer) = get(&api, &selector).await;
    assert_eq!((status, answer["events"].as_array().map(Vec::len)), (200, Some(1)));
}
