//! `raw` that does not fit in its item: one S3 object per event (an
//! inbound message too big for one item is stored without loss, never refused).
//!
//! The object is the provider's event exactly as received: its JSON text, uncompressed
//! (`Content-Type: application/json`), so `aws s3 cp s3://$BUCKET/$KEY - | sha256sum` checks it
//! against the item and any JSON tool reads it. Its key is `raw/{provider}/{event_id}/{sha256}`:
//! a retry with the same bytes rewrites the same object, and an object never changes under the
//! checksum an item records for it. The item holds, instead of `raw`, the map `raw_object` =
//! `{key: S, sha256: S (64 lowercase hex chars of the object's SHA-256), bytes: N}`; never both.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::aws_error::short_cause;
use crate::config::Env;

/// The environment variable naming the bucket; the template sets it on the functions that
/// write (webhooks) or read (events-api) overflow objects.
pub const RAW_BUCKET: &str = "RAW_BUCKET";
/// The item attribute that points at the object.
pub const RAW_OBJECT_ATTRIBUTE: &str = "raw_object";
/// Every overflow object's key starts with this; the webhooks may write only under it.
pub const KEY_PREFIX: &str = "raw/";
/// What the events of one page of `GET /events?include_raw=true` may take in Lambda's answer,
/// as measured by [`answer_bytes`]: Lambda answers at most 6 MB (6,291,456 bytes); 256 KiB are
/// left for the cursor, the answer's headers and the approximations. A `raw` that would not fit
/// even alone is always kept in an object, however well it compresses, so that its event can be
/// answered with the object's key.
pub const ANSWER_BYTES: u64 = 6 * 1024 * 1024 - 256 * 1024;

/// The bytes a provider event's JSON text takes in a Lambda answer: the answer's body is itself
/// a JSON string in Lambda's answer, so each quote and backslash is escaped once more. `raw` is
/// answered re-serialized, which drops whitespace and needless escapes; only numbers written
/// with an exponent (`1e2` becomes `100.0`) come out longer, by bytes the margin left in
/// [`ANSWER_BYTES`] covers for any real payload.
pub fn answer_bytes(json_text: &str) -> u64 {
    let escaped = json_text.bytes().filter(|&byte| byte == b'"' || byte == b'\\').count();
    (json_text.len() + escaped) as u64
}

/// Where an event's `raw` is kept when it is not in the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObjectRef {
    pub key: String,
    /// Lowercase hex SHA-256 of the object's bytes.
    pub sha256: String,
    pub bytes: u64,
}

impl RawObjectRef {
    /// The reference for `raw` of `provider`'s event `event_id`.
    pub fn of(provider: &str, event_id: &str, raw: &[u8]) -> Self {
        let sha256 = hex::encode(Sha256::digest(raw));
        RawObjectRef { key: object_key(provider, event_id, &sha256), sha256, bytes: raw.len() as u64 }
    }

    pub fn to_attribute(&self) -> AttributeValue {
        AttributeValue::M(HashMap::from([
            ("key".to_owned(), AttributeValue::S(self.key.clone())),
            ("sha256".to_owned(), AttributeValue::S(self.sha256.clone())),
            ("bytes".to_owned(), AttributeValue::N(self.bytes.to_string())),
        ]))
    }

    /// `None` when the attribute is not the map [`RawObjectRef::to_attribute`] writes.
    pub fn from_attribute(value: &AttributeValue) -> Option<Self> {
        let map = value.as_m().ok()?;
        let text = |name: &str| map.get(name).and_then(|value| value.as_s().ok()).cloned();
        let bytes = map.get("bytes").and_then(|value| value.as_n().ok()).and_then(|n| n.parse().ok())?;
        Some(RawObjectRef { key: text("key")?, sha256: text("sha256")?, bytes })
    }
}

/// `raw/{provider}/{event_id}/{sha256}`. A retry of the same event whose JSON differs only in
/// key order or spacing (same `event_id`, other bytes) writes its own object rather than
/// replacing the one the stored item's checksum describes; the losing copy expires with the
/// bucket's lifecycle.
pub fn object_key(provider: &str, event_id: &str, sha256: &str) -> String {
    format!("{KEY_PREFIX}{provider}/{event_id}/{sha256}")
}

