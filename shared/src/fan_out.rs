//! Fan-out to Amazon EventBridge: `events-publisher` reads the table's DynamoDB stream and puts
//! one entry per newly stored event (`Email Event`) and per change of a suppression
//! (`Suppression Changed`) on the bus named by `EVENT_BUS_NAME`.
//!
//! A duplicate delivery writes nothing, so it never reaches the stream. Lambda may hand a batch
//! over again, so an event can be published more than once: consumers dedupe on `event_id`.
//! Entries EventBridge refuses are tried again within the invocation, then reported as batch
//! item failures, which Lambda retries and finally hands to the on-failure destination: a
//! record is published or reported, never dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::error::SdkError;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::aws_error::short_cause;
use crate::config::{ConfigError, Env};

pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
pub const SOURCE: &str = "mailhooks";
pub const EMAIL_EVENT: &str = "Email Event";
pub const SUPPRESSION_CHANGED: &str = "Suppression Changed";
/// EventBridge's limits: entries per PutEvents, and bytes of one entry and of one request.
pub const MAX_ENTRIES_PER_REQUEST: usize = 10;
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// PutEvents rounds per invocation: the first try and two more for the entries refused.
const ROUNDS: u32 = 3;
/// Waited before the second round, doubled before each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Kept from the invocation's time for answering Lambda with the records not published.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// PutEvents calls in flight at once.
const CONCURRENT_PUTS: usize = 4;
/// The attributes of a normalized event that `Email Event` carries: every one but the
/// provider's payload (`raw`, `raw_object`), the table's keys and the TTL. Named one by one
/// rather than by leaving names out of the item, so nothing the store adds to its items later
/// reaches the bus until it is added here.
const PUBLISHED: [&str; 20] = [
    "event_id",
    "provider",
    "event_type",
    "provider_event",
    "bounce_type",
    "message_id",
    "recipient",
    "sender",
    "subject",
    "occurred_at",
    "received_at",
    "reason",
    "smtp_code",
    "error_code",
    "click_url",
    "user_agent",
    "ip",
    "tags",
    "metadata",
    "account",
];
/// Attributes every event has; an image without them is not one of our events.
const REQUIRED: [&str; 5] = ["event_id", "provider", "event_type", "occurred_at", "received_at"];
const EVENT_PK_PREFIX: &str = "MSG#";
const SUPPRESSION_PK_PREFIX: &str = "SUPP#";

/// The SDK's timeouts for PutEvents: an attempt that hangs is cut well inside the function's
/// timeout, which the invocation's deadline bounds again.
pub fn eventbridge_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// One invocation's records, each read on its own, so one that does not parse is reported as
/// that record's failure instead of failing the whole batch.
#[derive(Debug, Deserialize)]
pub struct StreamBatch {
    #[serde(rename = "Records")]
    records: Vec<Box<RawValue>>,
}

