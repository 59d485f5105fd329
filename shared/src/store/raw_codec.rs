//! How `raw` (the provider's event exactly as received) is stored: JSON text (`S`), or zlib
//! (`B`) when that is smaller. DynamoDB charges writes per started kilobyte, so the bytes of
//! `raw` decide whether an event costs one write unit for its item or two.
//!
//! Since the per-provider dictionaries, `B` is a standard zlib stream (RFC 1950) with a
//! **preset dictionary**: FLG.FDICT set and DICTID = Adler-32 of the dictionary, which is the
//! provider's committed file in `raw_dictionaries/` (field names and common values of its
//! callbacks, so a short payload need not spell out its field names). Any zlib reads it given
//! the dictionary, e.g. Python:
//!
//! ```text
//! zlib.decompressobj(zdict=open("shared/src/store/raw_dictionaries/sendpost-v1.json", "rb").read()).decompress(blob)
//! ```
//!
//! Items written before (plain zlib without dictionary, or `S`) keep decoding.
//!
//! **The item's own texts extend the dictionary.** The normalized attributes are copies of
//! parts of `raw` (the message id, the recipient, the subject, a user agent, metadata), and the
//! item stores them anyway; so the dictionary `raw` is compressed with is the provider's file
//! followed by the item's *context* ([`item_context`]): the texts of [`CONTEXT_ATTRIBUTES`]
//! as stored, and `raw` refers to them instead of spelling them out a second time (about 60 to
//! 170 bytes less per event on the sample payloads, the difference between 1 and 2 write units
//! for many). The DICTID is then the Adler-32 of the provider's file and the context together,
//! so a reader that rebuilds a context from an altered item gets an error, never other text.
//! Any zlib still reads it, given that dictionary:
//!
//! ```text
//! zlib.decompressobj(zdict=open("shared/src/store/raw_dictionaries/sendpost-v1.json", "rb").read() + context)
//! ```
//!
//! **A dictionary's bytes never change once deployed**: stored items name it only by its
//! DICTID. A better dictionary is a new file (`<provider>-v2.json`) appended to
//! [`DICTIONARIES`]; the last one of a provider is used for writing, and every one stays for
//! reading. `raw_dictionaries/*` is binary in `.gitattributes` so no checkout rewrites it, and
//! the unit tests pin each DICTID.
//!
//! Writing uses zlib-rs (through flate2), whose `deflateSetDictionary` only puts the dictionary
//! into the window and hash table: priming a compressor that way costs a fraction of feeding the
//! dictionary through a compressor, which was most of the CPU a callback's compression took
//! (docs/benchmarks.md, "CPU per invocation"). Reading uses miniz_oxide, which has no
//! set-dictionary call: DEFLATE back-references point into the *decompressed* history, so
//! decoding builds a stream that decodes to the dictionary (stored blocks) in front of the
//! payload's deflate data, inflates, drops the dictionary and checks the payload's Adler-32.

use std::cell::RefCell;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::keys::Item;
use flate2::{Compress, Compression, FlushCompress, Status};

/// zlib's best compression; `raw` is written once and read rarely.
const COMPRESSION_LEVEL: u32 = 9;
/// A decompressed `raw` larger than this is refused as corrupt (items are at most 400 KB).
const DECOMPRESSED_LIMIT: usize = 64 * 1024 * 1024;
/// FLG.FDICT: a DICTID follows the header and the stream was compressed with that dictionary.
const ZLIB_FDICT: u8 = 0x20;
/// Back-references reach at most this far, so a longer dictionary would be partly unusable.
pub const MAX_DICTIONARY_LEN: usize = 32 * 1024;
/// A stored (uncompressed) deflate block holds at most this many bytes.
const STORED_BLOCK_MAX: usize = 0xFFFF;
/// The attributes whose texts make an item's context, in this order. Never reorder or edit
/// them: stored items name their dictionary only by DICTID. A new context is a new list, tried
/// after this one when decoding.
pub const CONTEXT_ATTRIBUTES: [&str; 12] = [
    "message_id",
    "recipient",
    "sender",
    "subject",
    "reason",
    "click_url",
    "user_agent",
    "ip",
    "account",
    "provider_event",
    "tags",
    "metadata",
];
/// A context is cut here: copies longer than this gain nothing more per byte, and priming
/// the compressor and its reader with them costs time.
pub const MAX_CONTEXT_BYTES: usize = 4096;

