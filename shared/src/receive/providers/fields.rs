//! Lenient readers for provider JSON: providers send numbers as strings and strings as
//! numbers, nulls and empty strings for "unknown", and timestamps in several units.

use chrono::{DateTime, Utc};

use crate::receive::json::{Object, Value};

/// A text field: strings trimmed, numbers and booleans as their text; empty, null and
/// structured values are absent.
pub fn text(object: &Object<'_>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(text) => {
            let trimmed = text.trim();
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        }
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// An integer field sent as a JSON integer, an integral float, or a string of digits.
pub fn integer(object: &Object<'_>, key: &str) -> Option<i64> {
    match object.get(key)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A nested object, if the field is one.
pub fn object<'a, 'b>(object: &'a Object<'b>, key: &str) -> Option<&'a Object<'b>> {
    object.get(key)?.as_object()
}

/// A field kept as metadata: absent when null, empty string, empty object or empty array.
pub fn meaningful(object: &Object<'_>, key: &str) -> Option<serde_json::Value> {
    let value = object.get(key)?;
    let empty = match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    (!empty).then(|| value.to_serde())
}

/// The strings of a list field, skipping empty and non-text entries.
pub fn text_list(object: &Object<'_>, key: &str) -> Vec<String> {
    match object.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(text)) if !text.trim().is_empty() => vec![text.trim().to_owned()],
        _ => Vec::new(),
    }
}

// Epoch values below these bounds are read in the larger unit: any instant between 1973 and
// 5138 has a distinct magnitude in seconds, milliseconds, microseconds and nanoseconds.
const MILLIS_FROM: i128 = 100_000_000_000;
const MICROS_FROM: i128 = 100_000_000_000_000;
const NANOS_FROM: i128 = 100_000_000_000_000_000;

/// An epoch timestamp in seconds, milliseconds, microseconds or nanoseconds (detected from its
/// magnitude), sent as a number or a string of digits. Fractional seconds are honoured.
pub fn epoch(object: &Object<'_>, key: &str) -> Option<DateTime<Utc>> {
    let nanos: i128 = match object.get(key)? {
        Value::Number(number) => match number.as_i64() {
            Some(whole) => scale_to_nanos(whole.into())?,
            None => seconds_float_to_nanos(number.as_f64()?)?,
        },
        Value::String(text) => {
            let text = text.trim();
            match text.parse::<i128>() {
                Ok(whole) => scale_to_nanos(whole)?,
                Err(_) => seconds_float_to_nanos(text.parse().ok()?)?,
            }
        }
        _ => return None,
    };
    let nanos = i64::try_from(nanos).ok()?;
    (nanos > 0).then(|| DateTime::from_timestamp_nanos(nanos))
}

fn scale_to_nanos(value: i128) -> Option<i128> {
    // Saturated conversions of huge floats and strings can reach i128::MIN, whose abs overflows.
    let magnitude = value.checked_abs()?;
    let factor = if magnitude >= NANOS_FROM {
        1
    } else if magnitude >= MICROS_FROM {
        1_000
    } else if magnitude >= MILLIS_FROM {
        1_000_000
    } else {
        1_000_000_000
    };
    value.checked_mul(factor)
}

fn seconds_float_to_nanos(seconds: f64) -> Option<i128> {
    if !seconds.is_finite() || seconds.abs() >= MILLIS_FROM as f64 {
        return scale_to_nanos(seconds as i128);
    }
    Some((seconds * 1e9).round() as i128)
}

/// The bare, lowercased address of `Goblin <A@x.com>`, `<A@x.com>` or `A@x.com`; the first
/// one when several are listed. Absent when there is no address at all.
pub fn bare_address(text: &str) -> Option<String> {
    // Nearly every address arrives bare and lowercase already: one scan proves it.
    if is_plain_address(text.as_bytes()) {
        return Some(text.to_owned());
    }
    read_bare_address(text)
}

fn read_bare_address(text: &str) -> Option<String> {
    let first = first_mailbox(text)?;
    let address = match (first.rfind('<'), first.rfind('>')) {
        (Some(open), Some(close)) if open < close => &first[open + 1..close],
        _ => first,
    };
    let address = address.trim().trim_matches('"').trim();
    if address.is_empty() {
        return None;
    }
    // Nearly every address is ASCII, which lowercases byte by byte.
    Some(if address.is_ascii() { address.to_ascii_lowercase() } else { address.to_lowercase() })
}

/// True when `bytes` is an address that [`bare_address`] would return unchanged: not empty, and
/// no display-name or list punctuation, space, uppercase or non-ASCII byte.
fn is_plain_address(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.iter().all(|&byte| {
            byte.is_ascii_graphic() && !byte.is_ascii_uppercase() && !matches!(byte, b'<' | b'>' | b'"' | b';' | b',')
        })
}

