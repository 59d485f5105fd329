//! Known-answer tests for the webhook checks.
//!
//! Every expected signature is hard-coded, computed outside this code so a bug in the signing
//! code cannot agree with itself. The commands that produced them are next to each constant.

use http::{HeaderName, HeaderValue};

use super::*;

/// The fixed "now" of every request: 2023-11-14T22:13:20Z.
const NOW_SECS: i64 = 1_700_000_000;

const APP_KEY: &str = "el-test-app-key";
/// The EngageLab timestamp sent with the signatures below, equal to `NOW_SECS`.
const TIMESTAMP: &str = "1700000000";
/// printf %s 1700000000 | openssl dgst -sha256 -hmac el-test-app-key
const HMAC_OF_TIMESTAMP: &str = "75f2a04960c95c58f064bc6d4bd3584c09a980eec086752ccca4b0f13012aaf4";
/// printf %s 1700000000emailel-test-app-key | openssl dgst -md5
const MD5_OF_TIMESTAMP: &str = "3af7e17fb6190fa3c0d00f8e5da514c7";

const API_KEY: &str = "sp-test-api-key";
const BODY: &[u8] = br#"{"type":2,"messageID":"abc"}"#;
/// printf %s '{"type":2,"messageID":"abc"}' | openssl dgst -sha256 -hmac sp-test-api-key
const HMAC_OF_BODY: &str = "11e57c756cde159518d9f916d074a136ef34510e6190ad5a13a3ea77b8fd4328";

const TOKEN: &str = "url-test-token";
/// printf %s any:url-test-token | base64
const BASIC_WITH_TOKEN: &str = "Basic YW55OnVybC10ZXN0LXRva2Vu";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    pairs.iter().map(|&(name, value)| (HeaderName::from_static(name), HeaderValue::from_str(value).unwrap())).collect()
}

fn verify(
    authenticator: &Authenticator,
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    let now = DateTime::from_timestamp(NOW_SECS, 0).unwrap();
    authenticator.verify(&AuthRequest { headers, query_token, body, now })
}

fn engagelab(app_keys: &str) -> Authenticator {
    Authenticator::new().with_engagelab_signature(SecretList::parse(app_keys), DEFAULT_TOLERANCE_SECS)
}

fn engagelab_headers(timestamp: &str, signature: &str) -> HeaderMap {
    headers(&[(ENGAGELAB_APP_KEY, "email"), (ENGAGELAB_TIMESTAMP, timestamp), (ENGAGELAB_SIGNATURE, signature)])
}

fn verify_engagelab(app_keys: &str, timestamp: &str, signature: &str) -> Result<(), AuthError> {
    verify(&engagelab(app_keys), &engagelab_headers(timestamp, signature), None, b"{}")
}

fn sendpost(api_keys: &str) -> Authenticator {
    Authenticator::new().with_sendpost_signature(SecretList::parse(api_keys))
}

fn sendpost_headers(signature: &str) -> HeaderMap {
    headers(&[(SENDPOST_SIGNATURE, signature), (SENDPOST_SIGNATURE_ALG, "hmac-sha256")])
}

fn url_token(tokens: &str) -> Authenticator {
    Authenticator::new().with_url_token(SecretList::parse(tokens))
}

// EngageLab

#[test]
fn engagelab_hmac_of_the_timestamp_is_accepted() {
    assert_eq!(verify_engagelab(APP_KEY, TIMESTAMP, HMAC_OF_TIMESTAMP), Ok(()));
}

#[test]
fn engagelab_md5_of_timestamp_appkey_and_key_is_accepted() {
    assert_eq!(verify_engagelab(APP_KEY, TIMESTAMP, MD5_OF_TIMESTAMP), Ok(()));
}

#[test]
fn engagelab_signature_made_with_another_key_is_refused() {
    assert_eq!(verify_engagelab("another-app-key", TIMESTAMP, HMAC_OF_TIMESTAMP), Err(AuthError::BadSignature));
    assert_eq!(verify_engagelab("another-app-key", TIMESTAMP, MD5_OF_TIMESTAMP), Err(AuthError::BadSignature));
}

