//! SendPost payloads (tests/fixtures/sendpost/*.json) against their normalized events
//! (*.expected.json). `MAILHOOKS_BLESS=1 cargo test` rewrites the expected files from the
//! current output: review the diff before committing it.

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use mailhooks::auth::{AuthError, AuthRequest};
use mailhooks::event::{Event, EventType};
use mailhooks::providers::sendpost::PROVIDER;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::Sha256;

macro_rules! golden_tests {
    ($($name:ident),* $(,)?) => {
        const FIXTURES: &[&str] = &[$(stringify!($name)),*];
        $(#[test] fn $name() { assert_matches_expected(stringify!($name)); })*
    };
}

golden_tests!(
    processed,
    dropped,
    delivered,
    soft_bounced,
    hard_bounced,
    opened,
    clicked,
    unsubscribed,
    spam,
    type_as_string,
    smtp_code_as_string,
    submitted_at_millis,
    unknown_type,
    message_fallbacks,
    second_recipient,
    without_event_id,
    empty_strings,
    nulls,
    batch,
);

fn fixture_path(file_name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "sendpost", file_name].iter().collect()
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
fn the_event_id_is_sendposts_own_when_it_sends_one() {
    let mut object: Value = serde_json::from_str(&fixture("delivered")).unwrap();
    object["emailMessage"]["trackOpens"] = json!(false);
    let changed = parse(&object.to_string());
    assert_eq!(event_ids(&parse(&fixture("delivered"))), event_ids(&changed));
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
    for name in ["clicked", "second_recipient"] {
        let original: Value = serde_json::from_str(&fixture(name)).unwrap();
        for wrong in &wrong_values {
            for variant in each_value_replaced(&original, wrong).into_iter().filter(Value::is_object) {
                let events = parse(&variant.to_string());
                assert_eq!(events.len(), 1, "{variant}");
                assert_eq!(events[0].provider, "sendpost");
            }
        }
    }
}

#[test]
fn every_type_code_maps_as_designed() {
    let expected = [
        ("Processed", "queued"),
        ("Dropped", "rejected"),
        ("Delivered", "delivered"),
        ("SoftBounced", "bounced"),
        ("HardBounced", "bounced"),
        ("Opened", "opened"),
        ("Clicked", "clicked"),
        ("Unsubscribed", "unsubscribed"),
        ("Spam", "complained"),
    ];
    for (code, (name, event_type)) in expected.into_iter().enumerate() {
        for sent_as in [json!(code), json!(code.to_string())] {
            let events = parse(&json!({"event": {"type": sent_as}}).to_string());
            assert_eq!(events[0].provider_event.as_deref(), Some(name));
            assert_eq!(events[0].event_type.as_str(), event_type);
        }
    }
}

#[test]
fn an_unknown_type_keeps_what_sendpost_sent() {
    for (sent, kept) in [(json!(9), "9"), (json!("Deferred"), "Deferred"), (json!(-3), "-3")] {
        let events = parse(&json!({"event": {"type": sent}}).to_string());
        assert_eq!(events[0].event_type, EventType::Unknown);
        assert_eq!(events[0].provider_event.as_deref(), Some(kept));
    }
    let untyped = parse(r#"{"event": {"eventID": "e-1"}}"#);
    assert_eq!((untyped[0].event_type, untyped[0].provider_event.as_deref()), (EventType::Unknown, None));
}

#[test]
fn an_event_without_a_time_happened_when_received() {
    let events = parse(r#"{"event": {"type": 5, "submittedAt": "soon"}, "emailMessage": null}"#);
    assert_eq!(events[0].occurred_at, received_at());
}

fn authenticator(settings: &[(&str, &str)]) -> mailhooks::auth::Authenticator {
    let env = |name: &str| settings.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
    (PROVIDER.authenticator)(&env).unwrap()
}

fn signed_request<'a>(headers: &'a HeaderMap, body: &'a [u8], query_token: Option<&'a str>) -> AuthRequest<'a> {
    AuthRequest { headers, query_token, body, now: received_at() }
}

#[test]
fn the_authenticator_requires_each_configured_secret() {
    assert!(!authenticator(&[]).is_configured());

    let body = fixture("delivered");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"api-key-2").unwrap();
    mac.update(body.as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert("x-sendpost-signature", HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).unwrap());

    let signature_only = authenticator(&[("SENDPOST_API_KEY", "api-key-1, api-key-2")]);
    assert_eq!(signature_only.verify(&signed_request(&headers, body.as_bytes(), None)), Ok(()));
    assert_eq!(signature_only.verify(&signed_request(&headers, b"{}", None)), Err(AuthError::BadSignature));

    let both = authenticator(&[("SENDPOST_API_KEY", "api-key-2"), ("SENDPOST_WEBHOOK_TOKEN", "url-secret")]);
    assert_eq!(both.verify(&signed_request(&headers, body.as_bytes(), None)), Err(AuthError::MissingToken));
    assert_eq!(both.verify(&signed_request(&headers, body.as_bytes(), Some("url-secret"))), Ok(()));

    let token_only = authenticator(&[("SENDPOST_WEBHOOK_TOKEN", "url-secret")]);
    assert_eq!(token_only.verify(&signed_request(&HeaderMap::new(), b"{}", Some("url-secret"))), Ok(()));
}
