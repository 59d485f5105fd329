//! `GET /events` against a local DynamoDB (moto) with the table of `template.yaml`: every
//! selector, the time range, both orders, pagination across the `by_type` shards, `raw`,
//! authentication, and a 400 naming each bad parameter.

mod support;

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use lambda_http::Request;
use mailhooks::receive::event::{event_id, format_timestamp, BounceType, Event, EventIdentity, EventType};
use mailhooks::receive::json;
use mailhooks::http::{EventsApi, EVENTS_API_TOKEN};
use mailhooks::read::events::EventReader;
use mailhooks::store::keys::{type_shard, EventKeys};
use mailhooks::store::EventStore;
use serde_json::{json, Value};
use support::{repo_root, LocalDynamo};

/// The token of the sample GET events in `events/events-api/`.
const TOKEN: &str = "local-events-token";

fn api(table: &str, token: Option<&str>) -> EventsApi {
    let env = |name: &str| if name == EVENTS_API_TOKEN { token.map(str::to_owned) } else { None };
    EventsApi::from_env(&env, EventReader::new(LocalDynamo::shared().client(), table))
}

/// An API Gateway HTTP API (payload 2.0) request to `/events`, as the function receives it.
fn request(method: &str, raw_query: &str, authorization: Option<&str>) -> Request {
    let mut headers = json!({"host": "localhost"});
    if let Some(authorization) = authorization {
        headers["authorization"] = authorization.into();
    }
    support::request_from_event(&support::http_api_event(method, "/events", raw_query, headers))
}

async fn call(api: &EventsApi, request: Request) -> (u16, Value) {
    let response = api.handle(request).await.expect("handlers always answer");
    support::status_and_json(response)
}

async fn get(api: &EventsApi, raw_query: &str) -> (u16, Value) {
    call(api, request("GET", raw_query, Some(&format!("Bearer {TOKEN}")))).await
}

/// A page that must succeed: its events and its `next_cursor`.
async fn page(api: &EventsApi, raw_query: &str) -> (Vec<Value>, Option<String>) {
    let (status, body) = get(api, raw_query).await;
    assert_eq!(status, 200, "{raw_query}: {body}");
    let events = body["events"].as_array().expect("events is an array").clone();
    (events, body.get("next_cursor").map(|cursor| cursor.as_str().expect("a text cursor").to_owned()))
}

/// Every page of a query, following `next_cursor` until there is none.
async fn all_pages(api: &EventsApi, raw_query: &str) -> Vec<Vec<Value>> {
    let (first, cursor) = page(api, raw_query).await;
    [vec![first], pages_after(api, raw_query, cursor).await].concat()
}

/// The pages that follow `cursor` (none without one); `raw_query` has no cursor of its own.
async fn pages_after(api: &EventsApi, raw_query: &str, mut cursor: Option<String>) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    while let Some(next) = cursor {
        assert!(pages.len() < 1000, "{raw_query}: pagination does not end");
        let (events, following) = page(api, &format!("{raw_query}&cursor={next}")).await;
        pages.push(events);
        cursor = following;
    }
    pages
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn event(
    provider: &str,
    event_type: EventType,
    occurred_at: DateTime<Utc>,
    message_id: &str,
    recipient: &str,
) -> Event {
    let raw = json!({
        "provider": provider, "type": event_type, "at": format_timestamp(occurred_at),
        "message": message_id, "to": recipient
    });
    let raw = raw.to_string();
    let mut event = Event::new(provider, event_type, occurred_at, at("2024-06-01T00:00:00Z"), &raw);
    let object = json::Object::parse(&raw).expect("valid JSON").expect("built as an object");
    event.event_id = event_id(provider, EventIdentity::Payload(&object), None);
    event.message_id = Some(message_id.to_owned());
    event.recipient = Some(recipient.to_owned());
    event
}

