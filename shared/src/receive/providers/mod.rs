//! One module per provider, each turning the provider's JSON into normalized [`Event`]s.
//!
//! A provider is registered by one line in [`ALL`]; everything else about it lives in its module.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::auth::Authenticator;
use crate::config::{ConfigError, Env};
use crate::receive::event::Event;
use crate::receive::json::{Object, Value};

pub mod engagelab;
pub mod fields;
pub mod sendpost;
pub mod tencent_ses;

/// Everything the receiver needs to know about one provider.
pub struct Provider {
    /// The `provider` attribute of its events, and its name in logs.
    pub name: &'static str,
    /// Builds the checks its configured secrets call for.
    pub authenticator: fn(Env<'_>) -> Result<Authenticator, ConfigError>,
    /// Turns one JSON object of the body (and its exact text) into one or more events.
    pub normalize: fn(&Object<'_>, &str, DateTime<Utc>) -> Vec<Event>,
}

pub const ALL: &[&Provider] = &[&engagelab::PROVIDER, &sendpost::PROVIDER, &tencent_ses::PROVIDER];

pub fn by_name(name: &str) -> Option<&'static Provider> {
    ALL.iter().copied().find(|provider| provider.name == name)
}

/// Why a body cannot be turned into events (answered with 400).
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not UTF-8 text")]
    NotUtf8,
    #[error("body is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("body must be a JSON object or an array of objects, not {0}")]
    NotObject(&'static str),
    #[error("element {index} of the body's array is {kind}, not an object")]
    ElementNotObject { index: usize, kind: &'static str },
    #[error("body is an empty JSON array: no events to store")]
    EmptyBatch,
}

impl Provider {
    /// Every event of a body that is one provider event or a JSON array of them.
    pub fn parse(&self, body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Event>, PayloadError> {
        let mut events = Vec::new();
        for (object, raw) in split_body(body)? {
            let produced = (self.normalize)(&object, raw, received_at);
            // The events of a one-event body, the common case, are not moved a second time.
            if events.is_empty() {
                events = produced;
            } else {
                events.extend(produced);
            }
        }
        Ok(events)
    }
}

/// The body's provider events, each with its exact text so every event keeps its own raw JSON.
fn split_body(body: &[u8]) -> Result<Vec<(Object<'_>, &str)>, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if !trimmed.starts_with('[') {
        // The common case, one event per request, is parsed in a single pass.
        return match serde_json::from_str(trimmed).map_err(PayloadError::NotJson)? {
            Value::Object(object) => Ok(vec![(object, trimmed)]),
            other => Err(PayloadError::NotObject(json_kind(&other))),
        };
    }
    let elements: Vec<&RawValue> = serde_json::from_str(trimmed).map_err(PayloadError::NotJson)?;
    if elements.is_empty() {
        return Err(PayloadError::EmptyBatch);
    }
    elements
        .into_iter()
        .enumerate()
        .map(|(index, raw)| match serde_json::from_str(raw.get()).map_err(PayloadError::NotJson)? {
            Value::Object(object) => Ok((object, raw.get())),
            other => Err(PayloadError::ElementNotObject { index, kind: json_kind(&other) }),
        })
        .collect()
}

fn json_kind(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn each_array_element_keeps_its_own_raw_text() {
        let body = br#" [ {"a": 1} ,{"b":[2, 3]} ] "#;
        let parts = split_body(body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, r#"{"a": 1}"#);
        assert_eq!(parts[1].1, r#"{"b":[2, 3]}"#);
    }

    #[test]
    fn rejects_what_is_not_an_object_or_array_of_objects() {
        assert!(matches!(split_body(b"not json"), Err(PayloadError::NotJson(_))));
        assert!(matches!(split_body(b""), Err(PayloadError::NotJson(_))));
        assert!(matches!(split_body(b"{\"a\":1} trailing"), Err(PayloadError::NotJson(_))));
        assert!(matches!(split_body(b"\"text\""), Err(PayloadError::NotObject("a string"))));
        assert!(matches!(split_body(b"42"), Err(PayloadError::NotObject("a number"))));
        assert!(matches!(split_body(b"[]"), Err(PayloadError::EmptyBatch)));
        assert!(matches!(
            split_body(b"[{}, 3]"),
            Err(PayloadError::ElementNotObject { index: 1, kind: "a number" })
        ));
        assert!(matches!(split_body(b"[{\"a\":1}, \xff]"), Err(PayloadError::NotUtf8)));
        assert_eq!(split_body(b" \n{\"a\": 1}\r\n").unwrap()[0].1, "{\"a\": 1}");
    }

    #[test]
    fn every_registered_provider_is_found_by_name() {
        for provider in ALL {
            assert_eq!(by_name(provider.name).map(|found| found.name), Some(provider.name));
        }
        assert!(by_name("mailgun").is_none());
    }

    #[test]
    fn an_unknown_object_is_one_unknown_event_for_every_provider() {
        for provider in ALL {
            let events = provider.parse(br#"{"surprise": true}"#, now()).unwrap();
            assert_eq!(events.len(), 1, "{}", provider.name);
            assert_eq!(events[0].event_type, crate::receive::event::EventType::Unknown);
            assert_eq!(events[0].raw, r#"{"surprise": true}"#);
            assert_eq!(events[0].provider, provider.name);
        }
    }
}
