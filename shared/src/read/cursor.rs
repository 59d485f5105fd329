//! `next_cursor`: where every partition of a query resumes, opaque and signed.
//!
//! A cursor is base64url(HMAC tag || JSON). The JSON names the query it belongs to and, per
//! partition, the last item handed out; the tag, keyed from `EVENTS_API_TOKEN`, makes any
//! change to it detectable, so a cursor can only resume the query that issued it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::BearerToken;

/// What the cursor key is derived for; changing it retires every cursor issued before.
const CURSOR_KEY_PURPOSE: &str = "mailhooks events cursor v1";
const TAG_BYTES: usize = 32;

/// An item's primary key: enough to resume a Query right after it, on the table or an index
/// (which sorts on the table's `sk`; its partition key is the query's own, so an index's
/// LastEvaluatedKey of `pk`, `sk` and `gsiNpk` is rebuilt from this and the partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

/// Where one partition of a query stands between pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneCursor {
    /// Nothing handed out from this partition yet.
    Start,
    /// Resume right after this item.
    After(ItemKey),
    /// Every matching item of this partition has been handed out.
    Done,
}

/// Identifies a query's selector, time range and order: a cursor resumes only that query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryBinding(String);

impl QueryBinding {
    /// Any serializable description of the query; equal descriptions bind equally.
    pub fn of(description: &impl Serialize) -> Self {
        let text = serde_json::to_vec(description).expect("a query description serializes");
        QueryBinding(hex::encode(&Sha256::digest(&text)[..16]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("was not issued by this API, or was altered")]
    Forged,
    #[error("belongs to another query: repeat the selector, since, until and order of its first page")]
    OtherQuery,
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    query: String,
    lanes: Vec<LaneCursor>,
}

/// Signs and checks cursors. Its `Debug` is redacted like the token it comes from.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

impl CursorKey {
    pub fn derived_from(token: &BearerToken) -> Self {
        CursorKey(token.derive_key(CURSOR_KEY_PURPOSE))
    }

    pub fn seal(&self, binding: &QueryBinding, lanes: &[LaneCursor]) -> String {
        let body = CursorBody { query: binding.0.clone(), lanes: lanes.to_vec() };
        let json = serde_json::to_vec(&body).expect("a cursor body serializes");
        let mut sealed = self.tag(&json).to_vec();
        sealed.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The lanes of a cursor this key sealed for `binding`, in the order they were sealed.
    pub fn open(&self, binding: &QueryBinding, cursor: &str) -> Result<Vec<LaneCursor>, CursorError> {
        let sealed = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| CursorError::Forged)?;
        if sealed.len() < TAG_BYTES {
            return Err(CursorError::Forged);
        }
        let (tag, json) = sealed.split_at(TAG_BYTES);
        self.mac(json).verify_slice(tag).map_err(|_| CursorError::Forged)?;
        // Signed by us, so it parses; a failure still must not become a 500.
        let body: CursorBody = serde_json::from_slice(json).map_err(|_| CursorError::Forged)?;
        if body.query != binding.0 {
            return Err(CursorError::OtherQuery);
        }
        Ok(body.lanes)
    }

    fn tag(&self, json: &[u8]) -> [u8; TAG_BYTES] {
        self.mac(json).finalize().into_bytes().into()
    }

    fn mac(&self, json: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(json);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str) -> CursorKey {
        CursorKey::derived_from(&BearerToken::from_env(&|_| Some(token.to_owned()), "T").unwrap())
    }

    fn lanes() -> Vec<LaneCursor> {
        vec![
            LaneCursor::Start,
            LaneCursor::After(ItemKey { pk: "MSG#engagelab#m-1".into(), sk: "2024-05-01T10:00:00.000Z#ab".into() }),
            LaneCursor::Done,
        ]
    }

    #[test]
    fn a_sealed_cursor_opens_to_its_lanes() {
        let binding = QueryBinding::of(&("type", "bounced"));
        let cursor = key("t").seal(&binding, &lanes());
        assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "URL-safe: {cursor}");
        assert_eq!(key("t").open(&binding, &cursor), Ok(lanes()));
    }

    #[test]
    fn any_changed_character_is_forged() {
        let binding = QueryBinding::of(&"q");
        let cursor = key("t").seal(&binding, &lanes());
        for index in 0..cursor.len() {
            let mut changed = cursor.clone().into_bytes();
            changed[index] = if changed[index] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(key("t").open(&binding, &changed), Err(CursorError::Forged), "position {index}");
        }
    }

    #[test]
    fn garbage_and_other_keys_are_forged() {
        let binding = QueryBinding::of(&"q");
        for garbage in ["", "abc", "!!!", "eyJxdWVyeSI6IiJ9"] {
            assert_eq!(key("t").open(&binding, garbage), Err(CursorError::Forged), "{garbage:?}");
        }
        let cursor = key("t").seal(&binding, &lanes());
        assert_eq!(key("rotated").open(&binding, &cursor), Err(CursorError::Forged));
    }

    #[test]
    fn another_querys_cursor_is_refused() {
        let cursor = key("t").seal(&QueryBinding::of(&("recipient", "a@x.com")), &lanes());
        let other = QueryBinding::of(&("recipient", "b@x.com"));
        assert_eq!(key("t").open(&other, &cursor), Err(CursorError::OtherQuery));
    }
}
