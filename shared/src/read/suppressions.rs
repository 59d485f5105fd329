//! The suppressions API's reads and lifts: one recipient's status, the list of suppressions in
//! force (the sparse `by_suppression` index, oldest first, with signed cursors), and lifting one.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::aws_error::short_cause;
use aws_config::SdkConfig;

use crate::config::{events_table_from_env, ConfigError, Env};
use crate::read::cursor::{CursorError, CursorKey, ItemKey, LaneCursor, QueryBinding};
use crate::read::query::{parse_limit, sort_key_time, ParameterError, DEFAULT_LIMIT};
use crate::receive::event::format_timestamp;
use crate::receive::providers::fields::bare_address;
use crate::store::keys::Item;
use crate::store::suppressions::{
    get_item, text, text_value, update_if, SuppressionError, LIST_PARTITION, SORT_KEY, SUPPRESSION_INDEX,
};

/// Longest address accepted in a URL (RFC 5321's path limit).
const MAX_ADDRESS_BYTES: usize = 320;
/// Longest `lifted_by` kept.
const MAX_ACTOR_CHARS: usize = 200;
/// The parameters of `GET /suppressions`.
pub const LIST_PARAMETERS: [&str; 3] = ["since", "limit", "cursor"];
const CURSOR_PURPOSE: &str = "suppressions";

/// An address from a URL: trimmed, lowercased, display name removed, and shaped like an
/// address, or `None`.
pub fn address_from_path(text: &str) -> Option<String> {
    let address = bare_address(text)?;
    let (local, domain) = address.rsplit_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && address.len() <= MAX_ADDRESS_BYTES
        && !address.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/');
    plausible.then_some(address)
}

/// `GET /suppressions?since=&limit=&cursor=`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    since: Option<String>,
    limit: usize,
    resume_after: Option<ItemKey>,
    binding: QueryBinding,
}

impl ListQuery {
    /// `parameters` as name/value pairs; each known name at most once, no other names.
    pub fn from_parameters<'a>(
        parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
        cursor_key: &CursorKey,
    ) -> Result<Self, ParameterError> {
        let mut given: HashMap<&str, &str> = HashMap::new();
        for (name, value) in parameters {
            let Some(known) = LIST_PARAMETERS.into_iter().find(|known| *known == name) else {
                return Err(ParameterError::Unknown { name: name.to_owned(), known: &LIST_PARAMETERS });
            };
            if given.insert(known, value).is_some() {
                return Err(ParameterError::Repeated(known));
            }
        }
        given.retain(|_, value| !value.is_empty());
        let since = given.get("since").map(|text| sort_key_time("since", text)).transpose()?;
        let limit = given.get("limit").map(|text| parse_limit(text)).transpose()?.unwrap_or(DEFAULT_LIMIT);
        let binding = QueryBinding::of(&json!([CURSOR_PURPOSE, since]));
        let resume_after = match given.get("cursor") {
            None => None,
            Some(cursor) => match cursor_key.open(&binding, cursor)?.as_slice() {
                [LaneCursor::After(key)] => Some(key.clone()),
                _ => return Err(CursorError::Forged.into()),
            },
        };
        Ok(ListQuery { since, limit, resume_after, binding })
    }
}

/// A page of `GET /suppressions`.
#[derive(Debug, Serialize)]
pub struct SuppressionPage {
    pub suppressions: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Reading and lifting suppressions (`suppressions-api`): `GetItem` and `UpdateItem` on
/// `SUPP#` keys, `Query` on the `by_suppression` index.
#[derive(Clone, Debug)]
pub struct SuppressionList {
    client: Client,
    table: String,
}

impl SuppressionList {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        SuppressionList { client, table: table.into() }
    }

    /// `EVENTS_TABLE` from `env`; region, credentials and endpoint from `config` ([`sdk_config`](crate::config::sdk_config)).
    pub fn from_env(env: Env<'_>, config: &SdkConfig) -> Result<Self, ConfigError> {
        let table = events_table_from_env(env)?;
        Ok(SuppressionList::new(Client::new(config), table))
    }

    /// `{"email", "suppressed", "reason", "since", "events", ...}` for any address: one never
    /// suppressed answers `suppressed: false`.
    pub async fn status(&self, email: &str) -> Result<Value, SuppressionError> {
        let item = get_item(&self.client, &self.table, email).await?.unwrap_or_default();
        Ok(status_json(email, &item))
    }

    /// Lifts a suppression in force, recording who and when; `None` when there was none.
    /// The soft-bounce count starts again; triggers counted before stay counted, so their
    /// retries cannot re-suppress.
    pub async fn lift(&self, email: &str, lifted_by: &str, now: DateTime<Utc>) -> Result<Option<Value>, SuppressionError> {
        let lifted_by: String = lifted_by.chars().filter(|c| !c.is_control()).take(MAX_ACTOR_CHARS).collect();
        let update = "SET #suppressed = :false, #lifted_at = :now, #lifted_by = :by, #updated_at = :now \
             REMOVE #reason, #provider, #since, #first_event_id, #first_event_at, #latest_event_id, \
             #latest_event_at, #soft_bounces, #gsi3pk, #gsi3sk";
        let values = vec![
            (":false", AttributeValue::Bool(false)),
            (":true", AttributeValue::Bool(true)),
            (":now", text_value(&format_timestamp(now))),
            (":by", AttributeValue::S(lifted_by)),
        ];
        let lifted = update_if(&self.client, &self.table, email, update, "#suppressed = :true", values)
            .await
            .map_err(SuppressionError::Lift)?;
        Ok(lifted.map(|item| status_json(email, &item)))
    }