/// A preset dictionary for one provider's `raw` payloads.
#[derive(Debug)]
pub struct RawDictionary {
    /// The file in `raw_dictionaries/`, without `.json`.
    pub name: &'static str,
    pub provider: &'static str,
    pub bytes: &'static [u8],
}

impl RawDictionary {
    /// Its DICTID: the Adler-32 of its bytes, as zlib defines it.
    pub fn id(&self) -> u32 {
        adler32(self.bytes)
    }
}

/// Every dictionary ever deployed, oldest first. Never remove or edit an entry: items that
/// name it by DICTID would stop decoding. Append a new file to change a provider's dictionary.
pub const DICTIONARIES: &[RawDictionary] = &[
    RawDictionary {
        name: "engagelab-v1",
        provider: "engagelab",
        bytes: include_bytes!("raw_dictionaries/engagelab-v1.json"),
    },
    RawDictionary {
        name: "sendpost-v1",
        provider: "sendpost",
        bytes: include_bytes!("raw_dictionaries/sendpost-v1.json"),
    },
    RawDictionary {
        name: "tencent_ses-v1",
        provider: "tencent_ses",
        bytes: include_bytes!("raw_dictionaries/tencent_ses-v1.json"),
    },
];

/// The dictionary new items of `provider` are written with: its newest.
pub fn dictionary_for(provider: &str) -> Option<&'static RawDictionary> {
    DICTIONARIES.iter().rev().find(|dictionary| dictionary.provider == provider)
}

fn dictionary_with_id(id: u32) -> Option<&'static RawDictionary> {
    DICTIONARIES.iter().find(|dictionary| dictionary.id() == id)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawDecodeError {
    #[error("stored raw is neither text (S) nor binary (B)")]
    UnexpectedType,
    #[error("stored raw is not a zlib stream")]
    NotZlib,
    #[error("stored raw names preset dictionary {0:#010x}, which this build does not have")]
    UnknownDictionary(u32),
    #[error("stored raw is corrupt compressed data")]
    Corrupt,
    #[error("stored raw decompresses to more than the limit")]
    TooLarge,
    #[error("stored raw fails its Adler-32 check")]
    ChecksumMismatch,
    #[error("stored raw is not UTF-8 text")]
    NotText,
}

/// The texts of the item's [`CONTEXT_ATTRIBUTES`] as stored, one after the other: strings
/// as they are, the strings of lists in order and of maps by key (byte order), depth first;
/// numbers and other types add nothing. Cut at [`MAX_CONTEXT_BYTES`].
pub fn item_context(item: &Item) -> Vec<u8> {
    fn add(value: &AttributeValue, context: &mut Vec<u8>) {
        match value {
            AttributeValue::S(text) => context.extend_from_slice(text.as_bytes()),
            AttributeValue::L(values) => values.iter().for_each(|value| add(value, context)),
            AttributeValue::M(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort_unstable();
                names.into_iter().for_each(|name| add(&map[name], context));
            }
            _ => {}
        }
    }
    let mut context = Vec::new();
    for value in CONTEXT_ATTRIBUTES.iter().filter_map(|name| item.get(*name)) {
        add(value, &mut context);
        if context.len() >= MAX_CONTEXT_BYTES {
            break;
        }
    }
    context.truncate(MAX_CONTEXT_BYTES);
    context
}

/// `raw` as stored: zlib with the provider's dictionary and the item's context (plain zlib
/// for a provider without a dictionary) when that is smaller than the JSON text, else the
/// text. `item` is the item without `raw`, as it will be stored.
pub fn encode_raw(provider: &str, raw: &str, item: &Item) -> AttributeValue {
    encode_raw_within(provider, raw, item, usize::MAX).expect("no limit")
}

/// [`encode_raw`], or `None` when neither form fits in `max_bytes`. Compression stops as soon
/// as its output passes `max_bytes`, so a large payload that cannot fit (a 5 MB inbound mail
/// of attachments) costs only the work up to that point, not a full compression.
pub fn encode_raw_within(provider: &str, raw: &str, item: &Item, max_bytes: usize) -> Option<AttributeValue> {
    let compressed = match dictionary_for(provider) {
        Some(dictionary) => {
            compress_with_dictionary_within(raw.as_bytes(), &[dictionary.bytes, &item_context(item)], max_bytes)
        }
        None => compress_with_dictionary_within(raw.as_bytes(), &[], max_bytes),
    };
    match compressed {
        Some(compressed) if compressed.len() < raw.len() => Some(AttributeValue::B(Blob::new(compressed))),
        _ if raw.len() <= max_bytes => Some(AttributeValue::S(raw.to_owned())),
        _ => None,
    }
}