/// Why a record is reported as failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    // Positions only: serde's messages can quote the record's values.
    #[error("the record is not a DynamoDB stream record (line {line}, column {column})")]
    Shape { line: usize, column: usize },
    #[error("the image has no key pk")]
    NoKey,
    #[error("the image's attributes do not decode as JSON")]
    Undecodable,
    #[error("the image has no text attribute {0}")]
    Missing(&'static str),
    #[error("the entry has {bytes} bytes, more than EventBridge takes ({MAX_REQUEST_BYTES})")]
    TooLarge { bytes: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Lambda names a failed record by its sequence number; without one the batch fails whole.
    #[error("a stream record carries no sequence number, so its failure cannot be reported alone")]
    NoSequenceNumber,
}

/// Just enough of a record to name it when the rest does not parse.
#[derive(Deserialize)]
struct RecordPosition {
    dynamodb: Position,
}

#[derive(Deserialize)]
struct Position {
    #[serde(rename = "SequenceNumber")]
    sequence_number: String,
}

/// An entry waiting to be accepted, and the record it came from.
struct Pending {
    sequence_number: String,
    detail_type: &'static str,
    detail: String,
}

impl Pending {
    /// Its size as EventBridge counts it: source, detail type and detail (no time, no resources).
    fn size(&self) -> usize {
        SOURCE.len() + self.detail_type.len() + self.detail.len()
    }

    fn entry(&self, bus: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(self.detail_type)
            .detail(&self.detail)
            .event_bus_name(bus)
            .build()
    }
}

/// What happened to one invocation's records.
#[derive(Debug, Default)]
struct Tally {
    published: usize,
    skipped: usize,
    unpublishable: usize,
    refused: usize,
    rounds: u32,
}

#[derive(Clone, Debug)]
pub struct Publisher {
    client: Client,
    bus: String,
}

impl Publisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Publisher { client, bus: bus.into() }
    }

    /// `EVENT_BUS_NAME` from `env`; region, credentials and endpoint
    /// (`AWS_ENDPOINT_URL_EVENTBRIDGE` locally) from the standard AWS chain.
    pub async fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        let bus = env(EVENT_BUS_NAME)
            .filter(|name| !name.trim().is_empty())
            .ok_or(ConfigError::Invalid { name: EVENT_BUS_NAME, expected: "set to the event bus's name or ARN" })?;
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(eventbridge_timeouts())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        Ok(Publisher::new(Client::new(&config), bus))
    }

    /// Publishes what the batch's records call for, before `deadline` (the invocation's); the
    /// answer names every record that was not published.
    pub async fn handle(
        &self,
        batch: StreamBatch,
        deadline: SystemTime,
    ) -> Result<DynamoDbEventResponse, PublishError> {
        let started = Instant::now();
        let mut tally = Tally::default();
        let mut failed = Vec::new();
        let mut pending = Vec::new();
        for (position, text) in batch.records.iter().enumerate() {
            let (sequence_number, record) = read_record(text)?;
            let entry = record.and_then(entry_for).and_then(|entry| match entry {
                Some((detail_type, detail)) => {
                    let entry = Pending { sequence_number: sequence_number.clone(), detail_type, detail };
                    let bytes = entry.size();
                    if bytes > MAX_REQUEST_BYTES {
                        return Err(RecordError::TooLarge { bytes });
                    }
                    Ok(Some(entry))
                }
                None => Ok(None),
            });
            match entry {
                Ok(Some(entry)) => pending.push(entry),
                Ok(None) => tally.skipped += 1,
                Err(error) => {
                    tracing::warn!(record = position, error = %error, "stream record not published");
                    tally.unpublishable += 1;
                    failed.push(sequence_number);
                }
            }
        }
        let (refused, cause) = self.publish(pending, deadline, &mut tally).await;
        tally.refused = refused.len();
        failed.extend(refused.into_iter().map(|pending| pending.sequence_number));

        let elapsed_ms = started.elapsed().as_millis() as u64;
        let records = batch.records.len();
        let Tally { published, skipped, unpublishable, refused, rounds } = tally;
        match cause {
            Some(cause) if refused > 0 => tracing::warn!(
                records, published, skipped, unpublishable, refused, rounds, elapsed_ms, error = %cause,
                "stream batch partly published"
            ),
            _ => tracing::info!(
                records,
                published,
                skipped,
                unpublishable,
                refused,
                rounds,
                elapsed_ms,
                "stream batch published"
            ),
        }
        let mut response = DynamoDbEventResponse::default();
        for sequence_number in failed {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }

    /// Puts the entries in rounds, each round sending again only those refused in the one
    /// before; the entries still refused after the last round (or when time runs out), and
    /// the last cause.
    async fn publish(
        &self,
        mut pending: Vec<Pending>,
        deadline: SystemTime,
        tally: &mut Tally,
    ) -> (Vec<Pending>, Option<String>) {
        let mut cause = None;
        let mut backoff = FIRST_BACKOFF;
        while !pending.is_empty() && tally.rounds < ROUNDS {
            if tally.rounds > 0 {
                tokio::time::sleep(backoff.min(time_left(deadline))).await;
                backoff *= 2;
            }
            let budget = time_left(deadline);
            if budget.is_zero() {
                cause.get_or_insert_with(|| "no time left in the invocation".to_owned());
                break;
            }
            tally.rounds += 1;
            let sent = pending.len();
            let puts = requests(pending).into_iter().map(|request| self.put(request, budget));
            let answers: Vec<_> = stream::iter(puts).buffer_unordered(CONCURRENT_PUTS).collect().await;
            pending = Vec::new();
            for (refused, refusal) in answers {
                pending.extend(refused);
                cause = refusal.or(cause);
            }
            tally.published += sent - pending.len();
        }
        (pending, cause)
    }

    /// One PutEvents call, cut at `budget`; the entries not accepted, and why.
    async fn put(&self, request: Vec<Pending>, budget: Duration) -> (Vec<Pending>, Option<String>) {
        let entries = request.iter().map(|pending| pending.entry(&self.bus)).collect();
        let call = self.client.put_events().set_entries(Some(entries)).send();
        let output = match tokio::time::timeout(budget, call).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => return (request, Some(call_failure(&error))),
            Err(_) => return (request, Some("PutEvents did not answer within the invocation's time".to_owned())),
        };
        // Answers come in the order of the entries sent; a missing answer counts as a refusal.
        let answers = output.entries.unwrap_or_default();
        let mut cause = None;
        let mut refused = Vec::new();
        for (position, pending) in request.into_iter().enumerate() {
            let error_code = match answers.get(position) {
                Some(answer) => answer.error_code.as_deref(),
                None => Some("no answer for the entry"),
            };
            if let Some(code) = error_code {
                // The code only: EventBridge's message can quote the entry.
                cause = Some(format!("EventBridge refused an entry: {code}"));
                refused.push(pending);
            }
        }
        (refused, cause)
    }
}

