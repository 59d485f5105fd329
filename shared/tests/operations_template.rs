//! The dashboard and alarms of `template.yaml` against the metrics the functions write: every
//! metric, dimension and dimension value they name is one the code emits, so renaming a metric
//! on one side fails here.

mod support;

use std::collections::{BTreeMap, BTreeSet};

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

/// A `!Sub` text with each `${name}` replaced: by its variable's text when `variables` has it,
/// else by the name itself (a resource's name stands for the resource).
fn substituted(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').unwrap();
        let name = &rest[start + 2..end];
        match variables.get(name) {
            Some(value) => out.push_str(&substituted(value, &BTreeMap::new())),
            None => out.push_str(name),
        }
        rest = &rest[end + 1..];
    }
    out + rest
}

/// The dashboard's body as CloudFormation renders it when every condition of its variables is
/// `holds`; each variable must be an `!If` on the condition of the resource it names.
fn dashboard(template: &Value, holds: bool) -> Value {
    let sub = &template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["!Sub"];
    let (text, variables) = match sub {
        Value::String(text) => (text.as_str(), BTreeMap::new()),
        Value::Array(parts) => {
            let mut variables = BTreeMap::new();
            for (name, value) in parts[1].as_object().expect("the !Sub variables") {
                let branches = value["!If"].as_array().unwrap_or_else(|| panic!("{name} is an !If"));
                let condition = branches[0].as_str().unwrap();
                let shown = branches[1]["!Sub"].as_str().unwrap_or_else(|| panic!("{name}: a !Sub when it holds"));
                let hidden = branches[2].as_str().unwrap_or_else(|| panic!("{name}: a text when it does not"));
                for (resource, definition) in template["Resources"].as_object().unwrap() {
                    if shown.contains(&format!("${{{resource}}}")) {
                        assert_eq!(definition["Condition"], condition, "{name} shows {resource} under its condition");
                    }
                }
                variables.insert(name.clone(), if holds { shown } else { hidden }.to_owned());
            }
            (parts[0].as_str().expect("a !Sub text"), variables)
        }
        other => panic!("DashboardBody is a !Sub, not {other}"),
    };
    serde_json::from_str(&substituted(text, &variables)).expect("the dashboard body is JSON")
}

/// The template's Lambda functions, and those that exist whatever the parameters.
fn functions(template: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut every = BTreeSet::new();
    let mut unconditional = BTreeSet::new();
    for (name, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] == "AWS::Serverless::Function" {
            every.insert(name.clone());
            if resource["Condition"].is_null() {
                unconditional.insert(name.clone());
            }
        }
    }
    (every, unconditional)
}

