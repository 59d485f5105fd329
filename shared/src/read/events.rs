//! Reading events back: a Query per partition, merged in order.
//!
//! A query reads one partition (a message, a recipient) or eight (the `by_type` shards of a
//! type and day). Each partition is a lane; the page takes items from whichever lane's next
//! item comes first in the requested order, so the merged page is in order and a cursor can
//! say exactly how far each lane got. Only `dynamodb:Query` is used, on the table and indexes.

use std::collections::{HashMap, VecDeque};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures_util::future::try_join_all;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use crate::aws_error::short_cause;
use crate::config::ConfigError;
use crate::config::Env;
use aws_config::SdkConfig;

use crate::config::events_table_from_env;
use crate::read::cursor::{ItemKey, LaneCursor};
use crate::read::query::{EventQuery, Order, Partition, Selector, SortKeyRange};
use crate::store::keys::{item_size, Item};
use crate::store::raw_object::{
    answer_bytes, RawObjectError, RawObjectRef, RawObjects, ANSWER_BYTES, RAW_BUCKET, RAW_OBJECT_ATTRIBUTE,
};

/// Key attributes are how the table is organized, not part of an event.
const KEY_ATTRIBUTES: [&str; 4] = ["pk", "sk", "gsi1pk", "gsi2pk"];
/// Events live under `MSG#` keys; other items sharing the table (suppressions) are not events.
const EVENT_PK_PREFIX: &str = "MSG#";
/// Base-table lookups of `raw` in flight at once for one page.
const CONCURRENT_RAW_READS: usize = 16;
/// Overflow objects (up to about 6 MB each) read at once for one page: bounds memory.
const CONCURRENT_OBJECT_READS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("querying {target} failed: {cause}")]
    Query { target: &'static str, cause: String },
    #[error("an item of {target} has no text {attribute}")]
    MissingKey { target: &'static str, attribute: &'static str },
    #[error("an item cannot be turned into JSON: {0}")]
    Decode(#[source] serde_dynamo::Error),
    #[error("an item's raw payload is not JSON text")]
    UnreadableRaw,
    #[error("an item's {RAW_OBJECT_ATTRIBUTE} is not a map of key, sha256 and bytes")]
    MalformedRawObject,
    #[error("an item keeps raw in an overflow object but {RAW_BUCKET} is not set")]
    NoRawBucket,
    #[error("reading an overflow object: {0}")]
    RawObject(#[from] RawObjectError),
}

/// One page of events and, unless every lane is read to its end, where each lane resumes.
#[derive(Debug)]
pub struct EventPage {
    pub events: Vec<Value>,
    pub next: Option<Vec<LaneCursor>>,
}

/// Where a selector's events are: the table or one of its indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Table,
    ByRecipient,
    ByType,
}

impl Source {
    fn of(selector: &Selector) -> Self {
        match selector {
            Selector::Message { .. } => Source::Table,
            Selector::Recipient(_) => Source::ByRecipient,
            Selector::TypeOnDay { .. } => Source::ByType,
        }
    }

    fn index_name(self) -> Option<&'static str> {
        match self {
            Source::Table => None,
            Source::ByRecipient => Some("by_recipient"),
            Source::ByType => Some("by_type"),
        }
    }

    /// For error messages and logs.
    fn name(self) -> &'static str {
        self.index_name().unwrap_or("the table")
    }

    fn partition_attribute(self) -> &'static str {
        match self {
            Source::Table => "pk",
            Source::ByRecipient => "gsi1pk",
            Source::ByType => "gsi2pk",
        }
    }

    /// The ExclusiveStartKey that resumes right after `item`: the table's key, plus the
    /// index's partition key on an index (the indexes sort on the table's `sk`; for the table
    /// the partition key is `pk` itself).
    fn start_key(self, partition: &str, item: &ItemKey) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(item.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(item.sk.clone())),
            (self.partition_attribute().to_owned(), AttributeValue::S(partition.to_owned())),
        ])
    }
}

/// An item with its key, read from a lane.
struct Entry {
    key: ItemKey,
    item: Item,
}

/// An event of a page being answered, and the lane it came from.
struct Taken {
    lane: usize,
    entry: Entry,
    /// Its `raw` is too large for any answer: answered with the object's key instead.
    raw_by_key: bool,
}

