//! EngageLab email callbacks. A `status` callback follows the sending of a message (target,
//! sent, delivered, invalid_email, soft_bounce); a `response` callback reports what a recipient
//! did (open, click, unsubscribe, report_spam) or mail that reached an inbound route.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::{fields, Env, Provider};
use crate::auth::{tolerance_from_env, Authenticator, SecretList};
use crate::config::ConfigError;
use crate::receive::event::{event_id, BounceType, Event, EventIdentity, EventType};
use crate::receive::json::{Object, Value};

pub const PROVIDER: Provider = Provider { name: "engagelab", authenticator, normalize };

/// Stands in for a missing part of the callback, so that every field read is a plain lookup.
static EMPTY: LazyLock<Object<'static>> = LazyLock::new(Object::default);

/// Data fields that only inbound `route` callbacks carry and that are worth keeping beside the
/// event. The message itself (`html`, `text`, `raw_message`) stays in `raw` only: copied here it
/// would double the size of an item that may already be near DynamoDB's limit.
const ROUTE_METADATA: [&str; 5] = ["from_name", "x_mx_mailfrom", "headers", "raw_message_url", "reference"];

fn authenticator(env: Env<'_>) -> Result<Authenticator, ConfigError> {
    Ok(Authenticator::new()
        .with_engagelab_signature(
            SecretList::from_env(env, "ENGAGELAB_APP_KEY"),
            tolerance_from_env(env, "ENGAGELAB_TOLERANCE_SECS")?,
        )
        .with_url_token(SecretList::from_env(env, "ENGAGELAB_WEBHOOK_TOKEN")))
}

fn normalize(object: &Object<'_>, raw: &str, received_at: DateTime<Utc>) -> Vec<Event> {
    let callback = Callback::read(object);
    let base = callback.base_event(raw, received_at);
    let mut addressees = callback.addressees();
    let mut events = Vec::with_capacity(addressees.len().max(1));
    // The last addressee takes the base event itself rather than a copy of it (and of `raw`).
    let last = addressees.pop().unwrap_or_default();
    events.extend(addressees.into_iter().map(|addressee| addressee.into_event(base.clone(), object)));
    events.push(last.into_event(base, object));
    events
}

/// The two callback families name the same parts differently.
#[derive(Clone, Copy)]
enum Family {
    Status,
    Response,
}

impl Family {
    fn key(self) -> &'static str {
        match self {
            Family::Status => "status",
            Family::Response => "response",
        }
    }

    fn data_key(self) -> &'static str {
        match self {
            Family::Status => "status_data",
            Family::Response => "response_data",
        }
    }

    fn name_key(self) -> &'static str {
        match self {
            Family::Status => "message_status",
            Family::Response => "event",
        }
    }

    /// The EngageLab column of the event mapping. A name is only known within its own family: a `status`
    /// saying `open` is not something EngageLab sends, so it is kept as unknown.
    fn event_type(self, name: &str) -> EventType {
        match (self, name) {
            (Family::Status, "target") => EventType::Queued,
            (Family::Status, "sent") => EventType::Sent,
            (Family::Status, "delivered") => EventType::Delivered,
            (Family::Status, "soft_bounce") => EventType::Bounced,
            (Family::Status, "invalid_email") => EventType::Rejected,
            (Family::Response, "open") => EventType::Opened,
            (Family::Response, "click") => EventType::Clicked,
            (Family::Response, "unsubscribe") => EventType::Unsubscribed,
            (Family::Response, "report_spam") => EventType::Complained,
            (Family::Response, "route") => EventType::Inbound,
            _ => EventType::Unknown,
        }
    }
}

/// One callback object with its parts located; parts it lacks read as empty.
struct Callback<'a> {
    object: &'a Object<'a>,
    /// `status` or `response`: the name of what happened and, for failures, the error code.
    notice: &'a Object<'a>,
    /// `status_data` or `response_data`.
    data: &'a Object<'a>,
    /// The failure's text and subcategory, in `status` callbacks.
    error_detail: &'a Object<'a>,
    /// The provider's own name for the event, even when we do not know it.
    name: Option<String>,
    event_type: EventType,
}

impl<'a> Callback<'a> {
    fn read(object: &'a Object<'a>) -> Self {
        let found = [Family::Status, Family::Response]
            .into_iter()
            .find_map(|family| Some((family, fields::object(object, family.key())?)));
        let Some((family, notice)) = found else {
            return Callback {
                object,
                notice: &EMPTY,
                data: &EMPTY,
                error_detail: &EMPTY,
                name: None,
                event_type: EventType::Unknown,
            };
        };
        let name = fields::text(notice, family.name_key());
        Callback {
            object,
            notice,
            data: fields::object(notice, family.data_key()).unwrap_or(&EMPTY),
            error_detail: fields::object(notice, "error_detail").unwrap_or(&EMPTY),
            event_type: name.as_deref().map_or(EventType::Unknown, |name| family.event_type(name)),
            name,
        }
    }

