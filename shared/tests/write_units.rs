//! Write cost per sample event: base item plus both GSI entries, sized by DynamoDB's rules
//! (moto does not report per-index consumed capacity, so the units are computed from sizes).
//! Bodies are measured compact, as providers send them (the seed documents pretty-print).
//!
//! The target is 3 units (1 for the item, 1 per index entry); the keys DESIGN.md fixes take
//! about 350 bytes of the item's first kilobyte, so payloads with long ids or subjects need 4.
//! `cargo test -p mailhooks --test write_units -- --nocapture` prints the table in the README;
//! the test fails when any event needs more than 4 (an uncompressed `raw` would need 6 to 9).

use std::path::Path;

use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use mailhooks::providers;
use mailhooks::store::{DynamoStore, Item};

/// Attributes every GSI entry carries besides the projected ones: both tables' keys.
const KEY_ATTRIBUTES: [&str; 2] = ["pk", "sk"];
/// DynamoDB's per-entry overhead for an index entry, counted to stay on the safe side.
const INDEX_ENTRY_OVERHEAD: usize = 100;
const WRITE_UNIT_BYTES: usize = 1024;
const TARGET_UNITS: usize = 3;
const CEILING_UNITS: usize = 4;

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => {
            let digits = number.trim_start_matches('-').replace('.', "");
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
            significant.div_ceil(2) + 1
        }
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(items) => 3 + items.iter().map(|item| value_size(item) + 1).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(name, item)| name.len() + value_size(item) + 1).sum::<usize>(),
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        other => panic!("unexpected attribute type {other:?}"),
    }
}

fn attributes_size<'a>(item: &'a Item, names: impl Iterator<Item = &'a String>) -> usize {
    names.filter_map(|name| item.get(name).map(|value| name.len() + value_size(value))).sum()
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(WRITE_UNIT_BYTES)
}

/// The GSI entry holds its own keys, the table's keys and every attribute but `raw`
/// (template.yaml's INCLUDE projection), plus the overhead.
fn index_entry_units(item: &Item, index_keys: [&str; 2]) -> usize {
    if !item.contains_key(index_keys[0]) {
        return 0;
    }
    let projected = item.keys().filter(|name| {
        name.as_str() != "raw" && !name.starts_with("gsi") && !KEY_ATTRIBUTES.contains(&name.as_str())
    });
    let keys = item.keys().filter(|name| index_keys.contains(&name.as_str()) || KEY_ATTRIBUTES.contains(&name.as_str()));
    units(attributes_size(item, projected) + attributes_size(item, keys) + INDEX_ENTRY_OVERHEAD)
}

fn store() -> DynamoStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "events", 90)
}

#[test]
fn every_sample_event_costs_at_most_four_write_units() {
    let store = store();
    let mut report = Vec::new();
    let mut over_ceiling = Vec::new();
    let (mut events, mut within_target) = (0, 0);
    for provider in providers::ALL {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(provider.name);
        let mut files: Vec<_> = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with(".json") && !path.to_string_lossy().ends_with(".expected.json"))
            .collect();
        files.sort();
        for path in files {
            let pretty: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let body = serde_json::to_vec(&pretty).unwrap();
            for event in provider.parse(&body, chrono::Utc::now()).unwrap() {
                let item = store.item(&event).unwrap();
                let base = units(attributes_size(&item, item.keys()));
                let total = base
                    + index_entry_units(&item, ["gsi1pk", "gsi1sk"])
                    + index_entry_units(&item, ["gsi2pk", "gsi2sk"]);
                let name = format!("{}/{}", provider.name, path.file_stem().unwrap().to_string_lossy());
                report.push(format!("{name}: base {} bytes, {total} units", attributes_size(&item, item.keys())));
                within_target += usize::from(total <= TARGET_UNITS);
                events += 1;
                if total > CEILING_UNITS {
                    over_ceiling.push(format!("{name} ({total} units)"));
                }
            }
        }
    }
    println!("{}", report.join("\n"));
    println!("{within_target} of {events} sample events within {TARGET_UNITS} write units");
    assert!(over_ceiling.is_empty(), "over {CEILING_UNITS} write units: {over_ceiling:?}");
}
