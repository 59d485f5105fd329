//! Storing events in DynamoDB exactly once: one item per event ([`keys`]), `raw` compressed
//! ([`raw_codec`]) or, when too large for its item, in an S3 object ([`raw_object`]), and the
//! suppressions the events call for ([`suppressions`]).

pub mod keys;
pub mod raw_codec;
pub mod raw_object;
pub mod suppressions;

use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures_util::stream::{self, StreamExt};

use crate::aws_error::short_cause;
use aws_config::SdkConfig;

use crate::config::{events_table_from_env, ConfigError, Env};
use crate::receive::event::{Event, EventType};
use crate::store::keys::{item_size, EventKeys, Item};
use crate::store::raw_codec::encode_raw_within;
use crate::store::raw_object::{
    answer_bytes, RawObjectError, RawObjectRef, RawObjects, ANSWER_BYTES, RAW_BUCKET, RAW_OBJECT_ATTRIBUTE,
};
use crate::store::suppressions::{
    soft_bounce_threshold_from_env, Reason, SuppressionError, SuppressionWriter, DEFAULT_SOFT_BOUNCE_THRESHOLD,
};

/// Puts in flight at once for one request's batch.
const CONCURRENT_PUTS: usize = 16;
/// The largest item written, by [`item_size`]; DynamoDB's limit is 400 KB (409,600 bytes).
/// [`item_size`] counts attribute names and keys already, so the 51,200 bytes of margin only
/// absorb its approximations (numbers) and keep the write cost of one item at most 350 units.
/// An event whose item with `raw` would be larger keeps `raw` in an S3 object (`raw_object`).
pub const MAX_ITEM_BYTES: usize = 350 * 1024;

/// What a request's events did to the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// The type of each event newly written, in the request's order.
    pub stored: Vec<EventType>,
    /// Events already there from an earlier delivery.
    pub duplicates: usize,
    /// Why each recipient these events newly suppressed is suppressed.
    pub suppressed: Vec<Reason>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an event cannot be encoded as an item: {0}")]
    Encode(#[source] serde_dynamo::Error),
    #[error("writing an event failed: {0}")]
    Write(String),
    #[error(
        "an event's raw ({bytes} bytes) does not fit in an item and {RAW_BUCKET} is not set, \
         so it cannot be stored without loss"
    )]
    NoRawBucket { bytes: usize },
    #[error("writing an event's raw object failed: {0}")]
    RawObject(#[source] RawObjectError),
    #[error(transparent)]
    Suppression(#[from] SuppressionError),
}

/// Where events go. The webhook handlers depend on this, not on DynamoDB.
pub trait EventStore: Send + Sync {
    /// Writes every event that is not stored yet. An error means some may not be stored; a
    /// retry of the same events is always safe.
    fn put_events(&self, events: &[Event]) -> impl Future<Output = Result<StoreReport, StoreError>> + Send;
}

/// The events table: one item per event, written only if absent, and the suppressions the
/// events call for.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention_days: u32,
    suppressions: SuppressionWriter,
    /// Where `raw` goes when its item would be too large; `None` makes such an event a 500.
    raw_objects: Option<RawObjects>,
}