/// A call's failure in one short line without the request's content.
fn call_failure<R>(error: &SdkError<aws_sdk_eventbridge::operation::put_events::PutEventsError, R>) -> String
where
    R: std::fmt::Debug + 'static,
{
    format!("PutEvents failed: {}", short_cause(error))
}

fn time_left(deadline: SystemTime) -> Duration {
    deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(ANSWER_MARGIN)
}

/// The entries in PutEvents requests of at most [`MAX_ENTRIES_PER_REQUEST`] entries and
/// [`MAX_REQUEST_BYTES`], in their order.
fn requests(entries: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut requests: Vec<Vec<Pending>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.size();
        match requests.last_mut() {
            Some(request) if request.len() < MAX_ENTRIES_PER_REQUEST && bytes + size <= MAX_REQUEST_BYTES => {
                request.push(entry);
                bytes += size;
            }
            _ => {
                requests.push(vec![entry]);
                bytes = size;
            }
        }
    }
    requests
}

/// The record and its sequence number; a record that does not parse is still named by it.
fn read_record(text: &RawValue) -> Result<(String, Result<EventRecord, RecordError>), PublishError> {
    match serde_json::from_str::<EventRecord>(text.get()) {
        Ok(record) => {
            let sequence_number = record.change.sequence_number.clone().ok_or(PublishError::NoSequenceNumber)?;
            Ok((sequence_number, Ok(record)))
        }
        Err(error) => {
            let position: RecordPosition =
                serde_json::from_str(text.get()).map_err(|_| PublishError::NoSequenceNumber)?;
            let shape = RecordError::Shape { line: error.line(), column: error.column() };
            Ok((position.dynamodb.sequence_number, Err(shape)))
        }
    }
}

/// The detail type and detail a record calls for, if any. The mapping's filters pass only the
/// INSERTs of events and the writes of suppressions; the same test here keeps a run without
/// them (a local invocation, a filter widened by hand) from publishing anything else.
fn entry_for(record: EventRecord) -> Result<Option<(&'static str, String)>, RecordError> {
    let change = record.change;
    let Some(AttributeValue::S(pk)) = change.keys.get("pk") else { return Err(RecordError::NoKey) };
    let detail = if pk.starts_with(EVENT_PK_PREFIX) && record.event_name == "INSERT" {
        Some((EMAIL_EVENT, email_detail(change.new_image)?))
    } else if pk.starts_with(SUPPRESSION_PK_PREFIX) && matches!(record.event_name.as_str(), "INSERT" | "MODIFY") {
        suppression_detail(&change.old_image, &change.new_image)?.map(|detail| (SUPPRESSION_CHANGED, detail))
    } else {
        None
    };
    Ok(detail.map(|(detail_type, detail)| (detail_type, detail.to_string())))
}

/// The normalized event: the [`PUBLISHED`] attributes the item has.
fn email_detail(mut image: Item) -> Result<Value, RecordError> {
    let published: HashMap<String, AttributeValue> =
        PUBLISHED.into_iter().filter_map(|name| Some((name.to_owned(), image.remove(name)?))).collect();
    let event: Map<String, Value> =
        serde_dynamo::from_item(Item::from(published)).map_err(|_| RecordError::Undecodable)?;
    if let Some(missing) = REQUIRED.into_iter().find(|name| !event.get(*name).is_some_and(Value::is_string)) {
        return Err(RecordError::Missing(missing));
    }
    Ok(Value::Object(event))
}

