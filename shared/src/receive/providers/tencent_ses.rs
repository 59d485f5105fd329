//! Tencent Cloud SES: one flat object per event and recipient, named by `event`; current
//! payloads also carry the numeric `eventid`, which is all there is when `event` is missing.
//! Tencent gives events no id of their own.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{fields, Env, Provider};
use crate::auth::{Authenticator, SecretList};
use crate::config::ConfigError;
use crate::receive::event::{event_id, BounceType, Event, EventIdentity, EventType};
use crate::receive::json::Object;

pub const PROVIDER: Provider = Provider { name: "tencent_ses", authenticator, normalize };

fn authenticator(env: Env<'_>) -> Result<Authenticator, ConfigError> {
    Ok(Authenticator::new().with_url_token(SecretList::from_env(env, "TENCENT_SES_WEBHOOK_TOKEN")))
}

/// The event names of `eventid` 1..=8.
const EVENT_NAMES_BY_ID: [&str; 8] =
    ["delivered", "dropped", "bounce", "open", "click", "spamreport", "unsubscribe", "deferred"];

/// Numbers even when sent as strings of digits, so they compare and sort as numbers; any
/// other value is kept as sent.
const NUMERIC_METADATA: [&str; 4] = ["templateId", "sentTimestamp", "eventid", "taskId"];
const TEXT_METADATA: [&str; 2] = ["fromDomain", "messageId"];
/// The sender's own string, echoed back on every event of the message.
const CUSTOM_FIELD: &str = "X-Tencentcloudses-Cb-Custom";

fn normalize(object: &Object<'_>, raw: &str, received_at: DateTime<Utc>) -> Vec<Event> {
    let provider_event = provider_event(object);
    let event_type = provider_event.as_deref().map_or(EventType::Unknown, event_type);
    let occurred_at = fields::epoch(object, "timestamp").unwrap_or(received_at);

    let mut event = Event::new(PROVIDER.name, event_type, occurred_at, received_at, raw);
    event.provider_event = provider_event;
    if event_type == EventType::Bounced {
        event.bounce_type = bounce_type(object);
    }
    event.message_id = fields::text(object, "bulkId").or_else(|| fields::text(object, "bulkid"));
    event.recipient = fields::address(object, "email");
    event.sender = fields::text(object, "from");
    event.subject = fields::text(object, "subject").and_then(decode_encoded_words);
    event.reason = fields::text(object, "reason");
    event.click_url = fields::text(object, "link");
    event.user_agent = fields::text(object, "useragent");
    event.account = fields::text(object, "username");
    event.metadata = metadata(object);
    // Tencent has no event id (`eventid` is a type code): the whole payload is the identity.
    event.event_id = event_id(PROVIDER.name, EventIdentity::Payload(object), None);
    vec![event]
}

/// `event`, else the name of the `eventid` code, else the unrecognised code itself.
fn provider_event(object: &Object<'_>) -> Option<String> {
    fields::text(object, "event").or_else(|| {
        let name = fields::integer(object, "eventid")
            .and_then(|code| usize::try_from(code).ok()?.checked_sub(1))
            .and_then(|index| EVENT_NAMES_BY_ID.get(index));
        name.map(|name| (*name).to_owned()).or_else(|| fields::text(object, "eventid"))
    })
}

fn event_type(name: &str) -> EventType {
    match name {
        "deferred" => EventType::Deferred,
        "delivered" => EventType::Delivered,
        "dropped" => EventType::Rejected,
        "bounce" => EventType::Bounced,
        "open" => EventType::Opened,
        "click" => EventType::Clicked,
        "spamreport" => EventType::Complained,
        "unsubscribe" => EventType::Unsubscribed,
        _ => EventType::Unknown,
    }
}

/// `soft_bounce` / `hard_bounce`, or `soft` / `hard` from older payloads.
fn bounce_type(object: &Object<'_>) -> Option<BounceType> {
    match object.get("bounceType")?.as_str()?.trim() {
        "soft_bounce" | "soft" => Some(BounceType::Soft),
        "hard_bounce" | "hard" => Some(BounceType::Hard),
        _ => None,
    }
}

