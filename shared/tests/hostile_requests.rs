//! The hostile request corpus (`tests/hostile/<provider>/*.json`, written by
//! `scripts/make-hostile-corpus.py`) through the real webhook receivers against the local
//! DynamoDB: every case gets its documented status and JSON body; a refused case writes nothing
//! (no event, no suppression); an accepted case loses nothing: every event is stored, with `raw`
//! exactly as sent, in an item DynamoDB accepts.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use mailhooks::http::WebhookReceiver;
use mailhooks::receive::providers::{self, Provider};
use mailhooks::store::raw_codec::decode_raw;
use mailhooks::store::DynamoStore;
use serde_json::{json, Map, Value};
use support::{LocalDynamo, ENGAGELAB_TEST_KEY, SENDPOST_TEST_KEY, TENCENT_SES_TEST_TOKEN};

/// The corpus keeps at least this many cases per provider.
const MIN_CASES_PER_PROVIDER: usize = 50;

struct Case {
    file: String,
    spec: Value,
}

impl Case {
    fn all(provider: &str) -> Vec<Case> {
        let directory = support::repo_root().join("shared/tests/hostile").join(provider);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                let spec: Value = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                Case { file: format!("{provider}/{}", path.file_name().unwrap().to_string_lossy()), spec }
            })
            .collect()
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.spec.get(name).and_then(Value::as_str)
    }

    fn expect(&self) -> &Value {
        &self.spec["expect"]
    }

    /// Replaces each `expand` marker by its text repeated.
    fn expanded(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if let Some(expand) = self.spec.get("expand").and_then(Value::as_object) {
            for (marker, how) in expand {
                let (piece, times) = (how[0].as_str().unwrap(), how[1].as_u64().unwrap() as usize);
                text = text.replace(marker, &piece.repeat(times));
            }
        }
        text
    }

    fn body(&self) -> Vec<u8> {
        match (self.str("body"), self.str("body_base64")) {
            (Some(body), None) => self.expanded(body).into_bytes(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD.decode(encoded).unwrap(),
            _ => panic!("{}: a case has body or body_base64", self.file),
        }
    }
}

