//! Tencent SES payloads (tests/fixtures/tencent_ses/*.json) against their normalized events
//! (*.expected.json). `MAILHOOKS_BLESS=1 cargo test` rewrites the expected files from the
//! current output: review the diff before committing it.

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use mailhooks::auth::{AuthError, AuthRequest};
use mailhooks::event::{BounceType, Event, EventType};
use mailhooks::providers::tencent_ses::PROVIDER;
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{json, Value};

macro_rules! golden_tests {
    ($($name:ident),* $(,)?) => {
        const FIXTURES: &[&str] = &[$(stringify!($name)),*];
        $(#[test] fn $name() { assert_matches_expected(stringify!($name)); })*
    };
}

golden_tests!(
    deferred,
    delivered,
    dropped,
    open,
    click,
    bounce_soft,
    bounce_hard,
    bounce_legacy_soft,
    bounce_legacy_hard,
    spamreport,
    unsubscribe,
    processed,
    eventid_only,
    bulkid_lowercase,
    empty_strings,
    nulls,
    batch,
);

fn fixture_path(file_name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "tencent_ses", file_name].iter().collect()
}

fn fixture(name: &str) -> String {
    let path = fixture_path(&format!("{name}.json"));
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn received_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123Z").unwrap().with_timezone(&Utc)
}

fn parse(body: &str) -> Vec<Event> {
    PROVIDER.parse(body.as_bytes(), received_at()).unwrap()
}

/// An event as its expected file shows it: without `received_at`, which is the test's clock,
/// and `raw`, which is compared with the fixture text itself.
fn snapshot(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap();
    let attributes = value.as_object_mut().unwrap();
    attributes.remove("received_at");
    attributes.remove("raw");
    value
}

fn assert_matches_expected(name: &str) {
    let actual = Value::Array(parse(&fixture(name)).iter().map(snapshot).collect());
    let expected_path = fixture_path(&format!("{name}.expected.json"));
    if std::env::var_os("MAILHOOKS_BLESS").is_some() {
        fs::write(&expected_path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(&fs::read_to_string(&expected_path).unwrap()).unwrap();
    assert_eq!(actual, expected, "{name}: normalized events differ from {}", expected_path.display());
}

#[test]
fn every_fixture_has_a_golden_test() {
    let mut on_disk: Vec<String> = fs::read_dir(fixture_path(""))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|file| Some(file.strip_suffix(".json")?.to_owned()))
        .filter(|name| !name.ends_with(".expected"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<&str> = FIXTURES.to_vec();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn raw_is_each_event_exactly_as_received() {
    for name in FIXTURES {
        let text = fixture(name);
        let events = parse(&text);
        let elements: Vec<&RawValue> = match serde_json::from_str::<Vec<&RawValue>>(&text) {
            Ok(elements) => elements,
            Err(_) => vec![serde_json::from_str(&text).unwrap()],
        };
        assert_eq!(events.len(), elements.len(), "{name}");
        for (event, element) in events.iter().zip(&elements) {
            assert_eq!(event.raw, element.get(), "{name}");
        }
        if elements.len() == 1 {
            assert_eq!(events[0].raw, text.trim_end(), "{name}");
        }
    }
}

/// The same JSON with every object's keys in reverse order and different whitespace.
fn reordered(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> =
                map.iter().rev().map(|(key, item)| format!("{} :\t{}", json!(key), reordered(item))).collect();
            format!("{{ {} }}", members.join(" ,\n"))
        }
        Value::Array(items) => format!("[ {} ]", items.iter().map(reordered).collect::<Vec<_>>().join(" , ")),
        scalar => scalar.to_string(),
    }
}

fn event_ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.event_id.as_str()).collect()
}

#[test]
fn event_ids_survive_key_order_and_whitespace() {
    for name in FIXTURES {
        let text = fixture(name);
        let original = parse(&text);
        let shuffled = parse(&reordered(&serde_json::from_str(&text).unwrap()));
        assert_eq!(event_ids(&original), event_ids(&shuffled), "{name}");
    }
}

#[test]
fn distinct_events_get_distinct_ids() {
    let mut ids: Vec<String> = FIXTURES
        .iter()
        .filter(|name| **name != "batch")
        .flat_map(|name| parse(&fixture(name)))
        .map(|event| event.event_id)
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
}

#[test]
fn the_event_id_covers_the_whole_payload() {
    let mut object: Value = serde_json::from_str(&fixture("delivered")).unwrap();
    object["taskId"] = json!(5024);
    assert_ne!(event_ids(&parse(&fixture("delivered"))), event_ids(&parse(&object.to_string())));
}

/// Every value of `value`, at any depth, with `replacement` in its place.
fn each_value_replaced(value: &Value, replacement: &Value) -> Vec<Value> {
    let mut variants = vec![replacement.clone()];
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                for variant in each_value_replaced(item, replacement) {
                    let mut changed = map.clone();
                    changed.insert(key.clone(), variant);
                    variants.push(Value::Object(changed));
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                for variant in each_value_replaced(item, replacement) {
                    let mut changed = items.clone();
                    changed[index] = variant;
                    variants.push(Value::Array(changed));
                }
            }
        }
        _ => {}
    }
    variants
}

