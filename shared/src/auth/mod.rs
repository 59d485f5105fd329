//! Proving a callback came from its provider.
//!
//! Every configured check must pass; with none configured every request is refused.
//! Secrets are compared in constant time and never printed: [`Secret`]'s `Debug` is redacted
//! and no error message carries request or secret material.

use std::fmt;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Env;

mod bearer;
pub use bearer::BearerToken;

pub const ENGAGELAB_TIMESTAMP: &str = "x-webhook-timestamp";
pub const ENGAGELAB_APP_KEY: &str = "x-webhook-appkey";
pub const ENGAGELAB_SIGNATURE: &str = "x-webhook-signature";
pub const SENDPOST_SIGNATURE: &str = "x-sendpost-signature";
pub const SENDPOST_SIGNATURE_ALG: &str = "x-sendpost-signature-alg";

/// EngageLab's fixed `X-WebHook-AppKey` value for email callbacks.
const ENGAGELAB_EMAIL_APP_KEY: &str = "email";
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// Timestamps at or above this are milliseconds (1973 onwards in ms; year 5138 in seconds).
const MILLISECOND_TIMESTAMPS_FROM: i64 = 100_000_000_000;

/// A configured secret. It is only ever compared, never shown.
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// HMAC-SHA256 keyed with the secret. Keying hashes two blocks; done once here, a request
    /// only clones the keyed state.
    hmac: Hmac<Sha256>,
    /// SHA-256 of the secret, what a URL token is compared against.
    digest: [u8; 32],
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let hmac = Hmac::<Sha256>::new_from_slice(value.as_bytes()).expect("HMAC takes any key length");
        let digest = sha2::Sha256::digest(value.as_bytes()).into();
        Secret { value, hmac, digest }
    }

    fn bytes(&self) -> &[u8] {
        self.value.as_bytes()
    }

    /// For building a credential (a Basic-auth header, a callback URL) inside this crate.
    #[cfg(feature = "engagelab-api")]
    pub(crate) fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One or more secrets from a comma-separated setting, so keys can be rotated.
#[derive(Debug, Clone)]
pub struct SecretList(Vec<Secret>);

impl SecretList {
    /// `None` when the setting holds no secret at all (unset, empty or only commas).
    pub fn parse(setting: &str) -> Option<Self> {
        let secrets: Vec<Secret> = setting
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Secret::new)
            .collect();
        (!secrets.is_empty()).then_some(SecretList(secrets))
    }

    pub fn from_env(env: Env<'_>, name: &str) -> Option<Self> {
        Self::parse(&env(name)?)
    }

    fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }
}

use crate::config::ConfigError;

/// What a check looks at in a request.
pub struct AuthRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The `token` query parameter, if the URL carried one.
    pub query_token: Option<&'a str>,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

/// Why a request was refused (answered with 401). Messages name the failed check only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("webhook authentication is not configured: every request is refused")]
    NotConfigured,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error("X-WebHook-AppKey must be \"email\"")]
    WrongAppKey,
    #[error("timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("signature does not match")]
    BadSignature,
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    #[error("missing URL token")]
    MissingToken,
    #[error("URL token does not match")]
    WrongToken,
    #[error("reading events is not configured: every request is refused")]
    ReadingNotConfigured,
    #[error("missing Authorization: Bearer token")]
    MissingBearerToken,
    #[error("bearer token does not match")]
    WrongBearerToken,
}

#[derive(Debug)]
enum Check {
    /// A shared secret in the callback URL: Basic-auth password or `token` query parameter.
    UrlToken(SecretList),
    /// `X-WebHook-Signature` over `X-WebHook-Timestamp`, in either of EngageLab's two forms.
    EngageLabSignature { app_keys: SecretList, tolerance_secs: i64 },
    /// `X-SendPost-Signature`: HMAC-SHA256 of the raw body.
    SendPostSignature { api_keys: SecretList },
}

/// The checks one provider's configuration calls for.
#[derive(Debug, Default)]
pub struct Authenticator {
    checks: Vec<Check>,
}

impl Authenticator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_url_token(mut self, tokens: Option<SecretList>) -> Self {
        self.checks.extend(tokens.map(Check::UrlToken));
        self
    }

    pub fn with_engagelab_signature(mut self, app_keys: Option<SecretList>, tolerance_secs: i64) -> Self {
        self.checks.extend(app_keys.map(|app_keys| Check::EngageLabSignature { app_keys, tolerance_secs }));
        self
    }

    pub fn with_sendpost_signature(mut self, api_keys: Option<SecretList>) -> Self {
        self.checks.extend(api_keys.map(|api_keys| Check::SendPostSignature { api_keys }));
        self
    }

    /// False when no secret is configured, so every request will be refused.
    pub fn is_configured(&self) -> bool {
        !self.checks.is_empty()
    }

    pub fn verify(&self, request: &AuthRequest<'_>) -> Result<(), AuthError> {
        if self.checks.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        self.checks.iter().try_for_each(|check| match check {
            Check::UrlToken(tokens) => verify_url_token(tokens, request),
            Check::EngageLabSignature { app_keys, tolerance_secs } => {
                verify_engagelab(app_keys, *tolerance_secs, request.headers, request.now)
            }
            Check::SendPostSignature { api_keys } => verify_sendpost(api_keys, request.headers, request.body),
        })
    }
}

