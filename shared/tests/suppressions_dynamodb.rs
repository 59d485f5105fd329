//! The suppression list against a local DynamoDB (moto) with the table of `template.yaml`:
//! each trigger, the soft-bounce threshold under retries, concurrent requests, lift and
//! re-suppress, and `suppressions-api` with its authentication and bad input.

mod support;

use chrono::{DateTime, Duration, Utc};
use lambda_http::{Body, Request};
use mailhooks::receive::event::{event_id, BounceType, Event, EventIdentity, EventType};
use mailhooks::http::{SuppressionsApi, EVENTS_API_TOKEN};
use mailhooks::store::{DynamoStore, EventStore};
use mailhooks::read::suppressions::SuppressionList;
use mailhooks::store::suppressions::suppression_pk;
use serde_json::{json, Value};
use support::LocalDynamo;

const TOKEN: &str = "local-events-token";

fn at(offset_minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().to_utc() + Duration::minutes(offset_minutes)
}

/// An event as a provider module makes it; `id` is the provider's own event id.
fn event(id: &str, event_type: EventType, recipient: &str, message_id: &str, minute: i64) -> Event {
    let mut event = Event::new("sendpost", event_type, at(minute), at(minute), "{}");
    event.event_id = event_id("sendpost", EventIdentity::ProviderId(id), None);
    event.recipient = Some(recipient.to_owned());
    event.message_id = Some(message_id.to_owned());
    event
}

fn bounce(id: &str, bounce_type: BounceType, recipient: &str, message_id: &str, minute: i64) -> Event {
    let mut event = event(id, EventType::Bounced, recipient, message_id, minute);
    event.bounce_type = Some(bounce_type);
    event
}

fn store(table: &str) -> DynamoStore {
    LocalDynamo::shared().store(table, 0)
}

async fn put(store: &DynamoStore, events: &[Event]) {
    store.put_events(events).await.expect("stored");
}

fn api(table: &str) -> SuppressionsApi {
    let env = |name: &str| (name == EVENTS_API_TOKEN).then(|| TOKEN.to_owned());
    SuppressionsApi::from_env(&env, SuppressionList::new(LocalDynamo::shared().client(), table))
}

/// An API Gateway HTTP API (payload 2.0) request, with the `email` path parameter API Gateway
/// sets for `/suppressions/{email}` routes.
fn request(method: &str, path: &str, raw_query: &str, headers: Value) -> Request {
    let mut event = support::http_api_event(method, path, raw_query, headers);
    if let Some(email) = path.strip_prefix("/suppressions/") {
        event["pathParameters"] = json!({ "email": email });
    }
    support::request_from_event(&event)
}

fn authorized() -> Value {
    json!({"host": "localhost", "authorization": format!("Bearer {TOKEN}")})
}

async fn call(api: &SuppressionsApi, request: Request) -> (u16, Value) {
    let response = api.handle(request).await.expect("handlers always answer");
    support::status_and_json(response)
}

