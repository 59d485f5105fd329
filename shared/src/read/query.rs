//! The parameters of `GET /events`, checked into a typed [`EventQuery`].
//!
//! Every problem is a [`ParameterError`] that names the parameter, answered with 400.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use serde_json::json;

use crate::read::cursor::{CursorError, CursorKey, LaneCursor, QueryBinding};
use crate::receive::event::{format_timestamp, EventType};
use crate::receive::providers::{self, fields::bare_address};
use crate::store::keys::{message_pk, recipient_pk, type_pk, TYPE_SHARDS};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// Keeps a partition key well under DynamoDB's 2048 bytes, so a long value is a 400, not a
/// DynamoDB validation error.
const MAX_KEY_VALUE_BYTES: usize = 1024;
const DAY_FORMAT: &str = "%Y-%m-%d";

const PARAMETERS: [&str; 11] = [
    "message_id",
    "provider",
    "recipient",
    "event_type",
    "date",
    "since",
    "until",
    "limit",
    "order",
    "include_raw",
    "cursor",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    #[error("no selector: give exactly one of message_id (with provider), recipient, or event_type (with date)")]
    NoSelector,
    #[error(
        "{0} and {1} are both selectors: give exactly one of message_id (with provider), recipient, \
         or event_type (with date)"
    )]
    TwoSelectors(&'static str, &'static str),
    #[error("{name} is required with {with}")]
    Missing { name: &'static str, with: &'static str },
    #[error("{name} only goes with {with}")]
    Unexpected { name: &'static str, with: &'static str },
    #[error("{name} must be {expected}")]
    Invalid { name: &'static str, expected: String },
    #[error("{0} is given more than once")]
    Repeated(&'static str),
    #[error("unknown parameter {name:?}; the parameters are {list}", list = known.join(", "))]
    Unknown { name: String, known: &'static [&'static str] },
    #[error("cursor {0}")]
    Cursor(#[from] CursorError),
}

fn invalid(name: &'static str, expected: impl Into<String>) -> ParameterError {
    ParameterError::Invalid { name, expected: expected.into() }
}

/// Which events a query reads: one message, one recipient, or one type on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Message { provider: &'static str, message_id: String },
    Recipient(String),
    TypeOnDay { event_type: EventType, day: NaiveDate },
}

impl Selector {
    /// For logs: which kind of read, never the address or id itself.
    pub fn kind(&self) -> &'static str {
        match self {
            Selector::Message { .. } => "message",
            Selector::Recipient(_) => "recipient",
            Selector::TypeOnDay { .. } => "event_type",
        }
    }

    /// The partition keys holding the selected events: one, or every `by_type` shard.
    fn partition_keys(&self) -> Vec<String> {
        match self {
            Selector::Message { provider, message_id } => vec![message_pk(provider, message_id)],
            Selector::Recipient(recipient) => vec![recipient_pk(recipient)],
            Selector::TypeOnDay { event_type, day } => {
                let day = day.format(DAY_FORMAT).to_string();
                (0..TYPE_SHARDS).map(|shard| type_pk(event_type.as_str(), &day, shard)).collect()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Order::NewestFirst => "desc",
            Order::OldestFirst => "asc",
        }
    }
}

/// `since` and `until` as sort-key text (`{occurred_at}` in the stored form). Sort keys are
/// `{occurred_at}#{event_id}`, so `sk >= since` keeps events at `since`, and `sk < until`
/// drops events at `until`: each sort key sorts after its bare time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeyRange {
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One partition to read and where this page starts in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub key: String,
    pub resume: LaneCursor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub selector: Selector,
    pub partitions: Vec<Partition>,
    pub range: SortKeyRange,
    pub limit: usize,
    pub order: Order,
    pub include_raw: bool,
    binding: QueryBinding,
}

impl EventQuery {
    /// Checks every parameter; a `cursor` must have been sealed with `cursor_key` for a query
    /// with the same selector, time range and order.
    pub fn from_parameters(parameters: &QueryMap, cursor_key: &CursorKey) -> Result<Self, ParameterError> {
        let parameters = Parameters::checked(parameters)?;
        let selector = selector(&parameters)?;
        let range = sort_key_range(&parameters)?;
        let limit = parameters.get("limit").map(parse_limit).transpose()?.unwrap_or(DEFAULT_LIMIT);
        let order = parameters.get("order").map(parse_order).transpose()?.unwrap_or(Order::NewestFirst);
        let include_raw = parameters.get("include_raw").map(parse_include_raw).transpose()?.unwrap_or(false);

        let keys = selector.partition_keys();
        let binding = QueryBinding::of(&json!([keys, range.since, range.until, order.as_str()]));
        let resumes = match parameters.get("cursor") {
            Some(cursor) => cursor_key.open(&binding, cursor)?,
            None => vec![LaneCursor::Start; keys.len()],
        };
        // The binding covers the partition keys, so only a change in the shard count gets here.
        if resumes.len() != keys.len() {
            return Err(CursorError::OtherQuery.into());
        }
        let partitions = keys.into_iter().zip(resumes).map(|(key, resume)| Partition { key, resume }).collect();
        Ok(EventQuery { selector, partitions, range, limit, order, include_raw, binding })
    }

