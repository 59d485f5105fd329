//! Whatever arrives at a webhook, parsing and authentication answer with a value, never a panic:
//! a panicking Lambda answers 502, which the provider retries forever.
//!
//! Bodies are arbitrary bytes, random JSON, and mutations of the providers' sample payloads (the
//! fixture files under `tests/fixtures/<provider>/`, plus a few inline samples so coverage does
//! not depend on which fixtures exist). Case counts are proptest's default (256, or
//! `PROPTEST_CASES`), except for the mutations (see `mutation_cases`).

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use chrono::{DateTime, Utc};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use mailhooks::auth::{
    AuthError, AuthRequest, Authenticator, SecretList, ENGAGELAB_APP_KEY, ENGAGELAB_SIGNATURE, ENGAGELAB_TIMESTAMP,
    SENDPOST_SIGNATURE, SENDPOST_SIGNATURE_ALG,
};
use mailhooks::receive::providers::{Provider, ALL};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{Map, Number, Value};

/// A fixed receive time keeps every case reproducible.
const NOW_SECS: i64 = 1_700_000_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW_SECS, 0).unwrap()
}

/// One payload of each provider's documented shape, and a batch, so mutations reach the
/// normalizers' branches even before any fixture file exists.
const INLINE_SAMPLES: &[(&str, &str)] = &[
    (
        "inline engagelab target",
        r#"{"server":"email","message_id":"1676615711309_104117.sc-inbound","itime":1676615711325,
           "status":{"message_status":"target","status_data":{"email_ids":["id0$a@x.com","id1$b@x.com"],
           "task_id":"-1","api_user":"u","from":"n@x.com","subject":"Hi","tos":["a@x.com","Bob <B@X.com>"],
           "message":"successfully request","label_id":0}},"custom_args":{"k":"v"}}"#,
    ),
    (
        "inline engagelab click",
        r#"{"server":"email","message_id":"m1$a@x.com","to":"a@x.com","itime":1676620370426,
           "response":{"event":"click","response_data":{"email_id":"m1$a@x.com","url":"https://x.com/?a=1",
           "ip":"8.8.8.8","task_id":"0","api_user":"u","label_id":0}},"custom_args":{}}"#,
    ),
    (
        "inline sendpost soft bounce",
        r#"{"event":{"eventID":"e-1","type":3,"messageID":"m-1","to":"a@x.com","from":"s@x.com",
           "messageSubject":"Hi","accountID":117,"submittedAt":1567516091587205000,"smtpCode":452,
           "smtpDescription":"over quota","groups":["g"],"eventMetadata":{"clickedURL":"","trackedIP":"1.2.3.4"}},
           "emailMessage":{"messageID":"m-1","customFields":{"k":"v"},"to":[{"email":"a@x.com"}]}}"#,
    ),
    (
        "inline tencent_ses batch",
        r#"[{"event":"bounce","email":"a@x.com","bulkId":"qcloudses-1","timestamp":1654064687,
            "username":"251200670","from":"s@x.com","subject":"Hi","templateId":1,"eventid":3,
            "reason":"452 over quota","bounceType":"soft_bounce"},
           {"event":"open","email":"b@x.com","bulkId":"qcloudses-2","timestamp":1654065283,"useragent":"UA"}]"#,
    ),
];

/// Every `*.json` input under `tests/fixtures/<provider>/`, for each provider whose directory
/// exists yet. `*.expected.json` files are normalizer outputs, not payloads, so they are left out.
fn fixture_samples() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures");
    let mut samples = Vec::new();
    for provider in ALL {
        let Ok(entries) = fs::read_dir(root.join(provider.name)) else { continue };
        for entry in entries {
            let path = entry.expect("fixture directory entry").path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
            if name.ends_with(".json") && !name.ends_with(".expected.json") {
                let body = fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
                samples.push((format!("{}/{name}", provider.name), body));
            }
        }
    }
    samples
}

/// Read once per test binary, not once per case.
fn all_samples() -> &'static [(String, Vec<u8>)] {
    static SAMPLES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let inline = INLINE_SAMPLES.iter().map(|&(name, body)| (name.to_owned(), body.as_bytes().to_vec()));
        inline.chain(fixture_samples()).collect()
    })
}

