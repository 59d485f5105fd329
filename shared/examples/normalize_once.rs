//! One fixture through verify + parse + normalize, `ITERATIONS` times, for counting instructions
//! with callgrind, which repeat exactly under load where criterion's wall-clock times do not:
//!
//! ```sh
//! cargo build --profile bench -p mailhooks --example normalize_once
//! valgrind --tool=callgrind target/release/examples/normalize_once sendpost delivered 201
//! valgrind --tool=callgrind target/release/examples/normalize_once sendpost delivered 1
//! ```
//!
//! The difference of the two totals over 200 is one request, without the program's setup;
//! divide by the events of the body for the benchmark's per-event figure.

use std::path::Path;

use chrono::Utc;
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use mailhooks::auth::{AuthRequest, Authenticator};
use mailhooks::receive::providers;

const KEY: &str = "callgrind-key";

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [provider_name, fixture_name, iterations] = arguments.as_slice() else {
        panic!("usage: normalize_once PROVIDER FIXTURE ITERATIONS");
    };
    let provider = providers::by_name(provider_name).expect("a registered provider");
    let iterations: u64 = iterations.parse().expect("a number of iterations");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider.name)
        .join(format!("{fixture_name}.json"));
    let body = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));

    let env = |name: &str| {
        matches!(name, "ENGAGELAB_APP_KEY" | "SENDPOST_API_KEY" | "TENCENT_SES_WEBHOOK_TOKEN").then(|| KEY.to_owned())
    };
    let authenticator: Authenticator = (provider.authenticator)(&env).expect("valid configuration");
    let now = Utc::now();
    let mut headers = HeaderMap::new();
    let mut sign = |name: &'static str, message: &[u8]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).expect("any key length");
        mac.update(message);
        headers.insert(name, HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).expect("hex"));
    };
    let timestamp = now.timestamp().to_string();
    match provider.name {
        "engagelab" => sign("x-webhook-signature", timestamp.as_bytes()),
        "sendpost" => sign("x-sendpost-signature", &body),
        _ => {}
    }
    headers.insert("x-webhook-timestamp", HeaderValue::from_str(&timestamp).expect("digits"));
    headers.insert("x-webhook-appkey", HeaderValue::from_static("email"));
    let query_token = (provider.name == "tencent_ses").then_some(KEY);

    let mut events = 0;
    for _ in 0..iterations {
        let request = AuthRequest { headers: &headers, query_token, body: &body, now };
        authenticator.verify(&request).expect("signed for the run");
        events += std::hint::black_box(provider.parse(&body, now).expect("fixture parses")).len();
    }
    println!("{events} events");
}
