//! Provider JSON as the normalizers read it: borrowed from the body.
//!
//! A webhook body is read once, looked up a few dozen times and, for providers without event
//! ids, written out in canonical form to hash. `serde_json::Value` would copy every string and
//! key into its own allocation and keep every object in a tree map; here strings stay slices of
//! the body (unless they hold escapes) and an object is its members as sent, in one vector: a
//! lookup scans a few keys, and only the canonical form sorts them. Parsing goes through
//! serde_json's own deserializer, so what it accepts and how it reads numbers are serde_json's.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// A JSON object's members in the order they were sent. A key sent twice counts with its last
/// value, as in a `serde_json::Map`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object<'a> {
    members: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Value<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }

    /// An owned copy, for the parts of a payload an event keeps (its metadata).
    pub fn to_serde(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Number(number) => serde_json::Value::Number(number.clone()),
            Value::String(text) => serde_json::Value::String(text.clone().into_owned()),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(Value::to_serde).collect()),
            Value::Object(object) => serde_json::Value::Object(
                object.iter().map(|(key, item)| (key.to_owned(), item.to_serde())).collect(),
            ),
        }
    }

    /// Compact JSON with object keys sorted: byte for byte what serde_json writes for the same
    /// value with its keys sorted, whatever order and spacing the value arrived in.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Number(number) => write_compact(number, out),
            Value::String(text) => write_string(text, out),
            Value::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    item.write_canonical(out);
                }
                out.push(b']');
            }
            Value::Object(object) => object.write_canonical(out),
        }
    }
}

fn write_compact<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and numbers and strings always serialize.
    let _ = serde_json::to_writer(out, value);
}

/// A JSON string as serde_json writes it. It escapes only quotes, backslashes and control
/// characters, so the many strings without any are copied as they are.
fn write_string(text: &str, out: &mut Vec<u8>) {
    if first_to_escape(text.as_bytes()).is_some() {
        return write_compact(text, out);
    }
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// The index of the first quote, backslash or control character: what a JSON string must
/// escape. Eight bytes at a time, as canonical forms copy several hundred bytes of strings.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES << 7;
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word;
    let mut chunks = bytes.chunks_exact(8);
    for (index, chunk) in chunks.by_ref().enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        // High bits mark bytes that are zero after the xor, or below 0x20; the lowest mark is
        // always exact (only bytes above a true match can be marked falsely).
        let marked = (zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH_BITS;
        if marked != 0 {
            return Some(index * 8 + (marked.trailing_zeros() / 8) as usize);
        }
    }
    let tail = chunks.remainder();
    tail.iter().position(|&byte| must_escape(byte)).map(|at| bytes.len() - tail.len() + at)
}

fn must_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

impl<'a> Object<'a> {
    /// The object `text` holds, borrowing its strings; `None` when it holds valid JSON that is
    /// not an object. For callers that know they hold an object, such as tests.
    pub fn parse(text: &'a str) -> serde_json::Result<Option<Self>> {
        Ok(match serde_json::from_str(text)? {
            Value::Object(object) => Some(object),
            _ => None,
        })
    }

    /// The value of `key`; the last one when it was sent twice.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.members.iter().rev().find(|(member, _)| member == key).map(|(_, value)| value)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in the order sent, a key sent twice included twice: collected into a map, the
    /// last one wins, as in serde_json.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.members.iter().map(|(key, value)| (key.as_ref(), value))
    }

    /// See [`Value::write_canonical`].
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        // Provider objects have a few dozen members at most: their order is sorted on the stack.
        const ON_STACK: usize = 32;
        let mut on_stack = [SortKey { prefix: 0, index: 0 }; ON_STACK];
        let mut on_heap = Vec::new();
        let order = if self.members.len() <= ON_STACK {
            &mut on_stack[..self.members.len()]
        } else {
            on_heap.resize(self.members.len(), SortKey { prefix: 0, index: 0 });
            &mut on_heap[..]
        };
        for (index, slot) in order.iter_mut().enumerate() {
            *slot = SortKey { prefix: SortKey::prefix_of(&self.members[index].0), index };
        }
        self.write_members_in(order, out);
    }

    /// Writes the members sorted by key, `order` holding their sort keys.
    fn write_members_in(&self, order: &mut [SortKey], out: &mut Vec<u8>) {
        let key = |sort_key: &SortKey| self.members[sort_key.index].0.as_bytes();
        // Stable, so that of a key sent twice the last one sent comes last, and is the one kept.
        order.sort_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| key(a).cmp(key(b))));
        out.push(b'{');
        let mut first = true;
        for (position, sort_key) in order.iter().enumerate() {
            let same_key = |next: &SortKey| next.prefix == sort_key.prefix && key(next) == key(sort_key);
            if order.get(position + 1).is_some_and(same_key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            let (name, item) = &self.members[sort_key.index];
            write_string(name, out);
            out.push(b':');
            item.write_canonical(out);
        }
        out.push(b'}');
    }
}