/// `ENGAGELAB_TOLERANCE_SECS`, defaulting to five minutes.
pub fn tolerance_from_env(env: Env<'_>, name: &'static str) -> Result<i64, ConfigError> {
    match env(name) {
        None => Ok(DEFAULT_TOLERANCE_SECS),
        Some(text) if text.trim().is_empty() => Ok(DEFAULT_TOLERANCE_SECS),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|secs| (1..=86_400).contains(secs))
            .ok_or(ConfigError::Invalid { name, expected: "a whole number of seconds from 1 to 86400" }),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    let value = headers.get(name).ok_or(AuthError::MissingHeader(name))?;
    let text = value.to_str().map_err(|_| AuthError::MalformedHeader(name))?.trim();
    if text.is_empty() {
        return Err(AuthError::MissingHeader(name));
    }
    Ok(text)
}

/// Calls `use_bytes` with the bytes `text` spells in hex. A signature of up to 32 bytes, which
/// is every signature a provider sends, is decoded on the stack.
fn with_decoded_hex<T>(text: &str, name: &'static str, use_bytes: impl FnOnce(&[u8]) -> T) -> Result<T, AuthError> {
    let malformed = |_| AuthError::MalformedHeader(name);
    let mut on_stack = [0; 32];
    if text.len().is_multiple_of(2) && text.len() <= 2 * on_stack.len() {
        let bytes = &mut on_stack[..text.len() / 2];
        hex::decode_to_slice(text, bytes).map_err(malformed)?;
        return Ok(use_bytes(bytes));
    }
    Ok(use_bytes(&hex::decode(text).map_err(malformed)?))
}

fn verify_engagelab(
    app_keys: &SecretList,
    tolerance_secs: i64,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let app_key_header = header(headers, ENGAGELAB_APP_KEY)?;
    if app_key_header != ENGAGELAB_EMAIL_APP_KEY {
        return Err(AuthError::WrongAppKey);
    }
    let timestamp = header(headers, ENGAGELAB_TIMESTAMP)?;
    let signature = header(headers, ENGAGELAB_SIGNATURE)?;

    let sent: i64 = timestamp.parse().map_err(|_| AuthError::MalformedHeader(ENGAGELAB_TIMESTAMP))?;
    // saturating_abs: `i64::MIN.abs()` overflows, and the timestamp is whatever the caller sent.
    let sent_millis =
        if sent.saturating_abs() >= MILLISECOND_TIMESTAMPS_FROM { sent } else { sent.saturating_mul(1000) };
    let skew_millis = now.timestamp_millis().saturating_sub(sent_millis).saturating_abs();
    if skew_millis > tolerance_secs.saturating_mul(1000) {
        return Err(AuthError::StaleTimestamp);
    }

    with_decoded_hex(signature, ENGAGELAB_SIGNATURE, |signature| {
        // The HMAC form is 32 bytes and the MD5 form 16: the length says which one was sent.
        if !matches!(signature.len(), 16 | 32) {
            return Err(AuthError::MalformedHeader(ENGAGELAB_SIGNATURE));
        }
        let matches = |key: &Secret| match signature.len() {
            32 => {
                let mut mac = key.hmac.clone();
                mac.update(timestamp.as_bytes());
                mac.verify_slice(signature).is_ok()
            }
            16 => {
                let mut digest = Md5::new();
                digest.update(timestamp.as_bytes());
                digest.update(app_key_header.as_bytes());
                digest.update(key.bytes());
                bool::from(digest.finalize().as_slice().ct_eq(signature))
            }
            _ => false,
        };
        any_key(app_keys, matches)
    })?
}

fn verify_sendpost(api_keys: &SecretList, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
    if let Some(algorithm) = headers.get(SENDPOST_SIGNATURE_ALG) {
        let supported = algorithm.to_str().is_ok_and(|alg| alg.trim().eq_ignore_ascii_case("hmac-sha256"));
        if !supported {
            return Err(AuthError::UnsupportedAlgorithm);
        }
    }
    with_decoded_hex(header(headers, SENDPOST_SIGNATURE)?, SENDPOST_SIGNATURE, |signature| {
        any_key(api_keys, |key| {
            let mut mac = key.hmac.clone();
            mac.update(body);
            mac.verify_slice(signature).is_ok()
        })
    })?
}

/// Tries every key (not stopping at the first match) so timing does not tell which one matched.
fn any_key(keys: &SecretList, matches: impl Fn(&Secret) -> bool) -> Result<(), AuthError> {
    let matched = keys.iter().fold(false, |found, key| matches(key) | found);
    if matched {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

fn verify_url_token(tokens: &SecretList, request: &AuthRequest<'_>) -> Result<(), AuthError> {
    let basic_password = basic_auth_password(request.headers);
    let offered: Vec<&[u8]> = basic_password
        .as_deref()
        .into_iter()
        .chain(request.query_token)
        .map(str::as_bytes)
        .collect();
    if offered.is_empty() {
        return Err(AuthError::MissingToken);
    }
    // Hashing first makes the comparison independent of the tokens' lengths.
    let offered_digests: Vec<[u8; 32]> =
        offered.iter().map(|candidate| sha2::Sha256::digest(candidate).into()).collect();
    let matched = tokens.iter().fold(false, |found, token| {
        offered_digests.iter().fold(found, |found, candidate| bool::from(candidate.ct_eq(&token.digest)) | found)
    });
    if matched {
        Ok(())
    } else {
        Err(AuthError::WrongToken)
    }
}

/// The password of an `Authorization: Basic` header (`https://user:SECRET@host/...`).
fn basic_auth_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let credentials = String::from_utf8(decoded).ok()?;
    let (_user, password) = credentials.split_once(':')?;
    Some(password.to_owned())
}

#[cfg(test)]
mod tests;