/// The first non-empty entry of a `;` or `,` separated list, ignoring separators inside quoted
/// display names such as `"Doe, Jane" <j@x.com>`.
fn first_mailbox(text: &str) -> Option<&str> {
    let mut in_quotes = false;
    let mut start = 0;
    // The separators and quotes are ASCII, so byte positions are character boundaries.
    for (index, byte) in text.bytes().enumerate() {
        match byte {
            b'"' => in_quotes = !in_quotes,
            b';' | b',' if !in_quotes => {
                let part = text[start..index].trim();
                if !part.is_empty() {
                    return Some(part);
                }
                start = index + 1;
            }
            _ => {}
        }
    }
    let part = text[start..].trim();
    (!part.is_empty()).then_some(part)
}

/// [`bare_address`] of a text field.
pub fn address(object: &Object<'_>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(text) => bare_address(text),
        _ => bare_address(&text(object, key)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parsed objects borrow their text: a test's few bytes are simply leaked.
    fn map(value: serde_json::Value) -> Object<'static> {
        Object::parse(Box::leak(value.to_string().into_boxed_str())).unwrap().unwrap()
    }

    #[test]
    fn text_reads_strings_and_numbers_and_drops_empties() {
        let fields = map(json!({"s": " a ", "n": -1, "f": 1.5, "e": "", "w": "  ", "z": null, "o": {}}));
        assert_eq!(text(&fields, "s").as_deref(), Some("a"));
        assert_eq!(text(&fields, "n").as_deref(), Some("-1"));
        assert_eq!(text(&fields, "f").as_deref(), Some("1.5"));
        for absent in ["e", "w", "z", "o", "missing"] {
            assert_eq!(text(&fields, absent), None, "{absent}");
        }
    }

    #[test]
    fn integer_reads_numbers_strings_and_integral_floats() {
        let fields = map(json!({"a": 409, "b": "-1", "c": " 250 ", "d": 200.0, "e": "abc", "f": 1.5, "g": null}));
        assert_eq!(integer(&fields, "a"), Some(409));
        assert_eq!(integer(&fields, "b"), Some(-1));
        assert_eq!(integer(&fields, "c"), Some(250));
        assert_eq!(integer(&fields, "d"), Some(200));
        assert_eq!(integer(&fields, "e"), None);
        assert_eq!(integer(&fields, "f"), None);
        assert_eq!(integer(&fields, "g"), None);
    }

    #[test]
    fn epoch_detects_the_unit() {
        let expected = DateTime::parse_from_rfc3339("2019-09-03T12:08:11Z").unwrap().with_timezone(&Utc);
        let fields = map(json!({
            "s": 1567512491, "ms": 1567512491000_i64, "us": 1567512491000000_i64,
            "ns": 1567512491000000000_i64, "str": "1567512491", "float": 1567512491.0
        }));
        for key in ["s", "ms", "us", "ns", "str", "float"] {
            assert_eq!(epoch(&fields, key), Some(expected), "{key}");
        }
        let precise = map(json!({"ns": 1567512491587205000_i64, "ms": 1676615711325_i64}));
        assert_eq!(
            epoch(&precise, "ns").map(|at| at.timestamp_nanos_opt().unwrap()),
            Some(1_567_512_491_587_205_000)
        );
        assert_eq!(epoch(&precise, "ms").map(|at| at.timestamp_millis()), Some(1_676_615_711_325));
        let bad = map(json!({
            "z": 0, "neg": -5, "t": "yesterday", "n": null, "huge": 1e300, "hugely_negative": -7.2e251,
            "i128_min": "-170141183460469231731687303715884105728"
        }));
        for key in ["z", "neg", "t", "n", "huge", "hugely_negative", "i128_min", "missing"] {
            assert_eq!(epoch(&bad, key), None, "{key}");
        }
    }

    #[test]
    fn bare_address_strips_display_names_and_lowercases() {
        assert_eq!(bare_address("Goblin <A@x.com>").as_deref(), Some("a@x.com"));
        assert_eq!(bare_address("Goblin <12345@gmail.com>;Illidan <12345@hotmail.com>").as_deref(), Some("12345@gmail.com"));
        assert_eq!(bare_address("\"Doe, Jane\" <J@x.com>").as_deref(), Some("j@x.com"));
        assert_eq!(bare_address("  B@Y.org ").as_deref(), Some("b@y.org"));
        assert_eq!(bare_address("<c@z.net>").as_deref(), Some("c@z.net"));
        assert_eq!(bare_address(" ; "), None);
        assert_eq!(bare_address("<>"), None);
    }

    proptest::proptest! {
        #[test]
        fn the_plain_address_shortcut_agrees_with_the_full_reading(text in "[a-zA-Z0-9@._ <>\"';,\té-]{0,24}") {
            proptest::prop_assert_eq!(bare_address(&text), read_bare_address(&text));
        }
    }
}