/// Parses `body` with every provider: a value, never a panic; events, when there are any,
/// carry what every stored item needs.
fn assert_parses_or_refuses(body: &[u8], origin: &str) -> Result<(), TestCaseError> {
    for provider in ALL {
        let outcome = catch_unwind(AssertUnwindSafe(|| provider.parse(body, now())));
        let Ok(parsed) = outcome else {
            return Err(TestCaseError::fail(format!(
                "{} panicked on {origin}: {:?}",
                provider.name,
                String::from_utf8_lossy(body)
            )));
        };
        match parsed {
            Ok(events) => assert_events_are_storable(provider, &events, origin)?,
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
    Ok(())
}

fn assert_events_are_storable(
    provider: &Provider,
    events: &[mailhooks::receive::event::Event],
    origin: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(!events.is_empty(), "{} gave no events for {origin}", provider.name);
    for event in events {
        let id = &event.event_id;
        prop_assert!(
            id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')),
            "{} gave event_id {id:?} for {origin}",
            provider.name
        );
        prop_assert_eq!(&event.provider, provider.name);
        prop_assert!(!event.raw.is_empty(), "{} gave an empty raw for {origin}", provider.name);
    }
    Ok(())
}

/// Field names and values the three providers use (their documentation), so random
/// objects reach the normalizers' branches, not only their fallback for unknown events.
const FIELD_NAMES: &[&str] = &[
    "server",
    "message_id",
    "itime",
    "status",
    "message_status",
    "status_data",
    "email_id",
    "email_ids",
    "tos",
    "to",
    "from",
    "subject",
    "response",
    "event",
    "response_data",
    "url",
    "ip",
    "custom_args",
    "api_user",
    "label_id",
    "task_id",
    "message",
    "x_mx_rcptto",
    "eventID",
    "type",
    "messageID",
    "messageSubject",
    "submittedAt",
    "smtpCode",
    "smtpDescription",
    "groups",
    "accountID",
    "eventMetadata",
    "clickedURL",
    "trackedIP",
    "rawUserAgent",
    "emailMessage",
    "customFields",
    "email",
    "bulkId",
    "timestamp",
    "username",
    "templateId",
    "reason",
    "bounceType",
    "eventid",
    "useragent",
    "link",
];

const TEXT_VALUES: &[&str] = &[
    "target",
    "sent",
    "delivered",
    "soft_bounce",
    "invalid_email",
    "open",
    "click",
    "unsubscribe",
    "report_spam",
    "route",
    "bounce",
    "hard_bounce",
    "dropped",
    "deferred",
    "spamreport",
    "email",
    "Goblin <A@x.com>",
    "a@x.com",
    "<>",
    "@",
    "",
    " ",
    "1676615711325",
    "1567516091587205000",
    "-1",
    "2023-02-17T06:35:11.325Z",
    "\u{0}",
    "\u{feff}",
    "ünïcödé <Ü@x.com>",
];

/// Timestamps in seconds, milliseconds and nanoseconds, and the integer limits around them.
const EDGE_NUMBERS: &[i64] =
    &[0, -1, 1, 1_654_064_687, 1_676_615_711_325, 1_567_516_091_587_205_000, i64::MIN, i64::MAX];

fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![select(TEXT_VALUES).prop_map(str::to_owned), ".{0,24}"]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(FIELD_NAMES).prop_map(str::to_owned), 1 => ".{0,12}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        select(EDGE_NUMBERS).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |float| Number::from_f64(float).map(Value::Number)),
        json_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            json_object(inner).prop_map(Value::Object),
        ]
    })
}

fn json_object(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((json_key(), values), 0..8).prop_map(|entries| entries.into_iter().collect())
}

/// One change to a body. Positions are [`Index`]es so the same change applies to a body of any
/// length.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    /// Replaces the n-th value of the JSON tree (in document order, the whole body first).
    ReplaceValue(Index, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        // Weighted up: it keeps the body valid JSON, so the normalizers see it.
        3 => (any::<Index>(), json_value()).prop_map(|(at, value)| Mutation::ReplaceValue(at, value)),
    ]
}