#[test]
fn engagelab_second_key_of_a_list_is_accepted() {
    let keys = format!("retired-app-key, {APP_KEY}");
    assert_eq!(verify_engagelab(&keys, TIMESTAMP, HMAC_OF_TIMESTAMP), Ok(()));
    assert_eq!(verify_engagelab(&keys, TIMESTAMP, MD5_OF_TIMESTAMP), Ok(()));
}

#[test]
fn engagelab_timestamp_beyond_tolerance_is_refused_in_past_and_future() {
    // Correctly signed, so only the clock can be the reason for refusing them.
    // printf %s 1699999600 | openssl dgst -sha256 -hmac el-test-app-key  (400 s ago)
    let past = "3ed0d6b1a4e8f1355c777ca7080511b084717719305899104bc937fe15204e89";
    // printf %s 1700000400 | openssl dgst -sha256 -hmac el-test-app-key  (400 s ahead)
    let future = "1abf5d23cbbd5b8ee03c3d27bc9176f62c2f7781f03c0ff4f4761d4f60c5897b";
    assert_eq!(verify_engagelab(APP_KEY, "1699999600", past), Err(AuthError::StaleTimestamp));
    assert_eq!(verify_engagelab(APP_KEY, "1700000400", future), Err(AuthError::StaleTimestamp));
}

#[test]
fn engagelab_timestamp_within_tolerance_is_accepted_in_past_and_future() {
    // printf %s 1699999750 | openssl dgst -sha256 -hmac el-test-app-key  (250 s ago)
    let past = "944a4f69538b4d4919b952ba3e59d29f1c130048c4bc23fe8328a13ee868998d";
    // printf %s 1700000250 | openssl dgst -sha256 -hmac el-test-app-key  (250 s ahead)
    let future = "bd94cf31dcd5a9f0db8c8d45e726c121da146670c03634d85f75789300d3df4c";
    assert_eq!(verify_engagelab(APP_KEY, "1699999750", past), Ok(()));
    assert_eq!(verify_engagelab(APP_KEY, "1700000250", future), Ok(()));
}

#[test]
fn engagelab_timestamp_in_milliseconds_is_accepted() {
    // printf %s 1700000000123 | openssl dgst -sha256 -hmac el-test-app-key
    let signature = "319277b7f07cde060dd9902a84b4e477ba05e868ea98ad900e4fdafcee9fbfa6";
    assert_eq!(verify_engagelab(APP_KEY, "1700000000123", signature), Ok(()));
}

#[test]
fn engagelab_signature_covers_the_timestamp_text_exactly_as_sent() {
    // Same instant, different text: the signature over "1700000000" must not carry over.
    assert_eq!(verify_engagelab(APP_KEY, "01700000000", HMAC_OF_TIMESTAMP), Err(AuthError::BadSignature));
}

#[test]
fn engagelab_malformed_timestamp_is_refused() {
    for timestamp in ["yesterday", "1700000000.5", "0x6553f100", "99999999999999999999"] {
        assert_eq!(
            verify_engagelab(APP_KEY, timestamp, HMAC_OF_TIMESTAMP),
            Err(AuthError::MalformedHeader(ENGAGELAB_TIMESTAMP)),
            "{timestamp}"
        );
    }
}

#[test]
fn engagelab_extreme_timestamps_are_stale_rather_than_a_panic() {
    // i64::MIN has no positive counterpart: taking its absolute value overflowed.
    for timestamp in ["-9223372036854775808", "9223372036854775807", "-1"] {
        assert_eq!(
            verify_engagelab(APP_KEY, timestamp, HMAC_OF_TIMESTAMP),
            Err(AuthError::StaleTimestamp),
            "{timestamp}"
        );
    }
}

#[test]
fn engagelab_each_missing_header_is_named() {
    for name in [ENGAGELAB_APP_KEY, ENGAGELAB_TIMESTAMP, ENGAGELAB_SIGNATURE] {
        let mut headers = engagelab_headers(TIMESTAMP, HMAC_OF_TIMESTAMP);
        headers.remove(name);
        assert_eq!(verify(&engagelab(APP_KEY), &headers, None, b"{}"), Err(AuthError::MissingHeader(name)));
    }
}

