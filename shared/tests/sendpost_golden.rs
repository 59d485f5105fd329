//! SendPost payloads (tests/fixtures/sendpost/*.json) against their normalized events
//! (*.expected.json), through the shared harness of `golden/mod.rs`, and what only SendPost does.
//! `MAILHOOKS_BLESS=1 cargo test` rewrites the expected files from the current output: review
//! the diff before committing it.

mod golden;

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use mailhooks::auth::{AuthError, AuthRequest};
use mailhooks::receive::event::{Event, EventType};
use mailhooks::receive::providers::sendpost::PROVIDER;
use serde_json::{json, Value};
use sha2::Sha256;

use golden::{event_ids, received_at};

golden::golden_tests!(PROVIDER;
    processed,
    dropped,
    delivered,
    soft_bounced,
    hard_bounced,
    opened,
    clicked,
    unsubscribed,
    spam,
    type_as_string,
    smtp_code_as_string,
    submitted_at_millis,
    unknown_type,
    message_fallbacks,
    second_recipient,
    without_event_id,
    empty_strings,
    nulls,
    batch,
);

fn fixture(name: &str) -> String {
    golden::fixture(&PROVIDER, name)
}

fn parse(body: &str) -> Vec<Event> {
    golden::parse(&PROVIDER, body)
}

#[test]
fn distinct_events_get_distinct_ids() {
    golden::assert_distinct_ids(&PROVIDER, FIXTURES, &["batch"]);
}

#[test]
fn the_event_id_is_sendposts_own_when_it_sends_one() {
    let mut object: Value = serde_json::from_str(&fixture("delivered")).unwrap();
    object["emailMessage"]["trackOpens"] = json!(false);
    let changed = parse(&object.to_string());
    assert_eq!(event_ids(&parse(&fixture("delivered"))), event_ids(&changed));
}

#[test]
fn wrong_types_anywhere_give_one_event_without_panicking() {
    for name in ["clicked", "second_recipient"] {
        golden::assert_wrong_types_anywhere_give_events(&PROVIDER, name);
    }
}

#[test]
fn every_type_code_maps_to_its_event_type() {
    let expected = [
        ("Processed", "queued"),
        ("Dropped", "rejected"),
        ("Delivered", "delivered"),
        ("SoftBounced", "bounced"),
        ("HardBounced", "bounced"),
        ("Opened", "opened"),
        ("Clicked", "clicked"),
        ("Unsubscribed", "unsubscribed"),
        ("Spam", "complained"),
    ];
    for (code, (name, event_type)) in expected.into_iter().enumerate() {
        for sent_as in [json!(code), json!(code.to_string())] {
            let events = parse(&json!({"event": {"type": sent_as}}).to_string());
            assert_eq!(events[0].provider_event.as_deref(), Some(name));
            assert_eq!(events[0].event_type.as_str(), event_type);
        }
    }
}

#[test]
fn an_unknown_type_keeps_what_sendpost_sent() {
    for (sent, kept) in [(json!(9), "9"), (json!("Deferred"), "Deferred"), (json!(-3), "-3")] {
        let events = parse(&json!({"event": {"type": sent}}).to_string());
        assert_eq!(events[0].event_type, EventType::Unknown);
        assert_eq!(events[0].provider_event.as_deref(), Some(kept));
    }
    let untyped = parse(r#"{"event": {"eventID": "e-1"}}"#);
    assert_eq!((untyped[0].event_type, untyped[0].provider_event.as_deref()), (EventType::Unknown, None));
}

#[test]
fn an_event_without_a_time_happened_when_received() {
    let events = parse(r#"{"event": {"type": 5, "submittedAt": "soon"}, "emailMessage": null}"#);
    assert_eq!(events[0].occurred_at, received_at());
}

fn authenticator(settings: &[(&str, &str)]) -> mailhooks::auth::Authenticator {
    let env = |name: &str| settings.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
    (PROVIDER.authenticator)(&env).unwrap()
}

fn signed_request<'a>(headers: &'a HeaderMap, body: &'a [u8], query_token: Option<&'a str>) -> AuthRequest<'a> {
    AuthRequest { headers, query_token, body, now: received_at() }
}

#[test]
fn the_authenticator_requires_each_configured_secret() {
    assert!(!authenticator(&[]).is_configured());

    let body = fixture("delivered");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"api-key-2").unwrap();
    mac.update(body.as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert("x-sendpost-signature", HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).unwrap());

    let signature_only = authenticator(&[("SENDPOST_API_KEY", "api-key-1, api-key-2")]);
    assert_eq!(signature_only.verify(&signed_request(&headers, body.as_bytes(), None)), Ok(()));
    assert_eq!(signature_only.verify(&signed_request(&headers, b"{}", None)), Err(AuthError::BadSignature));

    let both = authenticator(&[("SENDPOST_API_KEY", "api-key-2"), ("SENDPOST_WEBHOOK_TOKEN", "url-secret")]);
    assert_eq!(both.verify(&signed_request(&headers, body.as_bytes(), None)), Err(AuthError::MissingToken));
    assert_eq!(both.verify(&signed_request(&headers, body.as_bytes(), Some("url-secret"))), Ok(()));

    let token_only = authenticator(&[("SENDPOST_WEBHOOK_TOKEN", "url-secret")]);
    assert_eq!(token_only.verify(&signed_request(&HeaderMap::new(), b"{}", Some("url-secret"))), Ok(()));
}
