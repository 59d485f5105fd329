//! Shared checks of the fuzz targets: what every accepted body must give, whatever the bytes.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use mailhooks::receive::event::Event;
use mailhooks::receive::providers::Provider;
use mailhooks::store::keys::EventKeys;
use mailhooks::store::raw_codec::decode_raw;
use mailhooks::store::DynamoStore;

/// A fixed receive time keeps every run reproducible.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// DynamoDB's key size limits (bytes): partition keys 2048, sort keys 1024.
const PARTITION_KEY_LIMIT: usize = 2048;
const SORT_KEY_LIMIT: usize = 1024;

/// A store whose client is never used: only [`DynamoStore::item`] is called.
fn store() -> &'static DynamoStore {
    static STORE: OnceLock<DynamoStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "fuzz", 30)
    })
}

/// Parses `data` as `provider`'s body: a value, never a panic; events that are accepted carry
/// what every stored item needs, their raw text is part of the body and survives the store's
/// encoding, and their keys fit DynamoDB's limits.
pub fn check_parse(provider: &Provider, data: &[u8]) {
    let Ok(events) = provider.parse(data, now()) else { return };
    assert!(!events.is_empty(), "an accepted body gives at least one event");
    let body = std::str::from_utf8(data).expect("only UTF-8 bodies are accepted");
    for event in &events {
        check_event(provider, event, body);
    }
}

fn check_event(provider: &Provider, event: &Event, body: &str) {
    let id = &event.event_id;
    assert!(
        id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')),
        "event_id {id:?}"
    );
    assert_eq!(event.provider, provider.name);
    assert!(!event.raw.is_empty() && body.contains(event.raw.as_str()), "raw is the event's own text");
    let optional = [
        &event.provider_event,
        &event.message_id,
        &event.recipient,
        &event.sender,
        &event.subject,
        &event.reason,
        &event.click_url,
        &event.user_agent,
        &event.ip,
        &event.account,
    ];
    for text in optional.into_iter().flatten() {
        assert!(!text.is_empty(), "attributes are absent, never empty strings");
    }
    if let Some(recipient) = &event.recipient {
        assert_eq!(recipient, &recipient.to_lowercase(), "recipients are lowercased");
    }
    assert!(event.tags.iter().all(|tag| !tag.is_empty()));
    let item = store().item(event).expect("every event encodes as an item");
    if let Some(stored) = item.get("raw") {
        assert_eq!(decode_raw(stored, &item).expect("raw decodes"), event.raw);
    }

    let keys = EventKeys::of(event);
    assert!(keys.pk.len() <= PARTITION_KEY_LIMIT, "pk of {} bytes", keys.pk.len());
    assert!(keys.sk.len() <= SORT_KEY_LIMIT, "sk of {} bytes", keys.sk.len());
    assert!(keys.gsi2pk.len() <= PARTITION_KEY_LIMIT);
    if let Some(gsi1pk) = &keys.gsi1pk {
        assert!(gsi1pk.len() <= PARTITION_KEY_LIMIT, "gsi1pk of {} bytes", gsi1pk.len());
    }
}