    /// Suppressions in force, oldest `since` first, from `query.since` on.
    pub async fn list(&self, query: &ListQuery, cursor_key: &CursorKey) -> Result<SuppressionPage, SuppressionError> {
        let mut values = HashMap::from([(":list".to_owned(), AttributeValue::S(LIST_PARTITION.to_owned()))]);
        let mut condition = "gsi3pk = :list".to_owned();
        if let Some(since) = &query.since {
            values.insert(":since".to_owned(), AttributeValue::S(since.clone()));
            condition.push_str(" AND gsi3sk >= :since");
        }
        let start = query.resume_after.as_ref().map(|after| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(after.pk.clone())),
                ("sk".to_owned(), AttributeValue::S(SORT_KEY.to_owned())),
                ("gsi3pk".to_owned(), AttributeValue::S(LIST_PARTITION.to_owned())),
                ("gsi3sk".to_owned(), AttributeValue::S(after.sk.clone())),
            ])
        });
        let mut items = Vec::with_capacity(query.limit);
        let mut exclusive_start = start;
        // A Query may stop short of its Limit with a LastEvaluatedKey: read on until the page
        // is full or the index ends, so a short page always means the last one.
        let more = loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SUPPRESSION_INDEX)
                .key_condition_expression(&condition)
                .set_expression_attribute_values(Some(values.clone()))
                .limit(i32::try_from(query.limit - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(exclusive_start.take())
                .send()
                .await
                .map_err(|error| SuppressionError::Read(short_cause(&error)))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(last) if items.len() < query.limit => exclusive_start = Some(last),
                Some(_) => break true,
                None => break false,
            }
        };
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => {
                let text = |name: &'static str| {
                    last.get(name).and_then(|value| value.as_s().ok()).cloned().ok_or(SuppressionError::Malformed(name))
                };
                // On this index the sort key to resume after is `gsi3sk`, carried as the key's `sk`.
                let after = ItemKey { pk: text("pk")?, sk: text("gsi3sk")? };
                Some(cursor_key.seal(&query.binding, &[LaneCursor::After(after)]))
            }
            _ => None,
        };
        let suppressions = items.iter().map(listed_json).collect::<Result<_, _>>()?;
        Ok(SuppressionPage { suppressions, next_cursor })
    }
}

/// The API's view of one recipient: stable keys, `null` where nothing is known.
fn status_json(email: &str, item: &Item) -> Value {
    let suppressed = item.get("suppressed").and_then(|value| value.as_bool().ok()).copied().unwrap_or(false);
    let mut events = Vec::new();
    for (id, at) in [("first_event_id", "first_event_at"), ("latest_event_id", "latest_event_at")] {
        if let Some(event_id) = text(item, id) {
            if !events.iter().any(|event: &Value| event["event_id"] == event_id) {
                events.push(json!({ "event_id": event_id, "occurred_at": text(item, at) }));
            }
        }
    }
    let soft_bounces = item.get("soft_bounces").and_then(|set| set.as_ss().ok()).map_or(0, Vec::len);
    json!({
        "email": email,
        "suppressed": suppressed,
        "reason": text(item, "reason"),
        "since": text(item, "since"),
        "provider": text(item, "provider"),
        "events": events,
        "soft_bounces": soft_bounces,
        "lifted_at": text(item, "lifted_at"),
        "lifted_by": text(item, "lifted_by"),
    })
}

fn listed_json(item: &Item) -> Result<Value, SuppressionError> {
    let email = text(item, "recipient").ok_or(SuppressionError::Malformed("recipient"))?;
    Ok(json!({
        "email": email,
        "reason": text(item, "reason"),
        "since": text(item, "since"),
        "provider": text(item, "provider"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_paths_are_bare_and_plausible() {
        assert_eq!(address_from_path("A@X.com").as_deref(), Some("a@x.com"));
        assert_eq!(address_from_path("Goblin <A@x.com>").as_deref(), Some("a@x.com"));
        for bad in ["", "nobody", "@x.com", "a@", "a b@x.com", "a@x.com/extra"] {
            assert_eq!(address_from_path(bad), None, "{bad:?}");
        }
        assert_eq!(address_from_path(&format!("{}@x.com", "a".repeat(400))), None);
    }

    #[test]
    fn an_unknown_address_is_answered_as_not_suppressed() {
        let status = status_json("a@x.com", &Item::new());
        assert_eq!(status["suppressed"], false);
        assert_eq!(status["reason"], Value::Null);
        assert_eq!(status["events"], json!([]));
    }
}