/// A member's place in key order. Most keys differ within their first eight bytes, which compare
/// as one integer; only keys that share them are compared whole.
#[derive(Clone, Copy)]
struct SortKey {
    /// The key's first eight bytes, big-endian, zero-padded: ordered as the keys themselves
    /// wherever two prefixes differ.
    prefix: u64,
    index: usize,
}

impl SortKey {
    fn prefix_of(key: &str) -> u64 {
        let mut bytes = [0; 8];
        let length = key.len().min(8);
        bytes[..length].copy_from_slice(&key.as_bytes()[..length]);
        u64::from_be_bytes(bytes)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

/// Room made for a non-empty object's members or array's items at once. Provider objects hold
/// up to a few dozen; growing from one by doubling cost five allocations and copies per object,
/// and these vectors live only as long as one request.
const FIRST_ROOM: usize = 16;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
        Ok(Value::Number(number.into()))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Value::Number(number.into()))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Self::Value, E> {
        // As serde_json::Value does; JSON text cannot spell a NaN or an infinity anyway.
        Ok(Number::from_f64(number).map_or(Value::Null, Value::Number))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(text)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element()? {
            if items.is_empty() {
                items.reserve(FIRST_ROOM);
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(Key(key)) = access.next_key()? {
            if members.is_empty() {
                members.reserve(FIRST_ROOM);
            }
            members.push((key, access.next_value()?));
        }
        Ok(Value::Object(Object { members }))
    }
}

/// An object key, borrowed from the body unless it holds escapes (serde's own `Cow` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        let mut out = Vec::new();
        value.write_canonical(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_canonical_form_is_serde_jsons_compact_form_of_the_sorted_value() {
        let samples = [
            r#"{"b": 1, "a": {"y": [1, 2.50, -3, 1e2], "x": "s\u00e9\/\"\n"}, "": null, "c": [true, false, {}]}"#,
            r#"{"é": 18446744073709551615, "e": -9223372036854775808, "k": 123456789012345678901234}"#,
            r#"[{"\u0041": 1, "A\u0000": 2}, "\ud83d\ude00", 0.1, -0.0]"#,
        ];
        for sample in samples {
            let sorted: serde_json::Value = serde_json::from_str(sample).unwrap();
            assert_eq!(canonical(sample), sorted.to_string(), "{sample}");
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_as_in_serde_json() {
        let text = r#"{"a": 1, "b": 2, "a": 3, "a": {"c": 4}}"#;
        let object = Object::parse(text).unwrap().unwrap();
        let expected: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(Value::Object(object.clone()).to_serde(), expected);
        assert_eq!(object.get("a").map(Value::to_serde), Some(serde_json::json!({"c": 4})));
        assert_eq!(canonical(text), r#"{"a":{"c":4},"b":2}"#);
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let object = Object::parse(r#"{"plain": "text", "esc\u0061ped": "a\tb"}"#).unwrap().unwrap();
        assert!(matches!(object.get("plain"), Some(Value::String(Cow::Borrowed("text")))));
        assert_eq!(object.get("escaped").and_then(Value::as_str), Some("a\tb"));
        assert_eq!(object.get("missing"), None);
        assert_eq!(Object::parse("[1]").unwrap(), None);
    }

    proptest::proptest! {
        #[test]
        fn keys_sort_as_serde_json_sorts_them(
            members in proptest::collection::vec(("[ab\u{0}é_]{0,11}", 0..4_u8), 0..12)
        ) {
            let members: Vec<String> = members
                .iter()
                .map(|(key, value)| format!("{}:{value}", serde_json::to_string(key).unwrap()))
                .collect();
            let text = format!("{{{}}}", members.join(","));
            let sorted: serde_json::Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(canonical(&text), sorted.to_string());
        }

        #[test]
        fn the_first_byte_to_escape_is_found_whatever_its_position(text in "[ -~\u{0}-\u{1f}é😀]{0,40}") {
            let expected = text.bytes().position(must_escape);
            proptest::prop_assert_eq!(first_to_escape(text.as_bytes()), expected);
        }
    }
}