#[test]
fn the_dashboard_shows_only_metrics_the_functions_write() {
    let template = template();
    let body = dashboard(&template, true);
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

/// An alarm's description must tell whoever is paged what happened and what to look at first,
/// naming something they can open: a log line, the dashboard, a read API, a queue, or a resource
/// or parameter of the stack.
fn check_description(alarm: &str, description: &Value, template: &Value) {
    let text = description.as_str().or_else(|| description["!Sub"].as_str()).unwrap_or_else(|| {
        panic!("{alarm} has no description");
    });
    assert!(text.len() >= 120, "{alarm}: a description of {} characters explains little: {text}", text.len());
    let (happened, check) = text.split_once("Check first:").unwrap_or_else(|| {
        panic!("{alarm}: the description says what to check first (\"Check first: ...\"): {text}");
    });
    assert!(happened.trim().len() >= 40, "{alarm}: the description says what happened before what to check");
    assert!(check.trim().len() >= 40, "{alarm}: \"Check first:\" is followed by too little: {check}");
    let mut things: Vec<String> = ["log line", "dashboard", "GET /", "queue"].map(str::to_owned).into();
    for section in ["Resources", "Parameters"] {
        things.extend(template[section].as_object().unwrap().keys().cloned());
    }
    assert!(
        things.iter().any(|thing| check.contains(thing.as_str())),
        "{alarm}: what to check first names nothing to open (a log line, the dashboard, an API, a resource): {check}"
    );
}

#[test]
fn every_alarm_watches_metrics_the_functions_write_and_notifies_the_topic() {
    let template = template();
    let resources = template["Resources"].as_object().unwrap();
    assert_eq!(resources["AlarmTopic"]["Type"], "AWS::SNS::Topic");
    let alarms: Vec<(&String, &Value)> =
        resources.iter().filter(|(_, resource)| resource["Type"] == "AWS::CloudWatch::Alarm").collect();
    assert!(alarms.len() >= 8, "the alarms are in the template");
    let mut watched = BTreeSet::new();
    for (name, alarm) in &alarms {
        let properties = &alarm["Properties"];
        let topic = serde_json::json!([{"!Ref": "AlarmTopic"}]);
        assert_eq!(properties["AlarmActions"], topic, "{name} notifies the alarm topic when it fires");
        assert_eq!(properties["OKActions"], topic, "{name} notifies the alarm topic when it recovers");
        check_description(name, &properties["AlarmDescription"], &template);
        for query in properties["Metrics"].as_array().into_iter().flatten() {
            let query = query.get("!If").map_or(query, |branches| &branches[1]);
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

/// The functions on one of the dashboard's Lambda graphs, per metric.
fn lambda_graphs(body: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut graphs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for metric in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts = metric.as_array().unwrap();
            if parts[0] == "AWS/Lambda" {
                assert_eq!(parts[2], "FunctionName", "a Lambda graph shows one function per line");
                let function = parts[3].as_str().unwrap().to_owned();
                graphs.entry(parts[1].as_str().unwrap().to_owned()).or_default().insert(function);
            }
        }
    }
    graphs
}

#[test]
fn the_dashboards_lambda_graphs_show_every_function_the_stack_creates() {
    let template = template();
    let (every, unconditional) = functions(&template);
    for (holds, expected) in [(true, &every), (false, &unconditional)] {
        let graphs = lambda_graphs(&dashboard(&template, holds));
        for metric in ["Errors", "Throttles", "Duration"] {
            assert_eq!(graphs.get(metric), Some(expected), "{metric} with every condition {holds}");
        }
    }
}

#[test]
fn the_lambda_throttles_alarm_watches_every_function_that_takes_traffic() {
    let template = template();
    let alarm = &template["Resources"]["LambdaThrottlesAlarm"]["Properties"];
    let (every, _) = functions(&template);
    // CloudFormation alone invokes the registration, so a throttled call stalls or fails the
    // deployment in front of whoever runs it.
    let expected: BTreeSet<String> = every.into_iter().filter(|name| name != "EngageLabRegistrationFunction").collect();
    let mut watched = BTreeSet::new();
    let mut ids = BTreeMap::new();
    for query in alarm["Metrics"].as_array().unwrap() {
        let (condition, query) = match query.get("!If") {
            Some(branches) => {
                assert_eq!(branches[2], serde_json::json!({"!Ref": "AWS::NoValue"}));
                (branches[0].as_str(), &branches[1])
            }
            None => (None, query),
        };
        let Some(metric) = query["MetricStat"].get("Metric") else { continue };
        let function = metric["Dimensions"][0]["Value"]["!Ref"].as_str().unwrap();
        assert_eq!(
            template["Resources"][function]["Condition"].as_str(),
            condition,
            "{function} is watched under its own condition"
        );
        watched.insert(function.to_owned());
        ids.insert(query["Id"].as_str().unwrap().to_owned(), condition);
    }
    assert_eq!(watched, expected);

    // The expression adds exactly the throttles that exist under each condition.
    let expression = &alarm["Metrics"][0]["Expression"];
    let variants: Vec<(Option<&str>, bool, &str)> = match expression.get("!If") {
        Some(branches) => {
            let condition = branches[0].as_str();
            vec![(condition, true, branches[1].as_str().unwrap()), (condition, false, branches[2].as_str().unwrap())]
        }
        None => vec![(None, true, expression.as_str().unwrap())],
    };
    for (condition, holds, expression) in variants {
        let present: BTreeSet<&str> = ids
            .iter()
            .filter(|(_, needs)| needs.is_none() || (holds && **needs == condition))
            .map(|(id, _)| id.as_str())
            .collect();
        let used: BTreeSet<&str> =
            ids.keys().map(String::as_str).filter(|id| expression.contains(&format!("FILL({id},"))).collect();
        assert_eq!(used, present, "{expression}");
    }
}