    /// The `next_cursor` that resumes this query at `lanes`, one per partition.
    pub fn next_cursor(&self, cursor_key: &CursorKey, lanes: &[LaneCursor]) -> String {
        cursor_key.seal(&self.binding, lanes)
    }
}

/// The query string, known names only, each at most once; an empty value counts as absent.
struct Parameters<'a>(&'a QueryMap);

impl<'a> Parameters<'a> {
    fn checked(map: &'a QueryMap) -> Result<Self, ParameterError> {
        // A misspelt `since` silently ignored would answer a different question than was asked.
        if let Some(unknown) = map.iter().map(|(name, _)| name).filter(|name| !PARAMETERS.contains(name)).min() {
            return Err(ParameterError::Unknown { name: unknown.to_owned(), known: &PARAMETERS });
        }
        if let Some(repeated) = PARAMETERS.into_iter().find(|name| map.all(name).is_some_and(|all| all.len() > 1)) {
            return Err(ParameterError::Repeated(repeated));
        }
        Ok(Parameters(map))
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.first(name).filter(|value| !value.is_empty())
    }
}

fn selector(parameters: &Parameters<'_>) -> Result<Selector, ParameterError> {
    let given: Vec<&'static str> =
        ["message_id", "recipient", "event_type"].into_iter().filter(|name| parameters.get(name).is_some()).collect();
    if let [first, second, ..] = given[..] {
        return Err(ParameterError::TwoSelectors(first, second));
    }
    companion(parameters, "provider", "message_id")?;
    companion(parameters, "date", "event_type")?;
    if let Some(message_id) = parameters.get("message_id") {
        let provider =
            parameters.get("provider").ok_or(ParameterError::Missing { name: "provider", with: "message_id" })?;
        return Ok(Selector::Message {
            provider: parse_provider(provider)?,
            message_id: key_value("message_id", message_id)?.to_owned(),
        });
    }
    if let Some(recipient) = parameters.get("recipient") {
        let address = bare_address(key_value("recipient", recipient)?)
            .ok_or_else(|| invalid("recipient", "an email address, such as a@example.com or Name <a@example.com>"))?;
        return Ok(Selector::Recipient(address));
    }
    let Some(event_type) = parameters.get("event_type") else {
        return Err(ParameterError::NoSelector);
    };
    let date = parameters.get("date").ok_or(ParameterError::Missing { name: "date", with: "event_type" })?;
    Ok(Selector::TypeOnDay { event_type: parse_event_type(event_type)?, day: parse_day(date)? })
}

/// `name` belongs to the `owner` selector and must not come without it.
fn companion(parameters: &Parameters<'_>, name: &'static str, owner: &'static str) -> Result<(), ParameterError> {
    match (parameters.get(name), parameters.get(owner)) {
        (Some(_), None) => Err(ParameterError::Unexpected { name, with: owner }),
        _ => Ok(()),
    }
}

fn key_value<'a>(name: &'static str, value: &'a str) -> Result<&'a str, ParameterError> {
    if value.len() > MAX_KEY_VALUE_BYTES {
        return Err(invalid(name, format!("at most {MAX_KEY_VALUE_BYTES} bytes long")));
    }
    Ok(value)
}

fn parse_provider(name: &str) -> Result<&'static str, ParameterError> {
    providers::by_name(name).map(|provider| provider.name).ok_or_else(|| {
        let names: Vec<&str> = providers::ALL.iter().map(|provider| provider.name).collect();
        invalid("provider", format!("one of {}", names.join(", ")))
    })
}

fn parse_event_type(name: &str) -> Result<EventType, ParameterError> {
    name.parse().map_err(|_| {
        let names: Vec<&str> = EventType::ALL.iter().map(|event_type| event_type.as_str()).collect();
        invalid("event_type", format!("one of {}", names.join(", ")))
    })
}

/// Exactly `YYYY-MM-DD`, the form the day takes in the `by_type` keys.
fn parse_day(text: &str) -> Result<NaiveDate, ParameterError> {
    NaiveDate::parse_from_str(text, DAY_FORMAT)
        .ok()
        .filter(|day| day.format(DAY_FORMAT).to_string() == text)
        .ok_or_else(|| invalid("date", "a UTC day as YYYY-MM-DD, such as 2024-05-01"))
}