fn hmac_hex(key: &str, message: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn md5_hex(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut digest = md5::Md5::new();
    for part in parts {
        digest.update(part);
    }
    hex::encode(digest.finalize())
}

/// `{now}`, `{now+N}`, `{now-N}` and `{now_ms}` in `text`.
fn resolve_times(text: &str, now: i64) -> String {
    let mut out = text.replace("{now_ms}", &(now * 1000).to_string());
    while let Some(start) = out.find("{now") {
        let end = start + out[start..].find('}').unwrap();
        let offset: i64 = match &out[start + 4..end] {
            "" => 0,
            signed => signed.parse().unwrap(),
        };
        out.replace_range(start..=end, &(now + offset).to_string());
    }
    out
}

/// The request as API Gateway would hand it to the function: the HTTP API event (payload 2.0),
/// or the REST API event (1.0) when the case repeats a header.
fn lambda_event(provider: &Provider, case: &Case, body: &[u8]) -> Value {
    let now = chrono::Utc::now().timestamp();
    let signed = case.str("auth").unwrap_or("signed") == "signed";
    let mut headers = Map::new();
    headers.insert("content-type".into(), "application/json".into());
    headers.insert("user-agent".into(), "hostile-corpus".into());
    let mut query = String::new();
    if signed {
        match provider.name {
            "engagelab" => {
                headers.insert("x-webhook-appkey".into(), "email".into());
                headers.insert("x-webhook-timestamp".into(), "{now}".into());
                headers.insert("x-webhook-signature".into(), "{engagelab_hmac}".into());
            }
            "sendpost" => {
                headers.insert("x-sendpost-signature".into(), "{sendpost_hmac}".into());
                headers.insert("x-sendpost-signature-alg".into(), "hmac-sha256".into());
                headers.insert("x-sendpost-webhook-id".into(), "hostile".into());
            }
            _ => query = "token={token}".into(),
        }
    }
    if let Some(changes) = case.spec.get("headers").and_then(Value::as_object) {
        for (name, value) in changes {
            headers.retain(|existing, _| !existing.eq_ignore_ascii_case(name));
            if !value.is_null() {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    if let Some(given) = case.str("query") {
        query = given.to_owned();
    }

    let token = TENCENT_SES_TEST_TOKEN;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("any:{token}"));
    // Computed only when asked for: a 6 MB HMAC is slow in a debug build.
    let body_hmac = std::cell::OnceCell::new();
    let body_hmac = || body_hmac.get_or_init(|| hmac_hex(SENDPOST_TEST_KEY, body)).clone();
    let resolve_plain = |text: &str| {
        let mut text = resolve_times(&case.expanded(text), now).replace("{token}", token).replace("{basic_token}", &basic);
        if text.contains("{sendpost_hmac_upper}") {
            text = text.replace("{sendpost_hmac_upper}", &body_hmac().to_uppercase());
        }
        if text.contains("{sendpost_hmac_of_body_newline}") {
            let body_newline = [body, b"\n"].concat();
            text = text.replace("{sendpost_hmac_of_body_newline}", &hmac_hex(SENDPOST_TEST_KEY, &body_newline));
        }
        if text.contains("{sendpost_hmac}") {
            text = text.replace("{sendpost_hmac}", &body_hmac());
        }
        text
    };
    let mut resolved: Vec<(String, Vec<String>)> =
        headers.iter().map(|(name, value)| (name.clone(), vec![resolve_plain(value.as_str().unwrap())])).collect();
    if let Some(multi) = case.spec.get("multi_headers").and_then(Value::as_object) {
        for (name, values) in multi {
            resolved.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
            let values = values.as_array().unwrap().iter().map(|value| resolve_plain(value.as_str().unwrap())).collect();
            resolved.push((name.clone(), values));
        }
    }
    // EngageLab's signatures cover the timestamp header as finally sent.
    let timestamp = resolved
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-webhook-timestamp"))
        .map(|(_, values)| values[0].clone())
        .unwrap_or_default();
    let engagelab_hmac = hmac_hex(ENGAGELAB_TEST_KEY, timestamp.as_bytes());
    let engagelab_md5 = md5_hex(&[timestamp.as_bytes(), b"email", ENGAGELAB_TEST_KEY.as_bytes()]);
    for (_, values) in &mut resolved {
        for value in values {
            *value = value
                .replace("{engagelab_hmac_upper}", &engagelab_hmac.to_uppercase())
                .replace("{engagelab_hmac}", &engagelab_hmac)
                .replace("{engagelab_md5}", &engagelab_md5);
        }
    }
    let query = resolve_plain(&query);

    let method = case.str("method").unwrap_or("POST");
    let path = format!("/webhooks/{}", provider.name.replace('_', "-"));
    let base64_body = case.str("body_base64").is_some() || case.spec["encode_base64"] == true;
    let body_field = if base64_body {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).expect("a text body is UTF-8")
    };
    if case.spec.get("multi_headers").is_some() {
        let parameters: Map<String, Value> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_owned(), json!([value])))
            .collect();
        json!({
            "resource": path, "path": path, "httpMethod": method,
            "multiValueHeaders": resolved.into_iter().map(|(name, values)| (name, json!(values))).collect::<Map<String, Value>>(),
            "multiValueQueryStringParameters": parameters,
            "requestContext": {
                "resourcePath": path, "httpMethod": method, "path": path, "stage": "prod",
                "requestId": "hostile", "accountId": "123456789012", "apiId": "local",
                "identity": {"sourceIp": "127.0.0.1"}
            },
            "body": body_field,
            "isBase64Encoded": base64_body
        })
    } else {
        let headers: Map<String, Value> =
            resolved.into_iter().map(|(name, mut values)| (name, Value::from(values.remove(0)))).collect();
        let mut event = support::http_api_event(method, &path, &query, Value::Object(headers));
        event["body"] = body_field.into();
        event["isBase64Encoded"] = base64_body.into();
        event
    }
}

