//! SendPost: one `{"event": {...}, "emailMessage": {...}}` object per event and recipient.
//! `event.type` (0..8) says what happened; `event.eventMetadata` holds the fields SendPost
//! fills only for some types, and leaves empty (`""`, `0`) for the others.

use chrono::{DateTime, Utc};
use serde_json::Map;

use super::{fields, Env, Provider};
use crate::auth::{Authenticator, SecretList};
use crate::config::ConfigError;
use crate::receive::event::{event_id, BounceType, Event, EventIdentity, EventType};
use crate::receive::json::{Object, Value};

pub const PROVIDER: Provider = Provider { name: "sendpost", authenticator, normalize };

fn authenticator(env: Env<'_>) -> Result<Authenticator, ConfigError> {
    Ok(Authenticator::new()
        .with_sendpost_signature(SecretList::from_env(env, "SENDPOST_API_KEY"))
        .with_url_token(SecretList::from_env(env, "SENDPOST_WEBHOOK_TOKEN")))
}

/// What one of SendPost's `type` codes means.
struct Kind {
    name: &'static str,
    event_type: EventType,
    bounce_type: Option<BounceType>,
}

const fn kind(name: &'static str, event_type: EventType, bounce_type: Option<BounceType>) -> Kind {
    Kind { name, event_type, bounce_type }
}

/// Indexed by the `type` code.
const KINDS: [Kind; 9] = [
    kind("Processed", EventType::Queued, None),
    kind("Dropped", EventType::Rejected, None),
    kind("Delivered", EventType::Delivered, None),
    kind("SoftBounced", EventType::Bounced, Some(BounceType::Soft)),
    kind("HardBounced", EventType::Bounced, Some(BounceType::Hard)),
    kind("Opened", EventType::Opened, None),
    kind("Clicked", EventType::Clicked, None),
    kind("Unsubscribed", EventType::Unsubscribed, None),
    kind("Spam", EventType::Complained, None),
];

/// Sending-side settings worth filtering on, read from `event` first, then `emailMessage`.
const SENDING_METADATA: [&str; 6] = ["subAccountID", "ipID", "ipPoolID", "domainID", "messageType", "templateId"];

fn normalize(object: &Object<'_>, raw: &str, received_at: DateTime<Utc>) -> Vec<Event> {
    let no_fields = Object::default();
    let details = fields::object(object, "event").unwrap_or(&no_fields);
    let message = fields::object(object, "emailMessage").unwrap_or(&no_fields);
    let specifics = fields::object(details, "eventMetadata").unwrap_or(&no_fields);

    let kind = type_code(details).and_then(|code| KINDS.get(code));
    let event_type = kind.map_or(EventType::Unknown, |kind| kind.event_type);
    let occurred_at =
        fields::epoch(details, "submittedAt").or_else(|| fields::epoch(message, "submittedAt")).unwrap_or(received_at);

    let mut event = Event::new(PROVIDER.name, event_type, occurred_at, received_at, raw);
    event.provider_event = kind.map_or_else(|| fields::text(details, "type"), |kind| Some(kind.name.to_owned()));
    event.bounce_type = kind.and_then(|kind| kind.bounce_type);
    event.message_id = fields::text(details, "messageID").or_else(|| fields::text(message, "messageID"));

    let addressed = fields::address(details, "to");
    let recipient_entry = recipient_entry(message, addressed.as_deref());
    event.recipient = addressed.or_else(|| fields::address(recipient_entry?, "email"));
    event.sender = fields::text(details, "from").or_else(|| fields::text(fields::object(message, "from")?, "email"));
    event.subject = fields::text(details, "messageSubject");

    event.smtp_code = smtp_code(specifics).or_else(|| smtp_code(details));
    // For other types smtpDescription is not a reason but e.g. "email delivered successfully".
    if matches!(event_type, EventType::Bounced | EventType::Rejected) {
        event.reason = fields::text(specifics, "smtpDescription").or_else(|| fields::text(details, "smtpDescription"));
    }
    event.click_url = fields::text(specifics, "clickedURL");
    event.ip = fields::text(specifics, "trackedIP");
    event.user_agent = fields::text(specifics, "rawUserAgent");

    event.tags = fields::text_list(details, "groups");
    if event.tags.is_empty() {
        event.tags = fields::text_list(message, "groups");
    }
    event.account = fields::text(details, "accountID").or_else(|| fields::text(message, "accountID"));
    event.metadata = metadata(details, message, recipient_entry);

    event.event_id = match fields::text(details, "eventID") {
        Some(id) => event_id(PROVIDER.name, EventIdentity::ProviderId(&id), None),
        None => event_id(PROVIDER.name, EventIdentity::Payload(object), None),
    };
    vec![event]
}

/// `event.type`, which SendPost sends as a number and sometimes as a string of digits.
fn type_code(details: &Object<'_>) -> Option<usize> {
    usize::try_from(fields::integer(details, "type")?).ok()
}

/// SendPost sends 0 when there was no SMTP exchange (opens, clicks, ...).
fn smtp_code(object: &Object<'_>) -> Option<i64> {
    fields::integer(object, "smtpCode").filter(|code| *code > 0)
}

