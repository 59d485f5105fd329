//! Where a function's settings come from: its environment, and the Secrets Manager secret
//! named by `MAILHOOKS_SECRET_ARN` for the secret ones.
//!
//! A deployed function keeps no secret in its environment, where anyone allowed
//! `lambda:GetFunctionConfiguration` reads it in clear. The secret's SecretString is a JSON
//! object keyed by the setting names of [`SECRET_SETTINGS`]; a setting found there wins over
//! the environment (said once in the log, naming the setting only). Without
//! `MAILHOOKS_SECRET_ARN` (local runs, tests) every setting comes from the environment.
//!
//! [`Live`] holds what a function builds from its settings (an authenticator, a bearer token).
//! It reads the secret at cold start, where a failure fails the init so that Lambda retries it,
//! and again once the value in hand is older than `SECRETS_TTL_SECS`: the request that finds it
//! stale reads it within [`REFRESH_TIMEOUT`], so a rotated key is accepted without a redeploy
//! and a webhook still answers in time. A failed refresh keeps the value in hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;

use crate::aws_error::short_cause;

/// Reads one configuration variable; `std::env::var` in Lambda, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The secret holding this function's secret settings.
pub const SECRET_ARN: &str = "MAILHOOKS_SECRET_ARN";
/// Seconds a value read from the secret is used before it is read again.
pub const SECRETS_TTL: &str = "SECRETS_TTL_SECS";
pub const DEFAULT_SECRETS_TTL: Duration = Duration::from_secs(300);
/// How long a request may wait for a stale secret; past it the value in hand serves it.
/// EngageLab wants an answer within 3 s.
pub const REFRESH_TIMEOUT: Duration = Duration::from_millis(500);

/// The settings a secret may hold. Any other key of the secret is ignored.
pub const SECRET_SETTINGS: &[&str] = &[
    "ENGAGELAB_APP_KEY",
    "ENGAGELAB_WEBHOOK_TOKEN",
    "SENDPOST_API_KEY",
    "SENDPOST_WEBHOOK_TOKEN",
    "TENCENT_SES_WEBHOOK_TOKEN",
    "EVENTS_API_TOKEN",
    "ENGAGELAB_API_USER",
    "ENGAGELAB_API_KEY",
];

/// A setting that is present but unusable, or a secret that cannot be used; the function
/// refuses to start with it. No message carries a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} must be {expected}")]
    Invalid { name: &'static str, expected: &'static str },
    #[error("the secret named by {SECRET_ARN} could not be read: {0}")]
    SecretUnreadable(String),
    #[error("the secret named by {SECRET_ARN} has no SecretString (a JSON object of settings)")]
    SecretNotText,
    #[error("the secret named by {SECRET_ARN} is not a JSON object of settings ({0})")]
    SecretNotObject(String),
    #[error("the secret named by {SECRET_ARN} holds {name} as {kind}, not as a string")]
    SecretNotString { name: &'static str, kind: &'static str },
    #[error("the secret named by {SECRET_ARN} has no {0}, which this function requires")]
    SecretLacks(&'static str),
    /// What a function's own settings check says (it never quotes a secret).
    #[error(transparent)]
    Unusable(Box<dyn std::error::Error + Send + Sync>),
}

/// A function's environment, owned: `std::env::var` in Lambda, a map in tests.
type OwnedEnv = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The sources of a function's settings: its environment and, when it names one, a secret.
pub struct Settings {
    env: OwnedEnv,
    secret: Option<SecretSource>,
}

struct SecretSource {
    client: Client,
    id: String,
    ttl: Duration,
}

impl Settings {
    /// Only the environment: what local runs and most tests use.
    pub fn env_only(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Settings { env: Box::new(env), secret: None }
    }

    /// The environment, and the secret `id` read through `client`, kept for `ttl`.
    pub fn with_secret(
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        client: Client,
        id: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Settings { env: Box::new(env), secret: Some(SecretSource { client, id: id.into(), ttl }) }
    }

    /// `MAILHOOKS_SECRET_ARN` and `SECRETS_TTL_SECS` from `env`; the Secrets Manager client
    /// (region, credentials, `AWS_ENDPOINT_URL_SECRETS_MANAGER` locally) from `config`
    /// ([`sdk_config`]), built only when a secret is named.
    pub fn from_env(
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        config: &aws_config::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let ttl = ttl_from_env(&env)?;
        match env(SECRET_ARN).map(|id| id.trim().to_owned()).filter(|id| !id.is_empty()) {
            None => Ok(Settings::env_only(env)),
            Some(id) => Ok(Settings::with_secret(env, Client::new(config), id, ttl)),
        }
    }

