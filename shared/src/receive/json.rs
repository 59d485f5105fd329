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
    /// Borrowed when the body spells it without escapes: then, JSON text holding no bare quote,
    /// backslash or control character inside a string, it has none to escape either.
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
}

fn write_compact<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and numbers and strings always serialize.
    let _ = serde_json::to_writer(out, value);
}

/// Writes canonical forms: compact JSON with object keys sorted, byte for byte what serde_json
/// writes for the same value with its keys sorted, whatever order and spacing it arrived in.
/// Keeps its buffers from one form to the next.
#[derive(Default)]
pub struct CanonicalWriter {
    out: Vec<u8>,
    /// Sort keys of the objects being written, innermost last: a key's first eight bytes,
    /// big-endian and zero-padded, above the member's index. Most keys differ within those
    /// bytes, so sorting these integers sorts the members; only members whose first eight
    /// bytes are the same are then compared whole.
    order: Vec<u128>,
}

impl CanonicalWriter {
    /// Room kept between forms: a status callback's form fits many times over, while an
    /// inbound mail's can take megabytes, and a hostile body millions of members, that the
    /// next form won't need.
    const KEPT_BYTES: usize = 16 * 1024;
    const KEPT_MEMBERS: usize = 1024;

    /// Calls `use_form` with the canonical form of `object`.
    pub fn with_form<T>(&mut self, object: &Object<'_>, use_form: impl FnOnce(&[u8]) -> T) -> T {
        self.out.clear();
        self.order.clear();
        self.object(object);
        let result = use_form(&self.out);
        self.out.clear();
        self.out.shrink_to(Self::KEPT_BYTES);
        self.order.shrink_to(Self::KEPT_MEMBERS);
        result
    }

    fn value(&mut self, value: &Value<'_>) {
        match value {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(true) => self.out.extend_from_slice(b"true"),
            Value::Bool(false) => self.out.extend_from_slice(b"false"),
            Value::Number(number) => write_compact(number, &mut self.out),
            Value::String(text) => write_string(text, &mut self.out),
            Value::Array(items) => {
                self.out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        self.out.push(b',');
                    }
                    self.value(item);
                }
                self.out.push(b']');
            }
            Value::Object(object) => self.object(object),
        }
    }

    fn object(&mut self, object: &Object<'_>) {
        let members = &object.members;
        let start = self.order.len();
        self.order.extend(members.iter().enumerate().map(|(index, (key, _))| sort_key(key, index)));
        let order = &mut self.order[start..];
        order.sort_unstable();
        // Members whose keys share their first eight bytes are now in the order sent; sorted
        // stably by the whole key, of a key sent twice the last one sent comes last.
        let key = |sort_key: u128| members[member_index(sort_key)].0.as_bytes();
        for run in order.chunk_by_mut(|a, b| prefix(*a) == prefix(*b)).filter(|run| run.len() > 1) {
            run.sort_by(|a, b| key(*a).cmp(key(*b)));
        }

        self.out.push(b'{');
        let mut first = true;
        for position in start..start + members.len() {
            let this = self.order[position];
            // What nested objects add to `order` is gone again by the time their member is written.
            let same_key = |&next: &u128| prefix(next) == prefix(this) && key(next) == key(this);
            if self.order.get(position + 1).is_some_and(same_key) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            let (name, item) = &members[member_index(this)];
            write_string(name, &mut self.out);
            self.out.push(b':');
            self.value(item);
        }
        self.out.push(b'}');
        self.order.truncate(start);
    }
}

fn sort_key(key: &str, index: usize) -> u128 {
    let mut bytes = [0; 8];
    let length = key.len().min(8);
    bytes[..length].copy_from_slice(&key.as_bytes()[..length]);
    (u128::from(u64::from_be_bytes(bytes)) << 64) | index as u128
}

fn prefix(sort_key: u128) -> u64 {
    (sort_key >> 64) as u64
}

fn member_index(sort_key: u128) -> usize {
    sort_key as u64 as usize
}

/// A JSON string as serde_json writes it. It escapes only quotes, backslashes and control
/// characters: a string borrowed from the body has none (see [`Value::String`]), and the many
/// others without any are copied as they are too.
#[expect(clippy::ptr_arg, reason = "whether the text is borrowed from the body is what is read")]
fn write_string(text: &Cow<'_, str>, out: &mut Vec<u8>) {
    if matches!(text, Cow::Owned(_)) && first_to_escape(text.as_bytes()).is_some() {
        return write_compact(text.as_ref(), out);
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
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

/// Room made for a non-empty object's members or array's items at once. Provider objects hold
/// up to a few dozen; growing from four by doubling took up to three allocations and copies for
/// an object of a dozen members, and these vectors live only as long as one request.
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
        let object = Object::parse(text).unwrap().expect("an object");
        CanonicalWriter::default().with_form(&object, |form| String::from_utf8(form.to_vec()).unwrap())
    }

    #[test]
    fn the_canonical_form_is_serde_jsons_compact_form_of_the_sorted_value() {
        let samples = [
            r#"{"b": 1, "a": {"y": [1, 2.50, -3, 1e2], "x": "s\u00e9\/\"\n"}, "": null, "c": [true, false, {}]}"#,
            r#"{"é": 18446744073709551615, "e": -9223372036854775808, "k": 123456789012345678901234}"#,
            r#"{"list": [{"\u0041": 1, "A\u0000": 2}, "\ud83d\ude00", 0.1, -0.0]}"#,
        ];
        for sample in samples {
            let sorted: serde_json::Value = serde_json::from_str(sample).unwrap();
            assert_eq!(canonical(sample), sorted.to_string(), "{sample}");
        }
    }

    #[test]
    fn a_large_form_gives_its_memory_back() {
        let members: Vec<String> = (0..5000).map(|index| format!(r#""k{index}":{index}"#)).collect();
        let text = format!(r#"{{"raw": "{}", "members": {{{}}}}}"#, "x".repeat(100_000), members.join(","));
        let object = Object::parse(&text).unwrap().unwrap();
        let mut writer = CanonicalWriter::default();
        assert!(writer.with_form(&object, |form| form.len()) > 100_000);
        assert!(writer.out.capacity() <= CanonicalWriter::KEPT_BYTES);
        assert!(writer.order.capacity() <= CanonicalWriter::KEPT_MEMBERS);
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
        fn any_string_is_written_as_serde_json_writes_it(key: String, text: String) {
            let (key, text) = (serde_json::to_string(&key).unwrap(), serde_json::to_string(&text).unwrap());
            let text = format!("{{{key}: {text}}}");
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