async fn table_with(events: &[Event]) -> String {
    let local = LocalDynamo::shared();
    let table = local.new_table();
    let counts = local.store(&table, 0).put_events(events).await.expect("local DynamoDB stores");
    assert_eq!(counts.stored.len(), events.len(), "event ids must be distinct");
    table
}

fn sort_key(event: &Event) -> String {
    EventKeys::of(event).sk
}

/// The ids of `events`, newest first (the order of the sort keys).
fn newest_first<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
    let mut events: Vec<&Event> = events.into_iter().collect();
    events.sort_by_key(|event| std::cmp::Reverse(sort_key(event)));
    events.iter().map(|event| event.event_id.clone()).collect()
}

fn oldest_first<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
    let mut ids = newest_first(events);
    ids.reverse();
    ids
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|event| event["event_id"].as_str().expect("every event has an id").to_owned()).collect()
}

/// How an event is answered: its stored attributes, without `raw` unless asked for (`raw` is
/// not part of an event's serialized attributes).
fn answered(event: &Event) -> Value {
    serde_json::to_value(event).unwrap()
}

/// A small world: two messages of one recipient, a message id used by two providers, and
/// bounces on two days.
fn world() -> Vec<Event> {
    let mut queued = event("engagelab", EventType::Queued, at("2024-05-01T10:00:00Z"), "m-1", "a@x.com");
    queued.tags = vec!["welcome".into()];
    queued.metadata.insert("campaign".into(), json!({"id": 7, "name": "spring"}));
    let delivered = event("engagelab", EventType::Delivered, at("2024-05-01T10:00:01.250Z"), "m-1", "a@x.com");
    let mut opened = event("engagelab", EventType::Opened, at("2024-05-01T10:05:00Z"), "m-1", "a@x.com");
    opened.user_agent = Some("Mozilla/5.0".into());
    opened.ip = Some("192.0.2.1".into());
    let other_provider = event("sendpost", EventType::Delivered, at("2024-05-01T10:00:03Z"), "m-1", "a@x.com");
    let mut bounced = event("engagelab", EventType::Bounced, at("2024-05-01T10:00:02Z"), "m-2", "b@x.com");
    bounced.bounce_type = Some(BounceType::Hard);
    bounced.reason = Some("mailbox unavailable".into());
    bounced.smtp_code = Some(550);
    let late_bounce = event("sendpost", EventType::Bounced, at("2024-05-01T23:59:59.999Z"), "m-4", "c@x.com");
    let next_day_bounce = event("tencent_ses", EventType::Bounced, at("2024-05-02T00:00:00Z"), "m-3", "a@x.com");
    vec![queued, delivered, opened, other_provider, bounced, late_bounce, next_day_bounce]
}

#[tokio::test]
async fn each_selector_reads_its_events_in_both_orders() {
    let world = world();
    let api = api(&table_with(&world).await, Some(TOKEN));
    let of_message = |event: &&Event| event.provider == "engagelab" && event.message_id.as_deref() == Some("m-1");
    let of_recipient = |event: &&Event| event.recipient.as_deref() == Some("a@x.com");
    let bounced_that_day =
        |event: &&Event| event.event_type == EventType::Bounced && event.occurred_at_text().starts_with("2024-05-01");
    let selections: [(&str, Vec<&Event>); 4] = [
        ("message_id=m-1&provider=engagelab", world.iter().filter(of_message).collect()),
        ("recipient=A%40X.com", world.iter().filter(of_recipient).collect()),
        ("recipient=Someone%20%3CA%40x.COM%3E", world.iter().filter(of_recipient).collect()),
        ("event_type=bounced&date=2024-05-01", world.iter().filter(bounced_that_day).collect()),
    ];
    for (selector, expected) in selections {
        assert!(expected.len() >= 2, "{selector}: the world must give order something to do");
        let (events, cursor) = page(&api, selector).await;
        assert_eq!(ids(&events), newest_first(expected.iter().copied()), "{selector}: newest first by default");
        assert_eq!(cursor, None, "{selector}: one page holds everything");
        for event in &events {
            for key in ["pk", "sk", "gsi1pk", "gsi2pk", "raw"] {
                assert!(event.get(key).is_none(), "{selector}: {key} in {event}");
            }
        }
        let (events, _) = page(&api, &format!("{selector}&order=asc")).await;
        assert_eq!(ids(&events), oldest_first(expected.iter().copied()), "{selector}: order=asc");
        let (events, _) = page(&api, &format!("{selector}&order=desc")).await;
        assert_eq!(ids(&events), newest_first(expected.iter().copied()), "{selector}: order=desc");
    }
}

