//! Tencent Cloud SES: one flat object per event and recipient, named by `event`; current
//! payloads also carry the numeric `eventid`, which is all there is when `event` is missing.
//! Tencent gives events no id of their own.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{fields, Env, Provider};
use crate::auth::{Authenticator, ConfigError, SecretList};
use crate::event::{event_id, BounceType, Event, EventIdentity, EventType};
use crate::json::Object;

pub const PROVIDER: Provider = Provider { name: "tencent_ses", authenticator, normalize };

fn authenticator(env: Env<'_>) -> Result<Authenticator, ConfigError> {
    Ok(Authenticator::new().with_url_token(SecretList::from_env(env, "TENCENT_SES_WEBHOOK_TOKEN")))
}

/// The event names of `eventid` 1..=8.
const EVENT_NAMES_BY_ID: [&str; 8] =
    ["delivered", "dropped", "bounce", "open", "click", "spamreport", "unsubscribe", "deferred"];

/// Numbers even when sent as strings of digits, so they compare and sort as numbers; any
/// other value is kept as sent.
const NUMERIC_METADATA: [&str; 4] = ["templateId", "sentTimestamp", "eventid", "taskId"];
const TEXT_METADATA: [&str; 2] = ["fromDomain", "messageId"];
/// The sender's own string, echoed back on every event of the message.
const CUSTOM_FIELD: &str = "X-Tencentcloudses-Cb-Custom";

fn normalize(object: &Object<'_>, raw: &str, received_at: DateTime<Utc>) -> Vec<Event> {
    let provider_event = provider_event(object);
    let event_type = provider_event.as_deref().map_or(EventType::Unknown, event_type);
    let occurred_at = fields::epoch(object, "timestamp").unwrap_or(received_at);

    let mut event = Event::new(PROVIDER.name, event_type, occurred_at, received_at, raw);
    event.provider_event = provider_event;
    if event_type == EventType::Bounced {
        event.bounce_type = bounce_type(object);
    }
    event.message_id = fields::text(object, "bulkId").or_else(|| fields::text(object, "bulkid"));
    event.recipient = fields::address(object, "email");
    event.sender = fields::text(object, "from");
    event.subject = fields::text(object, "subject").and_then(decode_encoded_words);
    event.reason = fields::text(object, "reason");
    event.click_url = fields::text(object, "link");
    event.user_agent = fields::text(object, "useragent");
    event.account = fields::text(object, "username");
    event.metadata = metadata(object);
    // Tencent has no event id (`eventid` is a type code): the whole payload is the identity.
    event.event_id = event_id(PROVIDER.name, EventIdentity::Payload(object), None);
    vec![event]
}

/// `event`, else the name of the `eventid` code, else the unrecognised code itself.
fn provider_event(object: &Object<'_>) -> Option<String> {
    fields::text(object, "event").or_else(|| {
        let name = fields::integer(object, "eventid")
            .and_then(|code| usize::try_from(code).ok()?.checked_sub(1))
            .and_then(|index| EVENT_NAMES_BY_ID.get(index));
        name.map(|name| (*name).to_owned()).or_else(|| fields::text(object, "eventid"))
    })
}

fn event_type(name: &str) -> EventType {
    match name {
        "deferred" => EventType::Deferred,
        "delivered" => EventType::Delivered,
        "dropped" => EventType::Rejected,
        "bounce" => EventType::Bounced,
        "open" => EventType::Opened,
        "click" => EventType::Clicked,
        "spamreport" => EventType::Complained,
        "unsubscribe" => EventType::Unsubscribed,
        _ => EventType::Unknown,
    }
}

/// `soft_bounce` / `hard_bounce`, or `soft` / `hard` from older payloads.
fn bounce_type(object: &Object<'_>) -> Option<BounceType> {
    match object.get("bounceType")?.as_str()?.trim() {
        "soft_bounce" | "soft" => Some(BounceType::Soft),
        "hard_bounce" | "hard" => Some(BounceType::Hard),
        _ => None,
    }
}