/// Every item of a table, all pages; with more patience than the handlers' client, since a
/// thousand items are slow to scan from the local DynamoDB on a busy machine.
async fn scan(local: &LocalDynamo, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let client = aws_sdk_dynamodb::Client::from_conf(
        local
            .client()
            .config()
            .to_builder()
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(std::time::Duration::from_secs(120))
                    .build(),
            )
            .build(),
    );
    let pages = client.scan().table_name(table).into_paginator().items().send();
    let items: Result<Vec<_>, _> = pages.collect::<Vec<_>>().await.into_iter().collect();
    items.expect("scan works")
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

/// What DynamoDB refuses and moto lets through: maps and lists nested deeper than 32 levels,
/// numbers beyond 38 significant digits or outside 1e-130..1e126, and empty map keys.
fn check_dynamodb_limits(value: &AttributeValue, depth: usize, at: &str) -> Result<(), String> {
    match value {
        AttributeValue::M(map) => {
            if depth > 32 {
                return Err(format!("{at}: nested {depth} levels deep"));
            }
            map.iter().try_for_each(|(key, item)| check_dynamodb_limits(item, depth + 1, &format!("{at}.{key}")))
        }
        AttributeValue::L(items) => {
            if depth > 32 {
                return Err(format!("{at}: nested {depth} levels deep"));
            }
            items.iter().try_for_each(|item| check_dynamodb_limits(item, depth + 1, &format!("{at}[]")))
        }
        AttributeValue::N(number) => check_number(number).map_err(|why| format!("{at}: number {number}: {why}")),
        AttributeValue::Ns(numbers) => numbers.iter().try_for_each(|number| check_number(number)),
        _ => Ok(()),
    }
}

fn check_number(number: &str) -> Result<(), String> {
    let value: f64 = number.parse().map_err(|_| "not a number".to_owned())?;
    let mantissa: String = number.split(['e', 'E']).next().unwrap().chars().filter(char::is_ascii_digit).collect();
    let significant = mantissa.trim_start_matches('0').trim_end_matches('0');
    if significant.len() > 38 {
        return Err(format!("{} significant digits", significant.len()));
    }
    if value != 0.0 && !(1e-130..1e126).contains(&value.abs()) {
        return Err("out of range".into());
    }
    Ok(())
}

/// An HTTP answer: its status and JSON body.
async fn answer(receiver: &WebhookReceiver<DynamoStore>, request: lambda_http::Request) -> (u16, Value) {
    let response = receiver.handle(request).await.expect("handlers always answer");
    assert_eq!(response.headers()["content-type"], "application/json");
    support::status_and_json(response)
}

/// Checks one case's answer; `None` when it is right.
fn check_answer(case: &Case, status: u16, answer: &Value) -> Option<String> {
    let expect = case.expect();
    let expected_status = expect["status"].as_u64().unwrap() as u16;
    if status != expected_status {
        return Some(format!("status {status}, expected {expected_status}: {answer}"));
    }
    if status == 200 {
        let counts = answer.as_object().filter(|object| object.len() == 2);
        let valid = counts.is_some_and(|counts| counts["stored"].is_u64() && counts["duplicates"].is_u64());
        return (!valid).then(|| format!("body {answer} is not {{\"stored\": N, \"duplicates\": M}}"));
    }
    let message = answer.as_object().filter(|object| object.len() == 1).and_then(|object| object["error"].as_str());
    match (message, expect["error"].as_str()) {
        (None, _) => Some(format!("body {answer} is not {{\"error\": \"...\"}}")),
        (Some(message), Some(wanted)) if !message.contains(wanted) => {
            Some(format!("error {message:?} does not name {wanted:?}"))
        }
        _ => None,
    }
}