fn metadata(object: &Object<'_>) -> Map<String, Value> {
    let mut metadata = Map::new();
    for key in NUMERIC_METADATA {
        let number = fields::integer(object, key).map(Value::from);
        if let Some(value) = number.or_else(|| fields::meaningful(object, key)) {
            metadata.insert(key.to_owned(), value);
        }
    }
    for key in TEXT_METADATA {
        if let Some(text) = fields::text(object, key) {
            metadata.insert(key.to_owned(), Value::String(text));
        }
    }
    if let Some(custom) = fields::text(object, CUSTOM_FIELD) {
        metadata.insert("custom".to_owned(), Value::String(custom));
    }
    metadata
}

/// Tencent sends a non-ASCII subject as RFC 2047 encoded-words (`=?UTF-8?B?5rWL6K+V?=`).
/// Encoded-words belong to header values, so the subject is decoded as the `Subject:` header
/// it was, in any charset. What does not decode, or is not one header line, stays as sent.
fn decode_encoded_words(subject: String) -> Option<String> {
    if !subject.contains("=?") {
        return Some(subject);
    }
    let Some(decoded) = utf8_encoded_words(&subject).or_else(|| header_value(&subject)) else {
        return Some(subject);
    };
    let decoded = decoded.trim();
    (!decoded.is_empty()).then(|| decoded.to_owned())
}

/// The subject as the value of a `Subject:` header, if it is exactly one header line.
fn header_value(subject: &str) -> Option<String> {
    let header_line = format!("Subject: {subject}");
    match mailparse::parse_header(header_line.as_bytes()) {
        Ok((header, consumed)) if consumed == header_line.len() => Some(header.get_value()),
        _ => None,
    }
}

/// What Tencent sends, UTF-8 encoded-words separated by spaces and nothing else, decoded
/// directly: building and parsing a header for it took longer than the rest of the event.
/// `None` for anything else, including any word that is not whole UTF-8 on its own, which
/// [`header_value`] then reads.
fn utf8_encoded_words(subject: &str) -> Option<String> {
    let mut decoded = String::with_capacity(subject.len());
    let mut word_bytes = Vec::with_capacity(subject.len());
    for word in subject.split([' ', '\t']).filter(|word| !word.is_empty()) {
        let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
        let (charset, encoded) = inner.split_once('?')?;
        let (encoding, text) = encoded.split_once('?')?;
        if !charset.eq_ignore_ascii_case("utf-8") || text.contains('?') {
            return None;
        }
        word_bytes.clear();
        match encoding {
            "B" | "b" => base64::engine::general_purpose::STANDARD.decode_vec(text, &mut word_bytes).ok()?,
            "Q" | "q" => decode_q(text, &mut word_bytes)?,
            _ => return None,
        }
        decoded.push_str(std::str::from_utf8(&word_bytes).ok()?);
    }
    Some(decoded)
}

