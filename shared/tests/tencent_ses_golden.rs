//! Tencent SES payloads (tests/fixtures/tencent_ses/*.json) against their normalized events
//! (*.expected.json), through the shared harness of `golden/mod.rs`, and what only Tencent SES
//! does. `MAILHOOKS_BLESS=1 cargo test` rewrites the expected files from the current output:
//! review the diff before committing it.

mod golden;

use http::HeaderMap;
use mailhooks::auth::{AuthError, AuthRequest};
use mailhooks::receive::event::{BounceType, Event, EventType};
use mailhooks::receive::providers::tencent_ses::PROVIDER;
use proptest::prelude::*;
use serde_json::{json, Value};

use golden::{event_ids, received_at};

golden::golden_tests!(PROVIDER;
    deferred,
    delivered,
    dropped,
    open,
    click,
    bounce_soft,
    bounce_hard,
    bounce_legacy_soft,
    bounce_legacy_hard,
    spamreport,
    unsubscribe,
    processed,
    eventid_only,
    bulkid_lowercase,
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
fn the_event_id_covers_the_whole_payload() {
    let mut object: Value = serde_json::from_str(&fixture("delivered")).unwrap();
    object["taskId"] = json!(5024);
    assert_ne!(event_ids(&parse(&fixture("delivered"))), event_ids(&parse(&object.to_string())));
}

#[test]
fn wrong_types_anywhere_give_one_event_without_panicking() {
    for name in ["click", "bounce_soft"] {
        golden::assert_wrong_types_anywhere_give_events(&PROVIDER, name);
    }
}

#[test]
fn every_event_name_and_code_maps_to_its_event_type() {
    let expected = [
        (1, "delivered", "delivered"),
        (2, "dropped", "rejected"),
        (3, "bounce", "bounced"),
        (4, "open", "opened"),
        (5, "click", "clicked"),
        (6, "spamreport", "complained"),
        (7, "unsubscribe", "unsubscribed"),
        (8, "deferred", "deferred"),
    ];
    for (code, name, event_type) in expected {
        for payload in [json!({"event": name}), json!({"eventid": code}), json!({"eventid": code.to_string()})] {
            let events = parse(&payload.to_string());
            assert_eq!(events[0].provider_event.as_deref(), Some(name), "{payload}");
            assert_eq!(events[0].event_type.as_str(), event_type, "{payload}");
        }
    }
}

#[test]
fn the_event_name_wins_over_the_event_code() {
    let events = parse(r#"{"event": "click", "eventid": 1}"#);
    assert_eq!((events[0].event_type, events[0].provider_event.as_deref()), (EventType::Clicked, Some("click")));
}

#[test]
fn an_unknown_event_keeps_what_tencent_sent() {
    for (payload, kept) in [
        (json!({"event": "processed"}), Some("processed")),
        (json!({"event": "Bounce"}), Some("Bounce")),
        (json!({"eventid": 9}), Some("9")),
        (json!({"eventid": "later"}), Some("later")),
        (json!({"event": "", "eventid": null}), None),
    ] {
        let events = parse(&payload.to_string());
        assert_eq!(events[0].event_type, EventType::Unknown, "{payload}");
        assert_eq!(events[0].provider_event.as_deref(), kept, "{payload}");
    }
}

#[test]
fn bounce_types_old_and_new_and_missing() {
    let bounce_type = |payload: Value| parse(&payload.to_string())[0].bounce_type;
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": "soft_bounce"})), Some(BounceType::Soft));
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": "soft"})), Some(BounceType::Soft));
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": "hard_bounce"})), Some(BounceType::Hard));
    assert_eq!(bounce_type(json!({"eventid": 3, "bounceType": "hard"})), Some(BounceType::Hard));
    assert_eq!(bounce_type(json!({"event": "bounce"})), None);
    assert_eq!(bounce_type(json!({"event": "bounce", "bounceType": 1})), None);
    // A bounce type on anything but a bounce describes nothing that happened.
    assert_eq!(bounce_type(json!({"event": "dropped", "bounceType": "hard_bounce"})), None);
}

#[test]
fn an_event_without_a_time_happened_when_received() {
    let events = parse(r#"{"event": "open", "timestamp": "soon"}"#);
    assert_eq!(events[0].occurred_at, received_at());
}

#[test]
fn the_authenticator_requires_the_url_token_when_configured() {
    let env_without = |_: &str| None;
    assert!(!(PROVIDER.authenticator)(&env_without).unwrap().is_configured());

    let env_with = |name: &str| (name == "TENCENT_SES_WEBHOOK_TOKEN").then(|| "old-secret,new-secret".to_owned());
    let authenticator = (PROVIDER.authenticator)(&env_with).unwrap();
    let headers = HeaderMap::new();
    let request = |query_token| AuthRequest { headers: &headers, query_token, body: b"{}", now: received_at() };
    assert_eq!(authenticator.verify(&request(Some("new-secret"))), Ok(()));
    assert_eq!(authenticator.verify(&request(Some("guess"))), Err(AuthError::WrongToken));
    assert_eq!(authenticator.verify(&request(None)), Err(AuthError::MissingToken));
}

proptest! {
    #[test]
    fn any_subject_normalizes_without_panicking(
        subject in r"((=\?[A-Za-z0-9_-]{0,12}(\*[a-z]{0,3})?\?[BbQqX]?\?[ -~]{0,40}\?=)|[ \t\r\n]|[^=]{0,5}|=\?|\?=){0,6}"
    ) {
        let events = parse(&json!({"event": "open", "subject": subject}).to_string());
        prop_assert_eq!(events.len(), 1);
        prop_assert!(events[0].subject.as_deref().is_none_or(|decoded| !decoded.is_empty()));
    }
}