/// The provider's JSON text back from a stored `raw`, whichever form it was stored in; `item`
/// is the item it was read from (its context may be part of the dictionary).
pub fn decode_raw(stored: &AttributeValue, item: &Item) -> Result<String, RawDecodeError> {
    match stored {
        AttributeValue::S(text) => Ok(text.clone()),
        AttributeValue::B(blob) => {
            String::from_utf8(decompress(blob.as_ref(), &item_context(item))?).map_err(|_| RawDecodeError::NotText)
        }
        _ => Err(RawDecodeError::UnexpectedType),
    }
}

/// A zlib stream (RFC 1950) of `data` compressed with the preset dictionary made of the
/// `dictionary` parts one after the other; without parts, a plain zlib stream (no FDICT).
pub fn compress_with_dictionary(data: &[u8], dictionary: &[&[u8]]) -> Vec<u8> {
    compress_with_dictionary_within(data, dictionary, usize::MAX).expect("no limit")
}

/// [`compress_with_dictionary`], given up (`None`) as soon as the stream would exceed
/// `max_bytes`.
pub fn compress_with_dictionary_within(data: &[u8], dictionary: &[&[u8]], max_bytes: usize) -> Option<Vec<u8>> {
    with_kept_compressor(|compressor| {
        // Each part goes on where the one before ended, as one dictionary would: zlib keeps one
        // running Adler-32 over them, the DICTID of the header it writes (with FDICT set, and
        // FLEVEL 3 for level 9), and ends the stream with the payload's Adler-32.
        for part in dictionary {
            compressor.set_dictionary(part).ok()?;
        }
        let mut out = Vec::new();
        deflate_within(compressor, data, &mut out, max_bytes)?;
        Some(out)
    })
}

/// Runs `compress` with this thread's zlib compressor, reset.
fn with_kept_compressor<T>(compress: impl FnOnce(&mut Compress) -> T) -> T {
    COMPRESSOR.with_borrow_mut(|kept| {
        let compressor = kept.get_or_insert_with(|| Compress::new(Compression::new(COMPRESSION_LEVEL), true));
        compressor.reset();
        compress(compressor)
    })
}