fn sort_key_range(parameters: &Parameters<'_>) -> Result<SortKeyRange, ParameterError> {
    let since = parameters.get("since").map(|text| sort_key_time("since", text)).transpose()?;
    let until = parameters.get("until").map(|text| sort_key_time("until", text)).transpose()?;
    if let (Some(since), Some(until)) = (&since, &until) {
        // Both texts have the same fixed-width form, so text order is time order.
        if until < since {
            return Err(invalid("until", "at or after since"));
        }
    }
    Ok(SortKeyRange { since, until })
}

/// An RFC 3339 time with any offset, as the UTC millisecond text of the sort keys.
pub(crate) fn sort_key_time(name: &'static str, text: &str) -> Result<String, ParameterError> {
    let expected = "an RFC 3339 time such as 2024-05-01T00:00:00Z or 2024-05-01T02:00:00+02:00 (in a URL, + is %2B)";
    let at = DateTime::parse_from_rfc3339(text).map_err(|_| invalid(name, expected))?.to_utc();
    let at = round_up_to_millis(at);
    // Outside years 0000..=9999 the text loses its fixed width, and with it its order.
    if !(0..=9999).contains(&at.year()) {
        return Err(invalid(name, "a time between the years 0000 and 9999 (UTC)"));
    }
    Ok(format_timestamp(at))
}

/// Stored times have whole milliseconds, so an event at .325 is before both since=.3255 and
/// until=.3255: rounding both bounds up keeps "since inclusive, until exclusive" exact.
fn round_up_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    let below_millis = at.timestamp_subsec_nanos() % 1_000_000;
    if below_millis == 0 {
        at
    } else {
        at + TimeDelta::nanoseconds(i64::from(1_000_000 - below_millis))
    }
}

pub(crate) fn parse_limit(text: &str) -> Result<usize, ParameterError> {
    text.parse::<usize>()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| invalid("limit", format!("a whole number from 1 to {MAX_LIMIT}")))
}

fn parse_order(text: &str) -> Result<Order, ParameterError> {
    match text {
        "desc" => Ok(Order::NewestFirst),
        "asc" => Ok(Order::OldestFirst),
        _ => Err(invalid("order", "desc (newest first, the default) or asc")),
    }
}

