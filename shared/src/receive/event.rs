//! The normalized event every provider payload becomes.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::receive::json;

/// The shared vocabulary every provider's event names map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Queued,
    Sent,
    Delivered,
    Deferred,
    Bounced,
    Rejected,
    Failed,
    Opened,
    Clicked,
    Unsubscribed,
    Complained,
    Inbound,
    Unknown,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::Queued,
        EventType::Sent,
        EventType::Delivered,
        EventType::Deferred,
        EventType::Bounced,
        EventType::Rejected,
        EventType::Failed,
        EventType::Opened,
        EventType::Clicked,
        EventType::Unsubscribed,
        EventType::Complained,
        EventType::Inbound,
        EventType::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Queued => "queued",
            EventType::Sent => "sent",
            EventType::Delivered => "delivered",
            EventType::Deferred => "deferred",
            EventType::Bounced => "bounced",
            EventType::Rejected => "rejected",
            EventType::Failed => "failed",
            EventType::Opened => "opened",
            EventType::Clicked => "clicked",
            EventType::Unsubscribed => "unsubscribed",
            EventType::Complained => "complained",
            EventType::Inbound => "inbound",
            EventType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|event_type| event_type.as_str() == name)
            .ok_or_else(|| UnknownEventType(name.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceType {
    Hard,
    Soft,
}

/// One event for one recipient, as stored. Optional attributes are absent, never empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub provider: String,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<BounceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(with = "rfc3339_millis")]
    pub occurred_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis")]
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Serialized as DynamoDB can hold it (see [`storable_metadata`]).
    #[serde(default, skip_serializing_if = "Map::is_empty", serialize_with = "storable_metadata::serialize")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The provider's event exactly as received, so it can be re-normalized later. Not
    /// serialized with the other attributes: the store writes it in its own (compressed)
    /// encoding, and copying up to megabytes of inbound mail twice would be wasted work.
    #[serde(skip_serializing, default)]
    pub raw: String,
}

impl Event {
    /// An event with only the attributes every event has; providers fill in the rest.
    pub fn new(
        provider: &str,
        event_type: EventType,
        occurred_at: DateTime<Utc>,
        received_at: DateTime<Utc>,
        raw: &str,
    ) -> Self {
        Event {
            event_id: String::new(),
            provider: provider.to_owned(),
            event_type,
            provider_event: None,
            bounce_type: None,
            message_id: None,
            recipient: None,
            sender: None,
            subject: None,
            occurred_at,
            received_at,
            reason: None,
            smtp_code: None,
            error_code: None,
            click_url: None,
            user_agent: None,
            ip: None,
            tags: Vec::new(),
            metadata: Map::new(),
            account: None,
            raw: raw.to_owned(),
        }
    }

    /// `occurred_at` in the stored text form, which also orders the sort keys.
    pub fn occurred_at_text(&self) -> String {
        format_timestamp(self.occurred_at)
    }
}

/// What makes an event unique at its provider, hashed into `event_id`.
pub enum EventIdentity<'a> {
    /// The provider's own id for the event (SendPost `eventID`).
    ProviderId(&'a str),
    /// The event's JSON object, hashed in canonical form so key order and whitespace do not matter.
    Payload(&'a json::Object<'a>),
}

thread_local! {
    static CANONICAL_FORM: RefCell<json::CanonicalWriter> = RefCell::new(json::CanonicalWriter::default());
}

/// The `event_id`: the first 128 bits of SHA-256 over the provider name, the
/// identity, and the recipient when one payload fans out to several recipients.
pub fn event_id(provider: &str, identity: EventIdentity<'_>, fan_out_recipient: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    hasher.update([0]);
    match identity {
        EventIdentity::ProviderId(id) => {
            hasher.update(b"id:");
            hasher.update(id.as_bytes());
        }
        EventIdentity::Payload(object) => {
            hasher.update(b"json:");
            // Written out whole and hashed at once: feeding the hasher token by token costs
            // more than the copy. The buffer is the thread's own, kept between events.
            CANONICAL_FORM.with_borrow_mut(|writer| writer.with_form(object, |form| hasher.update(form)));
        }
    }
    if let Some(recipient) = fan_out_recipient {
        hasher.update([0]);
        hasher.update(recipient.as_bytes());
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

/// Metadata copies provider JSON that the sender controls (EngageLab `custom_args`, SendPost
/// `customFields`, ...), and DynamoDB refuses an item whose maps and lists nest deeper than 32
/// levels, whose numbers pass 38 digits or 1e-130..1e126, or whose maps have an empty key: a refusal that would be a 500 the
/// provider retries forever. Such parts are kept as their JSON text instead (`raw` always holds
/// the whole payload); everything else is serialized as it is.
pub mod storable_metadata {
    use serde::ser::{SerializeMap, Serializer};
    use serde_json::{Map, Number, Value};

    /// Levels of nesting kept as maps and lists below a metadata entry; the item itself, the
    /// `metadata` map and the entry take three of DynamoDB's 32.
    pub const MAX_DEPTH: usize = 24;

    pub fn serialize<S: Serializer>(metadata: &Map<String, Value>, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(metadata.len()))?;
        for (key, value) in metadata {
            map.serialize_entry(key, &storable(value, 0))?;
        }
        map.end()
    }

    /// `value` with what DynamoDB cannot hold replaced by its JSON text.
    pub fn storable(value: &Value, depth: usize) -> Value {
        match value {
            Value::Object(_) | Value::Array(_) if depth >= MAX_DEPTH => Value::String(value.to_string()),
            // DynamoDB map keys cannot be empty (moto garbles such a map into an unreadable item).
            Value::Object(object) if object.contains_key("") => Value::String(value.to_string()),
            Value::Object(object) => {
                Value::Object(object.iter().map(|(key, item)| (key.clone(), storable(item, depth + 1))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(|item| storable(item, depth + 1)).collect()),
            Value::Number(number) if !fits_dynamodb(number) => Value::String(number.to_string()),
            other => other.clone(),
        }
    }

    /// Integers always fit (at most 20 digits); floats as DynamoDB's range allows, written
    /// without exponent as serialization does.
    fn fits_dynamodb(number: &Number) -> bool {
        match number.as_f64() {
            _ if number.is_i64() || number.is_u64() => true,
            Some(float) => float == 0.0 || (1e-125..1e125).contains(&float.abs()),
            None => false,
        }
    }
}

/// RFC 3339 UTC with milliseconds: `2023-02-17T06:35:11.325Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

mod rfc3339_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_timestamp(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parsed objects borrow their text: a test's few bytes are simply leaked.
    fn object(value: Value) -> json::Object<'static> {
        json::Object::parse(Box::leak(value.to_string().into_boxed_str())).unwrap().unwrap()
    }

    #[test]
    fn event_id_ignores_key_order_and_whitespace() {
        let a = json::Object::parse(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap().unwrap();
        let b = json::Object::parse(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap().unwrap();
        let id_a = event_id("engagelab", EventIdentity::Payload(&a), None);
        assert_eq!(id_a, event_id("engagelab", EventIdentity::Payload(&b), None));
        assert_eq!(id_a.len(), 32);
        assert!(id_a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn event_id_separates_providers_recipients_and_contents() {
        let payload = object(json!({"event": "open"}));
        let base = event_id("engagelab", EventIdentity::Payload(&payload), None);
        assert_ne!(base, event_id("sendpost", EventIdentity::Payload(&payload), None));
        assert_ne!(base, event_id("engagelab", EventIdentity::Payload(&object(json!({"event": "click"}))), None));
        assert_ne!(
            event_id("engagelab", EventIdentity::Payload(&payload), Some("a@x.com")),
            event_id("engagelab", EventIdentity::Payload(&payload), Some("b@x.com"))
        );
        assert_ne!(
            event_id("sendpost", EventIdentity::ProviderId("abc"), None),
            event_id("sendpost", EventIdentity::ProviderId("abd"), None)
        );
    }

    #[test]
    fn event_id_known_answer() {
        // Pinned so that a change to the hashing scheme, which would store every retried
        // event a second time, cannot slip in unnoticed.
        assert_eq!(
            event_id("sendpost", EventIdentity::ProviderId("edhg-123gh-afasdf-124egh"), None),
            {
                let mut hasher = Sha256::new();
                hasher.update(b"sendpost\0id:edhg-123gh-afasdf-124egh");
                hex::encode(&hasher.finalize()[..16])
            }
        );
    }

    #[test]
    fn event_type_names_round_trip() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse::<EventType>().unwrap(), event_type);
            assert_eq!(serde_json::to_value(event_type).unwrap(), json!(event_type.as_str()));
        }
        assert!("bounce".parse::<EventType>().is_err());
    }

    #[test]
    fn metadata_that_dynamodb_cannot_hold_is_kept_as_json_text() {
        let mut deep = json!("x");
        for _ in 0..100 {
            deep = json!({ "a": deep });
        }
        let stored = storable_metadata::storable(&deep, 0);
        let mut level = &stored;
        for _ in 0..storable_metadata::MAX_DEPTH {
            level = &level["a"];
        }
        let text = level.as_str().expect("the part past the limit is text");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), {
            let mut expected = &deep;
            for _ in 0..storable_metadata::MAX_DEPTH {
                expected = &expected["a"];
            }
            expected.clone()
        });
        assert_eq!(storable_metadata::storable(&json!({"": 1, "a": 2}), 0), json!("{\"\":1,\"a\":2}"));
        let numbers = json!({"big": 1e300, "tiny": 1e-300, "ok": 1.5, "int": u64::MAX, "zero": 0.0});
        assert_eq!(
            storable_metadata::storable(&numbers, 0),
            json!({"big": "1e+300", "tiny": "1e-300", "ok": 1.5, "int": u64::MAX, "zero": 0.0})
        );
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let at = DateTime::from_timestamp_millis(1_676_615_711_325).unwrap();
        assert_eq!(format_timestamp(at), "2023-02-17T06:35:11.325Z");
    }
}
