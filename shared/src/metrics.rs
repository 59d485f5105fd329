//! What a webhook request did, as CloudWatch metrics in Embedded Metric Format (EMF): a JSON
//! log line that CloudWatch Logs turns into metrics, with no call to CloudWatch.
//!
//! Written here rather than through a `metrics` facade backend: such a backend keeps one global
//! registry and writes one document per label set, so a stored event would take three documents
//! (`Requests`, `Events`, `Suppressions` each have their own dimensions), and tests running
//! handlers side by side would share one registry. One document holds several metric
//! directives, each naming its own dimensions among the document's members, so a request is one
//! document; only a batch mixing event types (or suppression reasons) needs one more document per
//! further type, since a document holds one value of each dimension.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The CloudWatch namespace of every mailhooks metric.
pub const NAMESPACE: &str = "Mailhooks";

/// One webhook request, counted once: dimensions `Provider`, `Outcome`.
pub const REQUESTS: &str = "Requests";
/// Newly stored events (never duplicates): dimensions `Provider`, `EventType`.
pub const EVENTS: &str = "Events";
/// Recipients newly suppressed: dimensions `Provider`, `Reason`.
pub const SUPPRESSIONS: &str = "Suppressions";

/// Each metric with its dimensions, as the dashboard and alarms of the template must name them.
pub const METRICS: [(&str, [&str; 2]); 3] = [
    (REQUESTS, ["Provider", "Outcome"]),
    (EVENTS, ["Provider", "EventType"]),
    (SUPPRESSIONS, ["Provider", "Reason"]),
];

/// How a webhook request ended, the `Outcome` dimension of `Requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// At least one event was newly stored.
    Stored,
    /// Every event was stored before: a provider's retry.
    Duplicate,
    Unauthorized,
    BadRequest,
    TooLarge,
    StorageFailed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Stored,
        Outcome::Duplicate,
        Outcome::Unauthorized,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::StorageFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Unauthorized => "unauthorized",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::StorageFailed => "storage_failed",
        }
    }
}

/// The metrics of one webhook request. Dimension values are the provider's name, an outcome,
/// event types and suppression reasons, all from fixed vocabularies: never an address or an id.
#[derive(Debug)]
pub struct RequestMetrics<'a> {
    pub provider: &'static str,
    pub outcome: Outcome,
    /// Newly stored events per event type.
    pub events: Vec<(&'static str, u64)>,
    /// Newly suppressed recipients per reason.
    pub suppressions: Vec<(&'static str, u64)>,
    /// The Lambda request id, a property for finding the request's log line.
    pub request_id: Option<&'a str>,
}

/// Counts of each distinct name, in the order first seen.
pub fn tally(names: impl IntoIterator<Item = &'static str>) -> Vec<(&'static str, u64)> {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for name in names {
        match counts.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name, 1)),
        }
    }
    counts
}