fn metadata(object: &Object<'_>) -> Map<String, Value> {
    let mut metadata = Map::new();
    for key in NUMERIC_METADATA {
        let number = fields::integer(object, key).map(Value::from);
        if let Some(value) = number.or_else(|| fields::meaningful(object, key)) {
            metadata.insert(key.to_owned(), value);
        }
    }
    for key in TEXT_METADATA {
        if let Some(text) = fields::text(object, key) {
            metadata.insert(key.to_owned(), Value::String(text));
        }
    }
    if let Some(custom) = fields::text(object, CUSTOM_FIELD) {
        metadata.insert("custom".to_owned(), Value::String(custom));
    }
    metadata
}

/// Tencent sends a non-ASCII subject as RFC 2047 encoded-words (`=?UTF-8?B?5rWL6K+V?=`).
/// Encoded-words belong to header values, so the subject is decoded as the `Subject:` header
/// it was, in any charset. What does not decode, or is not one header line, stays as sent.
fn decode_encoded_words(subject: String) -> Option<String> {
    if !subject.contains("=?") {
        return Some(subject);
    }
    let header_line = format!("Subject: {subject}");
    let decoded = match mailparse::parse_header(header_line.as_bytes()) {
        Ok((header, consumed)) if consumed == header_line.len() => header.get_value(),
        _ => return Some(subject),
    };
    let decoded = decoded.trim();
    (!decoded.is_empty()).then(|| decoded.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(subject: &str) -> Option<String> {
        decode_encoded_words(subject.to_owned())
    }

    #[test]
    fn subjects_are_decoded_from_encoded_words() {
        assert_eq!(decoded("=?UTF-8?B?5rWL6K+V?=").as_deref(), Some("测试"));
        assert_eq!(decoded("=?utf-8?Q?caf=C3=A9_cr=C3=A8me?=").as_deref(), Some("café crème"));
        // Whitespace between adjacent encoded-words is folding, not content (RFC 2047, 6.2).
        assert_eq!(decoded("=?UTF-8?B?5rWL?= =?UTF-8?B?6K+V?=").as_deref(), Some("测试"));
        assert_eq!(decoded("Re: =?UTF-8?B?5rWL6K+V?= ok").as_deref(), Some("Re: 测试 ok"));
        assert_eq!(decoded("=?GB2312?B?suLK1A==?=").as_deref(), Some("测试"));
        assert_eq!(decoded("=?UTF-8?B?IA==?=").as_deref(), None);
    }

    #[test]
    fn subjects_without_valid_encoded_words_stay_as_sent() {
        assert_eq!(decoded("Plain subject").as_deref(), Some("Plain subject"));
        assert_eq!(decoded("x =? y").as_deref(), Some("x =? y"));
        assert_eq!(decoded("=?UTF-8?B?5rWL6K+V").as_deref(), Some("=?UTF-8?B?5rWL6K+V"));
        assert_eq!(decoded("=?x-unknown?B?5rWL?=").as_deref(), Some("=?x-unknown?B?5rWL?="));
        // A line break would end the header early: nothing after it may be lost.
        assert_eq!(decoded("=?UTF-8?B?5rWL?=\r\nrest").as_deref(), Some("=?UTF-8?B?5rWL?=\r\nrest"));
    }

    #[test]
    fn event_codes_name_the_event() {
        let named = |code: Value| {
            let text = serde_json::json!({ "eventid": code }).to_string();
            provider_event(&Object::parse(&text).unwrap().unwrap())
        };
        assert_eq!(named(Value::from(1)).as_deref(), Some("delivered"));
        assert_eq!(named(Value::from("8")).as_deref(), Some("deferred"));
        assert_eq!(named(Value::from(0)).as_deref(), Some("0"));
        assert_eq!(named(Value::from(9)).as_deref(), Some("9"));
        assert_eq!(named(Value::from(i64::MIN)).as_deref(), Some(i64::MIN.to_string().as_str()));
        assert_eq!(named(Value::Null), None);
    }
}
