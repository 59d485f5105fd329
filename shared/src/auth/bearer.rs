//! The bearer token that guards `GET /events`.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Secret};
use crate::config::Env;

/// `EVENTS_API_TOKEN`: one shared secret, sent as `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct BearerToken(Secret);

impl BearerToken {
    /// `None` when the setting is unset or blank; the caller then refuses every request.
    pub fn from_env(env: Env<'_>, name: &str) -> Option<Self> {
        let setting = env(name)?;
        let token = setting.trim();
        (!token.is_empty()).then(|| BearerToken(Secret::new(token)))
    }

    pub fn verify(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let offered = bearer_credentials(headers).ok_or(AuthError::MissingBearerToken)?;
        // Hashing first makes the comparison independent of the tokens' lengths.
        let matches = Sha256::digest(offered.as_bytes()).ct_eq(&Sha256::digest(self.0.bytes()));
        if bool::from(matches) {
            Ok(())
        } else {
            Err(AuthError::WrongBearerToken)
        }
    }

    /// A key for one `purpose`, derived from the token so that signing pagination cursors
    /// needs no setting of its own, and rotating the token retires the old cursors too.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.bytes()).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The credentials of an `Authorization: Bearer ...` header; the scheme is case-insensitive.
fn bearer_credentials(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn token(value: &str) -> Option<BearerToken> {
        BearerToken::from_env(&|_| Some(value.to_owned()), "EVENTS_API_TOKEN")
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn the_right_token_passes_in_any_scheme_case() {
        let token = token("s3cret").unwrap();
        assert_eq!(token.verify(&headers("Bearer s3cret")), Ok(()));
        assert_eq!(token.verify(&headers("bearer  s3cret ")), Ok(()));
    }

    #[test]
    fn missing_other_scheme_and_wrong_tokens_are_refused() {
        let token = token("s3cret").unwrap();
        assert_eq!(token.verify(&HeaderMap::new()), Err(AuthError::MissingBearerToken));
        assert_eq!(token.verify(&headers("Bearer ")), Err(AuthError::MissingBearerToken));
        assert_eq!(token.verify(&headers("Basic s3cret")), Err(AuthError::MissingBearerToken));
        assert_eq!(token.verify(&headers("Bearer s3cre")), Err(AuthError::WrongBearerToken));
        assert_eq!(token.verify(&headers("Bearer s3cret2")), Err(AuthError::WrongBearerToken));
    }

    #[test]
    fn a_blank_setting_is_no_token() {
        assert!(token("").is_none());
        assert!(token("  ").is_none());
        assert!(BearerToken::from_env(&|_| None, "EVENTS_API_TOKEN").is_none());
    }

    #[test]
    fn derived_keys_depend_on_token_and_purpose() {
        let first = token("one").unwrap();
        assert_eq!(first.derive_key("cursor"), first.derive_key("cursor"));
        assert_ne!(first.derive_key("cursor"), first.derive_key("other"));
        assert_ne!(first.derive_key("cursor"), token("two").unwrap().derive_key("cursor"));
    }

    #[test]
    fn debug_output_hides_the_token() {
        assert!(!format!("{:?}", token("s3cret").unwrap()).contains("s3cret"));
    }
}