/// The `emailMessage.to` entry of this event's recipient; the first one when the event does
/// not say whom it is about.
fn recipient_entry<'a, 'b>(message: &'a Object<'b>, recipient: Option<&str>) -> Option<&'a Object<'b>> {
    let Value::Array(entries) = message.get("to")? else { return None };
    let mut entries = entries.iter().filter_map(Value::as_object);
    match recipient {
        Some(recipient) => entries.find(|entry| fields::address(entry, "email").as_deref() == Some(recipient)),
        None => entries.next(),
    }
}

/// Blank values (SendPost's "not set") are left out at any depth. The parsed client details
/// (`geo`, `os`, `device`) stay in `raw` only: copied here they would push an open's index
/// entries past 1 KB.
fn metadata(
    details: &Object<'_>,
    message: &Object<'_>,
    recipient_entry: Option<&Object<'_>>,
) -> Map<String, serde_json::Value> {
    let mut metadata = Map::new();
    for key in SENDING_METADATA {
        if let Some(value) = pruned_field(details, key).or_else(|| pruned_field(message, key)) {
            metadata.insert(key.to_owned(), value);
        }
    }
    if let Some(custom_fields) = custom_fields(message, recipient_entry) {
        metadata.insert("customFields".to_owned(), custom_fields);
    }
    if let Some(headers) = pruned_field(message, "headers") {
        metadata.insert("headers".to_owned(), headers);
    }
    metadata
}

/// The message's custom fields, overridden by the recipient's own where those are set.
fn custom_fields(message: &Object<'_>, recipient_entry: Option<&Object<'_>>) -> Option<serde_json::Value> {
    let recipients_own = recipient_entry.and_then(|entry| fields::object(entry, "customFields"));
    let mut merged = Map::new();
    for custom_fields in [fields::object(message, "customFields"), recipients_own].into_iter().flatten() {
        merged.extend(custom_fields.iter().filter_map(|(key, value)| Some((key.to_owned(), pruned(value)?))));
    }
    (!merged.is_empty()).then_some(serde_json::Value::Object(merged))
}

fn pruned_field(object: &Object<'_>, key: &str) -> Option<serde_json::Value> {
    object.get(key).and_then(pruned)
}

/// `value` without its null and blank parts at any depth (SendPost sends `"device":
/// {"Family": ""}` for an unknown device); absent when nothing is left.
fn pruned(value: &Value<'_>) -> Option<serde_json::Value> {
    match value {
        Value::Null => None,
        Value::String(text) if text.trim().is_empty() => None,
        Value::Object(map) => {
            let kept: Map<String, serde_json::Value> =
                map.iter().filter_map(|(key, item)| Some((key.to_owned(), pruned(item)?))).collect();
            (!kept.is_empty()).then_some(serde_json::Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<serde_json::Value> = items.iter().filter_map(pruned).collect();
            (!kept.is_empty()).then_some(serde_json::Value::Array(kept))
        }
        scalar => Some(scalar.to_serde()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parsed values borrow their text: a test's few bytes are simply leaked.
    fn parsed(value: serde_json::Value) -> Value<'static> {
        serde_json::from_str(Box::leak(value.to_string().into_boxed_str())).unwrap()
    }

    fn object(value: serde_json::Value) -> Object<'static> {
        parsed(value).as_object().unwrap().clone()
    }

    #[test]
    fn pruned_drops_blank_parts_at_any_depth() {
        assert_eq!(pruned(&parsed(json!({"Family": ""}))), None);
        assert_eq!(pruned(&parsed(json!({"a": null, "b": [" ", {}], "c": {"d": ""}}))), None);
        assert_eq!(
            pruned(&parsed(json!({"Family": "Windows", "Major": "", "n": 0, "l": ["x", ""], "f": false}))),
            Some(json!({"Family": "Windows", "n": 0, "l": ["x"], "f": false}))
        );
    }

    #[test]
    fn recipient_entry_matches_the_address_whatever_its_case() {
        let message = object(json!({"to": [{"email": "a@x.com"}, 7, {"email": "B@X.com", "n": 2}]}));
        let field = |entry: Option<&Object<'_>>, key: &str| entry.and_then(|entry| entry.get(key)?.to_serde().into());
        assert_eq!(field(recipient_entry(&message, Some("b@x.com")), "n"), Some(json!(2)));
        assert_eq!(field(recipient_entry(&message, None), "email"), Some(json!("a@x.com")));
        assert_eq!(recipient_entry(&message, Some("c@x.com")), None);
    }

    #[test]
    fn custom_fields_of_the_recipient_override_the_messages_unless_blank() {
        let message = object(json!({"customFields": {"Company": "Hooli", "Plan": "pro", "Empty": ""}}));
        let recipient = object(json!({"customFields": {"Company": "Aviato", "Plan": " ", "Seat": 3}}));
        assert_eq!(
            custom_fields(&message, Some(&recipient)),
            Some(json!({"Company": "Aviato", "Plan": "pro", "Seat": 3}))
        );
        assert_eq!(custom_fields(&Object::default(), Some(&object(json!({"customFields": {"a": null}})))), None);
    }

    #[test]
    fn type_codes_out_of_range_are_unknown() {
        for code in [json!(-1), json!(9), json!(i64::MIN), json!("x"), json!(null), json!(2.5)] {
            let object = object(json!({"event": {"type": code}}));
            let events = normalize(&object, "{}", DateTime::UNIX_EPOCH);
            assert_eq!(events[0].event_type, EventType::Unknown, "{code}");
        }
    }
}