/// Checks what one case left in its own table; `None` when it is right.
fn check_table(
    case: &Case,
    provider: &Provider,
    body: &[u8],
    answer: &Value,
    items: &[HashMap<String, AttributeValue>],
) -> Option<String> {
    if case.expect()["status"] != 200 {
        // Refused: nothing at all, neither an event nor a suppression.
        let keys: Vec<&str> = items.iter().filter_map(|item| text(item, "pk")).collect();
        return (!keys.is_empty()).then(|| format!("a refused request wrote {keys:?}"));
    }
    let events = provider.parse(body, chrono::Utc::now()).expect("an accepted body parses");
    let expected_events = case.expect()["events"].as_u64().unwrap() as usize;
    if events.len() != expected_events {
        return Some(format!("{} events, expected {expected_events}", events.len()));
    }
    if answer["stored"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap() != events.len() as u64 {
        return Some(format!("answer {answer} for {} events", events.len()));
    }
    if let Some(types) = case.expect().get("event_types").and_then(Value::as_array) {
        if let Some(event) = events.iter().find(|event| !types.iter().any(|wanted| wanted == event.event_type.as_str())) {
            return Some(format!("event type {} not in {types:?}", event.event_type));
        }
    }
    // An event is its id and its message: EngageLab may list one address twice in a target's
    // `tos`, two messages whose events share the id (it hashes payload and recipient).
    let stored: Vec<&HashMap<String, AttributeValue>> =
        items.iter().filter(|item| text(item, "pk").is_some_and(|pk| pk.starts_with("MSG#"))).collect();
    if answer["stored"].as_u64() != Some(stored.len() as u64) {
        return Some(format!("{} event items for answer {answer}", stored.len()));
    }
    for event in &events {
        let found = stored.iter().find(|item| {
            text(item, "event_id") == Some(event.event_id.as_str()) && text(item, "message_id") == event.message_id.as_deref()
        });
        let Some(item) = found else {
            return Some(format!("event {} was accepted but not stored", event.event_id));
        };
        match decode_raw(&item["raw"], item) {
            Ok(kept) if kept == event.raw => {}
            Ok(kept) => return Some(format!("raw of {} bytes stored, {} bytes sent", kept.len(), event.raw.len())),
            Err(error) => return Some(format!("event {}: {error}", event.event_id)),
        }
    }
    for item in items {
        for (name, value) in item {
            if let Err(why) = check_dynamodb_limits(value, 1, name) {
                return Some(format!("item {:?}: {why}", text(item, "pk")));
            }
        }
    }
    None
}

/// One provider's corpus at a time: six-megabyte bodies in parallel make the local DynamoDB
/// time out.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every case of one provider, each against its own new table.
async fn run_corpus(provider: &'static Provider) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let local = LocalDynamo::shared();
    let cases = Case::all(provider.name);
    assert!(cases.len() >= MIN_CASES_PER_PROVIDER, "{}: only {} cases", provider.name, cases.len());
    let tables = local.new_tables(cases.len());
    let mut failures = Vec::new();
    let mut delivered = 0;
    for (case, table) in cases.iter().zip(&tables) {
        let started = std::time::Instant::now();
        let body = case.body();
        let event = lambda_event(provider, case, &body).to_string();
        if case.expect()["before_handler"] == true {
            if mailhooks::http_event::request_from_str(&event).is_ok() {
                failures.push(format!("{}: the functions accepted a request API Gateway cannot send", case.file));
            }
            continue;
        }
        delivered += 1;
        let request = mailhooks::http_event::request_from_str(&event)
            .unwrap_or_else(|error| panic!("{}: not a valid API Gateway event: {error}", case.file));
        let receiver = WebhookReceiver::from_env(provider, &support::sample_env, local.store(table, 30))
            .expect("valid configuration");
        let (status, answer) = answer(&receiver, request).await;
        let failure = match check_answer(case, status, &answer) {
            Some(failure) => Some(failure),
            None => check_table(case, provider, &body, &answer, &scan(local, table).await),
        };
        if let Some(failure) = failure {
            failures.push(format!("{}: {failure}", case.file));
        }
        let elapsed = started.elapsed();
        if elapsed.as_secs() >= 2 {
            eprintln!("{}: {elapsed:?}", case.file);
        }
    }
    assert!(failures.is_empty(), "{} hostile cases failed:\n{}", failures.len(), failures.join("\n"));
    println!("{}: {} hostile cases, {delivered} through the receiver", provider.name, cases.len());
}

#[tokio::test]
async fn engagelab_hostile_corpus() {
    run_corpus(&providers::engagelab::PROVIDER).await;
}

#[tokio::test]
async fn sendpost_hostile_corpus() {
    run_corpus(&providers::sendpost::PROVIDER).await;
}

#[tokio::test]
async fn tencent_ses_hostile_corpus() {
    run_corpus(&providers::tencent_ses::PROVIDER).await;
}