/// What DynamoDB still holds for a lane beyond the items already buffered.
enum Unread {
    /// Maybe more: continue from this ExclusiveStartKey (`None`: from the beginning).
    From(Option<Item>),
    Nothing,
}

/// One partition's progress through a page.
struct Lane {
    partition: String,
    /// Where this page started in the lane, for a page cut short.
    start: LaneCursor,
    buffered: VecDeque<Entry>,
    unread: Unread,
    /// The last item handed out, or where the page started: the next page resumes after it.
    resume_after: Option<ItemKey>,
}

impl Lane {
    fn new(source: Source, partition: &Partition) -> Self {
        let (unread, resume_after) = match &partition.resume {
            LaneCursor::Start => (Unread::From(None), None),
            LaneCursor::After(key) => (Unread::From(Some(source.start_key(&partition.key, key))), Some(key.clone())),
            LaneCursor::Done => (Unread::Nothing, None),
        };
        Lane {
            partition: partition.key.clone(),
            start: partition.resume.clone(),
            buffered: VecDeque::new(),
            unread,
            resume_after,
        }
    }

    fn needs_reading(&self) -> bool {
        self.buffered.is_empty() && matches!(self.unread, Unread::From(_))
    }

    fn cursor(&self) -> LaneCursor {
        if self.buffered.is_empty() && matches!(self.unread, Unread::Nothing) {
            return LaneCursor::Done;
        }
        match &self.resume_after {
            Some(key) => LaneCursor::After(key.clone()),
            None => LaneCursor::Start,
        }
    }
}

/// Reads the events table; needs `dynamodb:Query` on the table and its indexes, nothing else.
#[derive(Clone, Debug)]
pub struct EventReader {
    client: Client,
    table: String,
    /// Where `raw` is when an item holds `raw_object` instead (needs `s3:GetObject` only).
    raw_objects: Option<RawObjects>,
}

