//! The dashboard and alarms of `template.yaml` against the metrics the functions write: every
//! metric, dimension and dimension value they name is one the code emits, so renaming a metric
//! on one side fails here.

mod support;

use std::collections::BTreeSet;

use mailhooks::receive::event::EventType;
use mailhooks::metrics::{Outcome, METRICS, NAMESPACE};
use mailhooks::receive::providers;
use mailhooks::store::suppressions::Reason;
use serde_json::Value;

/// `template.yaml` as JSON; a tag such as `!Sub x` becomes `{"!Sub": x}`.
fn template() -> Value {
    let script = "import json, sys, yaml\n\
                  class Loader(yaml.SafeLoader): pass\n\
                  def tagged(loader, suffix, node):\n\
                  \x20   if isinstance(node, yaml.ScalarNode): value = loader.construct_scalar(node)\n\
                  \x20   elif isinstance(node, yaml.SequenceNode): value = loader.construct_sequence(node, deep=True)\n\
                  \x20   else: value = loader.construct_mapping(node, deep=True)\n\
                  \x20   return {'!' + suffix: value}\n\
                  Loader.add_multi_constructor('!', tagged)\n\
                  print(json.dumps(yaml.load(open(sys.argv[1]), Loader=Loader)))\n";
    let output = std::process::Command::new(support::tool("python3"))
        .args(["-c", script])
        .arg(support::repo_root().join("template.yaml"))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// Each dimension's values as the code writes them.
fn known_values(dimension: &str) -> BTreeSet<String> {
    let values: Vec<&str> = match dimension {
        "Provider" => providers::ALL.iter().map(|provider| provider.name).collect(),
        "Outcome" => Outcome::ALL.iter().map(|outcome| outcome.as_str()).collect(),
        "EventType" => EventType::ALL.iter().map(|event_type| event_type.as_str()).collect(),
        "Reason" => Reason::ALL.iter().map(|reason| reason.as_str()).collect(),
        other => panic!("no such dimension {other}"),
    };
    values.into_iter().map(str::to_owned).collect()
}

/// Checks one use of a mailhooks metric: its name, its whole dimension set, and each value.
fn check_metric(name: &str, dimensions: &[(String, Option<String>)], context: &str) {
    let (_, expected) = METRICS.iter().find(|(known, _)| *known == name).unwrap_or_else(|| {
        panic!("{context}: metric {name} is not one the functions write");
    });
    let names: BTreeSet<&str> = dimensions.iter().map(|(dimension, _)| dimension.as_str()).collect();
    assert_eq!(names, expected.iter().copied().collect(), "{context}: dimensions of {name}");
    for (dimension, value) in dimensions {
        if let Some(value) = value {
            assert!(known_values(dimension).contains(value), "{context}: {dimension} {value} is never written");
        }
    }
}

/// `SEARCH('{Mailhooks,Provider,EventType} MetricName="Events" Provider="x"', ...)`.
fn check_search(expression: &str, context: &str) -> bool {
    let Some(start) = expression.find(&format!("{{{NAMESPACE},")) else { return false };
    let schema = &expression[start + 1..start + expression[start..].find('}').unwrap()];
    let rest = &expression[start + schema.len() + 2..];
    let quoted = |key: &str| {
        let at = rest.find(&format!("{key}=\""))? + key.len() + 2;
        Some(rest[at..at + rest[at..].find('"')?].to_owned())
    };
    let name = quoted("MetricName").unwrap_or_else(|| panic!("{context}: a search without MetricName"));
    let dimensions: Vec<(String, Option<String>)> =
        schema.split(',').skip(1).map(|dimension| (dimension.to_owned(), quoted(dimension))).collect();
    check_metric(&name, &dimensions, context);
    true
}

/// Replaces every `${...}` of a `!Sub` text.
fn substituted(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        out.push('x');
        rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
    }
    out + rest
}

#[test]
fn the_dashboard_shows_only_metrics_the_functions_write() {
    let template = template();
    let dashboard = &template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["!Sub"];
    let body: Value = serde_json::from_str(&substituted(dashboard.as_str().expect("a !Sub text")))
        .expect("the dashboard body is JSON");
    let (mut ours, mut providers_shown) = (0, BTreeSet::new());
    for widget in body["widgets"].as_array().expect("widgets") {
        let title = widget["properties"]["title"].as_str().unwrap_or("text");
        for metric in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts = metric.as_array().expect("a metric is an array");
            if let Some(expression) = parts[0].get("expression").and_then(Value::as_str) {
                ours += usize::from(check_search(expression, title));
                continue;
            }
            if parts[0] != NAMESPACE {
                continue;
            }
            let labels: Vec<&str> = parts[2..].iter().filter_map(Value::as_str).collect();
            let dimensions: Vec<(String, Option<String>)> =
                labels.chunks(2).map(|pair| (pair[0].to_owned(), Some(pair[1].to_owned()))).collect();
            providers_shown.extend(dimensions.iter().filter(|(name, _)| name == "Provider").map(|(_, v)| v.clone()));
            check_metric(parts[1].as_str().unwrap(), &dimensions, title);
            ours += 1;
        }
    }
    assert!(ours > 0, "the dashboard shows no mailhooks metric");
    let every: BTreeSet<Option<String>> = known_values("Provider").into_iter().map(Some).collect();
    assert_eq!(providers_shown, every, "every provider's rates are on the dashboard");
}

#[test]
fn every_alarm_watches_metrics_the_functions_write_and_notifies_the_topic() {
    let template = template();
    let resources = template["Resources"].as_object().unwrap();
    let alarms: Vec<(&String, &Value)> =
        resources.iter().filter(|(_, resource)| resource["Type"] == "AWS::CloudWatch::Alarm").collect();
    let mut watched = BTreeSet::new();
    for (name, alarm) in &alarms {
        let properties = &alarm["Properties"];
        assert_eq!(properties["AlarmActions"], serde_json::json!([{"!Ref": "AlarmTopic"}]), "{name}");
        assert!(properties["AlarmDescription"] != Value::Null, "{name} says nothing of what to check");
        for query in properties["Metrics"].as_array().into_iter().flatten() {
            let metric = &query["MetricStat"]["Metric"];
            if metric["Namespace"] != NAMESPACE {
                continue;
            }
            let dimensions: Vec<(String, Option<String>)> = metric["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| (pair["Name"].as_str().unwrap().to_owned(), pair["Value"].as_str().map(str::to_owned)))
                .collect();
            check_metric(metric["MetricName"].as_str().unwrap(), &dimensions, name);
            watched.extend(dimensions.into_iter().filter(|(dimension, _)| dimension != "Provider"));
        }
    }
    for outcome in ["storage_failed", "unauthorized", "stored", "duplicate"] {
        assert!(watched.contains(&("Outcome".to_owned(), Some(outcome.to_owned()))), "no alarm on {outcome}");
    }
    for event_type in ["delivered", "bounced", "complained"] {
        assert!(watched.contains(&("EventType".to_owned(), Some(event_type.to_owned()))), "no alarm on {event_type}");
    }
}