thread_local! {
    /// The compressor's window, hash chains and buffers (about 270 KB) are kept between
    /// events: allocating and faulting them in afresh for every event cost more CPU than
    /// compressing a callback (docs/benchmarks.md, "CPU per invocation").
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// Appends all of `data`, compressed to its end, to `out`; `None` as soon as `out` would pass
/// `limit` bytes, so a payload that cannot fit costs only the work up to that point.
fn deflate_within(compressor: &mut Compress, data: &[u8], out: &mut Vec<u8>, limit: usize) -> Option<()> {
    let consumed_before = compressor.total_in();
    loop {
        // Room for one byte past the limit: zlib cannot say that a stream ended exactly where its
        // output space did, so a stream that fits must end with space to spare.
        let room = limit.saturating_add(1).checked_sub(out.len()).filter(|&room| room > 0)?;
        // Grown step by step (compress_vec writes only into spare capacity).
        out.reserve_exact(room.min(out.capacity().max(data.len() / 2 + 64)));
        let consumed = usize::try_from(compressor.total_in() - consumed_before).ok()?;
        match compressor.compress_vec(&data[consumed..], out, FlushCompress::Finish).ok()? {
            Status::StreamEnd => return (out.len() <= limit).then_some(()),
            Status::Ok | Status::BufError => {}
        }
    }
}

/// Decompresses a zlib stream, with or without a preset dictionary this build knows: one of
/// [`DICTIONARIES`] alone, or followed by `context`.
pub fn decompress(stream: &[u8], context: &[u8]) -> Result<Vec<u8>, RawDecodeError> {
    let [cmf, flg, ..] = *stream else { return Err(RawDecodeError::NotZlib) };
    let valid_header = cmf & 0x0F == 8 && cmf >> 4 <= 7 && ((u16::from(cmf) << 8) | u16::from(flg)) % 31 == 0;
    if !valid_header {
        return Err(RawDecodeError::NotZlib);
    }
    if flg & ZLIB_FDICT == 0 {
        // The format written before the dictionaries: plain zlib, Adler-32 checked by miniz.
        return miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(stream, DECOMPRESSED_LIMIT)
            .map_err(inflate_error);
    }
    // Header (2), DICTID (4), deflate data (at least 1), Adler-32 (4).
    if stream.len() < 2 + 4 + 1 + 4 {
        return Err(RawDecodeError::Corrupt);
    }
    let dictionary_id = u32::from_be_bytes(stream[2..6].try_into().expect("4 bytes"));
    let (dictionary, context) = match dictionary_with_id(dictionary_id) {
        Some(dictionary) => (dictionary, &[][..]),
        None => DICTIONARIES
            .iter()
            .find(|dictionary| miniz_oxide::mz_adler32_oxide(dictionary.id(), context) == dictionary_id)
            .map(|dictionary| (dictionary, context))
            .ok_or(RawDecodeError::UnknownDictionary(dictionary_id))?,
    };
    let (deflate, trailer) = stream[6..].split_at(stream.len() - 6 - 4);
    let mut primed = stored_blocks(dictionary.bytes);
    primed.extend_from_slice(&stored_blocks(context));
    primed.extend_from_slice(deflate);
    let primer_len = dictionary.bytes.len() + context.len();
    let mut output = miniz_oxide::inflate::decompress_to_vec_with_limit(&primed, primer_len + DECOMPRESSED_LIMIT)
        .map_err(inflate_error)?;
    if output.get(..dictionary.bytes.len()) != Some(dictionary.bytes)
        || output.get(dictionary.bytes.len()..primer_len) != Some(context)
    {
        return Err(RawDecodeError::Corrupt);
    }
    output.drain(..primer_len);
    if adler32(&output).to_be_bytes() != trailer {
        return Err(RawDecodeError::ChecksumMismatch);
    }
    Ok(output)
}

fn inflate_error(error: miniz_oxide::inflate::DecompressError) -> RawDecodeError {
    match error.status {
        miniz_oxide::inflate::TINFLStatus::HasMoreOutput => RawDecodeError::TooLarge,
        miniz_oxide::inflate::TINFLStatus::Adler32Mismatch => RawDecodeError::ChecksumMismatch,
        _ => RawDecodeError::Corrupt,
    }
}

/// A raw deflate prefix that decodes to `data`: non-final stored blocks, each byte-aligned
/// (BFINAL = 0, BTYPE = 00, padding, LEN, NLEN, the bytes), so any deflate data may follow.
fn stored_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / STORED_BLOCK_MAX + 1));
    for block in data.chunks(STORED_BLOCK_MAX) {
        let len = u16::try_from(block.len()).expect("chunks of at most 0xFFFF");
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

fn adler32(data: &[u8]) -> u32 {
    miniz_oxide::mz_adler32_oxide(miniz_oxide::MZ_ADLER32_INIT, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDPOST: &str = r#"{"event":{"eventID":"a1","type":2,"messageID":"m-9","from":"x@y.com","to":"z@w.com","smtpCode":250,"smtpDescription":"250 2.0.0 OK 17 gsmtp","eventMetadata":{"smtpCode":250}},"emailMessage":{"messageID":"m-9","emailType":"default"}}"#;

    fn no_item() -> Item {
        Item::new()
    }

    /// The attributes normalizing copies out of [`SENDPOST`], as the store keeps them.
    fn sendpost_item() -> Item {
        let text = |value: &str| AttributeValue::S(value.to_owned());
        Item::from([
            ("message_id".to_owned(), text("m-9")),
            ("recipient".to_owned(), text("z@w.com")),
            ("sender".to_owned(), text("x@y.com")),
            ("reason".to_owned(), text("250 2.0.0 OK 17 gsmtp")),
            ("smtp_code".to_owned(), AttributeValue::N("250".into())),
            (
                "metadata".to_owned(),
                AttributeValue::M(
                    [("emailType".to_owned(), text("default")), ("eventID".to_owned(), text("a1"))].into(),
                ),
            ),
        ])
    }

    fn blob(stored: &AttributeValue) -> Vec<u8> {
        match stored {
            AttributeValue::B(blob) => blob.as_ref().to_vec(),
            other => panic!("expected B, got {other:?}"),
        }
    }

    #[test]
    fn dictionaries_never_change() {
        // A failure here means a deployed dictionary's bytes changed: items written with it
        // would no longer decode. Restore the file; put a new dictionary in a new file.
        let ids: Vec<(&str, u32, usize)> =
            DICTIONARIES.iter().map(|dictionary| (dictionary.name, dictionary.id(), dictionary.bytes.len())).collect();
        assert_eq!(
            ids,
            [("engagelab-v1", 0x9fdd_3c22, 5786), ("sendpost-v1", 0x12c8_973c, 4627), ("tencent_ses-v1", 0xf714_719f, 2017)]
        );
    }

    #[test]
    fn dictionaries_fit_the_window_and_have_distinct_ids() {
        for dictionary in DICTIONARIES {
            assert!(dictionary.bytes.len() <= MAX_DICTIONARY_LEN, "{} is over 32 KB", dictionary.name);
            assert_eq!(DICTIONARIES.iter().filter(|other| other.id() == dictionary.id()).count(), 1);
        }
        for provider in crate::receive::providers::ALL {
            assert!(dictionary_for(provider.name).is_some(), "no dictionary for {}", provider.name);
        }
    }

    #[test]
    fn round_trip_with_the_dictionary_in_standard_zlib_framing() {
        let stored = encode_raw("sendpost", SENDPOST, &no_item());
        let bytes = blob(&stored);
        let dictionary = dictionary_for("sendpost").unwrap();
        // CMF: deflate with a 32 KB window; FLG: FDICT, FLEVEL 3 (level 9) and its check bits.
        assert_eq!(bytes[0..2], [0x78, 0xF9]);
        assert_eq!(bytes[1] & ZLIB_FDICT, ZLIB_FDICT);
        assert_eq!((u16::from(bytes[0]) << 8 | u16::from(bytes[1])) % 31, 0);
        assert_eq!(bytes[2..6], dictionary.id().to_be_bytes());
        assert_eq!(bytes[bytes.len() - 4..], adler32(SENDPOST.as_bytes()).to_be_bytes());
        assert_eq!(decode_raw(&stored, &no_item()).unwrap(), SENDPOST);
        // The dictionary is what makes it small.
        let plain = compress_with_dictionary(SENDPOST.as_bytes(), &[]);
        assert_eq!(plain[1] & ZLIB_FDICT, 0, "no parts, no dictionary");
        assert_eq!(decompress(&plain, &[]).unwrap(), SENDPOST.as_bytes());
        assert!(bytes.len() + 40 < plain.len(), "{} vs {}", bytes.len(), plain.len());
    }

    #[test]
    fn round_trips_edge_payloads() {
        let long = "x".repeat(70_000) + &"{\"a\":\"é\"}".repeat(5000);
        for payload in ["", "{}", SENDPOST, long.as_str()] {
            for provider in ["engagelab", "sendpost", "tencent_ses", "unknown-provider"] {
                let compressed = compress_with_dictionary(payload.as_bytes(), &[dictionary_for("sendpost").unwrap().bytes]);
                assert_eq!(decompress(&compressed, &[]).unwrap(), payload.as_bytes());
                assert_eq!(decode_raw(&encode_raw(provider, payload, &no_item()), &no_item()).unwrap(), payload);
            }
        }
        // A dictionary longer than a stored block's 65,535 bytes still primes correctly.
        assert_eq!(stored_blocks(&[7; 70_000]).len(), 70_000 + 2 * 5);
    }

    #[test]
    fn a_limit_keeps_the_form_that_fits_or_gives_up() {
        // Pseudo-random base64 compresses to about 3/4: 40,000 bytes need about 30,000.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: String = (0..40_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(state % 64) as usize])
            })
            .collect();
        let full = encode_raw("engagelab", &noise, &no_item());
        let AttributeValue::B(blob) = &full else { panic!("compression pays") };
        assert_eq!(encode_raw_within("engagelab", &noise, &no_item(), blob.as_ref().len()), Some(full.clone()));
        assert_eq!(encode_raw_within("engagelab", &noise, &no_item(), blob.as_ref().len() - 1), None);
        assert_eq!(encode_raw_within("engagelab", &noise, &no_item(), 1000), None);
        assert_eq!(encode_raw_within("unknown-provider", &noise, &no_item(), 1000), None);
        // Text that compression does not shrink is kept when it fits.
        assert_eq!(encode_raw_within("sendpost", "{}", &no_item(), 2), Some(AttributeValue::S("{}".into())));
        assert_eq!(encode_raw_within("sendpost", "{}", &no_item(), 1), None);
        let repeated = "{\"html\":\"<p>hello</p>\"}".repeat(10_000);
        let small = encode_raw_within("engagelab", &repeated, &no_item(), 10_000).expect("repetition compresses well");
        assert_eq!(decode_raw(&small, &no_item()).unwrap(), repeated);
    }

    #[test]
    fn text_is_kept_when_compression_does_not_pay() {
        assert_eq!(encode_raw("sendpost", "{}", &no_item()), AttributeValue::S("{}".into()));
        assert_eq!(decode_raw(&AttributeValue::S("{}".into()), &no_item()).unwrap(), "{}");
    }

    #[test]
    fn the_format_before_dictionaries_still_decodes() {
        // Plain zlib at level 9, as items were written before the dictionaries.
        let old = miniz_oxide::deflate::compress_to_vec_zlib(br#"{"event":"delivered","email":"a@x.com"}"#, 9);
        assert_eq!(old[1] & ZLIB_FDICT, 0);
        assert_eq!(
            decode_raw(&AttributeValue::B(Blob::new(old)), &no_item()).unwrap(),
            r#"{"event":"delivered","email":"a@x.com"}"#
        );
        // Bytes from another zlib (Python's zlib.compress(b'{"a":1}')) too.
        let python = [0x78, 0x9c, 0xab, 0x56, 0x4a, 0x54, 0xb2, 0x32, 0xac, 0x05, 0x00, 0x08, 0x2a, 0x02, 0x09];
        assert_eq!(decode_raw(&AttributeValue::B(Blob::new(python.to_vec())), &no_item()).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn damage_is_a_typed_error_never_a_panic() {
        let good = blob(&encode_raw("sendpost", SENDPOST, &no_item()));
        let decode = |bytes: Vec<u8>| decode_raw(&AttributeValue::B(Blob::new(bytes)), &no_item());
        assert_eq!(decode(b"not zlib".to_vec()), Err(RawDecodeError::NotZlib));
        assert_eq!(decode(Vec::new()), Err(RawDecodeError::NotZlib));
        assert_eq!(decode_raw(&AttributeValue::N("1".into()), &no_item()), Err(RawDecodeError::UnexpectedType));

        let mut unknown = good.clone();
        unknown[2] ^= 0xFF;
        assert!(matches!(decode(unknown), Err(RawDecodeError::UnknownDictionary(_))));

        let mut trailer = good.clone();
        *trailer.last_mut().unwrap() ^= 1;
        assert_eq!(decode(trailer), Err(RawDecodeError::ChecksumMismatch));

        // Every truncation is an error; every single-byte change is an error (deflate's or
        // the checksum's) or, when it only touches bits the format ignores (the padding after
        // the last block, FLEVEL), the same text. Never a panic, never other text.
        for len in 0..good.len() {
            assert!(decode(good[..len].to_vec()).is_err(), "truncated to {len}");
        }
        let mut errors = 0;
        for index in 0..good.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut damaged = good.clone();
                damaged[index] ^= flip;
                match decode(damaged) {
                    Ok(text) => assert_eq!(text, SENDPOST, "byte {index} ^ {flip:#x}"),
                    Err(_) => errors += 1,
                }
            }
        }
        assert!(errors > good.len() * 2, "{errors} of {} changes detected", good.len() * 3);
    }

    #[test]
    fn the_context_is_the_listed_texts_in_a_fixed_order() {
        assert_eq!(item_context(&sendpost_item()), b"m-9z@w.comx@y.com250 2.0.0 OK 17 gsmtpdefaulta1");
        let mut item = sendpost_item();
        item.insert("tags".into(), AttributeValue::L(vec![AttributeValue::S("t1".into()), AttributeValue::N("2".into())]));
        item.insert("event_id".into(), AttributeValue::S("not listed".into()));
        assert!(item_context(&item).ends_with(b"t1defaulta1"));
        item.insert("subject".into(), AttributeValue::S("s".repeat(2 * MAX_CONTEXT_BYTES)));
        let context = item_context(&item);
        assert_eq!(context.len(), MAX_CONTEXT_BYTES);
        assert!(context.starts_with(b"m-9z@w.comx@y.comsss"));
    }

    #[test]
    fn the_items_context_shrinks_raw_and_only_that_item_reads_it() {
        let item = sendpost_item();
        let with_context = blob(&encode_raw("sendpost", SENDPOST, &item));
        let without = blob(&encode_raw("sendpost", SENDPOST, &no_item()));
        assert!(with_context.len() + 10 < without.len(), "{} vs {}", with_context.len(), without.len());
        let dictionary = dictionary_for("sendpost").unwrap();
        let id = miniz_oxide::mz_adler32_oxide(dictionary.id(), &item_context(&item));
        assert_eq!(with_context[2..6], id.to_be_bytes());
        let stored = AttributeValue::B(Blob::new(with_context));
        assert_eq!(decode_raw(&stored, &item).unwrap(), SENDPOST);
        // Whatever else the item holds does not matter; a changed context is refused.
        let mut more = item.clone();
        more.insert("smtp_code".into(), AttributeValue::N("550".into()));
        more.insert("event_type".into(), AttributeValue::S("bounced".into()));
        assert_eq!(decode_raw(&stored, &more).unwrap(), SENDPOST);
        let mut altered = item.clone();
        altered.insert("recipient".into(), AttributeValue::S("other@w.com".into()));
        assert_eq!(decode_raw(&stored, &altered), Err(RawDecodeError::UnknownDictionary(id)));
        assert_eq!(decode_raw(&stored, &no_item()), Err(RawDecodeError::UnknownDictionary(id)));
    }

    /// The kept compressor carries nothing from one event into the next: every sample body, a
    /// long repetitive payload and a 70 KB one that does not compress (past the 32 KB window),
    /// with each dictionary, with and without a context, one after the other through it, each
    /// decoding to itself with its own dictionary alone.
    #[test]
    fn one_compressor_compresses_event_after_event() {
        let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut payloads = vec![
            SENDPOST.as_bytes().to_vec(),
            SENDPOST.repeat(200).into_bytes(),
            (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
        ];
        for folder in std::fs::read_dir(&samples).unwrap() {
            let folder = folder.unwrap().path();
            for file in std::fs::read_dir(&folder).into_iter().flatten() {
                let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
                let sample: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(body) = sample.get("body").and_then(serde_json::Value::as_str) {
                    payloads.push(body.as_bytes().to_vec());
                }
            }
        }
        assert!(payloads.len() > 50, "the samples in events/ were read");
        for dictionary in DICTIONARIES {
            for payload in &payloads {
                for context in [&[][..], &payload[..payload.len().min(300)]] {
                    let stream = compress_with_dictionary(payload, &[dictionary.bytes, context]);
                    assert_eq!(
                        decompress(&stream, context).as_deref(),
                        Ok(&payload[..]),
                        "{} bytes with {}",
                        payload.len(),
                        dictionary.name
                    );
                }
            }
        }
    }

    /// Interoperability with another zlib: Python's (CPython links the reference zlib)
    /// decompresses what we write given the dictionary file and the item's context, and we
    /// decompress what it writes.
    #[test]
    fn python_zlib_reads_and_writes_the_same_format() {
        let dictionary = dictionary_for("sendpost").unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/raw_dictionaries/sendpost-v1.json");
        let ours = hex::encode(blob(&encode_raw("sendpost", SENDPOST, &sendpost_item())));
        let script = "import sys, zlib\n\
                      zdict = open(sys.argv[1], 'rb').read() + bytes.fromhex(sys.argv[3])\n\
                      d = zlib.decompressobj(zdict=zdict)\n\
                      text = d.decompress(bytes.fromhex(sys.argv[2])) + d.flush()\n\
                      assert d.eof\n\
                      c = zlib.compressobj(9, zdict=zdict)\n\
                      print(text.decode())\n\
                      print((c.compress(text) + c.flush()).hex())\n";
        let output = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .arg(&ours)
            .arg(hex::encode(item_context(&sendpost_item())))
            .output()
            .expect("python3 runs (scripts/test needs it anyway)");
        assert!(output.status.success(), "python3: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some(SENDPOST), "Python read our stream back");
        let theirs = hex::decode(lines.next().unwrap()).unwrap();
        let context = item_context(&sendpost_item());
        let id = miniz_oxide::mz_adler32_oxide(dictionary.id(), &context);
        assert_eq!(theirs[2..6], id.to_be_bytes(), "Python wrote the same DICTID");
        assert_eq!(decompress(&theirs, &context).unwrap(), SENDPOST.as_bytes(), "we read Python's stream");
    }
}