impl EventReader {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        EventReader { client, table: table.into(), raw_objects: None }
    }

    /// The bucket of overflow objects, for `include_raw`.
    pub fn with_raw_objects(mut self, raw_objects: RawObjects) -> Self {
        self.raw_objects = Some(raw_objects);
        self
    }

    /// `EVENTS_TABLE` and `RAW_BUCKET` from `env`; region, credentials and endpoints from the
    /// standard AWS chain, as `config` ([`sdk_config`](crate::config::sdk_config)) holds them.
    pub fn from_env(env: Env<'_>, config: &SdkConfig) -> Result<Self, ConfigError> {
        let table = events_table_from_env(env)?;
        let reader = EventReader::new(Client::new(config), table);
        Ok(match RawObjects::from_env(env, config) {
            Some(raw_objects) => reader.with_raw_objects(raw_objects),
            None => reader,
        })
    }

    pub async fn read(&self, query: &EventQuery) -> Result<EventPage, ReadError> {
        let source = Source::of(&query.selector);
        let mut lanes: Vec<Lane> = query.partitions.iter().map(|partition| Lane::new(source, partition)).collect();
        let mut taken = Vec::with_capacity(query.limit);
        loop {
            // One item past what the page still needs shows whether a lane goes on, which
            // usually spares a separate read to decide on `next_cursor`.
            self.read_empty_lanes(query, source, &mut lanes, query.limit - taken.len() + 1).await?;
            if taken.len() == query.limit {
                break;
            }
            let Some(next) = take_next(&mut lanes, query.order) else { break };
            if next.entry.key.pk.starts_with(EVENT_PK_PREFIX) {
                taken.push(next);
            }
        }
        let mut cursors: Vec<LaneCursor> = lanes.iter().map(Lane::cursor).collect();
        if query.include_raw {
            self.add_raw_within_one_answer(source, &mut taken, &mut cursors, &lanes).await?;
        }
        let next = cursors.iter().any(|cursor| *cursor != LaneCursor::Done).then_some(cursors);
        let events = taken
            .into_iter()
            .map(|taken| event_json(taken.entry.item, query.include_raw, taken.raw_by_key))
            .collect::<Result<_, _>>()?;
        Ok(EventPage { events, next })
    }

    /// Adds `raw` to the page's events, ending the page early where one Lambda answer could
    /// not carry them all (see [`cut_page`]). Objects are first counted by their size, which
    /// is never more than they take, so only events that cannot fit are dropped before any
    /// object is read; then exactly, once read.
    async fn add_raw_within_one_answer(
        &self,
        source: Source,
        taken: &mut Vec<Taken>,
        cursors: &mut [LaneCursor],
        lanes: &[Lane],
    ) -> Result<(), ReadError> {
        if source != Source::Table {
            self.add_raw_from_table(taken).await?;
        }
        for taken in taken.iter_mut() {
            prepare_raw(taken)?;
        }
        cut_page(taken, cursors, lanes, |taken| answer_size(taken, true))?;
        self.add_raw_from_objects(taken).await?;
        cut_page(taken, cursors, lanes, |taken| answer_size(taken, false))?;
        if let [only] = taken.as_mut_slice() {
            let has_object = only.entry.item.contains_key(RAW_OBJECT_ATTRIBUTE);
            only.raw_by_key |= has_object && answer_size(only, false)? > ANSWER_BYTES;
        }
        Ok(())
    }

    /// Reads on in every lane that has nothing buffered but may hold more. Choosing the next
    /// item is only right when every such lane shows its next item, else an item it has not
    /// returned yet could belong before the one chosen.
    async fn read_empty_lanes(
        &self,
        query: &EventQuery,
        source: Source,
        lanes: &mut [Lane],
        limit: usize,
    ) -> Result<(), ReadError> {
        // DynamoDB may answer a Query with no items but a LastEvaluatedKey: read on then.
        while lanes.iter().any(Lane::needs_reading) {
            let reads = lanes
                .iter_mut()
                .filter(|lane| lane.needs_reading())
                .map(|lane| self.read_lane(query, source, lane, limit));
            try_join_all(reads).await?;
        }
        Ok(())
    }

    async fn read_lane(
        &self,
        query: &EventQuery,
        source: Source,
        lane: &mut Lane,
        limit: usize,
    ) -> Result<(), ReadError> {
        let Unread::From(start) = &lane.unread else { return Ok(()) };
        let (condition, values) = key_condition(source, &lane.partition, &query.range);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(source.index_name().map(str::to_owned))
            .key_condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(query.order == Order::OldestFirst)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .map_err(|error| ReadError::Query {
                target: source.name(),
                cause: short_cause(&error),
            })?;
        for item in output.items.unwrap_or_default() {
            lane.buffered.push_back(entry(source, item)?);
        }
        lane.unread = match output.last_evaluated_key {
            Some(key) => Unread::From(Some(key)),
            None => Unread::Nothing,
        };
        Ok(())
    }

    /// The indexes leave `raw` out, so it comes from the table. One Query per item on its
    /// full key keeps the function's permissions to Query alone.
    async fn add_raw_from_table(&self, taken: &mut [Taken]) -> Result<(), ReadError> {
        // Collected first: a lazy stream of these futures trips the compiler's Send check.
        let reads: Vec<_> = taken.iter().map(|taken| self.stored_raw(&taken.entry.key)).collect();
        let raws: Vec<Item> = stream::iter(reads).buffered(CONCURRENT_RAW_READS).try_collect().await?;
        // Empty when the item expired in between; the event is still answered without it.
        for (taken, raw) in taken.iter_mut().zip(raws) {
            taken.entry.item.extend(raw);
        }
        Ok(())
    }

    /// `raw` of the items that keep it in an overflow object, read and checked against the
    /// SHA-256 the item records: a mismatch is an error, never wrong data. Objects answered by
    /// their key are not read.
    async fn add_raw_from_objects(&self, taken: &mut [Taken]) -> Result<(), ReadError> {
        let references = taken
            .iter()
            .enumerate()
            .filter(|(_, taken)| !taken.raw_by_key)
            .filter_map(|(index, taken)| taken.entry.item.get(RAW_OBJECT_ATTRIBUTE).map(|value| (index, value)))
            .map(|(index, value)| RawObjectRef::from_attribute(value).map(|reference| (index, reference)))
            .collect::<Option<Vec<_>>>()
            .ok_or(ReadError::MalformedRawObject)?;
        if references.is_empty() {
            return Ok(());
        }
        let raw_objects = self.raw_objects.as_ref().ok_or(ReadError::NoRawBucket)?;
        let now = chrono::Utc::now().timestamp();
        let reads: Vec<_> = references
            .into_iter()
            .map(|(index, reference)| {
                let expired = expires_at(&taken[index].entry.item).is_some_and(|expires_at| expires_at <= now);
                async move {
                    match raw_objects.get(&reference).await {
                        Ok(bytes) => Ok((index, Some(bytes))),
                        // The bucket's lifecycle may remove an expired event's object before
                        // DynamoDB's TTL removes its item: answered without raw, as an expired
                        // item. (Without s3:ListBucket, S3 answers a missing key with 403, so
                        // any failure but a mismatch counts as gone for an expired event.)
                        Err(error) if expired && !matches!(error, RawObjectError::Mismatch) => {
                            Ok((index, None))
                        }
                        Err(error) => Err(ReadError::RawObject(error)),
                    }
                }
            })
            .collect();
        let raws: Vec<(usize, Option<Vec<u8>>)> =
            stream::iter(reads).buffered(CONCURRENT_OBJECT_READS).try_collect().await?;
        for (index, bytes) in raws {
            if let Some(bytes) = bytes {
                let text = String::from_utf8(bytes).map_err(|_| ReadError::UnreadableRaw)?;
                taken[index].entry.item.insert("raw".to_owned(), AttributeValue::S(text));
            }
        }
        Ok(())
    }

    /// The item's `raw` and `raw_object` (whichever it has), by its full key.
    async fn stored_raw(&self, key: &ItemKey) -> Result<Item, ReadError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk = :sk")
            .expression_attribute_values(":pk", AttributeValue::S(key.pk.clone()))
            .expression_attribute_values(":sk", AttributeValue::S(key.sk.clone()))
            // RAW is a DynamoDB reserved word.
            .projection_expression("#raw, raw_object")
            .expression_attribute_names("#raw", "raw")
            .send()
            .await
            .map_err(|error| ReadError::Query {
                target: Source::Table.name(),
                cause: short_cause(&error),
            })?;
        Ok(output.items.unwrap_or_default().into_iter().next().unwrap_or_default())
    }
}