#[tokio::test]
async fn events_carry_every_normalized_attribute_from_the_table_and_both_indexes() {
    let world = world();
    let api = api(&table_with(&world).await, Some(TOKEN));
    for selector in ["message_id=m-1&provider=engagelab", "recipient=a%40x.com", "event_type=bounced&date=2024-05-01"] {
        let (events, _) = page(&api, selector).await;
        for answer in &events {
            let stored = world.iter().find(|event| event.event_id == answer["event_id"]).expect("a stored event");
            assert_eq!(answer, &answered(stored), "{selector}");
        }
    }
}

#[tokio::test]
async fn since_is_inclusive_and_until_exclusive_on_every_selector() {
    let times = [
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T10:00:00.001Z",
        "2024-05-01T11:00:00.000Z",
        "2024-05-01T12:00:00.000Z",
    ];
    let events: Vec<Event> =
        times.iter().map(|time| event("engagelab", EventType::Opened, at(time), "m-1", "a@x.com")).collect();
    let api = api(&table_with(&events).await, Some(TOKEN));
    let ranges: [(&str, &[usize]); 7] = [
        ("since=2024-05-01T10:00:00Z", &[0, 1, 2, 3]),
        ("since=2024-05-01T10:00:00.0005Z", &[1, 2, 3]),
        ("until=2024-05-01T12:00:00Z", &[0, 1, 2]),
        ("until=2024-05-01T12:00:00.0001Z", &[0, 1, 2, 3]),
        ("since=2024-05-01T10:00:00.001Z&until=2024-05-01T12:00:00Z", &[1, 2]),
        ("since=2024-05-01T12:00:00%2B02:00&until=2024-05-01T13:00:00%2B02:00", &[0, 1]),
        ("since=2024-05-01T11:00:00Z&until=2024-05-01T11:00:00Z", &[]),
    ];
    for selector in ["message_id=m-1&provider=engagelab", "recipient=a%40x.com", "event_type=opened&date=2024-05-01"] {
        for (range, expected) in ranges {
            let expected: Vec<String> = expected.iter().map(|&index| events[index].event_id.clone()).collect();
            let (answer, _) = page(&api, &format!("{selector}&{range}&order=asc")).await;
            assert_eq!(ids(&answer), expected, "{selector}&{range}");
        }
    }
}

/// 60 bounces on one day, spread over the shards, several sharing a millisecond.
fn a_days_bounces() -> Vec<Event> {
    let start = at("2024-05-01T08:00:00Z");
    (0..60)
        .map(|index| {
            let occurred_at = start + Duration::seconds(index / 3);
            event("sendpost", EventType::Bounced, occurred_at, &format!("m-{index}"), &format!("r{}@x.com", index % 5))
        })
        .collect()
}