#[derive(Debug, thiserror::Error)]
pub enum RawObjectError {
    #[error("{operation} of an overflow object failed: {cause}")]
    Request { operation: &'static str, cause: String },
    #[error("an overflow object does not exist")]
    Missing,
    #[error("an overflow object does not match the SHA-256 its item records")]
    Mismatch,
}

/// The overflow bucket: `RAW_BUCKET`.
#[derive(Clone, Debug)]
pub struct RawObjects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl RawObjects {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        RawObjects { client, bucket: bucket.into() }
    }

    /// `RAW_BUCKET` from `env` (`None` when unset or empty), with an S3 client built from
    /// `config` (region and credentials of the standard chain, `AWS_ENDPOINT_URL_S3` for a
    /// local S3) and [`s3_timeouts`].
    pub fn from_env(env: Env<'_>, config: &SdkConfig) -> Option<Self> {
        let bucket = env(RAW_BUCKET).map(|bucket| bucket.trim().to_owned()).filter(|bucket| !bucket.is_empty())?;
        // A local S3 (moto) answers only path-style requests (`{endpoint}/{bucket}/{key}`);
        // AWS itself gets the default virtual-hosted style.
        let overridden = |name: &str| env(name).is_some_and(|value| !value.trim().is_empty());
        let path_style = overridden("AWS_ENDPOINT_URL_S3") || overridden("AWS_ENDPOINT_URL");
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .timeout_config(s3_timeouts())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .force_path_style(path_style)
            .build();
        Some(RawObjects::new(aws_sdk_s3::Client::from_conf(s3), bucket))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `raw` under `reference.key`, which S3 checks against `reference.sha256` (an
    /// upload that arrives damaged is refused, not stored).
    pub async fn put(&self, reference: &RawObjectRef, raw: &[u8]) -> Result<(), RawObjectError> {
        let sha256 = hex::decode(&reference.sha256).expect("RawObjectRef::of writes hex");
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&reference.key)
            .content_type("application/json")
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(sha256))
            .body(ByteStream::from(raw.to_vec()))
            .send()
            .await
            .map_err(|error| RawObjectError::Request { operation: "PutObject", cause: short_cause(&error) })?;
        Ok(())
    }

    /// The object's bytes, checked against the SHA-256 its item records.
    pub async fn get(&self, reference: &RawObjectRef) -> Result<Vec<u8>, RawObjectError> {
        let request_error = |cause: String| RawObjectError::Request { operation: "GetObject", cause };
        let output = match self.client.get_object().bucket(&self.bucket).key(&reference.key).send().await {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|failure| failure.is_no_such_key()) => {
                return Err(RawObjectError::Missing)
            }
            Err(error) => return Err(request_error(short_cause(&error))),
        };
        let bytes = output.body.collect().await.map_err(|error| request_error(error.to_string()))?.to_vec();
        if hex::encode(Sha256::digest(&bytes)) != reference.sha256 {
            return Err(RawObjectError::Mismatch);
        }
        Ok(bytes)
    }
}

/// S3's timeouts. A 5 MB inbound mail must upload within them, and the answer to EngageLab
/// should come within its 3 s: the two pull apart. One attempt may take 4 s (a 5 MB upload
/// from Lambda usually takes well under a second; 4 s still allows a link as slow as about
/// 1.3 MB/s), the whole call 6 s, so S3 plus DynamoDB's 2.5 s stay inside the functions' 10 s
/// Lambda timeout. When an upload is that slow the answer comes after EngageLab's 3 s and
/// EngageLab resends: harmless, since the object's key is deterministic and the item's write is
/// conditional. A timeout below the upload time would instead fail every resend the same way
/// and lose the message.
pub fn s3_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_round_trips_through_its_attribute() {
        let reference = RawObjectRef::of("engagelab", "a7f3c0de00112233445566778899aabb", b"{}");
        // sha256sum of the two bytes "{}".
        let sha256 = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(reference.key, format!("raw/engagelab/a7f3c0de00112233445566778899aabb/{sha256}"));
        assert_eq!(reference.sha256, sha256);
        assert_eq!(reference.bytes, 2);
        assert_eq!(RawObjectRef::from_attribute(&reference.to_attribute()), Some(reference));
        assert_eq!(RawObjectRef::from_attribute(&AttributeValue::S("raw/x".into())), None);
    }
}