/// A suppression that started or was lifted, from its item before and after the write; other
/// writes (a soft bounce counted, a later trigger added) change nothing a consumer acts on.
fn suppression_detail(old: &Item, new: &Item) -> Result<Option<Value>, RecordError> {
    let detail = match (is_suppressed(old), is_suppressed(new)) {
        (false, true) => json!({
            "recipient": text(new, "recipient")?,
            "suppressed": true,
            "reason": text(new, "reason")?,
            "provider": text(new, "provider")?,
            "since": text(new, "since")?,
        }),
        // The lift removes the reason, provider and time; the item before it still has them.
        (true, false) => json!({
            "recipient": text(new, "recipient")?,
            "suppressed": false,
            "reason": text(old, "reason")?,
            "provider": text(old, "provider")?,
            "since": text(old, "since")?,
            "lifted_at": text(new, "lifted_at")?,
        }),
        _ => return Ok(None),
    };
    Ok(Some(detail))
}

fn is_suppressed(image: &Item) -> bool {
    matches!(image.get("suppressed"), Some(AttributeValue::Bool(true)))
}

fn text<'a>(image: &'a Item, name: &'static str) -> Result<&'a str, RecordError> {
    match image.get(name) {
        Some(AttributeValue::S(text)) => Ok(text),
        _ => Err(RecordError::Missing(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(detail_bytes: usize) -> Pending {
        Pending { sequence_number: "1".into(), detail_type: EMAIL_EVENT, detail: "x".repeat(detail_bytes) }
    }

    #[test]
    fn requests_hold_at_most_ten_entries_and_256_kb() {
        let sizes: Vec<usize> = requests((0..25).map(|_| pending(10)).collect()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        // Three entries of 100 KB: two would pass 256 KB, so each goes alone.
        let large = requests((0..3).map(|_| pending(100 * 1024)).collect());
        assert_eq!(large.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        assert!(large.iter().all(|request| request.iter().map(Pending::size).sum::<usize>() <= MAX_REQUEST_BYTES));
        let just_over = MAX_REQUEST_BYTES / 2 - SOURCE.len() - EMAIL_EVENT.len() + 1;
        assert_eq!(requests(vec![pending(just_over), pending(just_over)]).len(), 2);
    }

    #[test]
    fn an_event_is_published_without_keys_ttl_raw_or_attributes_not_listed() {
        let image: Item = serde_dynamo::to_item(json!({
            "pk": "MSG#sendpost#m", "sk": "t#e", "gsi1pk": "RCPT#a@x.com", "gsi2pk": "TYPE#x", "gsi3pk": "SUPP",
            "raw": "{}", "raw_object": {"key": "k"}, "expires_at": 1, "event_id": "e", "provider": "sendpost",
            "event_type": "delivered", "occurred_at": "2024-05-01T00:00:00.000Z",
            "received_at": "2024-05-01T00:00:01.000Z", "smtp_code": 250, "tags": ["a"], "metadata": {"k": {"v": 1}},
            "written_by": "a later version of the store"
        }))
        .unwrap();
        let detail = email_detail(image).unwrap();
        assert_eq!(
            detail,
            json!({"event_id": "e", "provider": "sendpost", "event_type": "delivered",
                   "occurred_at": "2024-05-01T00:00:00.000Z", "received_at": "2024-05-01T00:00:01.000Z",
                   "smtp_code": 250, "tags": ["a"], "metadata": {"k": {"v": 1}}})
        );
    }

    #[test]
    fn only_a_change_of_suppressed_is_a_suppression_change() {
        let item = |value: Value| -> Item { serde_dynamo::to_item(value).unwrap() };
        let counting = item(json!({"recipient": "a@x.com", "soft_bounces": ["m1"]}));
        let suppressed = item(json!({"recipient": "a@x.com", "suppressed": true, "reason": "complained",
                                     "provider": "sendpost", "since": "2024-05-01T00:00:00.000Z"}));
        let lifted =
            item(json!({"recipient": "a@x.com", "suppressed": false, "lifted_at": "2024-06-01T00:00:00.000Z"}));
        assert_eq!(suppression_detail(&counting, &counting).unwrap(), None);
        assert_eq!(suppression_detail(&suppressed, &suppressed).unwrap(), None);
        assert_eq!(suppression_detail(&Item::default(), &counting).unwrap(), None);
        assert_eq!(suppression_detail(&counting, &suppressed).unwrap().unwrap()["suppressed"], true);
        let lift = suppression_detail(&suppressed, &lifted).unwrap().unwrap();
        assert_eq!(lift["reason"], "complained");
        assert_eq!(lift["lifted_at"], "2024-06-01T00:00:00.000Z");
        assert!(matches!(
            suppression_detail(&lifted, &item(json!({"suppressed": true}))),
            Err(RecordError::Missing("recipient"))
        ));
    }
}