/// `partition = :partition`, narrowed to the time range on the sort key (`sk`, on the table and
/// both event indexes), so DynamoDB reads only matching items (a filter would read and bill the
/// whole partition).
fn key_condition(source: Source, partition: &str, range: &SortKeyRange) -> (String, Item) {
    let mut values = HashMap::from([(":partition".to_owned(), AttributeValue::S(partition.to_owned()))]);
    let mut text_value = |name: &str, text: &str| values.insert(name.to_owned(), AttributeValue::S(text.to_owned()));
    let range_condition = match (&range.since, &range.until) {
        // BETWEEN includes its upper bound, but no sort key equals `until`: each continues
        // with `#{event_id}`, so events at `until` sort after it and stay out, as with `<`.
        (Some(since), Some(until)) => {
            text_value(":since", since);
            text_value(":until", until);
            " AND sk BETWEEN :since AND :until"
        }
        (Some(since), None) => {
            text_value(":since", since);
            " AND sk >= :since"
        }
        (None, Some(until)) => {
            text_value(":until", until);
            " AND sk < :until"
        }
        (None, None) => "",
    };
    (format!("{} = :partition{range_condition}", source.partition_attribute()), values)
}

fn entry(source: Source, item: Item) -> Result<Entry, ReadError> {
    let text = |attribute: &'static str| {
        item.get(attribute)
            .and_then(|value| value.as_s().ok())
            .cloned()
            .ok_or(ReadError::MissingKey { target: source.name(), attribute })
    };
    let key = ItemKey { pk: text("pk")?, sk: text("sk")? };
    Ok(Entry { key, item })
}

/// Takes the buffered item that comes next in `order` across all lanes. The table and both
/// indexes sort on the same `sk`, `{occurred_at}#{event_id}`, which is unique.
fn take_next(lanes: &mut [Lane], order: Order) -> Option<Taken> {
    let comes_first = |candidate: &str, best: &str| match order {
        Order::NewestFirst => candidate > best,
        Order::OldestFirst => candidate < best,
    };
    let mut next: Option<(usize, &str)> = None;
    for (index, lane) in lanes.iter().enumerate() {
        if let Some(front) = lane.buffered.front() {
            if next.is_none_or(|(_, best)| comes_first(&front.key.sk, best)) {
                next = Some((index, &front.key.sk));
            }
        }
    }
    let index = next?.0;
    let lane = &mut lanes[index];
    let entry = lane.buffered.pop_front()?;
    lane.resume_after = Some(entry.key.clone());
    Some(Taken { lane: index, entry, raw_by_key: false })
}

