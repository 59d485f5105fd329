//! EngageLab normalization, through `Provider::parse` so that body splitting is covered too.
//!
//! Every `tests/fixtures/engagelab/NAME.json` is compared with `NAME.expected.json` by the shared
//! harness of `golden/mod.rs`, which also runs the checks every provider passes; below are what
//! only EngageLab does. After a deliberate change, `MAILHOOKS_BLESS=1 cargo test` rewrites the
//! snapshots; review the diff before committing it.

mod golden;

use mailhooks::receive::event::{format_timestamp, BounceType, Event, EventType};
use mailhooks::receive::providers::engagelab::PROVIDER;
use proptest::prelude::*;
use serde_json::{json, Value};

use golden::received_at;

golden::golden_tests!(PROVIDER;
    batch,
    click,
    click_label_id_string,
    delivered,
    delivered_itime_string,
    invalid_email,
    open,
    open_task_id_number,
    report_spam,
    route,
    sent,
    soft_bounce,
    target,
    target_two_recipients,
    unsubscribe,
);

fn fixture(name: &str) -> String {
    golden::fixture(&PROVIDER, name)
}

fn parse(body: &str) -> Vec<Event> {
    golden::parse(&PROVIDER, body)
}

fn parse_one(body: &str) -> Event {
    golden::parse_one(&PROVIDER, body)
}

#[test]
fn distinct_events_get_distinct_ids() {
    golden::assert_distinct_ids(&PROVIDER, FIXTURES, &["batch"]);
}

#[test]
fn wrong_types_anywhere_give_one_event_without_panicking() {
    for name in ["soft_bounce", "click", "route"] {
        golden::assert_wrong_types_anywhere_give_events(&PROVIDER, name);
    }
}

#[test]
fn documented_callbacks_map_to_their_event_types() {
    let table = [
        ("target", EventType::Queued),
        ("sent", EventType::Sent),
        ("delivered", EventType::Delivered),
        ("soft_bounce", EventType::Bounced),
        ("invalid_email", EventType::Rejected),
        ("open", EventType::Opened),
        ("click", EventType::Clicked),
        ("unsubscribe", EventType::Unsubscribed),
        ("report_spam", EventType::Complained),
        ("route", EventType::Inbound),
    ];
    for (name, event_type) in table {
        let event = parse_one(&fixture(name));
        assert_eq!(event.event_type, event_type, "{name}");
        assert_eq!(event.provider_event.as_deref(), Some(name));
        assert_eq!(event.provider, "engagelab");
        let expected_bounce = (event_type == EventType::Bounced).then_some(BounceType::Soft);
        assert_eq!(event.bounce_type, expected_bounce, "{name}");
        assert_eq!(event.event_id.len(), 32);
    }
}

#[test]
fn a_soft_bounce_keeps_its_error() {
    let event = parse_one(&fixture("soft_bounce"));
    assert_eq!(event.message_id.as_deref(), Some("1676537131885_95_4921_8644.sc-10_2_226_96-test0$12345@gmail.com"));
    assert_eq!(event.recipient.as_deref(), Some("12345@gmail.com"));
    assert_eq!(event.sender.as_deref(), Some("newsletter@mail.engagelab.com"));
    assert_eq!(event.subject.as_deref(), Some("Template interface sending-dynamic_vars-Unicast sending"));
    assert_eq!(format_timestamp(event.occurred_at), "2023-02-16T08:45:32.783Z");
    assert!(event.reason.as_deref().is_some_and(|reason| reason.starts_with("Domain may not exist")));
    assert_eq!(event.error_code, Some(509));
    assert_eq!(event.smtp_code, None);
    assert_eq!(event.account.as_deref(), Some("postmaster@sendcloud.io"));
    assert_eq!(
        Value::Object(event.metadata),
        json!({"task_id": -1, "label_id": 0, "sub_stat": 509, "sub_stat_desc": "Other"})
    );
}

#[test]
fn a_click_keeps_where_and_how() {
    let event = parse_one(&fixture("click"));
    assert_eq!(event.click_url.as_deref(), Some("https://www.engagelab.com/zh_CN/email/"));
    assert_eq!(event.ip.as_deref(), Some("8.219.124.204"));
    assert_eq!(event.user_agent.as_deref(), Some("Chrome 101.0.4951 (Windows 8)"));
    assert_eq!(format_timestamp(event.occurred_at), "2023-02-17T07:52:50.426Z");
    assert_eq!(event.reason, None, "\"click email\" is a note, not a reason");
}