    /// The secret's settings, checked: every [`SECRET_SETTINGS`] key it has is a string, and it
    /// has every one of `required`. `None` without a secret.
    async fn read_secret(&self, required: &[&'static str]) -> Result<Option<SecretValues>, ConfigError> {
        let Some(source) = &self.secret else { return Ok(None) };
        let output = source
            .client
            .get_secret_value()
            .secret_id(&source.id)
            .send()
            .await
            .map_err(|error| ConfigError::SecretUnreadable(short_cause(&error)))?;
        let text = output.secret_string().ok_or(ConfigError::SecretNotText)?;
        SecretValues::parse(text, required).map(Some)
    }
}

/// `SECRETS_TTL_SECS`, defaulting to five minutes.
fn ttl_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    match env(SECRETS_TTL).as_deref().map(str::trim) {
        None | Some("") => Ok(DEFAULT_SECRETS_TTL),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|secs| (1..=86_400).contains(secs))
            .map(Duration::from_secs)
            .ok_or(ConfigError::Invalid { name: SECRETS_TTL, expected: "a whole number of seconds from 1 to 86400" }),
    }
}

/// The secret settings found in a secret.
struct SecretValues(HashMap<&'static str, String>);

impl SecretValues {
    fn parse(text: &str, required: &[&'static str]) -> Result<Self, ConfigError> {
        // Only the position of a syntax error is kept: its message could quote the text.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|error| {
            ConfigError::SecretNotObject(format!("invalid JSON at line {} column {}", error.line(), error.column()))
        })?;
        let serde_json::Value::Object(object) = value else {
            return Err(ConfigError::SecretNotObject(format!("it is {}", json_kind(&value))));
        };
        let mut values = HashMap::new();
        for &name in SECRET_SETTINGS {
            match object.get(name) {
                None => {}
                Some(serde_json::Value::String(text)) => {
                    values.insert(name, text.clone());
                }
                Some(other) => return Err(ConfigError::SecretNotString { name, kind: json_kind(other) }),
            }
        }
        match required.iter().find(|name| !values.contains_key(**name)) {
            Some(missing) => Err(ConfigError::SecretLacks(missing)),
            None => Ok(SecretValues(values)),
        }
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

type Build<T> = Box<dyn Fn(Env<'_>) -> Result<T, ConfigError> + Send + Sync>;

/// What a function built from its settings, rebuilt whenever its secret is read again.
pub struct Live<T> {
    /// `None` when no secret is named: the value never changes.
    refresh: Option<Refresh<T>>,
    state: RwLock<State<T>>,
    refreshing: AtomicBool,
}

struct Refresh<T> {
    settings: Settings,
    ttl: Duration,
    required: &'static [&'static str],
    build: Build<T>,
}

struct State<T> {
    value: Arc<T>,
    /// When the secret was last read, or last tried.
    read_at: Instant,
    /// The last refresh failed (and said so); the next failure is not logged again.
    failing: bool,
}

impl<T> Live<T> {
    /// Reads the settings (the secret first) and builds the first value; a secret that cannot
    /// be read or lacks one of `required` fails the function's start.
    pub async fn load(
        settings: Settings,
        required: &'static [&'static str],
        build: impl Fn(Env<'_>) -> Result<T, ConfigError> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let secret = settings.read_secret(required).await?;
        if let Some(secret) = &secret {
            for name in secret.0.keys().filter(|name| (settings.env)(name).is_some_and(|value| !value.is_empty())) {
                tracing::warn!(setting = *name, "set both in the secret and in the environment: the secret's is used");
            }
        }
        let value = build(&|name| lookup(&settings, secret.as_ref(), name))?;
        let refresh = settings.secret.as_ref().map(|source| source.ttl).map(|ttl| Refresh {
            settings,
            ttl,
            required,
            build: Box::new(build),
        });
        Ok(Live { refresh, ..Live::fixed(value) })
    }

    /// A value that never changes.
    pub fn fixed(value: T) -> Self {
        let state = State { value: Arc::new(value), read_at: Instant::now(), failing: false };
        Live { refresh: None, state: RwLock::new(state), refreshing: AtomicBool::new(false) }
    }

    /// The value in hand, without reading the secret again.
    pub fn in_hand(&self) -> Arc<T> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner()).value.clone()
    }

    /// The value to serve this request with: the one in hand, or, when its secret is older
    /// than the TTL and no other request is reading it, the one built from the secret read
    /// again now.
    pub async fn current(&self) -> Arc<T> {
        let Some(refresh) = &self.refresh else { return self.in_hand() };
        let (value, read_at) = {
            let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            (state.value.clone(), state.read_at)
        };
        if read_at.elapsed() < refresh.ttl || self.refreshing.swap(true, Ordering::AcqRel) {
            return value;
        }
        // Cleared even if this request is dropped while it waits.
        let _refreshing = ClearOnDrop(&self.refreshing);
        self.refresh(refresh).await.unwrap_or(value)
    }

    async fn refresh(&self, refresh: &Refresh<T>) -> Option<Arc<T>> {
        let read = refresh.settings.read_secret(refresh.required);
        let outcome = match tokio::time::timeout(REFRESH_TIMEOUT, read).await {
            Ok(Ok(secret)) => (refresh.build)(&|name| lookup(&refresh.settings, secret.as_ref(), name)),
            Ok(Err(error)) => Err(error),
            Err(_) => {
                let waited = REFRESH_TIMEOUT.as_millis();
                Err(ConfigError::SecretUnreadable(format!("no answer within {waited} ms")))
            }
        };
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Tried again only after another TTL, so an outage costs one slow request per TTL.
        state.read_at = Instant::now();
        match outcome {
            Ok(value) => {
                if state.failing {
                    tracing::info!("the secret was read again: its settings are in use");
                }
                state.failing = false;
                state.value = Arc::new(value);
                Some(state.value.clone())
            }
            Err(error) => {
                if !state.failing {
                    tracing::warn!(error = %error, "secret refresh failed: the settings in hand stay in use");
                }
                state.failing = true;
                None
            }
        }
    }
}