#[tokio::test]
async fn pages_cover_every_shard_and_return_each_event_exactly_once_in_order() {
    let bounces = a_days_bounces();
    let shards: BTreeSet<u8> = bounces.iter().map(|event| type_shard(&event.event_id)).collect();
    assert_eq!(shards.len(), 8, "the bounces must spread over every shard");
    let api = api(&table_with(&bounces).await, Some(TOKEN));

    for (order, expected) in [("desc", newest_first(&bounces)), ("asc", oldest_first(&bounces))] {
        let pages = all_pages(&api, &format!("event_type=bounced&date=2024-05-01&limit=7&order={order}")).await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [7, 7, 7, 7, 7, 7, 7, 7, 4], "order={order}");
        assert_eq!(ids(&pages.concat()), expected, "order={order}");
    }

    // A range and a cursor together; the limit may change from page to page.
    let in_range: Vec<&Event> = bounces
        .iter()
        .filter(|event| (at("2024-05-01T08:00:05Z")..at("2024-05-01T08:00:15Z")).contains(&event.occurred_at))
        .collect();
    let range = "since=2024-05-01T08:00:05Z&until=2024-05-01T08:00:15Z";
    let (first, cursor) = page(&api, &format!("event_type=bounced&date=2024-05-01&{range}&order=asc&limit=4")).await;
    let rest =
        pages_after(&api, &format!("event_type=bounced&date=2024-05-01&{range}&order=asc&limit=9"), cursor).await;
    assert_eq!(ids(&[first, rest.concat()].concat()), oldest_first(in_range));
}

#[tokio::test]
async fn a_last_full_page_has_no_next_cursor() {
    let bounces: Vec<Event> = a_days_bounces().into_iter().take(14).collect();
    let api = api(&table_with(&bounces).await, Some(TOKEN));
    let for_one_recipient: Vec<&Event> =
        bounces.iter().filter(|event| event.recipient.as_deref() == Some("r0@x.com")).collect();
    assert_eq!(for_one_recipient.len(), 3);
    let cases = [
        ("event_type=bounced&date=2024-05-01&limit=7", 14),
        ("event_type=bounced&date=2024-05-01&limit=14", 14),
        ("recipient=r0%40x.com&limit=3", 3),
        ("message_id=m-0&provider=sendpost&limit=1", 1),
    ];
    for (query, total) in cases {
        let pages = all_pages(&api, query).await;
        assert_eq!(pages.concat().len(), total, "{query}");
        assert!(pages.iter().all(|page| !page.is_empty()), "{query}: an empty page means a needless next_cursor");
    }
}

#[tokio::test]
async fn include_raw_adds_the_providers_json_on_the_table_and_the_indexes() {
    let mut events = world();
    let mut not_json = event("tencent_ses", EventType::Bounced, at("2024-05-01T09:00:00Z"), "m-9", "a@x.com");
    not_json.raw = "bulkId=m-9&event=bounce".into();
    events.push(not_json);
    let api = api(&table_with(&events).await, Some(TOKEN));
    for selector in [
        "message_id=m-1&provider=engagelab",
        "message_id=m-9&provider=tencent_ses",
        "recipient=a%40x.com",
        "event_type=bounced&date=2024-05-01",
    ] {
        let (answer, _) = page(&api, &format!("{selector}&include_raw=true")).await;
        assert!(!answer.is_empty(), "{selector}");
        for event in &answer {
            let stored = events.iter().find(|stored| stored.event_id == event["event_id"]).unwrap();
            let raw = serde_json::from_str(&stored.raw).unwrap_or_else(|_| Value::String(stored.raw.clone()));
            assert_eq!(event["raw"], raw, "{selector}");
        }
        let (answer, _) = page(&api, &format!("{selector}&include_raw=false")).await;
        assert!(answer.iter().all(|event| event.get("raw").is_none()), "{selector}");
    }
}