#[test]
fn engagelab_app_key_header_other_than_email_is_refused() {
    let mut headers = engagelab_headers(TIMESTAMP, HMAC_OF_TIMESTAMP);
    headers.insert(ENGAGELAB_APP_KEY, HeaderValue::from_static("sms"));
    assert_eq!(verify(&engagelab(APP_KEY), &headers, None, b"{}"), Err(AuthError::WrongAppKey));
}

#[test]
fn engagelab_uppercase_hex_signature_is_accepted() {
    assert_eq!(verify_engagelab(APP_KEY, TIMESTAMP, &HMAC_OF_TIMESTAMP.to_uppercase()), Ok(()));
    assert_eq!(verify_engagelab(APP_KEY, TIMESTAMP, &MD5_OF_TIMESTAMP.to_uppercase()), Ok(()));
}

#[test]
fn engagelab_signature_of_wrong_length_is_malformed() {
    // Neither 16 (MD5) nor 32 (HMAC-SHA256) bytes; the last one is odd-length hex.
    let sha1_length = "a".repeat(40);
    for signature in ["abcd", sha1_length.as_str(), &HMAC_OF_TIMESTAMP[1..]] {
        assert_eq!(
            verify_engagelab(APP_KEY, TIMESTAMP, signature),
            Err(AuthError::MalformedHeader(ENGAGELAB_SIGNATURE)),
            "{signature}"
        );
    }
}

#[test]
fn engagelab_non_hex_signature_is_malformed() {
    let not_hex = HMAC_OF_TIMESTAMP.replace('a', "g");
    assert_eq!(verify_engagelab(APP_KEY, TIMESTAMP, &not_hex), Err(AuthError::MalformedHeader(ENGAGELAB_SIGNATURE)));
}

// SendPost

#[test]
fn sendpost_hmac_of_the_raw_body_is_accepted() {
    assert_eq!(verify(&sendpost(API_KEY), &sendpost_headers(HMAC_OF_BODY), None, BODY), Ok(()));
}