impl RequestMetrics<'_> {
    /// The request's EMF documents, each one line ending in a newline, timestamped `timestamp_ms`.
    pub fn documents(&self, timestamp_ms: i64) -> String {
        let count = self.events.len().max(self.suppressions.len()).max(1);
        let mut out = String::with_capacity(400 * count);
        for index in 0..count {
            let event = self.events.get(index);
            let suppression = self.suppressions.get(index);
            let first = index == 0;
            let mut directives = Vec::with_capacity(3);
            if first {
                directives.push(Directive::new(REQUESTS, ["Provider", "Outcome"]));
            }
            if event.is_some() {
                directives.push(Directive::new(EVENTS, ["Provider", "EventType"]));
            }
            if suppression.is_some() {
                directives.push(Directive::new(SUPPRESSIONS, ["Provider", "Reason"]));
            }
            let document = Document {
                aws: Aws { timestamp: timestamp_ms, cloudwatch_metrics: directives },
                provider: self.provider,
                outcome: first.then(|| self.outcome.as_str()),
                event_type: event.map(|(name, _)| *name),
                reason: suppression.map(|(name, _)| *name),
                requests: first.then_some(1),
                events: event.map(|(_, count)| *count),
                suppressions: suppression.map(|(_, count)| *count),
                request_id: self.request_id,
            };
            out.push_str(&serde_json::to_string(&document).expect("a document of strings and numbers serializes"));
            out.push('\n');
        }
        out
    }
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "_aws")]
    aws: Aws,
    #[serde(rename = "Provider")]
    provider: &'a str,
    #[serde(rename = "Outcome", skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a str>,
    #[serde(rename = "EventType", skip_serializing_if = "Option::is_none")]
    event_type: Option<&'a str>,
    #[serde(rename = "Reason", skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(rename = "Requests", skip_serializing_if = "Option::is_none")]
    requests: Option<u64>,
    #[serde(rename = "Events", skip_serializing_if = "Option::is_none")]
    events: Option<u64>,
    #[serde(rename = "Suppressions", skip_serializing_if = "Option::is_none")]
    suppressions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aws {
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    cloudwatch_metrics: Vec<Directive>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive {
    namespace: &'static str,
    dimensions: [[&'static str; 2]; 1],
    metrics: [Metric; 1],
}

impl Directive {
    fn new(name: &'static str, dimensions: [&'static str; 2]) -> Self {
        Directive { namespace: NAMESPACE, dimensions: [dimensions], metrics: [Metric { name, unit: "Count" }] }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: &'static str,
    unit: &'static str,
}

/// Where metric documents go: standard output in Lambda, which CloudWatch Logs reads.
pub trait MetricsSink: Send + Sync {
    fn write(&self, documents: &str);
}

/// Standard output, written whole under its lock so a document is never split by a log line.
pub struct Stdout;

impl MetricsSink for Stdout {
    fn write(&self, documents: &str) {
        let mut out = std::io::stdout().lock();
        // A lost metric must not fail the request; the log line says what happened anyway.
        let _ = out.write_all(documents.as_bytes()).and_then(|()| out.flush());
    }
}

/// Keeps the documents, for tests that read what real handler runs wrote.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    /// Every document written so far, one per line.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).lines().map(str::to_owned).collect()
    }
}

impl MetricsSink for Captured {
    fn write(&self, documents: &str) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push_str(documents);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(documents: &str) -> Vec<Value> {
        documents.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn a_stored_event_is_one_document_with_three_directives() {
        let metrics = RequestMetrics {
            provider: "sendpost",
            outcome: Outcome::Stored,
            events: vec![("bounced", 1)],
            suppressions: vec![("hard_bounce", 1)],
            request_id: Some("req-1"),
        };
        let documents = parse(&metrics.documents(1_700_000_000_000));
        assert_eq!(
            documents,
            [json!({
                "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [
                    {"Namespace": "Mailhooks", "Dimensions": [["Provider", "Outcome"]],
                     "Metrics": [{"Name": "Requests", "Unit": "Count"}]},
                    {"Namespace": "Mailhooks", "Dimensions": [["Provider", "EventType"]],
                     "Metrics": [{"Name": "Events", "Unit": "Count"}]},
                    {"Namespace": "Mailhooks", "Dimensions": [["Provider", "Reason"]],
                     "Metrics": [{"Name": "Suppressions", "Unit": "Count"}]},
                ]},
                "Provider": "sendpost", "Outcome": "stored", "EventType": "bounced", "Reason": "hard_bounce",
                "Requests": 1, "Events": 1, "Suppressions": 1, "request_id": "req-1",
            })]
        );
    }

    #[test]
    fn a_refused_request_counts_only_the_request() {
        let metrics = RequestMetrics {
            provider: "engagelab",
            outcome: Outcome::Unauthorized,
            events: vec![],
            suppressions: vec![],
            request_id: None,
        };
        let documents = parse(&metrics.documents(1));
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0]["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(), 1);
        assert_eq!(documents[0]["Outcome"], "unauthorized");
        assert_eq!(documents[0].get("Events"), None);
        assert_eq!(documents[0].get("request_id"), None);
    }

    #[test]
    fn a_batch_of_several_types_adds_one_document_per_further_type() {
        let metrics = RequestMetrics {
            provider: "tencent_ses",
            outcome: Outcome::Stored,
            events: tally(["delivered", "opened", "delivered", "bounced"]),
            suppressions: tally(["complained"]),
            request_id: None,
        };
        let documents = parse(&metrics.documents(1));
        assert_eq!(documents.len(), 3);
        let events: Vec<(Value, Value)> =
            documents.iter().map(|document| (document["EventType"].clone(), document["Events"].clone())).collect();
        assert_eq!(events, [(json!("delivered"), json!(2)), (json!("opened"), json!(1)), (json!("bounced"), json!(1))]);
        let requests: u64 = documents.iter().filter_map(|document| document["Requests"].as_u64()).sum();
        assert_eq!(requests, 1);
        assert_eq!(documents[1].get("Outcome"), None);
        assert_eq!(documents[1]["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(), 1);
        assert_eq!(documents[0]["Reason"], "complained");
    }
}