#[tokio::test]
async fn only_the_right_bearer_token_reads() {
    let table = table_with(&world()).await;
    let query = "recipient=a%40x.com";
    let configured = api(&table, Some(TOKEN));
    let refusals = [
        (None, "missing Authorization: Bearer token"),
        (Some("Bearer"), "missing Authorization: Bearer token"),
        (Some("Basic bG9jYWw6bG9jYWwtZXZlbnRzLXRva2Vu"), "missing Authorization: Bearer token"),
        (Some("Bearer local-events-toke"), "bearer token does not match"),
        (Some("Bearer local-events-token-2"), "bearer token does not match"),
    ];
    for (authorization, message) in refusals {
        let answer = call(&configured, request("GET", query, authorization)).await;
        assert_eq!(answer, (401, json!({"error": message})), "{authorization:?}");
    }
    let (status, body) = call(&configured, request("GET", query, Some("bearer local-events-token"))).await;
    assert_eq!(status, 200, "{body}");

    for token in [None, Some(""), Some("   ")] {
        let unconfigured = api(&table, token);
        let answer = call(&unconfigured, request("GET", query, Some(&format!("Bearer {TOKEN}")))).await;
        let expected = json!({"error": "reading events is not configured: every request is refused"});
        assert_eq!(answer, (401, expected), "token {token:?}: fail closed");
    }

    let (status, _) = call(&configured, request("POST", query, Some(&format!("Bearer {TOKEN}")))).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn every_bad_parameter_is_a_400_naming_it() {
    // No table behind it: a 400 must come before any read.
    let api = api("no-such-table", Some(TOKEN));
    let cases = [
        ("", "message_id (with provider), recipient, or event_type (with date)"),
        ("limit=5", "no selector"),
        ("message_id=m-1&provider=engagelab&recipient=a%40x.com", "message_id and recipient"),
        ("recipient=a%40x.com&event_type=bounced&date=2024-05-01", "recipient and event_type"),
        ("message_id=m-1", "provider is required with message_id"),
        ("message_id=m-1&provider=mailgun", "provider must be one of"),
        ("recipient=a%40x.com&provider=engagelab", "provider only goes with message_id"),
        ("recipient=not%20an%20address%20%3C%3E", "recipient must be"),
        ("event_type=bounced", "date is required with event_type"),
        ("event_type=bounce&date=2024-05-01", "event_type must be one of"),
        ("event_type=bounced&date=2024-13-01", "date must be"),
        ("event_type=bounced&date=01.05.2024", "date must be"),
        ("recipient=a%40x.com&since=yesterday", "since must be an RFC 3339 time"),
        ("recipient=a%40x.com&since=2024-05-01T00:00:00+02:00", "since must be an RFC 3339 time"),
        ("recipient=a%40x.com&until=2024-05-01", "until must be an RFC 3339 time"),
        (
            "recipient=a%40x.com&since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z",
            "until must be at or after since",
        ),
        ("recipient=a%40x.com&limit=0", "limit must be a whole number from 1 to 500"),
        ("recipient=a%40x.com&limit=10000", "limit must be a whole number from 1 to 500"),
        ("recipient=a%40x.com&limit=fifty", "limit must be a whole number from 1 to 500"),
        ("recipient=a%40x.com&order=newest", "order must be desc"),
        ("recipient=a%40x.com&include_raw=1", "include_raw must be true or false"),
        ("recipient=a%40x.com&cursor=bm90IGEgY3Vyc29y", "cursor was not issued by this API"),
        ("recipient=a%40x.com&limit=5&limit=6", "limit is given more than once"),
        ("recipient=a%40x.com&reciepient=b%40x.com", "unknown parameter \"reciepient\""),
    ];
    for (query, expected) in cases {
        let (status, body) = get(&api, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"].as_str().expect("an error message");
        assert!(message.contains(expected), "{query}: {message:?} lacks {expected:?}");
    }
}

#[tokio::test]
async fn tampered_and_foreign_cursors_are_a_400() {
    let bounces = a_days_bounces();
    let table = table_with(&bounces).await;
    let api = api(&table, Some(TOKEN));
    let query = "event_type=bounced&date=2024-05-01";
    let (_, cursor) = page(&api, &format!("{query}&limit=7")).await;
    let cursor = cursor.expect("60 events make more than one page");

    let middle = cursor.len() / 2;
    let flipped = if &cursor[middle..=middle] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &cursor[..middle], &cursor[middle + 1..]);
    let refusals = [
        (format!("{query}&cursor={tampered}"), "cursor was not issued by this API, or was altered"),
        (format!("{query}&cursor={}", &cursor[..cursor.len() - 4]), "cursor was not issued by this API"),
        (format!("event_type=bounced&date=2024-05-02&cursor={cursor}"), "cursor belongs to another query"),
        (format!("{query}&order=asc&cursor={cursor}"), "cursor belongs to another query"),
        (format!("{query}&since=2024-05-01T00:00:00Z&cursor={cursor}"), "cursor belongs to another query"),
        (format!("recipient=r0%40x.com&cursor={cursor}"), "cursor belongs to another query"),
    ];
    for (refused, message) in refusals {
        let (status, body) = get(&api, &refused).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with(message), "{refused}: {body}");
    }

    // After the token is rotated, its old cursors are refused too.
    let rotated = EventsApi::from_env(
        &|name: &str| (name == EVENTS_API_TOKEN).then(|| "rotated-token".to_owned()),
        EventReader::new(LocalDynamo::shared().client(), &table),
    );
    let (status, body) =
        call(&rotated, request("GET", &format!("{query}&cursor={cursor}"), Some("Bearer rotated-token"))).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (400, "cursor was not issued by this API, or was altered"));

    // The same query with another limit still resumes.
    let (status, _) = get(&api, &format!("{query}&limit=50&cursor={cursor}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_failing_read_is_a_500_without_the_cause() {
    let api = api("no-such-table", Some(TOKEN));
    let answer = get(&api, "recipient=a%40x.com").await;
    assert_eq!(answer, (500, json!({"error": "storage unavailable"})));
}

/// The read samples of `events/events-api/` find what the webhook samples store.
#[tokio::test]
async fn the_sample_get_events_are_answered() {
    let api = api(&LocalDynamo::shared().table_with_every_sample().await, Some(TOKEN));
    let engagelab_message = "1675758375681_15_6393_8309.sc-10_2_226_96-test0$12345@gmail.com";

    let directory = repo_root().join("events/events-api");
    let mut samples: Vec<_> =
        std::fs::read_dir(&directory).expect("events/events-api exists").map(|entry| entry.unwrap().path()).collect();
    samples.sort();
    let names: Vec<String> =
        samples.iter().map(|path| path.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["message", "recipient", "type"]);
    for path in samples {
        let text = std::fs::read_to_string(&path).unwrap();
        let request =
            mailhooks::http_event::request_from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let (status, body) = call(&api, request).await;
        let name = path.file_stem().unwrap().to_string_lossy();
        assert_eq!(status, 200, "{name}: {body}");
        let events = body["events"].as_array().unwrap();
        assert!(!events.is_empty(), "{name}: {body}");
        let found = |wanted: &Value| {
            events.iter().any(|event| wanted.as_object().unwrap().iter().all(|(key, value)| &event[key] == value))
        };
        match name.as_ref() {
            "message" => {
                let all_of_it = |event: &Value| event["message_id"] == engagelab_message && event["provider"] == "engagelab";
                assert!(events.iter().all(all_of_it), "{name}: {body}");
                assert!(found(&json!({"event_type": "delivered", "recipient": "12345@gmail.com"})), "{name}: {body}");
                assert!(events.iter().all(|event| event["raw"].is_object()), "{name}: raw decoded: {body}");
            }
            "recipient" => {
                assert!(events.iter().all(|event| event["recipient"] == "12345@gmail.com"), "{name}: {body}");
                let delivered = json!({"provider": "engagelab", "event_type": "delivered", "message_id": engagelab_message});
                assert!(found(&delivered), "{name}: {body}");
            }
            _ => {
                assert!(events.iter().all(|event| event["event_type"] == "bounced"), "{name}: {body}");
                let hard = json!({"provider": "sendpost", "recipient": "gavin@hooli.com", "bounce_type": "hard"});
                assert!(found(&hard), "{name}: {body}");
            }
        }
    }
}