impl Mutation {
    fn apply(&self, body: &mut Vec<u8>) {
        match self {
            Mutation::FlipBit(at, bit) => {
                if !body.is_empty() {
                    let position = at.index(body.len());
                    body[position] ^= 1 << bit;
                }
            }
            Mutation::Truncate(at) => body.truncate(at.index(body.len() + 1)),
            Mutation::Insert(at, bytes) => {
                let position = at.index(body.len() + 1);
                body.splice(position..position, bytes.iter().copied());
            }
            // A body that is no longer JSON has no values to replace; the byte changes cover it.
            Mutation::ReplaceValue(at, replacement) => {
                if let Ok(mut tree) = serde_json::from_slice::<Value>(body) {
                    let mut remaining = at.index(count_values(&tree));
                    replace_nth_value(&mut tree, &mut remaining, replacement);
                    *body = serde_json::to_vec(&tree).expect("a JSON value serializes");
                }
            }
        }
    }
}

fn count_values(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_values).sum(),
        Value::Object(fields) => fields.values().map(count_values).sum(),
        _ => 0,
    }
}

/// True once the value `remaining` steps into the document-order walk has been replaced.
fn replace_nth_value(value: &mut Value, remaining: &mut usize, replacement: &Value) -> bool {
    if *remaining == 0 {
        *value = replacement.clone();
        return true;
    }
    *remaining -= 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|item| replace_nth_value(item, remaining, replacement)),
        Value::Object(fields) => fields.values_mut().any(|field| replace_nth_value(field, remaining, replacement)),
        _ => false,
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        assert_parses_or_refuses(&body, "arbitrary bytes")?;
    }

    #[test]
    fn any_json_object_gives_at_least_one_event(object in json_object(json_value())) {
        let body = serde_json::to_vec(&object).unwrap();
        for provider in ALL {
            let events = provider.parse(&body, now());
            prop_assert!(events.is_ok(), "{} refused {object:?}: {events:?}", provider.name);
            assert_events_are_storable(provider, &events.unwrap(), "a random object")?;
        }
    }

    #[test]
    fn any_array_of_json_objects_gives_at_least_one_event(
        objects in prop::collection::vec(json_object(json_value()), 1..4),
    ) {
        let body = serde_json::to_vec(&objects).unwrap();
        for provider in ALL {
            let events = provider.parse(&body, now());
            prop_assert!(events.is_ok(), "{} refused {objects:?}: {events:?}", provider.name);
            assert_events_are_storable(provider, &events.unwrap(), "a random array of objects")?;
        }
    }
}

/// Each case applies its mutations to every sample, so one case parses dozens of bodies with
/// every provider: fewer cases than elsewhere keep the suite fast while every fixture file still
/// gets every mutation. `PROPTEST_CASES` raises the count for a deeper run.
fn mutation_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(mutation_cases()))]

    #[test]
    fn mutated_samples_never_panic(mutations in prop::collection::vec(mutation(), 1..4)) {
        for (name, sample) in all_samples() {
            let mut body = sample.clone();
            for mutation in &mutations {
                mutation.apply(&mut body);
            }
            assert_parses_or_refuses(&body, name)?;
        }
    }
}

/// Secrets the random configurations and requests share, so some tokens match.
const SECRETS: &[&str] = &["k1", "k2", "rotated-secret"];

fn setting() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        select(SECRETS).prop_map(str::to_owned),
        Just("k1, k2".to_owned()),
        Just(" , ".to_owned()),
        ".{0,16}",
    ])
}

/// Header values of every shape the checks parse: hex of any length, integers (timestamps,
/// including ones inside the window), Basic credentials, and raw bytes (`to_str` fails on
/// non-ASCII ones).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let text = prop_oneof![
        "[0-9a-fA-F]{0,70}",
        any::<i64>().prop_map(|number| number.to_string()),
        (NOW_SECS - 1_000..NOW_SECS + 1_000).prop_map(|secs| secs.to_string()),
        (NOW_SECS * 1_000 - 1_000_000..NOW_SECS * 1_000 + 1_000_000).prop_map(|millis| millis.to_string()),
        select(&["email", "hmac-sha256", "HMAC-SHA256", "sha1", "Basic", "Basic ", "Basic !!"][..])
            .prop_map(str::to_owned),
        (".{0,10}", prop_oneof![select(SECRETS).prop_map(str::to_owned), ".{0,10}"]).prop_map(|(user, password)| {
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {credentials}")
        }),
        "[ -~]{0,40}",
    ]
    .prop_map(|text| HeaderValue::from_str(&text).expect("visible ASCII and spaces are valid in a header"));
    // Control characters other than tab are not allowed in a header value, so they become spaces.
    let bytes = prop::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| {
        let allowed =
            bytes.into_iter().map(|byte| if (byte < b' ' && byte != b'\t') || byte == 0x7f { b' ' } else { byte });
        HeaderValue::from_bytes(&allowed.collect::<Vec<u8>>()).expect("control characters were replaced")
    });
    prop_oneof![3 => text, 1 => bytes]
}