fn parse_include_raw(text: &str) -> Result<bool, ParameterError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid("include_raw", "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::BearerToken;

    fn key() -> CursorKey {
        CursorKey::derived_from(&BearerToken::from_env(&|_| Some("t".into()), "T").unwrap())
    }

    fn parse(query: &str) -> Result<EventQuery, ParameterError> {
        EventQuery::from_parameters(&query.parse().unwrap(), &key())
    }

    fn range(query: &str) -> SortKeyRange {
        parse(&format!("recipient=a@x.com&{query}")).unwrap().range
    }

    #[test]
    fn defaults() {
        let query = parse("message_id=m-1&provider=engagelab").unwrap();
        assert_eq!(query.selector, Selector::Message { provider: "engagelab", message_id: "m-1".into() });
        assert_eq!(query.partitions, vec![Partition { key: "MSG#engagelab#m-1".into(), resume: LaneCursor::Start }]);
        assert_eq!((query.limit, query.order, query.include_raw), (50, Order::NewestFirst, false));
        assert_eq!(query.range, SortKeyRange::default());
    }

    #[test]
    fn recipients_are_normalized() {
        let query = parse("recipient=Goblin%20%3CA%40X.Com%3E").unwrap();
        assert_eq!(query.selector, Selector::Recipient("a@x.com".into()));
        assert_eq!(query.partitions[0].key, "RCPT#a@x.com");
    }

    #[test]
    fn a_type_and_day_reads_every_shard() {
        let query = parse("event_type=bounced&date=2024-05-01&order=asc&limit=500&include_raw=true").unwrap();
        let keys: Vec<&str> = query.partitions.iter().map(|partition| partition.key.as_str()).collect();
        assert_eq!(keys.len(), usize::from(TYPE_SHARDS));
        assert_eq!(keys[0], "TYPE#bounced#2024-05-01#0");
        assert_eq!(keys[7], "TYPE#bounced#2024-05-01#7");
        assert_eq!((query.limit, query.order, query.include_raw), (500, Order::OldestFirst, true));
    }

    #[test]
    fn times_become_utc_millisecond_sort_key_text() {
        assert_eq!(
            range("since=2024-05-01T12:00:00%2B02:00&until=2024-05-01T10:00:00.5Z"),
            SortKeyRange {
                since: Some("2024-05-01T10:00:00.000Z".into()),
                until: Some("2024-05-01T10:00:00.500Z".into())
            }
        );
        assert_eq!(range("since=2024-05-01T10:00:00.0001Z").since.unwrap(), "2024-05-01T10:00:00.001Z");
        assert_eq!(range("until=2024-05-01T23:59:59.9999Z").until.unwrap(), "2024-05-02T00:00:00.000Z");
        assert_eq!(range("since=2024-05-01t10:00:00z").since.unwrap(), "2024-05-01T10:00:00.000Z");
    }

    #[test]
    fn an_empty_range_is_allowed_but_not_a_reversed_one() {
        assert!(parse("recipient=a@x.com&since=2024-05-01T10:00:00Z&until=2024-05-01T10:00:00Z").is_ok());
        assert_eq!(
            parse("recipient=a@x.com&since=2024-05-01T10:00:00Z&until=2024-05-01T09:59:59Z").unwrap_err(),
            invalid("until", "at or after since")
        );
    }

    #[test]
    fn empty_values_count_as_absent() {
        let query = parse("recipient=a@x.com&limit=&cursor=&order=").unwrap();
        assert_eq!((query.limit, query.order), (DEFAULT_LIMIT, Order::NewestFirst));
        assert_eq!(parse("recipient=").unwrap_err(), ParameterError::NoSelector);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let cases = [
            ("", "no selector"),
            ("limit=5", "no selector"),
            ("recipient=a@x.com&message_id=m-1&provider=engagelab", "message_id and recipient"),
            ("recipient=a@x.com&event_type=bounced&date=2024-05-01", "recipient and event_type"),
            ("message_id=m-1", "provider is required with message_id"),
            ("message_id=m-1&provider=mailgun", "provider must be one of engagelab, sendpost, tencent_ses"),
            ("recipient=a@x.com&provider=engagelab", "provider only goes with message_id"),
            ("event_type=bounced", "date is required with event_type"),
            ("recipient=a@x.com&date=2024-05-01", "date only goes with event_type"),
            ("event_type=bounce&date=2024-05-01", "event_type must be one of queued, sent,"),
            ("event_type=bounced&date=2024-5-1", "date must be"),
            ("event_type=bounced&date=2024-02-30", "date must be"),
            ("event_type=bounced&date=yesterday", "date must be"),
            ("recipient=%3C%3E", "recipient must be"),
            ("recipient=a@x.com&since=2024-05-01", "since must be an RFC 3339 time"),
            ("recipient=a@x.com&since=2024-05-01T00:00:00%2000:00", "since must be an RFC 3339 time"),
            ("recipient=a@x.com&until=tomorrow", "until must be an RFC 3339 time"),
            ("recipient=a@x.com&until=0000-01-01T00:00:00%2B01:00", "until must be a time between"),
            ("recipient=a@x.com&limit=0", "limit must be a whole number from 1 to 500"),
            ("recipient=a@x.com&limit=501", "limit must be"),
            ("recipient=a@x.com&limit=10000", "limit must be"),
            ("recipient=a@x.com&limit=ten", "limit must be"),
            ("recipient=a@x.com&limit=-1", "limit must be"),
            ("recipient=a@x.com&order=newest", "order must be"),
            ("recipient=a@x.com&include_raw=yes", "include_raw must be true or false"),
            ("recipient=a@x.com&cursor=abc", "cursor was not issued by this API"),
            ("recipient=a@x.com&recipient=b@x.com", "recipient is given more than once"),
            ("recipient=a@x.com&token=x", "unknown parameter \"token\""),
        ];
        for (query, expected) in cases {
            let message = parse(query).map(|_| ()).unwrap_err().to_string();
            assert!(message.contains(expected), "{query:?}: {message:?} lacks {expected:?}");
        }
        let long_id = format!("message_id={}&provider=engagelab", "x".repeat(MAX_KEY_VALUE_BYTES + 1));
        assert!(parse(&long_id).unwrap_err().to_string().starts_with("message_id must be at most"));
    }

    #[test]
    fn a_cursor_resumes_only_its_own_query() {
        let first = parse("event_type=bounced&date=2024-05-01&since=2024-05-01T10:00:00Z").unwrap();
        let lanes = vec![LaneCursor::Done; usize::from(TYPE_SHARDS)];
        let cursor = first.next_cursor(&key(), &lanes);

        let same =
            format!("event_type=bounced&date=2024-05-01&since=2024-05-01T12:00:00%2B02:00&limit=3&cursor={cursor}");
        assert!(parse(&same).unwrap().partitions.iter().all(|partition| partition.resume == LaneCursor::Done));
        for other in [
            "event_type=bounced&date=2024-05-02&since=2024-05-01T10:00:00Z",
            "event_type=opened&date=2024-05-01&since=2024-05-01T10:00:00Z",
            "event_type=bounced&date=2024-05-01",
            "event_type=bounced&date=2024-05-01&since=2024-05-01T10:00:00Z&order=asc",
        ] {
            let error = parse(&format!("{other}&cursor={cursor}")).unwrap_err();
            assert_eq!(error, ParameterError::Cursor(CursorError::OtherQuery), "{other}");
        }
    }
}