#[test]
fn a_target_is_queued_once_per_recipient() {
    let single = parse_one(&fixture("target"));
    assert_eq!(single.recipient.as_deref(), Some("12345@hotmail.com"));
    assert_eq!(
        single.message_id.as_deref(),
        Some("1676615711309_104117_18546_8821.sc-10_43_7_16-inbound0$12345@hotmail.com")
    );
    assert_eq!(format_timestamp(single.occurred_at), "2023-02-17T06:35:11.325Z");
    assert_eq!(single.sender.as_deref(), Some("newsletter@mail.engagelab.com"));

    let events = parse(&fixture("target_two_recipients"));
    let recipients: Vec<_> = events.iter().map(|event| event.recipient.as_deref()).collect();
    assert_eq!(recipients, [Some("alice@example.com"), Some("bob@example.org")]);
    let message_ids: Vec<_> = events.iter().map(|event| event.message_id.as_deref()).collect();
    assert_eq!(
        message_ids,
        [
            Some("1676615800123_104117_18546_8830.sc-10_43_7_16-inbound0$alice@example.com"),
            Some("1676615800123_104117_18546_8830.sc-10_43_7_16-inbound1$bob@example.org")
        ]
    );
    assert_ne!(events[0].event_id, events[1].event_id);
    assert!(events.iter().all(|event| event.event_type == EventType::Queued));
    assert!(events.iter().all(|event| event.sender.as_deref() == Some("newsletter@mail.engagelab.com")));
}

#[test]
fn a_target_recipient_without_email_id_borrows_the_request_id_only_when_alone() {
    let alone = parse_one(&target_body(json!(["a@x.com"]), json!(null)));
    assert_eq!(alone.message_id.as_deref(), Some("request-1"));

    let pair = parse(&target_body(json!(["a@x.com", "b@x.com"]), json!(["id-a"])));
    let message_ids: Vec<_> = pair.iter().map(|event| event.message_id.as_deref()).collect();
    assert_eq!(message_ids, [Some("id-a"), None]);
}

#[test]
fn target_entries_pair_by_position_even_around_empty_ones() {
    let events = parse(&target_body(json!(["", "b@x.com", null]), json!(["id-0", "id-1", "id-2"])));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].recipient.as_deref(), Some("b@x.com"));
    assert_eq!(events[0].message_id.as_deref(), Some("id-1"));
}

#[test]
fn a_target_without_recipients_is_one_event_for_the_request() {
    for tos in [json!(null), json!([]), json!([""]), json!(7)] {
        let event = parse_one(&target_body(tos.clone(), json!([])));
        assert_eq!(event.event_type, EventType::Queued, "{tos}");
        assert_eq!(event.recipient, None, "{tos}");
        assert_eq!(event.message_id.as_deref(), Some("request-1"), "{tos}");
    }
}

fn target_body(tos: Value, email_ids: Value) -> String {
    json!({
        "message_id": "request-1",
        "itime": 1676615711325_i64,
        "status": {"message_status": "target", "status_data": {"tos": tos, "email_ids": email_ids}}
    })
    .to_string()
}

#[test]
fn a_change_of_content_changes_the_event_id() {
    let sent = parse_one(&fixture("sent"));
    let later = parse_one(&fixture("sent").replace("1676615714397", "1676615714398"));
    assert_ne!(sent.event_id, later.event_id);
}

#[test]
fn unknown_names_are_kept_as_unknown_events() {
    let cases = [
        (json!({"status": {"message_status": "hard_bounce", "status_data": {"email_id": "m1"}}}), Some("hard_bounce")),
        (json!({"response": {"event": "forward"}}), Some("forward")),
        (json!({"status": {"message_status": "open"}}), Some("open")),
        (json!({"response": {"event": "delivered"}}), Some("delivered")),
        (json!({"status": {"status_data": {"email_id": "m1"}}}), None),
        (json!({"server": "email", "message_id": "m1", "to": "a@x.com"}), None),
    ];
    for (body, provider_event) in cases {
        let event = parse_one(&body.to_string());
        assert_eq!(event.event_type, EventType::Unknown, "{body}");
        assert_eq!(event.provider_event.as_deref(), provider_event, "{body}");
        assert_eq!(event.bounce_type, None, "{body}");
    }
}