fn request_headers() -> impl Strategy<Value = HeaderMap> {
    let names = [
        HeaderName::from_static(ENGAGELAB_APP_KEY),
        HeaderName::from_static(ENGAGELAB_TIMESTAMP),
        HeaderName::from_static(ENGAGELAB_SIGNATURE),
        HeaderName::from_static(SENDPOST_SIGNATURE),
        HeaderName::from_static(SENDPOST_SIGNATURE_ALG),
        AUTHORIZATION,
    ];
    prop::collection::vec(prop::option::of(header_value()), names.len()).prop_map(move |values| {
        names.iter().cloned().zip(values).filter_map(|(name, value)| Some((name, value?))).collect()
    })
}

fn receive_time() -> impl Strategy<Value = DateTime<Utc>> {
    // chrono represents about ±262,000 years: ±8e12 seconds stays inside it.
    prop_oneof![NOW_SECS - 1_000..NOW_SECS + 1_000, -8_000_000_000_000i64..8_000_000_000_000]
        .prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("within chrono's range"))
}

#[derive(Debug, Clone)]
struct Config {
    tokens: Option<String>,
    app_keys: Option<String>,
    tolerance_secs: i64,
    api_keys: Option<String>,
}

fn config() -> impl Strategy<Value = Config> {
    (setting(), setting(), prop_oneof![1..=86_400i64, any::<i64>()], setting())
        .prop_map(|(tokens, app_keys, tolerance_secs, api_keys)| Config { tokens, app_keys, tolerance_secs, api_keys })
}

impl Config {
    fn secrets(setting: &Option<String>) -> Option<SecretList> {
        setting.as_deref().and_then(SecretList::parse)
    }

    fn url_token(&self) -> Authenticator {
        Authenticator::new().with_url_token(Self::secrets(&self.tokens))
    }

    fn engagelab(&self) -> Authenticator {
        Authenticator::new().with_engagelab_signature(Self::secrets(&self.app_keys), self.tolerance_secs)
    }

    fn sendpost(&self) -> Authenticator {
        Authenticator::new().with_sendpost_signature(Self::secrets(&self.api_keys))
    }

    fn all(&self) -> Authenticator {
        self.url_token()
            .with_engagelab_signature(Self::secrets(&self.app_keys), self.tolerance_secs)
            .with_sendpost_signature(Self::secrets(&self.api_keys))
    }
}

proptest! {
    #[test]
    fn verifier_answers_any_request_and_requires_every_configured_check(
        config in config(),
        headers in request_headers(),
        query_token in prop::option::of(prop_oneof![select(SECRETS).prop_map(str::to_owned), ".{0,16}"]),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in receive_time(),
    ) {
        let request = AuthRequest { headers: &headers, query_token: query_token.as_deref(), body: &body, now };
        let verdict = |authenticator: Authenticator| {
            catch_unwind(AssertUnwindSafe(|| authenticator.verify(&request)))
                .map_err(|_| TestCaseError::fail(format!("verify panicked with {config:?}")))
        };
        let all = verdict(config.all())?;
        let configured: Vec<_> = [config.url_token(), config.engagelab(), config.sendpost()]
            .into_iter()
            .filter(Authenticator::is_configured)
            .map(verdict)
            .collect::<Result<_, _>>()?;

        if configured.is_empty() {
            prop_assert_eq!(&all, &Err(AuthError::NotConfigured));
        } else {
            prop_assert_eq!(all.is_ok(), configured.iter().all(Result::is_ok));
        }
        if let Err(error) = all {
            // Long request values could only be in the message if it echoed them.
            let message = error.to_string();
            let offered = headers.values().filter_map(|value| value.to_str().ok()).chain(query_token.as_deref());
            for value in offered.map(str::trim).filter(|value| value.len() >= 8) {
                prop_assert!(!message.contains(value), "{message:?} echoes {value:?}");
            }
        }
    }
}
