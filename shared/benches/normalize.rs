//! verify + parse + normalize, per sample body of every provider (`cargo bench -p mailhooks`).
//!
//! Each benchmark is one request with one sample body from shared/tests/fixtures, through the
//! provider's configured authentication and its parser; criterion's throughput line gives the
//! time per event for bodies that hold several. The `stages` group times each step of one
//! request alone, for one sample per provider.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use mailhooks::auth::{AuthRequest, Authenticator};
use mailhooks::receive::event::{event_id, EventIdentity};
use mailhooks::receive::json;
use mailhooks::receive::providers::{self, Provider};

const ENGAGELAB_KEY: &str = "bench-engagelab-key";
const SENDPOST_KEY: &str = "bench-sendpost-key";
const TENCENT_TOKEN: &str = "bench-tencent-token";

fn env(name: &str) -> Option<String> {
    let value = match name {
        "ENGAGELAB_APP_KEY" => ENGAGELAB_KEY,
        "SENDPOST_API_KEY" => SENDPOST_KEY,
        "TENCENT_SES_WEBHOOK_TOKEN" => TENCENT_TOKEN,
        _ => return None,
    };
    Some(value.to_owned())
}

fn hmac_hex(key: &str, message: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The headers the provider would send with `body`, signed for the benchmark's secrets.
fn signed_headers(provider: &Provider, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("ASCII header"));
    };
    match provider.name {
        "engagelab" => {
            let timestamp = Utc::now().timestamp().to_string();
            set("x-webhook-signature", hmac_hex(ENGAGELAB_KEY, timestamp.as_bytes()));
            set("x-webhook-timestamp", timestamp);
            set("x-webhook-appkey", "email".to_owned());
        }
        "sendpost" => set("x-sendpost-signature", hmac_hex(SENDPOST_KEY, body)),
        _ => {}
    }
    headers
}

fn query_token(provider: &Provider) -> Option<&'static str> {
    (provider.name == "tencent_ses").then_some(TENCENT_TOKEN)
}

fn fixtures(provider: &Provider) -> Vec<(String, Vec<u8>)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(provider.name);
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("readable fixture directory").path())
        .filter(|path| path.to_string_lossy().ends_with(".json") && !path.to_string_lossy().ends_with(".expected.json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("readable fixture"))
        })
        .collect()
}

fn verify_parse_normalize(criterion: &mut Criterion) {
    for provider in providers::ALL {
        let authenticator: Authenticator = (provider.authenticator)(&env).expect("valid configuration");
        let mut group = criterion.benchmark_group(provider.name);
        for (name, body) in fixtures(provider) {
            let headers = signed_headers(provider, &body);
            let now = Utc::now();
            let events = provider.parse(&body, now).expect("fixtures parse").len();
            group.throughput(Throughput::Elements(events as u64));
            group.bench_with_input(BenchmarkId::from_parameter(&name), &body, |bencher, body| {
                bencher.iter(|| {
                    let request = AuthRequest { headers: &headers, query_token: query_token(provider), body, now };
                    authenticator.verify(&request).expect("signed for the benchmark");
                    provider.parse(body, now).expect("fixtures parse")
                })
            });
        }
        group.finish();
    }
}

/// Where one request's time goes, for one sample of each provider: each stage on its own.
/// `verify` is a floor for SendPost, whose signature is an HMAC over the whole body; SendPost
/// hashes its own `eventID` rather than the canonical form when the event has one.
fn stages(criterion: &mut Criterion) {
    let samples = [
        (&providers::engagelab::PROVIDER, "delivered"),
        (&providers::sendpost::PROVIDER, "delivered"),
        (&providers::tencent_ses::PROVIDER, "click"),
    ];
    for (provider, sample) in samples {
        let authenticator: Authenticator = (provider.authenticator)(&env).expect("valid configuration");
        let (_, body) = fixtures(provider).into_iter().find(|(name, _)| name == sample).expect("the sample exists");
        let headers = signed_headers(provider, &body);
        let text = std::str::from_utf8(&body).expect("UTF-8 fixture");
        let now = Utc::now();
        let mut group = criterion.benchmark_group(format!("stages/{}/{sample}", provider.name));
        group.bench_function("verify", |bencher| {
            bencher.iter(|| {
                let request = AuthRequest { headers: &headers, query_token: query_token(provider), body: &body, now };
                authenticator.verify(&request).expect("signed for the benchmark")
            })
        });
        group.bench_function("json", |bencher| {
            bencher.iter(|| serde_json::from_str::<json::Value>(text).expect("valid JSON"))
        });
        let object = json::Object::parse(text).expect("valid JSON").expect("an object");
        group.bench_function("canonical_event_id", |bencher| {
            bencher.iter(|| event_id(provider.name, EventIdentity::Payload(&object), None))
        });
        group.bench_function("parse_and_normalize", |bencher| {
            bencher.iter(|| provider.parse(&body, now).expect("fixtures parse"))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Each case takes about a microsecond: short runs give stable medians and keep the
    // whole suite (every sample of every provider) near a minute.
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = verify_parse_normalize, stages
}
criterion_main!(benches);