/// Decodes a compressed `raw` once, so it can be measured; marks an object larger than any
/// answer to be answered by its key.
fn prepare_raw(taken: &mut Taken) -> Result<(), ReadError> {
    let item = &mut taken.entry.item;
    if let Some(value) = item.get(RAW_OBJECT_ATTRIBUTE) {
        let reference = RawObjectRef::from_attribute(value).ok_or(ReadError::MalformedRawObject)?;
        taken.raw_by_key = reference.bytes > ANSWER_BYTES;
    } else if let Some(stored @ AttributeValue::B(_)) = item.get("raw") {
        let text = crate::store::raw_codec::decode_raw(stored, item).map_err(|_| ReadError::UnreadableRaw)?;
        item.insert("raw".to_owned(), AttributeValue::S(text));
    }
    Ok(())
}

/// What the event takes in the answer: its `raw` exactly ([`answer_bytes`]), or for an object
/// not read yet its size when `unread_objects_by_size` (never more than it takes), and its other
/// attributes generously (twice their DynamoDB size and some punctuation, as quotes and
/// backslashes are escaped twice).
fn answer_size(taken: &Taken, unread_objects_by_size: bool) -> Result<u64, ReadError> {
    let item = &taken.entry.item;
    let raw = item.get("raw").and_then(|raw| raw.as_s().ok());
    let attributes = item_size(item) - raw.map_or(0, |text| "raw".len() + text.len());
    let others = 2 * (attributes + 16 * item.len()) as u64;
    if taken.raw_by_key {
        return Ok(others);
    }
    if let Some(text) = raw {
        return Ok(others + answer_bytes(text));
    }
    match item.get(RAW_OBJECT_ATTRIBUTE) {
        Some(value) if unread_objects_by_size => {
            Ok(others + RawObjectRef::from_attribute(value).ok_or(ReadError::MalformedRawObject)?.bytes)
        }
        _ => Ok(others),
    }
}

/// Ends the page before the event that would take its answer past [`ANSWER_BYTES`]
/// (after one event at least, so every page moves on). A lane that loses events resumes after
/// the last one it kept, or where the page started in it, so nothing is skipped or repeated.
fn cut_page(
    taken: &mut Vec<Taken>,
    cursors: &mut [LaneCursor],
    lanes: &[Lane],
    answer_size: impl Fn(&Taken) -> Result<u64, ReadError>,
) -> Result<(), ReadError> {
    let mut total = 0;
    let mut fits = taken.len();
    for (index, event) in taken.iter().enumerate() {
        total += answer_size(event)?;
        if total > ANSWER_BYTES && index > 0 {
            fits = index;
            break;
        }
    }
    let (kept, dropped) = taken.split_at(fits);
    for (lane, cursor) in cursors.iter_mut().enumerate() {
        if dropped.iter().any(|event| event.lane == lane) {
            *cursor = match kept.iter().rev().find(|event| event.lane == lane) {
                Some(last) => LaneCursor::After(last.entry.key.clone()),
                None => lanes[lane].start.clone(),
            };
        }
    }
    taken.truncate(fits);
    Ok(())
}

/// The event's attributes as JSON, without the table's keys, with `raw` only when asked for
/// (or, for `raw_by_key`, the object's key instead).
fn event_json(mut item: Item, include_raw: bool, raw_by_key: bool) -> Result<Value, ReadError> {
    for attribute in KEY_ATTRIBUTES {
        item.remove(attribute);
    }
    let raw = item.remove("raw");
    let raw_object = item.remove(RAW_OBJECT_ATTRIBUTE).and_then(|value| RawObjectRef::from_attribute(&value));
    let answered = match (raw, raw_object) {
        (_, Some(RawObjectRef { key, sha256, bytes })) if include_raw && raw_by_key => {
            Some((RAW_OBJECT_ATTRIBUTE, serde_json::json!({"key": key, "sha256": sha256, "bytes": bytes})))
        }
        (Some(raw), _) if include_raw => Some(("raw", raw_json(raw, &item)?)),
        _ => None,
    };
    let mut event: Map<String, Value> = serde_dynamo::from_item(item).map_err(ReadError::Decode)?;
    if let Some((name, value)) = answered {
        event.insert(name.to_owned(), value);
    }
    Ok(Value::Object(event))
}