/// One event's item, and the object to write first when its `raw` is not in the item.
struct PlannedItem {
    item: Item,
    raw_object: Option<RawObjectRef>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retention_days: u32) -> Self {
        let table = table.into();
        let suppressions = SuppressionWriter::new(client.clone(), table.clone(), DEFAULT_SOFT_BOUNCE_THRESHOLD);
        DynamoStore { client, table, retention_days, suppressions, raw_objects: None }
    }

    /// The bucket for `raw` that does not fit in its item.
    pub fn with_raw_objects(mut self, raw_objects: RawObjects) -> Self {
        self.raw_objects = Some(raw_objects);
        self
    }

    /// Soft bounces of distinct messages that suppress a recipient.
    pub fn with_soft_bounce_threshold(mut self, threshold: u32) -> Self {
        self.suppressions = SuppressionWriter::new(self.client.clone(), self.table.clone(), threshold);
        self
    }

    /// `EVENTS_TABLE`, `RETENTION_DAYS`, `SOFT_BOUNCE_THRESHOLD` and `RAW_BUCKET` from `env`;
    /// region, credentials and endpoints (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3`
    /// locally) from `config` ([`sdk_config`](crate::config::sdk_config)). Both clients are built here, once per cold start.
    pub fn from_env(env: Env<'_>, config: &SdkConfig) -> Result<Self, ConfigError> {
        let table = events_table_from_env(env)?;
        let retention_days = match env("RETENTION_DAYS").as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(days) => days.parse().map_err(|_| ConfigError::Invalid {
                name: "RETENTION_DAYS",
                expected: "a whole number of days (0 keeps events forever)",
            })?,
        };
        let threshold = soft_bounce_threshold_from_env(env)?;
        let store = DynamoStore::new(Client::new(config), table, retention_days).with_soft_bounce_threshold(threshold);
        Ok(match RawObjects::from_env(env, config) {
            Some(raw_objects) => store.with_raw_objects(raw_objects),
            None => {
                tracing::warn!(
                    "{RAW_BUCKET} is not set: an event too large for one item will be answered 500, not stored"
                );
                store
            }
        })
    }

    /// The item for one event: its attributes, the table's keys and TTL, and `raw` in its
    /// stored encoding, or `raw_object` instead when the item with `raw` would be larger than
    /// [`MAX_ITEM_BYTES`] or `raw` could not be answered inline ([`ANSWER_BYTES`]); the
    /// object itself is written by [`EventStore::put_events`].
    pub fn item(&self, event: &Event) -> Result<Item, StoreError> {
        Ok(self.plan(event)?.item)
    }

    fn plan(&self, event: &Event) -> Result<PlannedItem, StoreError> {
        let mut item = self.item_without_raw(event)?;
        let room = MAX_ITEM_BYTES.saturating_sub(item_size(&item) + "raw".len());
        // Escaping at most doubles a text, so only a long one needs counting.
        let answerable_inline =
            event.raw.len() as u64 * 2 <= ANSWER_BYTES || answer_bytes(&event.raw) <= ANSWER_BYTES;
        let inline =
            answerable_inline.then(|| encode_raw_within(&event.provider, &event.raw, &item, room)).flatten();
        if let Some(raw) = inline {
            item.insert("raw".into(), raw);
            return Ok(PlannedItem { item, raw_object: None });
        }
        let reference = RawObjectRef::of(&event.provider, &event.event_id, event.raw.as_bytes());
        item.insert(RAW_OBJECT_ATTRIBUTE.into(), reference.to_attribute());
        Ok(PlannedItem { item, raw_object: Some(reference) })
    }

    fn item_without_raw(&self, event: &Event) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(event)
            .map_err(StoreError::Encode)?;
        for value in item.values_mut() {
            shorten_long_texts(value);
        }
        let keys = EventKeys::of(event);
        item.insert("pk".into(), AttributeValue::S(keys.pk));
        // Both event indexes sort on `sk` itself: a copy under another name would cost every
        // item and index entry its bytes again.
        item.insert("sk".into(), AttributeValue::S(keys.sk));
        if let Some(recipient_pk) = keys.gsi1pk {
            item.insert("gsi1pk".into(), AttributeValue::S(recipient_pk));
        }
        item.insert("gsi2pk".into(), AttributeValue::S(keys.gsi2pk));
        if self.retention_days > 0 {
            let expires_at = event.received_at.timestamp() + i64::from(self.retention_days) * 86_400;
            item.insert("expires_at".into(), AttributeValue::N(expires_at.to_string()));
        }
        Ok(item)
    }

    /// Writes one event unless an item with its key exists; `Ok(false)` for a duplicate.
    ///
    /// An overflow object is written first, under its deterministic key, and the item only
    /// after it: an item never points at a missing object, and a retry rewrites the same bytes.
    async fn put_if_absent(&self, event: &Event) -> Result<bool, StoreError> {
        let PlannedItem { item, raw_object } = self.plan(event)?;
        if let Some(reference) = raw_object {
            let raw_objects = self.raw_objects.as_ref().ok_or(StoreError::NoRawBucket { bytes: event.raw.len() })?;
            raw_objects.put(&reference, event.raw.as_bytes()).await.map_err(StoreError::RawObject)?;
        }
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(failure))
                if matches!(failure.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(error) => Err(StoreError::Write(short_cause(&error))),
        }
    }

    /// Stores one event, then applies what it does to its recipient's suppression: whether it
    /// was newly written, and the reason its recipient is newly suppressed. A duplicate is
    /// applied too: the request that first stored it may have failed before.
    async fn store(&self, event: &Event) -> Result<(bool, Option<Reason>), StoreError> {
        let written = self.put_if_absent(event).await?;
        let suppressed = self.suppressions.record(event).await?;
        Ok((written, suppressed))
    }
}

