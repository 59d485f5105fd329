//! The golden-test harness every provider shares: its payloads (`tests/fixtures/PROVIDER/NAME.json`,
//! the directory named after `Provider::name`) against their normalized events
//! (`NAME.expected.json`), plus the checks every provider's parser must pass.
//!
//! A snapshot holds the events without `received_at` (the test's own clock) and `raw` (checked
//! against the fixture text itself). After a deliberate change, `MAILHOOKS_BLESS=1 cargo test`
//! rewrites the snapshots from the current output: review the diff before committing it.
#![allow(dead_code)] // each provider's test binary uses its own subset of these helpers

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use mailhooks::receive::event::Event;
use mailhooks::receive::providers::Provider;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The golden tests of a provider: `FIXTURES`, the list of its fixtures; one `#[test]` per fixture
/// comparing it with its snapshot; and a `#[test]` for each shared check that takes nothing but the
/// provider and its fixtures. `golden::golden_tests!(PROVIDER; delivered, bounce, ...)`.
macro_rules! golden_tests {
    ($provider:expr; $($name:ident),* $(,)?) => {
        const FIXTURES: &[&str] = &[$(stringify!($name)),*];
        $(#[test] fn $name() { $crate::golden::assert_matches_expected(&$provider, stringify!($name)); })*

        #[test]
        fn every_fixture_has_a_golden_test() {
            $crate::golden::assert_every_fixture_listed(&$provider, FIXTURES);
        }

        #[test]
        fn raw_is_each_event_exactly_as_received() {
            $crate::golden::assert_raw_exact(&$provider, FIXTURES);
        }

        #[test]
        fn event_ids_survive_key_order_and_whitespace() {
            $crate::golden::assert_ids_survive_reordering(&$provider, FIXTURES);
        }
    };
}
pub(crate) use golden_tests;

pub fn fixture_path(provider: &Provider, file_name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", provider.name, file_name].iter().collect()
}

pub fn fixture(provider: &Provider, name: &str) -> String {
    let path = fixture_path(provider, &format!("{name}.json"));
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The fixed time every test receives its bodies at.
pub fn received_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123Z").unwrap().with_timezone(&Utc)
}

pub fn parse(provider: &Provider, body: &str) -> Vec<Event> {
    provider.parse(body.as_bytes(), received_at()).unwrap_or_else(|error| panic!("{}: {error}: {body}", provider.name))
}

pub fn parse_one(provider: &Provider, body: &str) -> Event {
    let mut events = parse(provider, body);
    assert_eq!(events.len(), 1, "{body}");
    events.remove(0)
}

/// An event as its expected file shows it: without `received_at`, which is the test's clock.
/// `raw` is not serialized; it is compared with the fixture text itself.
pub fn snapshot(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap();
    let attributes = value.as_object_mut().unwrap();
    attributes.remove("received_at");
    value
}

pub fn assert_matches_expected(provider: &Provider, name: &str) {
    let actual = Value::Array(parse(provider, &fixture(provider, name)).iter().map(snapshot).collect());
    let expected_path = fixture_path(provider, &format!("{name}.expected.json"));
    if std::env::var_os("MAILHOOKS_BLESS").is_some() {
        fs::write(&expected_path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = fs::read_to_string(&expected_path)
        .map_err(|error| error.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()))
        .unwrap_or_else(|error| panic!("{}: {error}", expected_path.display()));
    assert_eq!(actual, expected, "{name}: normalized events differ from {}", expected_path.display());
}

/// Every `.json` of the provider's fixture directory that is not a snapshot has a golden test.
pub fn assert_every_fixture_listed(provider: &Provider, fixtures: &[&str]) {
    let mut on_disk: Vec<String> = fs::read_dir(fixture_path(provider, ""))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|file| Some(file.strip_suffix(".json")?.to_owned()))
        .filter(|name| !name.ends_with(".expected"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<&str> = fixtures.to_vec();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// Each event's `raw` is exactly the text of its element of the body (of the whole body when
/// that is one object, which may give several events).
pub fn assert_raw_exact(provider: &Provider, fixtures: &[&str]) {
    for name in fixtures {
        let text = fixture(provider, name);
        let events = parse(provider, &text);
        match serde_json::from_str::<Vec<&RawValue>>(&text) {
            Ok(elements) => {
                assert_eq!(events.len(), elements.len(), "{name}");
                for (event, element) in events.iter().zip(&elements) {
                    assert_eq!(event.raw, element.get(), "{name}");
                }
                if elements.len() == 1 {
                    assert_eq!(events[0].raw, text.trim_end(), "{name}");
                }
            }
            Err(_) => {
                let object: &RawValue = serde_json::from_str(&text).unwrap();
                assert!(!events.is_empty(), "{name}");
                for event in &events {
                    assert_eq!(event.raw, object.get(), "{name}");
                    assert_eq!(event.raw, text.trim(), "{name}");
                }
            }
        }
    }
}

/// The same JSON with every object's keys in reverse order and different whitespace.
pub fn reordered(value: &Value) -> String {
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

pub fn event_ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.event_id.as_str()).collect()
}

/// The event ids of each fixture do not change when its keys are reversed and its whitespace
/// changed, nor in its compact form (which serde_json's map writes with sorted keys).
pub fn assert_ids_survive_reordering(provider: &Provider, fixtures: &[&str]) {
    for name in fixtures {
        let text = fixture(provider, name);
        let value: Value = serde_json::from_str(&text).unwrap();
        let original = parse(provider, &text);
        for variant in [reordered(&value), value.to_string()] {
            assert_ne!(text.trim(), variant, "{name}: the variant must differ from the fixture");
            assert_eq!(event_ids(&original), event_ids(&parse(provider, &variant)), "{name}: {variant}");
        }
    }
}

/// No two events of the fixtures (but those named in `except`, which repeat others) share an id.
pub fn assert_distinct_ids(provider: &Provider, fixtures: &[&str], except: &[&str]) {
    let mut ids: Vec<String> = fixtures
        .iter()
        .filter(|name| !except.contains(name))
        .flat_map(|name| parse(provider, &fixture(provider, name)))
        .map(|event| event.event_id)
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
}

/// Every value of `value`, at any depth, with `replacement` in its place.
pub fn each_value_replaced(value: &Value, replacement: &Value) -> Vec<Value> {
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

/// Any value of the fixture, at any depth, replaced with a value of a wrong type still gives
/// one event of the provider, without panicking.
pub fn assert_wrong_types_anywhere_give_events(provider: &Provider, fixture_name: &str) {
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
    let original: Value = serde_json::from_str(&fixture(provider, fixture_name)).unwrap();
    for wrong in &wrong_values {
        for variant in each_value_replaced(&original, wrong).into_iter().filter(Value::is_object) {
            let events = parse(provider, &variant.to_string());
            assert_eq!(events.len(), 1, "{variant}");
            assert_eq!(events[0].provider, provider.name);
        }
    }
}
