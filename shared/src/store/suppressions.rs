//! The suppression list: whom to stop mailing, derived from events as they are stored.
//!
//! A recipient is suppressed by a hard bounce, a complaint, an unsubscribe, a rejection for
//! an invalid address, or by [`DEFAULT_SOFT_BOUNCE_THRESHOLD`] soft bounces of distinct
//! messages. One item per recipient (`pk = SUPP#{recipient}`, `sk = SUPP`) records why and
//! since when; it is written in the same request as the triggering event, with conditional
//! updates that make a retried request change nothing. Later deliveries or opens never lift
//! a suppression: only the suppressions API's lift does (`read::suppressions`), and it records who
//! and when.
//!
//! While suppressed, the item carries `gsi3pk = SUPP` and `gsi3sk = {since}#{recipient}`, the
//! keys of the sparse `by_suppression` index that lists suppressions without a Scan.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use serde::Serialize;

use crate::aws_error::short_cause;
use crate::config::{ConfigError, Env};
use crate::receive::event::{format_timestamp, BounceType, Event, EventType};
use crate::store::keys::{key_part, Item};

/// Soft bounces of distinct messages that suppress a recipient, unless `SOFT_BOUNCE_THRESHOLD`
/// says otherwise.
pub const DEFAULT_SOFT_BOUNCE_THRESHOLD: u32 = 3;
pub const SOFT_BOUNCE_THRESHOLD: &str = "SOFT_BOUNCE_THRESHOLD";
pub const SUPPRESSION_INDEX: &str = "by_suppression";
/// The one partition of the `by_suppression` index. New suppressions are rare next to events
/// (a bounce wave of a large campaign is still far below one partition's 1,000 writes per
/// second), and one partition keeps the list in `since` order without merging shards.
pub(crate) const LIST_PARTITION: &str = "SUPP";
pub(crate) const SORT_KEY: &str = "SUPP";
/// Why a recipient is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    HardBounce,
    Complained,
    Unsubscribed,
    InvalidAddress,
    SoftBounces,
}

impl Reason {
    pub const ALL: [Reason; 5] =
        [Reason::HardBounce, Reason::Complained, Reason::Unsubscribed, Reason::InvalidAddress, Reason::SoftBounces];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HardBounce => "hard_bounce",
            Reason::Complained => "complained",
            Reason::Unsubscribed => "unsubscribed",
            Reason::InvalidAddress => "invalid_address",
            Reason::SoftBounces => "soft_bounces",
        }
    }
}

/// What an event does to its recipient's suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Suppress now.
    Suppress(Reason),
    /// Count towards the soft-bounce threshold.
    SoftBounce,
}

/// The trigger an event is, if any; events without a recipient suppress no one.
pub fn trigger(event: &Event) -> Option<Trigger> {
    event.recipient.as_ref()?;
    match event.event_type {
        EventType::Bounced if event.bounce_type == Some(BounceType::Hard) => Some(Trigger::Suppress(Reason::HardBounce)),
        // A bounce of unknown kind counts as soft: a transient failure must not suppress at once.
        EventType::Bounced => Some(Trigger::SoftBounce),
        EventType::Complained => Some(Trigger::Suppress(Reason::Complained)),
        EventType::Unsubscribed => Some(Trigger::Suppress(Reason::Unsubscribed)),
        EventType::Rejected if rejects_the_address(event) => Some(Trigger::Suppress(Reason::InvalidAddress)),
        _ => None,
    }
}

/// EngageLab names invalid addresses `invalid_email`; the others say so in the reason. A
/// rejection because the provider's own list suppresses the address says nothing about it.
fn rejects_the_address(event: &Event) -> bool {
    if event.provider_event.as_deref() == Some("invalid_email") {
        return true;
    }
    let Some(reason) = event.reason.as_deref() else { return false };
    let reason = reason.to_lowercase();
    reason.contains("invalid")
        && ["address", "email", "recipient", "mailbox"].iter().any(|subject| reason.contains(subject))
}

pub fn suppression_pk(recipient: &str) -> String {
    format!("SUPP#{}", key_part(recipient))
}

/// `gsi3sk`: when, then who, with an overlong address shortened as in every key.
fn list_sort_key(at: &str, recipient: &str) -> String {
    format!("{at}#{}", key_part(recipient))
}

fn key(recipient: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(suppression_pk(recipient))),
        ("sk".to_owned(), AttributeValue::S(SORT_KEY.to_owned())),
    ])
}