/// `expires_at`, the TTL attribute, as epoch seconds.
fn expires_at(item: &Item) -> Option<i64> {
    item.get("expires_at").and_then(|value| value.as_n().ok()).and_then(|number| number.parse().ok())
}

/// The provider's event as JSON; text that does not parse is answered as the text itself.
fn raw_json(stored: AttributeValue, item: &Item) -> Result<Value, ReadError> {
    // Text (inline, decoded for measuring, or read from its object) is used as it is: copying
    // megabytes of inbound mail once more would be wasted.
    let text = match stored {
        AttributeValue::S(text) => text,
        compressed => crate::store::raw_codec::decode_raw(&compressed, item).map_err(|_| ReadError::UnreadableRaw)?,
    };
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(since: Option<&str>, until: Option<&str>) -> SortKeyRange {
        SortKeyRange { since: since.map(Into::into), until: until.map(Into::into) }
    }

    #[test]
    fn the_time_range_is_part_of_the_key_condition() {
        let (condition, values) =
            key_condition(Source::ByType, "TYPE#bounced#2024-05-01#3", &range(Some("a"), Some("b")));
        assert_eq!(condition, "gsi2pk = :partition AND sk BETWEEN :since AND :until");
        assert_eq!(values.len(), 3);
        let (condition, _) = key_condition(Source::Table, "MSG#engagelab#m-1", &range(Some("a"), None));
        assert_eq!(condition, "pk = :partition AND sk >= :since");
        let (condition, _) = key_condition(Source::ByRecipient, "RCPT#a@x.com", &range(None, Some("b")));
        assert_eq!(condition, "gsi1pk = :partition AND sk < :until");
        let (condition, values) = key_condition(Source::ByRecipient, "RCPT#a@x.com", &range(None, None));
        assert_eq!((condition.as_str(), values.len()), ("gsi1pk = :partition", 1));
    }

    #[test]
    fn an_index_start_key_carries_the_table_key_and_the_index_partition() {
        let item = ItemKey { pk: "MSG#sendpost#m".into(), sk: "2024-05-01T00:00:00.000Z#ab".into() };
        let key = Source::ByRecipient.start_key("RCPT#a@x.com", &item);
        assert_eq!(key.len(), 3);
        assert_eq!(key["gsi1pk"], AttributeValue::S("RCPT#a@x.com".into()));
        assert_eq!(key["sk"], AttributeValue::S(item.sk.clone()));
        let key = Source::ByType.start_key("TYPE#opened#2024-05-01#3", &item);
        assert_eq!(key.keys().filter(|name| name.starts_with("gsi")).collect::<Vec<_>>(), ["gsi2pk"]);
        assert_eq!(Source::Table.start_key("MSG#sendpost#m", &item).len(), 2);
    }

    #[test]
    fn events_leave_out_keys_and_raw_unless_asked() {
        let item: Item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("MSG#x#m".into())),
            ("gsi2pk".to_owned(), AttributeValue::S("TYPE#opened#2024-05-01#3".into())),
            ("event_id".to_owned(), AttributeValue::S("e".into())),
            ("smtp_code".to_owned(), AttributeValue::N("550".into())),
            ("raw".to_owned(), AttributeValue::S(r#"{"a": 1}"#.into())),
        ]);
        let without_raw = serde_json::json!({"event_id": "e", "smtp_code": 550});
        assert_eq!(event_json(item.clone(), false, false).unwrap(), without_raw);
        assert_eq!(event_json(item, true, false).unwrap()["raw"], serde_json::json!({"a": 1}));
    }

    #[test]
    fn raw_that_is_not_json_stays_text() {
        assert_eq!(raw_json(AttributeValue::S("not {json".into()), &Item::new()).unwrap(), Value::String("not {json".into()));
    }
}