impl EventStore for DynamoStore {
    async fn put_events(&self, events: &[Event]) -> Result<StoreReport, StoreError> {
        // Every put runs to completion even when one fails, so a retry has less left to do.
        let puts: Vec<_> = events.iter().map(|event| self.store(event)).collect();
        let outcomes: Vec<Result<(bool, Option<Reason>), StoreError>> =
            stream::iter(puts).buffered(CONCURRENT_PUTS).collect().await;
        let mut report = StoreReport::default();
        for (event, outcome) in events.iter().zip(outcomes) {
            let (written, suppressed) = outcome?;
            if written {
                report.stored.push(event.event_type);
            } else {
                report.duplicates += 1;
            }
            report.suppressed.extend(suppressed);
        }
        Ok(report)
    }
}

/// Longest text kept whole in a normalized attribute (subject, reason, metadata, ...).
pub const MAX_ATTRIBUTE_TEXT_BYTES: usize = 16 * 1024;

/// Normalized attributes are copies of parts of `raw`: a megabyte subject copied whole would
/// push the item past DynamoDB's 400 KB, a refusal answered 500 forever. Such a text is cut at
/// [`MAX_ATTRIBUTE_TEXT_BYTES`] and ends with `…`; `raw` keeps it whole.
fn shorten_long_texts(value: &mut AttributeValue) {
    match value {
        AttributeValue::S(text) if text.len() > MAX_ATTRIBUTE_TEXT_BYTES => {
            let mut end = MAX_ATTRIBUTE_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        AttributeValue::M(map) => map.values_mut().for_each(shorten_long_texts),
        AttributeValue::L(items) => items.iter_mut().for_each(shorten_long_texts),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::tests::event;
    use crate::store::raw_codec::decode_raw;
    use aws_config::BehaviorVersion;

    #[test]
    fn long_attribute_texts_are_cut_and_raw_is_not() {
        let mut event = event();
        event.subject = Some("é".repeat(MAX_ATTRIBUTE_TEXT_BYTES));
        event.metadata.insert("custom_args".into(), serde_json::json!({"note": "n".repeat(MAX_ATTRIBUTE_TEXT_BYTES + 1)}));
        event.raw = "r".repeat(3 * MAX_ATTRIBUTE_TEXT_BYTES);
        let client = Client::from_conf(
            aws_sdk_dynamodb::Config::builder().behavior_version(BehaviorVersion::latest()).build(),
        );
        let item = DynamoStore::new(client, "t", 0).item(&event).unwrap();
        let subject = item["subject"].as_s().unwrap();
        assert!(subject.len() <= MAX_ATTRIBUTE_TEXT_BYTES + '…'.len_utf8() && subject.ends_with('…'));
        assert!(subject.starts_with(&"é".repeat(100)));
        let note = item["metadata"].as_m().unwrap()["custom_args"].as_m().unwrap()["note"].as_s().unwrap();
        assert!(note.ends_with('…'));
        assert_eq!(decode_raw(&item["raw"], &item).unwrap(), event.raw);
    }

}