async fn status_of(api: &SuppressionsApi, email: &str) -> Value {
    let (status, body) = call(api, request("GET", &format!("/suppressions/{email}"), "", authorized())).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The stored suppression item, as DynamoDB holds it.
async fn item(table: &str, recipient: &str) -> Option<mailhooks::store::keys::Item> {
    LocalDynamo::shared()
        .client()
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(suppression_pk(recipient)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("SUPP".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn each_trigger_suppresses_with_its_reason() {
    let table = LocalDynamo::shared().new_table();
    let store = store(&table);
    let mut invalid = event("e-invalid", EventType::Rejected, "invalid@x.com", "m-4", 4);
    invalid.provider = "engagelab".into();
    invalid.provider_event = Some("invalid_email".into());
    let mut on_provider_list = event("e-listed", EventType::Rejected, "listed@x.com", "m-5", 5);
    on_provider_list.reason = Some("recipient is on the suppression list".into());
    put(
        &store,
        &[
            bounce("e-hard", BounceType::Hard, "hard@x.com", "m-1", 1),
            event("e-spam", EventType::Complained, "spam@x.com", "m-2", 2),
            event("e-unsub", EventType::Unsubscribed, "unsub@x.com", "m-3", 3),
            invalid,
            on_provider_list,
            event("e-open", EventType::Opened, "open@x.com", "m-6", 6),
            bounce("e-soft", BounceType::Soft, "soft@x.com", "m-7", 7),
        ],
    )
    .await;

    let api = api(&table);
    for (email, reason, provider, minute) in [
        ("hard@x.com", "hard_bounce", "sendpost", 1),
        ("spam@x.com", "complained", "sendpost", 2),
        ("unsub@x.com", "unsubscribed", "sendpost", 3),
        ("invalid@x.com", "invalid_address", "engagelab", 4),
    ] {
        let status = status_of(&api, email).await;
        assert_eq!(status["suppressed"], true, "{status}");
        assert_eq!(status["reason"], reason);
        assert_eq!(status["provider"], provider);
        assert_eq!(status["since"], format!("2024-05-01T10:0{minute}:00.000Z"));
        assert_eq!(status["events"].as_array().unwrap().len(), 1, "{status}");
    }
    for email in ["listed@x.com", "open@x.com", "soft@x.com", "never-seen@x.com"] {
        let status = status_of(&api, email).await;
        assert_eq!(status["suppressed"], false, "{email}: {status}");
        assert_eq!(status["reason"], Value::Null);
    }
    assert_eq!(status_of(&api, "soft@x.com").await["soft_bounces"], 1);
    // Events that suppress no one leave no item behind.
    assert!(item(&table, "open@x.com").await.is_none());
}

#[tokio::test]
async fn retried_requests_change_nothing() {
    let table = LocalDynamo::shared().new_table();
    let store = store(&table);
    let first = bounce("e-1", BounceType::Hard, "a@x.com", "m-1", 1);
    let later = event("e-2", EventType::Complained, "a@x.com", "m-2", 9);
    put(&store, &[first.clone(), later.clone()]).await;
    let stored = item(&table, "a@x.com").await.unwrap();
    for _ in 0..3 {
        let counts = store.put_events(&[first.clone(), later.clone()]).await.unwrap();
        assert_eq!((counts.stored.len(), counts.duplicates, counts.suppressed.len()), (0, 2, 0));
    }
    assert_eq!(item(&table, "a@x.com").await.unwrap(), stored, "a retry rewrote the suppression");

    let status = status_of(&api(&table), "a@x.com").await;
    assert_eq!(status["reason"], "hard_bounce", "the earliest trigger gives the reason");
    assert_eq!(
        status["events"],
        json!([
            {"event_id": first.event_id, "occurred_at": "2024-05-01T10:01:00.000Z"},
            {"event_id": later.event_id, "occurred_at": "2024-05-01T10:09:00.000Z"},
        ])
    );
}

#[tokio::test]
async fn triggers_arriving_out_of_order_keep_the_earliest_first_and_the_newest_latest() {
    let table = LocalDynamo::shared().new_table();
    let store = store(&table);
    let middle = event("e-mid", EventType::Unsubscribed, "a@x.com", "m-2", 20);
    let newest = event("e-new", EventType::Complained, "a@x.com", "m-3", 30);
    let oldest = bounce("e-old", BounceType::Hard, "a@x.com", "m-1", 10);
    for event in [&middle, &newest, &oldest] {
        put(&store, std::slice::from_ref(event)).await;
    }
    let status = status_of(&api(&table), "a@x.com").await;
    assert_eq!(status["reason"], "hard_bounce", "{status}");
    assert_eq!(status["since"], "2024-05-01T10:10:00.000Z");
    assert_eq!(status["events"][0]["event_id"], oldest.event_id);
    assert_eq!(status["events"][1]["event_id"], newest.event_id);
    let (_, listed) = call(&api(&table), request("GET", "/suppressions", "", authorized())).await;
    assert_eq!(listed["suppressions"][0]["since"], "2024-05-01T10:10:00.000Z", "{listed}");
}

#[tokio::test]
async fn the_soft_bounce_threshold_counts_distinct_messages_once() {
    let table = LocalDynamo::shared().new_table();
    let store = store(&table);
    let api = api(&table);
    let soft = |id: &str, message: &str, minute| bounce(id, BounceType::Soft, "soft@x.com", message, minute);

    put(&store, &[soft("e-1", "m-1", 1), soft("e-2", "m-2", 2)]).await;
    // The same callback retried, and the provider bouncing message m-2 again on its own retry.
    put(&store, &[soft("e-2", "m-2", 2)]).await;
    put(&store, &[soft("e-2-retry", "m-2", 3)]).await;
    // Deliveries and opens in between reset nothing.
    put(&store, &[event("e-open", EventType::Opened, "soft@x.com", "m-1", 4)]).await;
    let status = status_of(&api, "soft@x.com").await;
    assert_eq!((status["suppressed"].clone(), status["soft_bounces"].clone()), (json!(false), json!(2)), "{status}");

    let third = soft("e-3", "m-3", 5);
    put(&store, std::slice::from_ref(&third)).await;
    let status = status_of(&api, "soft@x.com").await;
    assert_eq!(status["suppressed"], true, "{status}");
    assert_eq!(status["reason"], "soft_bounces");
    assert_eq!(status["since"], "2024-05-01T10:05:00.000Z");
    assert_eq!(status["events"][0]["event_id"], third.event_id);
}

#[tokio::test]
async fn the_threshold_is_configurable_and_a_cut_off_retry_still_suppresses() {
    let table = LocalDynamo::shared().new_table();
    let soft = |id: &str, message: &str| bounce(id, BounceType::Soft, "soft@x.com", message, 1);
    let lenient = store(&table).with_soft_bounce_threshold(5);
    put(&lenient, &[soft("e-1", "m-1"), soft("e-2", "m-2"), soft("e-3", "m-3")]).await;
    let api = api(&table);
    assert_eq!(status_of(&api, "soft@x.com").await["suppressed"], false);

    // The third bounce already counted; its retry under a threshold of 3 finds the count and
    // suppresses, as a retry does after a request cut off between counting and suppressing.
    let strict = store(&table).with_soft_bounce_threshold(3);
    put(&strict, &[soft("e-3", "m-3")]).await;
    let status = status_of(&api, "soft@x.com").await;
    assert_eq!((status["suppressed"].clone(), status["reason"].clone()), (json!(true), json!("soft_bounces")));
}

#[tokio::test]
async fn concurrent_requests_for_one_recipient_give_one_correct_item() {
    let table = LocalDynamo::shared().new_table();
    let api = api(&table);
    // Two requests at once, each with a hard trigger for the same recipient.
    let (a, b) = (store(&table), store(&table));
    let hard = bounce("e-hard", BounceType::Hard, "both@x.com", "m-1", 1);
    let spam = event("e-spam", EventType::Complained, "both@x.com", "m-2", 2);
    let (first, second) = tokio::join!(a.put_events(std::slice::from_ref(&hard)), b.put_events(std::slice::from_ref(&spam)));
    first.unwrap();
    second.unwrap();
    let status = status_of(&api, "both@x.com").await;
    assert_eq!(status["suppressed"], true);
    assert_eq!(status["events"].as_array().unwrap().len(), 2, "{status}");
    let counted = item(&table, "both@x.com").await.unwrap()["counted_event_ids"].as_ss().unwrap().len();
    assert_eq!(counted, 2);

    // Three soft bounces of distinct messages in three concurrent requests reach the threshold.
    let bounces: Vec<Event> =
        (1..=3).map(|n| bounce(&format!("s-{n}"), BounceType::Soft, "soft@x.com", &format!("m-{n}"), n)).collect();
    let stores: Vec<DynamoStore> = (0..3).map(|_| store(&table)).collect();
    let requests = stores.iter().zip(&bounces).map(|(store, bounce)| store.put_events(std::slice::from_ref(bounce)));
    for outcome in futures_util::future::join_all(requests).await {
        outcome.unwrap();
    }
    let status = status_of(&api, "soft@x.com").await;
    assert_eq!((status["suppressed"].clone(), status["soft_bounces"].clone()), (json!(true), json!(3)), "{status}");
}

#[tokio::test]
async fn a_lift_is_audited_and_only_new_triggers_suppress_again() {
    let table = LocalDynamo::shared().new_table();
    let store = store(&table);
    let api = api(&table);
    let hard = bounce("e-1", BounceType::Hard, "a@x.com", "m-1", 1);
    put(&store, std::slice::from_ref(&hard)).await;

    let mut headers = authorized();
    headers["x-mailhooks-actor"] = "oncall@ops".into();
    let (status, lifted) = call(&api, request("DELETE", "/suppressions/a@x.com", "", headers)).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["suppressed"], false);
    assert_eq!(lifted["lifted_by"], "oncall@ops");
    assert!(lifted["lifted_at"].is_string());
    assert_eq!(lifted["reason"], Value::Null);

    // Lifting again: nothing to lift. Without the actor header, the caller's address is kept.
    let (status, body) = call(&api, request("DELETE", "/suppressions/a@x.com", "", authorized())).await;
    assert_eq!(status, 404, "{body}");

    // The provider retrying the old bounce does not undo the lift; a delivery does nothing.
    put(&store, &[hard, event("e-2", EventType::Delivered, "a@x.com", "m-2", 2)]).await;
    assert_eq!(status_of(&api, "a@x.com").await["suppressed"], false);

    let complaint = event("e-3", EventType::Complained, "a@x.com", "m-3", 30);
    put(&store, std::slice::from_ref(&complaint)).await;
    let status = status_of(&api, "a@x.com").await;
    assert_eq!(status["suppressed"], true);
    assert_eq!(status["reason"], "complained");
    assert_eq!(status["since"], "2024-05-01T10:30:00.000Z");
    assert_eq!(status["events"], json!([{"event_id": complaint.event_id, "occurred_at": "2024-05-01T10:30:00.000Z"}]));
    assert_eq!(status["lifted_by"], "oncall@ops", "the last lift stays on record");

    let (status, body) = call(&api, request("DELETE", "/suppressions/A%40X.com", "", authorized())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lifted_by"], "bearer token from 203.0.113.9");
}

#[tokio::test]
async fn the_list_pages_through_suppressions_since_a_time() {
    let table = LocalDynamo::shared().new_table();
    let store = store(&table);
    let events: Vec<Event> = (0..5)
        .map(|n| bounce(&format!("e-{n}"), BounceType::Hard, &format!("r{n}@x.com"), &format!("m-{n}"), n * 10))
        .collect();
    put(&store, &events).await;
    put(&store, &[bounce("e-soft", BounceType::Soft, "soft@x.com", "m-s", 15)]).await;
    let api = api(&table);

    let mut listed = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (status, body) = call(&api, request("GET", "/suppressions", &query, authorized())).await;
        assert_eq!(status, 200, "{query}: {body}");
        let page = body["suppressions"].as_array().unwrap();
        assert!(page.len() <= 2);
        listed.extend(page.iter().map(|entry| entry["email"].as_str().unwrap().to_owned()));
        match body.get("next_cursor") {
            Some(cursor) => query = format!("limit=2&cursor={}", cursor.as_str().unwrap()),
            None => break,
        }
    }
    assert_eq!(listed, ["r0@x.com", "r1@x.com", "r2@x.com", "r3@x.com", "r4@x.com"]);

    let (status, body) =
        call(&api, request("GET", "/suppressions", "since=2024-05-01T10:20:00Z", authorized())).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["suppressions"][0],
        json!({"email": "r2@x.com", "reason": "hard_bounce", "since": "2024-05-01T10:20:00.000Z", "provider": "sendpost"})
    );
    assert_eq!(body["suppressions"].as_array().unwrap().len(), 3);

    // A lifted address leaves the list.
    let (status, _) = call(&api, request("DELETE", "/suppressions/r0@x.com", "", authorized())).await;
    assert_eq!(status, 200);
    let (_, body) = call(&api, request("GET", "/suppressions", "", authorized())).await;
    assert_eq!(body["suppressions"].as_array().unwrap().len(), 4);
    assert!(body.get("next_cursor").is_none());
}

#[tokio::test]
async fn the_api_refuses_bad_requests_clearly() {
    let table = LocalDynamo::shared().new_table();
    let api = api(&table);
    let cases: [(&str, &str, &str, Value, u16, &str); 12] = [
        ("GET", "/suppressions/a@x.com", "", json!({"host": "h"}), 401, "Authorization"),
        ("GET", "/suppressions/a@x.com", "", json!({"authorization": "Bearer wrong"}), 401, "token"),
        ("DELETE", "/suppressions/a@x.com", "", json!({"authorization": "Bearer wrong"}), 401, "token"),
        ("GET", "/suppressions/not-an-address", "", authorized(), 400, "email"),
        ("DELETE", "/suppressions/%20", "", authorized(), 400, "email"),
        ("GET", "/suppressions", "since=yesterday", authorized(), 400, "since"),
        ("GET", "/suppressions", "limit=0", authorized(), 400, "limit"),
        ("GET", "/suppressions", "sinse=2024-05-01T00:00:00Z", authorized(), 400, "sinse"),
        ("GET", "/suppressions", "cursor=forged", authorized(), 400, "cursor"),
        ("DELETE", "/suppressions", "", authorized(), 405, "DELETE"),
        ("POST", "/suppressions/a@x.com", "", authorized(), 405, "POST"),
        ("DELETE", "/suppressions/nobody@x.com", "", authorized(), 404, "not suppressed"),
    ];
    for (method, path, query, headers, expected, mentions) in cases {
        let (status, body) = call(&api, request(method, path, query, headers)).await;
        assert_eq!(status, expected, "{method} {path}?{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(mentions), "{method} {path}?{query}: {error:?} should mention {mentions:?}");
    }

    // A cursor of one query does not resume another.
    let store = store(&table);
    let events: Vec<Event> =
        (0..3).map(|n| bounce(&format!("e-{n}"), BounceType::Hard, &format!("r{n}@x.com"), "m", n)).collect();
    put(&store, &events).await;
    let (_, body) = call(&api, request("GET", "/suppressions", "limit=1", authorized())).await;
    let cursor = body["next_cursor"].as_str().unwrap();
    let query = format!("limit=1&since=2024-05-01T10:00:00Z&cursor={cursor}");
    let (status, body) = call(&api, request("GET", "/suppressions", &query, authorized())).await;
    assert_eq!(status, 400, "{body}");

    // Without a configured token, every request is refused.
    let closed = SuppressionsApi::from_env(&|_| None, SuppressionList::new(LocalDynamo::shared().client(), &table));
    let (status, _) = call(&closed, request("GET", "/suppressions/a@x.com", "", authorized())).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_address_in_the_path_works_without_api_gateway_path_parameters() {
    let table = LocalDynamo::shared().new_table();
    put(&store(&table), &[event("e-1", EventType::Unsubscribed, "a+tag@x.com", "m-1", 1)]).await;
    let api = api(&table);
    // A Function URL or a local run: no pathParameters, the address is percent-encoded.
    let direct = lambda_http::http::Request::builder()
        .method("GET")
        .uri("http://localhost/suppressions/A%2Btag%40x.com")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::Empty)
        .unwrap();
    let (status, body) = call(&api, direct).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "a+tag@x.com");
    assert_eq!(body["suppressed"], true);
}

/// The samples of `events/suppressions-api/` answer for the recipient that the sample SendPost hard
/// bounce (`events/sendpost/hard_bounced.json`) suppresses, among what every webhook sample stores.
#[tokio::test]
async fn the_sample_requests_are_answered() {
    let api = api(&LocalDynamo::shared().table_with_every_sample().await);
    let directory = support::repo_root().join("events/suppressions-api");
    // In this order: the status and the list see the suppression, the lift ends it (once).
    let mut lifted = false;
    for (name, expected) in [("status", 200), ("list", 200), ("lift", 200), ("status", 200), ("lift", 404)] {
        let path = directory.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let request = mailhooks::http_event::request_from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let (status, body) = call(&api, request).await;
        assert_eq!(status, expected, "{name}: {body}");
        match name {
            "status" => {
                assert_eq!(body["email"], "gavin@hooli.com", "{body}");
                assert_eq!(body["suppressed"], !lifted, "{body}");
                assert_eq!(body["provider"], if lifted { Value::Null } else { "sendpost".into() }, "{body}");
            }
            "list" => {
                let listed: Vec<&str> =
                    body["suppressions"].as_array().unwrap().iter().filter_map(|entry| entry["email"].as_str()).collect();
                assert!(listed.contains(&"gavin@hooli.com"), "{body}");
            }
            _ if expected == 200 => {
                assert_eq!(body["lifted_by"], "oncall@example.com", "{body}");
                lifted = true;
            }
            _ => {}
        }
    }
}
