//! Arbitrary headers, query token and body through each provider's authenticator, configured
//! with fixed test secrets: never a panic, and never an acceptance that a reference computation
//! of the documented checks (the README's provider set-up) would not also accept. A correctly
//! signed request with a fresh timestamp and no conflicting headers must be accepted.
#![no_main]

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mailhooks::auth::{AuthRequest, ENGAGELAB_APP_KEY, ENGAGELAB_SIGNATURE, ENGAGELAB_TIMESTAMP, SENDPOST_SIGNATURE, SENDPOST_SIGNATURE_ALG};
use mailhooks::receive::providers::{engagelab, sendpost, tencent_ses, Provider};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Two keys, as after a rotation; either signs.
const KEYS: [&str; 2] = ["fuzz-key-old", "fuzz-key-new"];
const TOKEN: &str = "fuzz-url-token";
const TOLERANCE_SECS: i64 = 300;
const BASE_SECS: i64 = 1_700_000_000;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Config {
    EngageLabKeys,
    EngageLabKeysAndToken,
    SendPostKeys,
    SendPostKeysAndToken,
    TencentToken,
    NothingConfigured,
}

impl Config {
    fn provider(self) -> &'static Provider {
        match self {
            Config::EngageLabKeys | Config::EngageLabKeysAndToken | Config::NothingConfigured => &engagelab::PROVIDER,
            Config::SendPostKeys | Config::SendPostKeysAndToken => &sendpost::PROVIDER,
            Config::TencentToken => &tencent_ses::PROVIDER,
        }
    }

    fn setting(self, name: &str) -> Option<String> {
        let keys = KEYS.join(",");
        match (self, name) {
            (Config::EngageLabKeys | Config::EngageLabKeysAndToken, "ENGAGELAB_APP_KEY") => Some(keys),
            (Config::EngageLabKeysAndToken, "ENGAGELAB_WEBHOOK_TOKEN") => Some(TOKEN.into()),
            (Config::SendPostKeys | Config::SendPostKeysAndToken, "SENDPOST_API_KEY") => Some(keys),
            (Config::SendPostKeysAndToken, "SENDPOST_WEBHOOK_TOKEN") => Some(TOKEN.into()),
            (Config::TencentToken, "TENCENT_SES_WEBHOOK_TOKEN") => Some(TOKEN.into()),
            (_, "ENGAGELAB_TOLERANCE_SECS") => Some(TOLERANCE_SECS.to_string()),
            _ => None,
        }
    }

    fn engagelab(self) -> bool {
        matches!(self, Config::EngageLabKeys | Config::EngageLabKeysAndToken)
    }

    fn sendpost(self) -> bool {
        matches!(self, Config::SendPostKeys | Config::SendPostKeysAndToken)
    }

    fn url_token(self) -> bool {
        matches!(self, Config::EngageLabKeysAndToken | Config::SendPostKeysAndToken | Config::TencentToken)
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Timestamp,
    AppKey,
    Signature,
    SendPostSignature,
    SendPostAlgorithm,
    Authorization,
    Other(String),
}