/// A setting: the secret's when it has it, else the environment's.
fn lookup(settings: &Settings, secret: Option<&SecretValues>, name: &str) -> Option<String> {
    secret.and_then(|secret| secret.0.get(name).cloned()).or_else(|| (settings.env)(name))
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `EVENTS_TABLE`, the one table every function reads or writes.
pub fn events_table_from_env(env: Env<'_>) -> Result<String, ConfigError> {
    env("EVENTS_TABLE")
        .filter(|name| !name.trim().is_empty())
        .ok_or(ConfigError::Invalid { name: "EVENTS_TABLE", expected: "set to the events table's name" })
}

/// The AWS configuration for a handler that must answer EngageLab within 3 seconds: a slow
/// DynamoDB call gives up in time for a 500, and the provider's retry tries again.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_millis(1000))
                .operation_timeout(Duration::from_millis(2500))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        // The protection acts on a stream stalled for its 20 s grace period, and every call here
        // gives up after 1 s; it could never act first, yet it wraps and times every body.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_holds_string_settings_and_ignores_other_keys() {
        let values = SecretValues::parse(r#"{"ENGAGELAB_APP_KEY": "k1,k2", "NOTE": 3}"#, &[]).unwrap();
        assert_eq!(values.0.get("ENGAGELAB_APP_KEY").map(String::as_str), Some("k1,k2"));
        assert_eq!(values.0.len(), 1);
    }

    #[test]
    fn an_unusable_secret_is_named_without_its_value() {
        let error = SecretValues::parse(r#"{"EVENTS_API_TOKEN": 12345}"#, &[]).err().unwrap().to_string();
        assert!(error.contains("EVENTS_API_TOKEN") && error.contains("a number"), "{error}");
        assert!(!error.contains("12345"), "{error}");
        let error = SecretValues::parse(r#""hunter2""#, &[]).err().unwrap().to_string();
        assert!(error.contains("not a JSON object") && !error.contains("hunter2"), "{error}");
        let error = SecretValues::parse(r#"{"EVENTS_API_TOKEN": "hunter2"#, &[]).err().unwrap().to_string();
        assert!(error.contains("line 1") && !error.contains("hunter2"), "{error}");
        let error = SecretValues::parse("{}", &["ENGAGELAB_API_KEY"]).err().unwrap().to_string();
        assert!(error.contains("has no ENGAGELAB_API_KEY"), "{error}");
    }

    #[tokio::test]
    async fn every_call_gives_up_within_its_timeouts_alone() {
        let config = sdk_config().await;
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(timeouts.operation_attempt_timeout(), Some(Duration::from_millis(1000)));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_millis(2500)));
        assert!(!config.stalled_stream_protection().unwrap().is_enabled());
    }

    #[test]
    fn the_ttl_defaults_to_five_minutes_and_must_be_sane() {
        let env = |value: &'static str| move |name: &str| (name == SECRETS_TTL).then(|| value.to_owned());
        assert_eq!(ttl_from_env(&|_| None).unwrap(), DEFAULT_SECRETS_TTL);
        assert_eq!(ttl_from_env(&env("1")).unwrap(), Duration::from_secs(1));
        assert!(ttl_from_env(&env("0")).is_err());
        assert!(ttl_from_env(&env("soon")).is_err());
    }
}