#[test]
fn wrong_types_anywhere_give_one_event_without_panicking() {
    let wrong_values = [
        json!(null),
        json!(""),
        json!(" "),
        json!([]),
        json!({}),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!(true),
        json!("x"),
        json!([1, "a"]),
    ];
    for name in ["click", "bounce_soft"] {
        let original: Value = serde_json::from_str(&fixture(name)).unwrap();
        for wrong in &wrong_values {
            for variant in each_value_replaced(&original, wrong).into_iter().filter(Value::is_object) {
                let events = parse(&variant.to_string());
                assert_eq!(events.len(), 1, "{variant}");
                assert_eq!(events[0].provider, "tencent_ses");
            }
        }
    }
}

#[test]
fn every_event_name_and_code_maps_as_designed() {
    let expected = [
        (1, "delivered", "delivered"),
        (2, "dropped", "rejected"),
        (3, "bounce", "bounced"),
        (4, "open", "opened"),
        (5, "click", "clicked"),
        (6, "spamreport", "complained"),
        (7, "unsubscribe", "unsubscribed"),
        (8, "deferred", "deferred"),
    ];
    for (code, name, event_type) in expected {
        for payload in [json!({"event": name}), json!({"eventid": code}), json!({"eventid": code.to_string()})] {
            let events = parse(&payload.to_string());
            assert_eq!(events[0].provider_event.as_deref(), Some(name), "{payload}");
            assert_eq!(events[0].event_type.as_str(), event_type, "{payload}");
        }
    }
}

#[test]
fn the_event_name_wins_over_the_event_code() {
    let events = parse(r#"{"event": "click", "eventid": 1}"#);
    assert_eq!((events[0].event_type, events[0].provider_event.as_deref()), (EventType::Clicked, Some("click")));
}

#[test]
fn an_unknown_event_keeps_what_tencent_sent() {
    for (payload, kept) in [
        (json!({"event": "processed"}), Some("processed")),
        (json!({"event": "Bounce"}), Some("Bounce")),
        (json!({"eventid": 9}), Some("9")),
        (json!({"eventid": "later"}), Some("later")),
        (json!({"event": "", "eventid": null}), None),
    ] {
        let events = parse(&payload.to_string());
        assert_eq!(events[0].event_type, EventType::Unknown, "{payload}");
        assert_eq!(events[0].provider_event.as_deref(), kept, "{payload}");
    }
}

#[test]
fn bounce_types_old_and_new_and_missing() {
    let bounce_type = |payload: Value| parse(&payload.to_string())[0].bounce_type;
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": "soft_bounce"})), Some(BounceType::Soft));
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": "soft"})), Some(BounceType::Soft));
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": "hard_bounce"})), Some(BounceType::Hard));
    assert_eq!(bounce_type(json!({"eventid": 3, "bounceType": "hard"})), Some(BounceType::Hard));
    assert_eq!(bounce_type(json!({"event": "bounce"})), None);
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": 1})), None);
    // A bounce type on anything but a bounce describes nothing that happened.
    assert_eq!(bounce_type(json!({"event": "dropped", "bounceType": "hard_bounce"})), None);
}

#[test]
fn an_event_without_a_time_happened_when_received() {
    let events = parse(r#"{"event": "open", "timestamp": "soon"}"#);
    assert_eq!(events[0].occurred_at, received_at());
}

#[test]
fn the_authenticator_requires_the_url_token_when_configured() {
    let env_without = |_: &str| None;
    assert!(!(PROVIDER.authenticator)(&env_without).unwrap().is_configured());

    let env_with = |name: &str| (name == "TENCENT_SES_WEBHOOK_TOKEN").then(|| "old-secret,new-secret".to_owned());
    let authenticator = (PROVIDER.authenticator)(&env_with).unwrap();
    let headers = HeaderMap::new();
    let request = |query_token| AuthRequest { headers: &headers, query_token, body: b"{}", now: received_at() };
    assert_eq!(authenticator.verify(&request(Some("new-secret"))), Ok(()));
    assert_eq!(authenticator.verify(&request(Some("guess"))), Err(AuthError::WrongToken));
    assert_eq!(authenticator.verify(&request(None)), Err(AuthError::MissingToken));
}

proptest! {
    #[test]
    fn any_subject_normalizes_without_panicking(
        subject in r"((=\?[A-Za-z0-9_-]{0,12}(\*[a-z]{0,3})?\?[BbQqX]?\?[ -~]{0,40}\?=)|[ \t\r\n]|[^=]{0,5}|=\?|\?=){0,6}"
    ) {
        let events = parse(&json!({"event": "open", "subject": subject}).to_string());
        prop_assert_eq!(events.len(), 1);
        prop_assert!(events[0].subject.as_deref().is_none_or(|decoded| !decoded.is_empty()));
    }
}