/// `SOFT_BOUNCE_THRESHOLD` from `env`, [`DEFAULT_SOFT_BOUNCE_THRESHOLD`] when unset.
pub fn soft_bounce_threshold_from_env(env: Env<'_>) -> Result<u32, ConfigError> {
    match env(SOFT_BOUNCE_THRESHOLD).as_deref().map(str::trim) {
        None | Some("") => Ok(DEFAULT_SOFT_BOUNCE_THRESHOLD),
        Some(text) => text.parse::<u32>().ok().filter(|threshold| (1..=100).contains(threshold)).ok_or(
            ConfigError::Invalid { name: SOFT_BOUNCE_THRESHOLD, expected: "a whole number of soft bounces from 1 to 100" },
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("updating a suppression failed: {0}")]
    Write(String),
    #[error("lifting a suppression failed: {0}")]
    Lift(String),
    #[error("reading a suppression failed: {0}")]
    Read(String),
    #[error("a suppression item has no text {0}")]
    Malformed(&'static str),
}

/// One conditional UpdateItem of a recipient's suppression item. Every `#name` in the
/// expressions stands for the attribute of that name (several, such as `reason` and `since`, are
/// reserved words). `Ok(None)` when the condition failed, which is how DynamoDB says "already
/// done"; else the item as it now is.
pub(crate) async fn update_if(
    client: &Client,
    table: &str,
    recipient: &str,
    update: &str,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<Option<Item>, String> {
    let outcome = client
        .update_item()
        .table_name(table)
        .set_key(Some(key(recipient)))
        .update_expression(update)
        .condition_expression(condition)
        .set_expression_attribute_names(Some(expression_names(&[update, condition])))
        .set_expression_attribute_values(Some(values.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match outcome {
        Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
        Err(SdkError::ServiceError(failure))
            if matches!(failure.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(None)
        }
        Err(error) => Err(short_cause(&error)),
    }
}

/// `#name` -> `name` for every `#name` the expressions use.
fn expression_names(expressions: &[&str]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for expression in expressions {
        for (start, _) in expression.match_indices('#') {
            let name: String =
                expression[start + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.insert(format!("#{name}"), name);
        }
    }
    names
}

pub(crate) fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

pub(crate) fn text_value(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

/// The suppression writes of the webhook functions: `UpdateItem` and `GetItem`, on `SUPP#` keys only.
#[derive(Clone, Debug)]
pub struct SuppressionWriter {
    client: Client,
    table: String,
    soft_bounce_threshold: u32,
}

impl SuppressionWriter {
    pub fn new(client: Client, table: impl Into<String>, soft_bounce_threshold: u32) -> Self {
        SuppressionWriter { client, table: table.into(), soft_bounce_threshold }
    }

    /// Applies what `event` does to its recipient's suppression; a retry changes nothing.
    /// The reason, when `event` newly suppresses its recipient.
    pub async fn record(&self, event: &Event) -> Result<Option<Reason>, SuppressionError> {
        let (Some(trigger), Some(recipient)) = (trigger(event), event.recipient.as_deref()) else { return Ok(None) };
        match trigger {
            Trigger::Suppress(reason) => self.suppress(recipient, reason, event).await,
            Trigger::SoftBounce => {
                let soft_bounces = self.count_soft_bounce(recipient, event).await?;
                if soft_bounces.is_some_and(|count| count >= self.soft_bounce_threshold) {
                    return self.suppress_after_soft_bounces(recipient, event).await;
                }
                Ok(None)
            }
        }
    }

    /// [`update_if`] of a webhook's write.
    async fn update_if(
        &self,
        recipient: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Item>, SuppressionError> {
        update_if(&self.client, &self.table, recipient, update, condition, values)
            .await
            .map_err(SuppressionError::Write)
    }

    /// Starts a suppression, or adds `event` to the one in force. The event's id goes into
    /// `counted_event_ids`, so its retry is refused by the condition, also after a lift.
    /// Providers deliver out of order: an event older than the recorded first trigger becomes
    /// the first (with its reason and time), and only a newer one becomes the latest.
    /// `reason` when `event` is the one that started the suppression in force.
    async fn suppress(
        &self,
        recipient: &str,
        reason: Reason,
        event: &Event,
    ) -> Result<Option<Reason>, SuppressionError> {
        let at = event.occurred_at_text();
        let list_sk = list_sort_key(&at, recipient);
        let update = "SET #recipient = :recipient, #suppressed = :true, #reason = if_not_exists(#reason, :reason), \
             #provider = if_not_exists(#provider, :provider), #since = if_not_exists(#since, :at), \
             #first_event_id = if_not_exists(#first_event_id, :event_id), \
             #first_event_at = if_not_exists(#first_event_at, :at), \
             #latest_event_id = if_not_exists(#latest_event_id, :event_id), \
             #latest_event_at = if_not_exists(#latest_event_at, :at), \
             #gsi3pk = :list, #gsi3sk = if_not_exists(#gsi3sk, :list_sk), #updated_at = :now \
             ADD #counted_event_ids :event_ids";
        let values = vec![
            (":recipient", text_value(recipient)),
            (":true", AttributeValue::Bool(true)),
            (":reason", text_value(reason.as_str())),
            (":provider", text_value(&event.provider)),
            (":at", text_value(&at)),
            (":event_id", text_value(&event.event_id)),
            (":event_ids", AttributeValue::Ss(vec![event.event_id.clone()])),
            (":list", text_value(LIST_PARTITION)),
            (":list_sk", text_value(&list_sk)),
            (":now", text_value(&format_timestamp(Utc::now()))),
        ];
        let condition = "NOT contains(#counted_event_ids, :event_id)";
        let Some(item) = self.update_if(recipient, update, condition, values).await? else { return Ok(None) };
        // `first_event_id` is set only where absent: by this event, unless one was in force.
        let started = text(&item, "first_event_id") == Some(event.event_id.as_str());
        if text(&item, "first_event_at").is_some_and(|first| first > at.as_str()) {
            // Makes `event` the first trigger, unless an even earlier one got there in between.
            let update = "SET #reason = :reason, #provider = :provider, #since = :at, #first_event_id = :event_id, \
                 #first_event_at = :at, #gsi3sk = :list_sk";
            let values = vec![
                (":reason", text_value(reason.as_str())),
                (":provider", text_value(&event.provider)),
                (":at", text_value(&at)),
                (":event_id", text_value(&event.event_id)),
                (":list_sk", text_value(&list_sk)),
                (":true", AttributeValue::Bool(true)),
            ];
            let condition = "#suppressed = :true AND #first_event_at > :at";
            self.update_if(recipient, update, condition, values).await?;
        }
        if text(&item, "latest_event_at").is_some_and(|latest| latest < at.as_str()) {
            // Makes `event` the latest trigger, unless a later one got there in between.
            let update = "SET #latest_event_id = :event_id, #latest_event_at = :at";
            let values = vec![(":event_id", text_value(&event.event_id)), (":at", text_value(&at))];
            self.update_if(recipient, update, "#latest_event_at < :at", values).await?;
        }
        Ok(started.then_some(reason))
    }

    /// Adds the bounced message to the recipient's soft bounces; the count of distinct
    /// messages, or `None` when the recipient is suppressed already. A provider retrying the
    /// message or the callback bounces the same message again, which the set counts once.
    async fn count_soft_bounce(&self, recipient: &str, event: &Event) -> Result<Option<u32>, SuppressionError> {
        let bounced_message = match &event.message_id {
            Some(message_id) => format!("{}#{message_id}", event.provider),
            None => format!("~{}", event.event_id),
        };
        let update =
            "SET #recipient = :recipient, #updated_at = :now ADD #soft_bounces :message, #counted_event_ids :event_ids";
        let values = vec![
            (":recipient", text_value(recipient)),
            (":now", text_value(&format_timestamp(Utc::now()))),
            (":message", AttributeValue::Ss(vec![bounced_message])),
            (":event_id", text_value(&event.event_id)),
            (":event_ids", AttributeValue::Ss(vec![event.event_id.clone()])),
        ];
        let condition = "NOT contains(#counted_event_ids, :event_id)";
        let item = match self.update_if(recipient, update, condition, values).await? {
            Some(item) => item,
            // Counted before: this is a retry, which may have been cut off before the
            // suppression that the count called for, so the count is read again.
            None => self.item(recipient).await?.unwrap_or_default(),
        };
        if item.contains_key("reason") {
            return Ok(None);
        }
        let count = item.get("soft_bounces").and_then(|set| set.as_ss().ok()).map_or(0, Vec::len);
        Ok(Some(u32::try_from(count).unwrap_or(u32::MAX)))
    }

    /// Suppresses for soft bounces unless a suppression is in force; the condition re-checks
    /// the count, so a lift in between is not undone.
    async fn suppress_after_soft_bounces(
        &self,
        recipient: &str,
        event: &Event,
    ) -> Result<Option<Reason>, SuppressionError> {
        let at = event.occurred_at_text();
        let update = "SET #suppressed = :true, #reason = :reason, #provider = :provider, #since = :at, \
             #first_event_id = :event_id, #first_event_at = :at, #latest_event_id = :event_id, \
             #latest_event_at = :at, #gsi3pk = :list, #gsi3sk = :list_sk, #updated_at = :now";
        let values = vec![
            (":true", AttributeValue::Bool(true)),
            (":reason", text_value(Reason::SoftBounces.as_str())),
            (":provider", text_value(&event.provider)),
            (":at", text_value(&at)),
            (":event_id", text_value(&event.event_id)),
            (":list", text_value(LIST_PARTITION)),
            (":list_sk", text_value(&list_sort_key(&at, recipient))),
            (":now", text_value(&format_timestamp(Utc::now()))),
            (":threshold", AttributeValue::N(self.soft_bounce_threshold.to_string())),
        ];
        let condition = "attribute_not_exists(#reason) AND size(#soft_bounces) >= :threshold";
        let suppressed = self.update_if(recipient, update, condition, values).await?;
        Ok(suppressed.map(|_| Reason::SoftBounces))
    }

    async fn item(&self, recipient: &str) -> Result<Option<Item>, SuppressionError> {
        get_item(&self.client, &self.table, recipient).await
    }
}

pub(crate) async fn get_item(client: &Client, table: &str, recipient: &str) -> Result<Option<Item>, SuppressionError> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(key(recipient)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|error| SuppressionError::Read(short_cause(&error)))?;
    Ok(output.item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn event(event_type: EventType) -> Event {
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().to_utc();
        let mut event = Event::new("sendpost", event_type, at, at, "{}");
        event.recipient = Some("a@x.com".into());
        event
    }

    #[test]
    fn triggers_follow_the_rules() {
        let mut hard = event(EventType::Bounced);
        hard.bounce_type = Some(BounceType::Hard);
        assert_eq!(trigger(&hard), Some(Trigger::Suppress(Reason::HardBounce)));
        let mut soft = event(EventType::Bounced);
        soft.bounce_type = Some(BounceType::Soft);
        assert_eq!(trigger(&soft), Some(Trigger::SoftBounce));
        assert_eq!(trigger(&event(EventType::Bounced)), Some(Trigger::SoftBounce));
        assert_eq!(trigger(&event(EventType::Complained)), Some(Trigger::Suppress(Reason::Complained)));
        assert_eq!(trigger(&event(EventType::Unsubscribed)), Some(Trigger::Suppress(Reason::Unsubscribed)));
        for harmless in [EventType::Delivered, EventType::Opened, EventType::Clicked, EventType::Deferred, EventType::Inbound] {
            assert_eq!(trigger(&event(harmless)), None, "{harmless}");
        }
        hard.recipient = None;
        assert_eq!(trigger(&hard), None);
    }

    #[test]
    fn only_rejections_of_the_address_suppress() {
        let mut invalid = event(EventType::Rejected);
        invalid.provider_event = Some("invalid_email".into());
        assert_eq!(trigger(&invalid), Some(Trigger::Suppress(Reason::InvalidAddress)));
        let mut said = event(EventType::Rejected);
        said.reason = Some("Invalid recipient address".into());
        assert_eq!(trigger(&said), Some(Trigger::Suppress(Reason::InvalidAddress)));
        let mut listed = event(EventType::Rejected);
        listed.reason = Some("recipient is on the suppression list".into());
        assert_eq!(trigger(&listed), None);
        assert_eq!(trigger(&event(EventType::Rejected)), None);
    }

    #[test]
    fn the_threshold_comes_from_the_environment() {
        assert_eq!(soft_bounce_threshold_from_env(&|_| None).unwrap(), 3);
        assert_eq!(soft_bounce_threshold_from_env(&|_| Some(" 5 ".into())).unwrap(), 5);
        for bad in ["0", "-1", "three", "101"] {
            assert!(soft_bounce_threshold_from_env(&|_| Some(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_name_of_an_expression_is_defined() {
        let names = expression_names(&["SET #a = :x, #b_2 = if_not_exists(#b_2, :y) ADD #c :z", "NOT contains(#c, :w)"]);
        let expected: HashMap<String, String> =
            [("#a", "a"), ("#b_2", "b_2"), ("#c", "c")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
        assert_eq!(names, expected);
    }

}