#[test]
fn an_inbound_message_is_about_its_envelope_recipient() {
    let event = parse_one(&fixture("route"));
    assert_eq!(event.recipient.as_deref(), Some("12345@icloud.com"));
    assert_eq!(event.message_id.as_deref(), Some("01b6f68b-da52-4f6f-a049-68d0ca01dd8c"));
    assert_eq!(event.sender.as_deref(), Some("12345@outlook.com"));
    assert_eq!(event.subject.as_deref(), Some("Re: Work plan for next month"));
    assert_eq!(event.metadata.get("from_name"), Some(&json!("Sargeras")));
    assert_eq!(event.metadata.get("x_mx_mailfrom"), Some(&json!("12345@hotmail.com")));
    assert_eq!(
        event.metadata.get("headers").and_then(|headers| headers.get("Cc")),
        Some(&json!("Malfurion <12345@gmail.com>"))
    );
    for copied_content in ["html", "text", "raw_message", "message"] {
        assert!(!event.metadata.contains_key(copied_content), "{copied_content}");
    }

    let without_envelope = fixture("route").replace("\"x_mx_rcptto\": \"12345@icloud.com\",", "");
    assert_eq!(parse_one(&without_envelope).recipient.as_deref(), Some("12345@gmail.com"));
}

#[test]
fn display_names_are_reduced_to_the_bare_lowercased_address() {
    let body = fixture("sent")
        .replace("\"to\": \"12345@hotmail.com\"", "\"to\": \"Jane Doe <Jane.Doe@Example.COM>\"")
        .replace(
            "\"from\": \"newsletter@mail.engagelab.com\"",
            "\"from\": \"\\\"News, Letter\\\" <News@Mail.EngageLab.com>\"",
        );
    let event = parse_one(&body);
    assert_eq!(event.recipient.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(event.sender.as_deref(), Some("news@mail.engagelab.com"));
}

#[test]
fn ids_sent_as_strings_or_numbers_become_numbers() {
    let open = parse_one(&fixture("open_task_id_number"));
    assert_eq!(open.metadata.get("task_id"), Some(&json!(1024)));
    let click = parse_one(&fixture("click_label_id_string"));
    assert_eq!(click.metadata.get("label_id"), Some(&json!(221223)));
    assert_eq!(click.metadata.get("task_id"), Some(&json!(0)));
    let odd = parse_one(
        &json!({"response": {"event": "open", "response_data": {"task_id": "t-9", "label_id": 1.5}}}).to_string(),
    );
    assert_eq!(odd.metadata.get("task_id"), Some(&json!("t-9")));
    assert_eq!(odd.metadata.get("label_id"), Some(&json!(1.5)));
}

#[test]
fn occurred_at_reads_itime_in_any_form_or_falls_back_to_received_at() {
    let from_string = parse_one(&fixture("delivered_itime_string"));
    assert_eq!(format_timestamp(from_string.occurred_at), "2023-02-07T08:26:16.586Z");
    let seconds = parse_one(&json!({"itime": 1675758376, "status": {"message_status": "sent"}}).to_string());
    assert_eq!(format_timestamp(seconds.occurred_at), "2023-02-07T08:26:16.000Z");
    for itime in [json!(null), json!(""), json!("soon"), json!(0), json!(-5), json!({})] {
        let event = parse_one(&json!({"itime": itime, "status": {"message_status": "sent"}}).to_string());
        assert_eq!(event.occurred_at, received_at(), "{itime}");
        assert_eq!(event.received_at, received_at());
    }
}

#[test]
fn reasons_come_from_failures_only() {
    let delivered = parse_one(&fixture("delivered"));
    assert_eq!(delivered.reason, None);
    assert_eq!(delivered.error_code, None);
    let bounce_without_detail = json!({"status": {
        "message_status": "soft_bounce",
        "status_data": {"message": "550 mailbox full", "email_id": "m1"},
        "error_detail": {"sub_stat": "552"}
    }});
    let event = parse_one(&bounce_without_detail.to_string());
    assert_eq!(event.reason.as_deref(), Some("550 mailbox full"));
    assert_eq!(event.error_code, Some(552), "sub_stat stands in for a missing error_code");
}

#[test]
fn the_user_agent_is_rebuilt_from_what_is_there() {
    let user_agent =
        |data: Value| parse_one(&json!({"response": {"event": "open", "response_data": data}}).to_string()).user_agent;
    assert_eq!(
        user_agent(
            json!({"explorer_name": "Mobile Safari", "explorer_ver": "16.2", "os_name": "iOS", "os_ver": "16.2"})
        )
        .as_deref(),
        Some("Mobile Safari 16.2 (iOS 16.2)")
    );
    assert_eq!(user_agent(json!({"explorer_name": "Firefox"})).as_deref(), Some("Firefox"));
    assert_eq!(user_agent(json!({"os_name": "Android", "os_ver": 13})).as_deref(), Some("(Android 13)"));
    assert_eq!(user_agent(json!({"explorer_ver": "101", "os_ver": "8"})), None);
    assert_eq!(user_agent(json!({"explorer_name": "", "os_name": null})), None);
}

#[test]
fn an_empty_object_is_one_unknown_event() {
    let event = parse_one("{}");
    assert_eq!(event.event_type, EventType::Unknown);
    assert_eq!(event.provider_event, None);
    assert_eq!(event.occurred_at, received_at());
    assert_eq!(event.raw, "{}");
    assert!(event.metadata.is_empty());
    // `raw` (checked above) is written by the store in its own encoding, not serialized here.
    let stored = serde_json::to_value(&event).unwrap();
    let attributes: Vec<&str> = stored.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(attributes.len(), 5, "{attributes:?}");
    for always_there in ["event_id", "provider", "event_type", "occurred_at", "received_at"] {
        assert!(attributes.contains(&always_there), "{always_there}");
    }
}

#[test]
fn null_and_wrong_typed_fields_are_absent_not_fatal() {
    let hostile = [
        json!({"status": null, "response": null, "to": null, "from": [], "itime": [1]}),
        json!({"status": "delivered", "response": 3}),
        json!({"status": {"message_status": 7, "status_data": "x", "error_detail": [], "error_code": {}}}),
        json!({"status": {"message_status": "target", "status_data": {"tos": {"a": 1}, "email_ids": "id"}}}),
        json!({"status": {"message_status": "target", "status_data": {"tos": [1, true, [], {}], "email_ids": [null]}}}),
        json!({"response": {"event": "route", "response_data": {"x_mx_rcptto": {}, "headers": "", "from_name": null}}}),
        json!({"response": {"event": ["open"], "response_data": {"url": {}, "ip": [], "os_name": {}, "task_id": []}}}),
        json!({"message_id": "", "to": "  ", "subject": "", "custom_args": {}, "itime": "1e400"}),
    ];
    for body in hostile {
        let event = parse_one(&body.to_string());
        assert_eq!(event.recipient, None, "{body}");
        let stored = serde_json::to_value(&event).unwrap();
        let has_empty_text = stored.as_object().unwrap().values().any(|value| value.as_str() == Some(""));
        assert!(!has_empty_text, "{body}: {stored}");
    }
}

/// Objects that use the keys the normalizer reads, so that random values reach its deep paths
/// (`status.status_data.tos`, `response.response_data.url`, ...).
fn engagelab_shaped_object() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "status",
        "response",
        "message_status",
        "event",
        "status_data",
        "response_data",
        "error_detail",
        "error_code",
        "sub_stat",
        "message",
        "tos",
        "email_ids",
        "email_id",
        "message_id",
        "to",
        "from",
        "subject",
        "itime",
        "x_mx_rcptto",
        "task_id",
        "label_id",
        "custom_args",
        "explorer_name",
        "os_ver",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|number| json!(number)),
        prop::sample::select(vec![
            "",
            " ",
            "target",
            "soft_bounce",
            "route",
            "click",
            "-1",
            "1676615711325",
            "A <B@x.com>;c@y"
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    let object_of = |values: BoxedStrategy<Value>| {
        prop::collection::vec((prop::sample::select(KEYS), values), 0..6).prop_map(|entries| {
            Value::Object(entries.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
        })
    };
    let value = leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array), object_of(inner)]
    });
    object_of(value.boxed())
}

proptest! {
    #[test]
    fn any_object_gives_events_without_empty_attributes(object in engagelab_shaped_object()) {
        let events = parse(&object.to_string());
        prop_assert!(!events.is_empty());
        for event in events {
            prop_assert_eq!(event.event_id.len(), 32);
            let stored = serde_json::to_value(&event).unwrap();
            prop_assert!(stored.as_object().unwrap().values().all(|value| value.as_str() != Some("")), "{}", stored);
        }
    }
}