/// RFC 2047's Q encoding: `_` is a space, `=XX` a byte in hex, other printable ASCII itself.
fn decode_q(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        out.push(match byte {
            b'_' => b' ',
            b'=' => {
                let high = (bytes.next()? as char).to_digit(16)?;
                let low = (bytes.next()? as char).to_digit(16)?;
                (high * 16 + low) as u8
            }
            b'!'..=b'~' => byte,
            _ => return None,
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(subject: &str) -> Option<String> {
        decode_encoded_words(subject.to_owned())
    }

    #[test]
    fn subjects_are_decoded_from_encoded_words() {
        assert_eq!(decoded("=?UTF-8?B?5rWL6K+V?=").as_deref(), Some("测试"));
        assert_eq!(decoded("=?utf-8?Q?caf=C3=A9_cr=C3=A8me?=").as_deref(), Some("café crème"));
        // Whitespace between adjacent encoded-words is folding, not content (RFC 2047, 6.2).
        assert_eq!(decoded("=?UTF-8?B?5rWL?= =?UTF-8?B?6K+V?=").as_deref(), Some("测试"));
        assert_eq!(decoded("Re: =?UTF-8?B?5rWL6K+V?= ok").as_deref(), Some("Re: 测试 ok"));
        assert_eq!(decoded("=?GB2312?B?suLK1A==?=").as_deref(), Some("测试"));
        assert_eq!(decoded("=?UTF-8?B?IA==?=").as_deref(), None);
    }

    #[test]
    fn subjects_without_valid_encoded_words_stay_as_sent() {
        assert_eq!(decoded("Plain subject").as_deref(), Some("Plain subject"));
        assert_eq!(decoded("x =? y").as_deref(), Some("x =? y"));
        assert_eq!(decoded("=?UTF-8?B?5rWL6K+V").as_deref(), Some("=?UTF-8?B?5rWL6K+V"));
        assert_eq!(decoded("=?x-unknown?B?5rWL?=").as_deref(), Some("=?x-unknown?B?5rWL?="));
        // A line break would end the header early: nothing after it may be lost.
        assert_eq!(decoded("=?UTF-8?B?5rWL?=\r\nrest").as_deref(), Some("=?UTF-8?B?5rWL?=\r\nrest"));
    }

    /// `text` as Tencent would send it: split into encoded-words, each B or Q encoded.
    fn encode_words(text: &str, cuts: &[usize], q_words: &[bool], charset: &str, lowercase_hex: bool) -> String {
        let mut boundaries: Vec<usize> = cuts.iter().map(|cut| cut % (text.len() + 1)).collect();
        boundaries.retain(|&at| text.is_char_boundary(at));
        boundaries.extend([0, text.len()]);
        boundaries.sort_unstable();
        boundaries.dedup();
        let words = boundaries.windows(2).enumerate().map(|(index, bounds)| {
            let part = &text.as_bytes()[bounds[0]..bounds[1]];
            if q_words.get(index).copied().unwrap_or(false) {
                let encoded: String = part
                    .iter()
                    .map(|&byte| match byte {
                        b' ' => "_".to_owned(),
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (byte as char).to_string(),
                        _ if lowercase_hex => format!("={byte:02x}"),
                        _ => format!("={byte:02X}"),
                    })
                    .collect();
                format!("=?{charset}?Q?{encoded}?=")
            } else {
                format!("=?{charset}?B?{}?=", base64::engine::general_purpose::STANDARD.encode(part))
            }
        });
        words.collect::<Vec<_>>().join(" ")
    }

    proptest::proptest! {
        #[test]
        fn utf8_words_decode_as_the_header_parser_decodes_them(
            text in "[a-zé测试☕ _=?]{1,16}",
            cuts in proptest::collection::vec(0..64_usize, 0..3),
            q_words in proptest::collection::vec(proptest::bool::ANY, 3),
            charset in "(utf-8|UTF-8|Utf-8)",
            lowercase_hex in proptest::bool::ANY,
        ) {
            let subject = encode_words(&text, &cuts, &q_words, &charset, lowercase_hex);
            let direct = utf8_encoded_words(&subject);
            proptest::prop_assert!(direct.is_some(), "{subject}");
            proptest::prop_assert_eq!(direct, header_value(&subject), "{}", subject);
        }
    }

    #[test]
    fn only_plain_utf8_words_are_decoded_directly() {
        assert_eq!(utf8_encoded_words("=?UTF-8?B?5rWL?=\t=?utf-8?q?=E8=AF=95_x?=").as_deref(), Some("测试 x"));
        for other in [
            "Re: =?UTF-8?B?5rWL6K+V?=",
            "=?GB2312?B?suLK1A==?=",
            "=?UTF-8?B?5rWL?=\r\n=?UTF-8?B?6K+V?=",
            "=?UTF-8?B?5rWL6K+V?",
            "=?UTF-8?Q?a?b?=",
            "=?UTF-8?Q?=E6=B5?=",
            "=?UTF-8?X?abc?=",
        ] {
            assert_eq!(utf8_encoded_words(other), None, "{other}");
        }
    }

    #[test]
    fn event_codes_name_the_event() {
        let named = |code: Value| {
            let text = serde_json::json!({ "eventid": code }).to_string();
            provider_event(&Object::parse(&text).unwrap().unwrap())
        };
        assert_eq!(named(Value::from(1)).as_deref(), Some("delivered"));
        assert_eq!(named(Value::from("8")).as_deref(), Some("deferred"));
        assert_eq!(named(Value::from(0)).as_deref(), Some("0"));
        assert_eq!(named(Value::from(9)).as_deref(), Some("9"));
        assert_eq!(named(Value::from(i64::MIN)).as_deref(), Some(i64::MIN.to_string().as_str()));
        assert_eq!(named(Value::Null), None);
    }
}