#[test]
fn sendpost_body_changed_by_one_byte_is_refused() {
    let changed = br#"{"type":3,"messageID":"abc"}"#;
    assert_eq!(
        verify(&sendpost(API_KEY), &sendpost_headers(HMAC_OF_BODY), None, changed),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn sendpost_algorithm_other_than_hmac_sha256_is_refused() {
    for algorithm in ["hmac-sha1", "sha256", "hmac-sha512"] {
        let mut headers = sendpost_headers(HMAC_OF_BODY);
        headers.insert(SENDPOST_SIGNATURE_ALG, HeaderValue::from_static(algorithm));
        assert_eq!(
            verify(&sendpost(API_KEY), &headers, None, BODY),
            Err(AuthError::UnsupportedAlgorithm),
            "{algorithm}"
        );
    }
}

#[test]
fn sendpost_missing_signature_is_refused() {
    let headers = headers(&[(SENDPOST_SIGNATURE_ALG, "hmac-sha256")]);
    assert_eq!(verify(&sendpost(API_KEY), &headers, None, BODY), Err(AuthError::MissingHeader(SENDPOST_SIGNATURE)));
}

#[test]
fn sendpost_uppercase_hex_signature_is_accepted() {
    let headers = sendpost_headers(&HMAC_OF_BODY.to_uppercase());
    assert_eq!(verify(&sendpost(API_KEY), &headers, None, BODY), Ok(()));
}

#[test]
fn sendpost_second_key_of_a_list_is_accepted() {
    let keys = format!("retired-api-key, {API_KEY}");
    assert_eq!(verify(&sendpost(&keys), &sendpost_headers(HMAC_OF_BODY), None, BODY), Ok(()));
}

#[test]
fn sendpost_signature_made_with_another_key_is_refused() {
    let headers = sendpost_headers(HMAC_OF_BODY);
    assert_eq!(verify(&sendpost("another-api-key"), &headers, None, BODY), Err(AuthError::BadSignature));
}

// URL token

#[test]
fn url_token_as_basic_auth_password_is_accepted() {
    let headers = headers(&[("authorization", BASIC_WITH_TOKEN)]);
    assert_eq!(verify(&url_token(TOKEN), &headers, None, BODY), Ok(()));
}

#[test]
fn url_token_as_query_parameter_is_accepted() {
    assert_eq!(verify(&url_token(TOKEN), &HeaderMap::new(), Some(TOKEN), BODY), Ok(()));
}

#[test]
fn wrong_url_token_is_refused() {
    assert_eq!(verify(&url_token(TOKEN), &HeaderMap::new(), Some("wrong-token"), BODY), Err(AuthError::WrongToken));
    // printf %s any:wrong-token | base64
    let wrong_password = headers(&[("authorization", "Basic YW55Ondyb25nLXRva2Vu")]);
    assert_eq!(verify(&url_token(TOKEN), &wrong_password, None, BODY), Err(AuthError::WrongToken));
}

#[test]
fn url_token_in_the_basic_auth_user_name_is_refused() {
    // Only the password is secret: a URL like https://SECRET@host would put it in logs as a user.
    // printf %s url-test-token: | base64
    let token_as_user = headers(&[("authorization", "Basic dXJsLXRlc3QtdG9rZW46")]);
    assert_eq!(verify(&url_token(TOKEN), &token_as_user, None, BODY), Err(AuthError::WrongToken));
}

#[test]
fn missing_url_token_is_refused() {
    assert_eq!(verify(&url_token(TOKEN), &HeaderMap::new(), None, BODY), Err(AuthError::MissingToken));
    let bearer = headers(&[("authorization", "Bearer url-test-token")]);
    assert_eq!(verify(&url_token(TOKEN), &bearer, None, BODY), Err(AuthError::MissingToken));
}

#[test]
fn second_url_token_of_a_list_is_accepted() {
    let tokens = format!("retired-token, {TOKEN}");
    assert_eq!(verify(&url_token(&tokens), &HeaderMap::new(), Some(TOKEN), BODY), Ok(()));
}

#[test]
fn url_token_and_signature_are_both_required_when_both_are_configured() {
    let both = Authenticator::new()
        .with_url_token(SecretList::parse(TOKEN))
        .with_sendpost_signature(SecretList::parse(API_KEY));
    let signed = sendpost_headers(HMAC_OF_BODY);
    assert_eq!(verify(&both, &signed, Some(TOKEN), BODY), Ok(()));
    assert_eq!(verify(&both, &signed, None, BODY), Err(AuthError::MissingToken));
    assert_eq!(verify(&both, &HeaderMap::new(), Some(TOKEN), BODY), Err(AuthError::MissingHeader(SENDPOST_SIGNATURE)));

    let both = engagelab(APP_KEY).with_url_token(SecretList::parse(TOKEN));
    let signed = engagelab_headers(TIMESTAMP, HMAC_OF_TIMESTAMP);
    assert_eq!(verify(&both, &signed, Some(TOKEN), BODY), Ok(()));
    assert_eq!(verify(&both, &signed, None, BODY), Err(AuthError::MissingToken));
    assert_eq!(verify(&both, &HeaderMap::new(), Some(TOKEN), BODY), Err(AuthError::MissingHeader(ENGAGELAB_APP_KEY)));
}

// Configuration

#[test]
fn nothing_configured_refuses_every_request() {
    let nothing = Authenticator::new();
    assert!(!nothing.is_configured());
    assert_eq!(verify(&nothing, &HeaderMap::new(), None, BODY), Err(AuthError::NotConfigured));

    // Settings that hold no secret configure nothing, even when the request is correctly signed.
    let blank = Authenticator::new()
        .with_url_token(SecretList::parse(""))
        .with_engagelab_signature(SecretList::parse(" , "), DEFAULT_TOLERANCE_SECS)
        .with_sendpost_signature(None);
    assert!(!blank.is_configured());
    let signed = engagelab_headers(TIMESTAMP, HMAC_OF_TIMESTAMP);
    assert_eq!(verify(&blank, &signed, Some(TOKEN), BODY), Err(AuthError::NotConfigured));
}

#[test]
fn secret_list_without_secrets_is_none() {
    for setting in ["", ",", ", ,", "   ", " ,\t, "] {
        assert!(SecretList::parse(setting).is_none(), "{setting:?}");
    }
}

#[test]
fn secret_list_trims_and_skips_empty_entries() {
    let list = SecretList::parse(" k1 , ,k2,  ").unwrap();
    let secrets: Vec<&str> = list.iter().map(|secret| secret.value.as_str()).collect();
    assert_eq!(secrets, ["k1", "k2"]);
}

#[test]
fn tolerance_defaults_to_300_seconds_when_unset() {
    let unset = |_: &str| None;
    assert_eq!(tolerance_from_env(&unset, "ENGAGELAB_TOLERANCE_SECS").unwrap(), 300);
}

#[test]
fn tolerance_takes_a_valid_setting() {
    let env = |name: &str| (name == "ENGAGELAB_TOLERANCE_SECS").then(|| "120".to_owned());
    assert_eq!(tolerance_from_env(&env, "ENGAGELAB_TOLERANCE_SECS").unwrap(), 120);
}

#[test]
fn tolerance_rejects_invalid_settings_without_echoing_them() {
    for value in ["abc", "0", "-5"] {
        let env = |_: &str| Some(value.to_owned());
        let error = tolerance_from_env(&env, "ENGAGELAB_TOLERANCE_SECS").unwrap_err();
        // An exact match, because "0" alone would be found inside "86400".
        assert_eq!(
            error.to_string(),
            "ENGAGELAB_TOLERANCE_SECS must be a whole number of seconds from 1 to 86400",
            "{value}"
        );
    }
}

// Nothing secret is ever shown

const SHOWN_NEVER: [&str; 6] = [APP_KEY, API_KEY, TOKEN, HMAC_OF_TIMESTAMP, MD5_OF_TIMESTAMP, HMAC_OF_BODY];

fn assert_shows_nothing_secret(text: &str) {
    let lowercase = text.to_lowercase();
    for secret in SHOWN_NEVER {
        assert!(!lowercase.contains(secret), "{text:?} shows {secret:?}");
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let authenticator = engagelab(&format!("{APP_KEY}, {API_KEY}"))
        .with_url_token(SecretList::parse(TOKEN))
        .with_sendpost_signature(SecretList::parse(API_KEY));
    for text in [
        format!("{:?}", Secret::new(APP_KEY)),
        format!("{:?}", SecretList::parse(&format!("{TOKEN},{API_KEY}"))),
        format!("{authenticator:?}"),
        format!("{authenticator:#?}"),
    ] {
        assert_shows_nothing_secret(&text);
    }
}

#[test]
fn error_messages_never_show_secrets_or_signatures() {
    let all =
        engagelab(APP_KEY).with_url_token(SecretList::parse(TOKEN)).with_sendpost_signature(SecretList::parse(API_KEY));
    let refusals = [
        verify(&Authenticator::new(), &HeaderMap::new(), Some(TOKEN), BODY),
        verify(&all, &engagelab_headers(TIMESTAMP, HMAC_OF_TIMESTAMP), None, BODY),
        verify(&all, &engagelab_headers(TIMESTAMP, HMAC_OF_TIMESTAMP), Some(MD5_OF_TIMESTAMP), BODY),
        verify_engagelab("another-app-key", TIMESTAMP, HMAC_OF_TIMESTAMP),
        verify_engagelab(APP_KEY, "1699999600", HMAC_OF_TIMESTAMP),
        verify_engagelab(APP_KEY, HMAC_OF_BODY, HMAC_OF_TIMESTAMP),
        verify_engagelab(APP_KEY, TIMESTAMP, &HMAC_OF_TIMESTAMP[1..]),
        verify(&engagelab(APP_KEY), &headers(&[(ENGAGELAB_APP_KEY, TOKEN)]), None, BODY),
        verify(&sendpost(API_KEY), &headers(&[(SENDPOST_SIGNATURE, HMAC_OF_TIMESTAMP)]), None, BODY),
        verify(&sendpost(API_KEY), &headers(&[(SENDPOST_SIGNATURE_ALG, HMAC_OF_BODY)]), None, BODY),
    ];
    for refusal in refusals {
        assert_shows_nothing_secret(&refusal.unwrap_err().to_string());
    }
}