    /// Everything but the per-recipient attributes and the id.
    fn base_event(&self, raw: &str, received_at: DateTime<Utc>) -> Event {
        let occurred_at = fields::epoch(self.object, "itime").unwrap_or(received_at);
        let mut event = Event::new(PROVIDER.name, self.event_type, occurred_at, received_at, raw);
        event.provider_event = self.name.clone();
        // EngageLab reports no hard bounces: an address that cannot receive is `invalid_email`.
        event.bounce_type = (self.event_type == EventType::Bounced).then_some(BounceType::Soft);
        event.sender = self.top_level_or_data(fields::address, "from");
        event.subject = self.top_level_or_data(fields::text, "subject");
        event.reason = self.reason();
        event.error_code =
            fields::integer(self.notice, "error_code").or_else(|| fields::integer(self.error_detail, "sub_stat"));
        event.click_url = fields::text(self.data, "url");
        event.ip = fields::text(self.data, "ip");
        event.user_agent = self.user_agent();
        event.account = fields::text(self.data, "api_user");
        event.metadata = self.metadata();
        event
    }

    /// Status callbacks other than `target` carry `from` and `subject` at the top level, while
    /// `target` and `route` carry them in their data.
    fn top_level_or_data(&self, read: fn(&Object<'_>, &str) -> Option<String>, key: &str) -> Option<String> {
        read(self.object, key).or_else(|| read(self.data, key))
    }

    /// The data's `message` is also a plain note ("successfully delivered", "open email"), so
    /// it is only a reason when the message failed.
    fn reason(&self) -> Option<String> {
        fields::text(self.error_detail, "message").or_else(|| {
            matches!(self.event_type, EventType::Bounced | EventType::Rejected)
                .then(|| fields::text(self.data, "message"))
                .flatten()
        })
    }

    /// EngageLab splits the user agent into browser and system; joined back as
    /// `Chrome 101.0.4951 (Windows 8)`.
    fn user_agent(&self) -> Option<String> {
        let browser = self.named_version("explorer_name", "explorer_ver");
        let system = self.named_version("os_name", "os_ver");
        match (browser, system) {
            (Some(mut browser), Some(system)) => {
                browser.push_str(" (");
                browser.push_str(&system);
                browser.push(')');
                Some(browser)
            }
            (Some(browser), None) => Some(browser),
            (None, Some(system)) => Some(format!("({system})")),
            (None, None) => None,
        }
    }

    /// A version says nothing without the name it belongs to.
    fn named_version(&self, name_key: &str, version_key: &str) -> Option<String> {
        let mut named = fields::text(self.data, name_key)?;
        if let Some(version) = fields::text(self.data, version_key) {
            named.push(' ');
            named.push_str(&version);
        }
        Some(named)
    }

    fn metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        let entries = [
            ("task_id", identifier(self.data, "task_id")),
            ("label_id", identifier(self.data, "label_id")),
            ("custom_args", fields::meaningful(self.object, "custom_args")),
            ("sub_stat", identifier(self.error_detail, "sub_stat")),
            ("sub_stat_desc", fields::meaningful(self.error_detail, "sub_stat_desc")),
        ];
        let route_entries = ROUTE_METADATA.map(|key| (key, fields::meaningful(self.data, key)));
        // The key is copied only for the entries kept.
        entries
            .into_iter()
            .chain(route_entries)
            .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
            .collect()
    }

    fn addressees(&self) -> Vec<Addressee> {
        if self.event_type == EventType::Queued {
            return self.target_addressees();
        }
        // An inbound message is about the mailbox it was delivered to, which the envelope
        // names; its `to` header may list others, or no one (Bcc).
        let recipient = match self.event_type {
            EventType::Inbound => {
                fields::address(self.data, "x_mx_rcptto").or_else(|| fields::address(self.object, "to"))
            }
            _ => fields::address(self.object, "to"),
        };
        let message_id = fields::text(self.data, "email_id").or_else(|| fields::text(self.object, "message_id"));
        vec![Addressee { recipient, message_id, fan_out_identity: None }]
    }

