//! The table's keys and DynamoDB's item rules, shared by the writers and the readers.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::receive::event::{format_timestamp, Event};

pub type Item = HashMap<String, AttributeValue>;

/// Number of `by_type` partitions per type and day, so a campaign blast spreads its writes.
pub const TYPE_SHARDS: u8 = 8;
/// An item's size by DynamoDB's rules: each attribute's name plus its value (strings and
/// binaries their length, numbers counted as their text plus one, lists and maps 3 bytes plus
/// one per element plus their elements).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number.len() + 1,
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|number| number.len() + 1).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|blob| blob.as_ref().len()).sum(),
        AttributeValue::L(values) => 3 + values.iter().map(|value| value_size(value) + 1).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(name, value)| name.len() + value_size(value) + 1).sum::<usize>(),
        // A type added to the SDK later: count generously.
        _ => 1024,
    }
}

/// The primary and index keys of one event's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKeys {
    /// `MSG#{provider}#{message_id}`, or `~{event_id}` for the message id when there is none.
    pub pk: String,
    /// `{occurred_at}#{event_id}`, the sort key of the table and both indexes.
    pub sk: String,
    /// `RCPT#{recipient}`; absent when the event names no recipient.
    pub gsi1pk: Option<String>,
    /// `TYPE#{event_type}#{yyyy-mm-dd}#{shard}`.
    pub gsi2pk: String,
}

impl EventKeys {
    pub fn of(event: &Event) -> Self {
        let occurred_at = format_timestamp(event.occurred_at);
        let message = match &event.message_id {
            Some(message_id) => message_id.clone(),
            None => format!("~{}", event.event_id),
        };
        EventKeys {
            pk: message_pk(&event.provider, &message),
            sk: format!("{occurred_at}#{}", event.event_id),
            gsi1pk: event.recipient.as_deref().map(recipient_pk),
            gsi2pk: type_pk(event.event_type.as_str(), &occurred_at[..10], type_shard(&event.event_id)),
        }
    }
}

pub fn message_pk(provider: &str, message_id: &str) -> String {
    format!("MSG#{provider}#{}", key_part(message_id))
}

pub fn recipient_pk(recipient: &str) -> String {
    format!("RCPT#{}", key_part(recipient))
}

/// Longest message id or address that a key holds as it is.
const MAX_KEY_PART_BYTES: usize = 512;
/// How much of a longer value its key keeps, before the value's hash.
const SHORTENED_KEY_PREFIX_BYTES: usize = 480;

/// A message id or address as it appears in keys. DynamoDB refuses an item whose partition key
/// (of the table or of an index) passes 2048 bytes or whose sort key passes 1024, and that
/// refusal would be a 500 the provider retries forever; so a value longer than
/// [`MAX_KEY_PART_BYTES`] (no address or provider id is) is keyed by its first 480 bytes and
/// the first 128 bits of its SHA-256. The attribute itself keeps the whole value, and a reader
/// asking for the whole value computes the same key. A shortened part is always longer than
/// [`MAX_KEY_PART_BYTES`], so it never equals a value kept as it is.
pub fn key_part(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= MAX_KEY_PART_BYTES {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut end = SHORTENED_KEY_PREFIX_BYTES;
    while !value.is_char_boundary(end) {
        end += 1;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(value.as_bytes());
    std::borrow::Cow::Owned(format!("{}~{}", &value[..end], hex::encode(&digest[..16])))
}

/// `day` is the `yyyy-mm-dd` of `occurred_at` (UTC).
pub fn type_pk(event_type: &str, day: &str, shard: u8) -> String {
    format!("TYPE#{event_type}#{day}#{shard}")
}

/// The first byte of the event id, modulo [`TYPE_SHARDS`].
pub fn type_shard(event_id: &str) -> u8 {
    let first_byte = event_id.get(..2).and_then(|hex| u8::from_str_radix(hex, 16).ok()).unwrap_or(0);
    first_byte % TYPE_SHARDS
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::receive::event::EventType;
    use chrono::DateTime;

    /// A delivered EngageLab event with every key part set, for the store's tests too.
    pub(in crate::store) fn event() -> Event {
        let occurred = DateTime::parse_from_rfc3339("2023-02-17T06:35:11.325Z").unwrap().to_utc();
        let received = DateTime::parse_from_rfc3339("2023-02-17T06:35:12Z").unwrap().to_utc();
        let mut event = Event::new("engagelab", EventType::Delivered, occurred, received, "{}");
        event.event_id = "a7f3c0de00112233445566778899aabb".into();
        event.message_id = Some("m-1".into());
        event.recipient = Some("a@x.com".into());
        event
    }

    #[test]
    fn keys_follow_the_table_layout() {
        let keys = EventKeys::of(&event());
        assert_eq!(keys.pk, "MSG#engagelab#m-1");
        assert_eq!(keys.sk, "2023-02-17T06:35:11.325Z#a7f3c0de00112233445566778899aabb");
        assert_eq!(keys.gsi1pk.as_deref(), Some("RCPT#a@x.com"));
        // 0xa7 = 167, 167 mod 8 = 7
        assert_eq!(keys.gsi2pk, "TYPE#delivered#2023-02-17#7");
    }

    #[test]
    fn an_event_without_message_id_or_recipient_still_has_keys() {
        let mut event = event();
        event.message_id = None;
        event.recipient = None;
        let keys = EventKeys::of(&event);
        assert_eq!(keys.pk, "MSG#engagelab#~a7f3c0de00112233445566778899aabb");
        assert_eq!(keys.gsi1pk, None);
    }

    #[test]
    fn overlong_key_parts_are_shortened_by_a_hash_and_stay_apart() {
        let address = format!("{}@x.com", "a".repeat(4000));
        let pk = recipient_pk(&address);
        assert!(pk.len() < 600, "{}", pk.len());
        assert_eq!(pk, recipient_pk(&address), "the same value always has the same key");
        assert_ne!(pk, recipient_pk(&format!("{}@y.com", "a".repeat(4000))));
        assert!(key_part(&address).len() > MAX_KEY_PART_BYTES);
        let multibyte = "é".repeat(1000);
        assert!(key_part(&multibyte).starts_with(&"é".repeat(240)));
        let fits = "m".repeat(MAX_KEY_PART_BYTES);
        assert_eq!(message_pk("sendpost", &fits), format!("MSG#sendpost#{fits}"));
    }

    #[test]
    fn shard_is_the_first_byte_mod_8() {
        assert_eq!(type_shard("00ff"), 0);
        assert_eq!(type_shard("0f00"), 7);
        assert_eq!(type_shard("10aa"), 0);
        assert_eq!(type_shard("ff00"), 7);
    }
}