/// A signature computed as the provider would, so the fuzzer also explores accepted requests.
#[derive(Arbitrary, Debug)]
enum Signing {
    None,
    /// EngageLab's HMAC form, over `timestamp` (seconds, or milliseconds when `millis`).
    EngageLabHmac { skew_secs: i32, millis: bool, key: bool, padding: bool },
    /// EngageLab's MD5 form.
    EngageLabMd5 { skew_secs: i32, millis: bool, key: bool, upper: bool },
    /// SendPost's body HMAC.
    SendPost { key: bool, algorithm: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    now_offset_secs: i32,
    signing: Signing,
    /// The right URL token, as query parameter or Basic-auth password.
    token: Option<bool>,
    headers: Vec<(Name, Vec<u8>)>,
    query_token: Option<String>,
    body: Vec<u8>,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn md5(parts: &[&[u8]]) -> Vec<u8> {
    let mut digest = Md5::new();
    for part in parts {
        digest.update(part);
    }
    digest.finalize().to_vec()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    headers.insert(HeaderName::from_static(name), HeaderValue::from_str(&value).unwrap());
}

/// The first value of a header as trimmed text, as the documented checks read it.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}

/// Reference: the EngageLab signature check as EngageLab documents it, written independently.
fn engagelab_accepts(headers: &HeaderMap, now: DateTime<Utc>) -> bool {
    let (Some("email"), Some(timestamp), Some(signature)) =
        (text(headers, ENGAGELAB_APP_KEY), text(headers, ENGAGELAB_TIMESTAMP), text(headers, ENGAGELAB_SIGNATURE))
    else {
        return false;
    };
    let Ok(sent) = timestamp.parse::<i64>() else { return false };
    let sent_millis = if i128::from(sent).abs() >= 100_000_000_000 { i128::from(sent) } else { i128::from(sent) * 1000 };
    if (i128::from(now.timestamp_millis()) - sent_millis).abs() > i128::from(TOLERANCE_SECS) * 1000 {
        return false;
    }
    let Ok(signature) = hex::decode(signature) else { return false };
    KEYS.iter().any(|key| {
        signature == hmac_sha256(key.as_bytes(), timestamp.as_bytes())
            || signature == md5(&[timestamp.as_bytes(), b"email", key.as_bytes()])
    })
}

/// Reference: SendPost's body signature.
fn sendpost_accepts(headers: &HeaderMap, body: &[u8]) -> bool {
    if let Some(algorithm) = headers.get(SENDPOST_SIGNATURE_ALG) {
        if !algorithm.to_str().is_ok_and(|alg| alg.trim().eq_ignore_ascii_case("hmac-sha256")) {
            return false;
        }
    }
    let Some(signature) = text(headers, SENDPOST_SIGNATURE).and_then(|hex| hex::decode(hex).ok()) else {
        return false;
    };
    KEYS.iter().any(|key| signature == hmac_sha256(key.as_bytes(), body))
}

/// Reference: the URL token, as `token` query parameter or Basic-auth password.
fn url_token_accepts(headers: &HeaderMap, query_token: Option<&str>) -> bool {
    let password = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|credentials| credentials.split_once(':').map(|(_, password)| password.to_owned()));
    password.as_deref() == Some(TOKEN) || query_token == Some(TOKEN)
}

fuzz_target!(|input: Input| {
    let config = input.config;
    let now = DateTime::from_timestamp(BASE_SECS + i64::from(input.now_offset_secs), 0).unwrap();
    let mut headers = HeaderMap::new();
    let mut query_token = input.query_token.clone();
    let key = |right: bool| if right { KEYS[1] } else { "not-the-key" };
    let stamp = |skew_secs: i32, millis: bool| {
        let secs = now.timestamp() + i64::from(skew_secs);
        if millis { (secs * 1000).to_string() } else { secs.to_string() }
    };
    match input.signing {
        Signing::None => {}
        Signing::EngageLabHmac { skew_secs, millis, key: right, padding } => {
            let timestamp = stamp(skew_secs, millis);
            let signature = hex::encode(hmac_sha256(key(right).as_bytes(), timestamp.as_bytes()));
            set(&mut headers, ENGAGELAB_APP_KEY, "email".into());
            set(&mut headers, ENGAGELAB_SIGNATURE, if padding { format!(" {signature} ") } else { signature });
            set(&mut headers, ENGAGELAB_TIMESTAMP, timestamp);
        }
        Signing::EngageLabMd5 { skew_secs, millis, key: right, upper } => {
            let timestamp = stamp(skew_secs, millis);
            let signature = hex::encode(md5(&[timestamp.as_bytes(), b"email", key(right).as_bytes()]));
            set(&mut headers, ENGAGELAB_APP_KEY, "email".into());
            set(&mut headers, ENGAGELAB_SIGNATURE, if upper { signature.to_uppercase() } else { signature });
            set(&mut headers, ENGAGELAB_TIMESTAMP, timestamp);
        }
        Signing::SendPost { key: right, algorithm } => {
            set(&mut headers, SENDPOST_SIGNATURE, hex::encode(hmac_sha256(key(right).as_bytes(), &input.body)));
            if algorithm {
                set(&mut headers, SENDPOST_SIGNATURE_ALG, "HMAC-SHA256".into());
            }
        }
    }
    match input.token {
        Some(true) => query_token = Some(TOKEN.into()),
        Some(false) => {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{TOKEN}"));
            set(&mut headers, "authorization", format!("Basic {basic}"));
        }
        None => {}
    }
    let mut tampered = false;
    for (name, value) in &input.headers {
        let name = match name {
            Name::Timestamp => HeaderName::from_static(ENGAGELAB_TIMESTAMP),
            Name::AppKey => HeaderName::from_static(ENGAGELAB_APP_KEY),
            Name::Signature => HeaderName::from_static(ENGAGELAB_SIGNATURE),
            Name::SendPostSignature => HeaderName::from_static(SENDPOST_SIGNATURE),
            Name::SendPostAlgorithm => HeaderName::from_static(SENDPOST_SIGNATURE_ALG),
            Name::Authorization => http::header::AUTHORIZATION,
            Name::Other(name) => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        let Ok(value) = HeaderValue::from_bytes(value) else { continue };
        tampered |= headers.contains_key(&name);
        headers.append(name, value);
    }

    let env = |name: &str| config.setting(name);
    let authenticator = (config.provider().authenticator)(&env).expect("the fuzz configuration is valid");
    let request = AuthRequest { headers: &headers, query_token: query_token.as_deref(), body: &input.body, now };
    let accepted = authenticator.verify(&request).is_ok();

    if accepted {
        assert!(!matches!(config, Config::NothingConfigured), "accepted with no secret configured");
        assert!(!config.engagelab() || engagelab_accepts(&headers, now), "EngageLab signature accepted wrongly");
        assert!(!config.sendpost() || sendpost_accepts(&headers, &input.body), "SendPost signature accepted wrongly");
        assert!(!config.url_token() || url_token_accepts(&headers, query_token.as_deref()), "URL token accepted wrongly");
    }
    // Completeness: a request the reference accepts on every configured check, with no header
    // duplicated by the fuzzer, is accepted.
    let reference = !matches!(config, Config::NothingConfigured)
        && (!config.engagelab() || engagelab_accepts(&headers, now))
        && (!config.sendpost() || sendpost_accepts(&headers, &input.body))
        && (!config.url_token() || url_token_accepts(&headers, query_token.as_deref()));
    if reference && !tampered {
        assert!(accepted, "a correctly authenticated request was refused");
    }
});