    /// A `target` callback covers a whole send request: one event per entry of `tos`, paired by
    /// position with `email_ids`.
    fn target_addressees(&self) -> Vec<Addressee> {
        let email_ids = entries(self.data, "email_ids");
        let recipients: Vec<(usize, String)> = entries(self.data, "tos")
            .iter()
            .enumerate()
            .filter_map(|(index, to)| Some((index, fields::bare_address(to.as_str()?)?)))
            .collect();
        // The top-level `message_id` is the request's id. With one recipient the request is that
        // recipient's message; with several it is none of theirs, and borrowing it would merge
        // different messages' timelines.
        let request_id = fields::text(self.object, "message_id");
        if recipients.is_empty() {
            return vec![Addressee { recipient: None, message_id: request_id, fan_out_identity: None }];
        }
        let request_id = request_id.filter(|_| recipients.len() == 1);
        // An address listed twice was sent two messages (two `email_ids`): its later events get
        // their own ids, from the number of earlier listings. Real addresses hold no NUL, so the
        // suffix makes no other recipient's identity; a first listing keeps the plain
        // recipient.
        let identity = |position: usize, recipient: &str| {
            match recipients[..position].iter().filter(|(_, earlier)| earlier == recipient).count() {
                0 => recipient.to_owned(),
                repeats => format!("{recipient}\0{repeats}"),
            }
        };
        recipients
            .iter()
            .enumerate()
            .map(|(position, (index, recipient))| Addressee {
                recipient: Some(recipient.clone()),
                message_id: email_ids.get(*index).and_then(non_empty_text).or_else(|| request_id.clone()),
                fan_out_identity: Some(identity(position, recipient)),
            })
            .collect()
    }
}

/// Who one event is about.
#[derive(Default)]
struct Addressee {
    recipient: Option<String>,
    message_id: Option<String>,
    /// For the recipients of a `target`, which share one payload and so need the recipient
    /// in their id to stay apart.
    fan_out_identity: Option<String>,
}

impl Addressee {
    fn into_event(self, mut event: Event, payload: &Object<'_>) -> Event {
        event.event_id =
            event_id(PROVIDER.name, EventIdentity::Payload(payload), self.fan_out_identity.as_deref());
        event.recipient = self.recipient;
        event.message_id = self.message_id;
        event
    }
}

/// A list field's entries, in place (`tos` and `email_ids` pair up by index); a lone value
/// counts as a one-entry list.
fn entries<'a, 'b>(object: &'a Object<'b>, key: &str) -> &'a [Value<'b>] {
    match object.get(key) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => &[],
        Some(single) => std::slice::from_ref(single),
    }
}

fn non_empty_text(value: &Value<'_>) -> Option<String> {
    let text = value.as_str()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// EngageLab documents ids such as `task_id` as integers but sends them as strings (`"-1"`):
/// stored as numbers whenever they are integral, as sent otherwise.
fn identifier(object: &Object<'_>, key: &str) -> Option<serde_json::Value> {
    fields::integer(object, key).map(serde_json::Value::from).or_else(|| fields::meaningful(object, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let values: HashMap<String, String> =
            pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        move |name| values.get(name).cloned()
    }

    #[test]
    fn authenticator_requires_what_is_configured() {
        let none = env(&[]);
        assert!(!authenticator(&none).unwrap().is_configured());
        let key_only = env(&[("ENGAGELAB_APP_KEY", "k1,k2")]);
        assert!(authenticator(&key_only).unwrap().is_configured());
        let token_only = env(&[("ENGAGELAB_WEBHOOK_TOKEN", "t")]);
        assert!(authenticator(&token_only).unwrap().is_configured());
        let bad_tolerance = env(&[("ENGAGELAB_APP_KEY", "k"), ("ENGAGELAB_TOLERANCE_SECS", "soon")]);
        assert!(authenticator(&bad_tolerance).is_err());
    }

    #[test]
    fn an_address_listed_twice_in_a_target_gives_two_events_with_their_own_ids() {
        let text = r#"{"message_id":"req","itime":1676615711325,"status":{"message_status":"target",
            "status_data":{"tos":["a@x.com","b@x.com","A@X.com"],"email_ids":["m0","m1","m2"]}}}"#;
        let object = Object::parse(text).unwrap().unwrap();
        let events = normalize(&object, text, DateTime::UNIX_EPOCH);
        let ids: Vec<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");
        assert_eq!(ids[0], event_id(PROVIDER.name, EventIdentity::Payload(&object), Some("a@x.com")));
        assert_eq!(events[2].recipient.as_deref(), Some("a@x.com"));
        assert_eq!(events[2].message_id.as_deref(), Some("m2"));
    }

    #[test]
    fn names_are_known_only_within_their_family() {
        assert_eq!(Family::Status.event_type("soft_bounce"), EventType::Bounced);
        assert_eq!(Family::Response.event_type("soft_bounce"), EventType::Unknown);
        assert_eq!(Family::Response.event_type("route"), EventType::Inbound);
        assert_eq!(Family::Status.event_type("open"), EventType::Unknown);
    }
}
