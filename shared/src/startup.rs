//! What each function builds from its environment (and its secret) before its first request,
//! and how a failure to build it is reported.
//!
//! A function that cannot start returns [`InitError`] from `main`, and Lambda's log shows the
//! `Debug` form of what `main` returns. Derived `Debug` forms are nests of variant names and
//! fields; an `InitError`'s is the message itself, with its causes, once.

use std::error::Error;
use std::fmt;

use crate::config::{ConfigError, Settings};
use crate::http::{EventsApi, SuppressionsApi, WebhookReceiver};
use crate::read::events::EventReader;
use crate::read::suppressions::SuppressionList;
use crate::receive::providers::Provider;
use crate::store::DynamoStore;

/// Why a function could not start, as one line: what failed and why.
pub struct InitError(String);

impl From<ConfigError> for InitError {
    fn from(error: ConfigError) -> Self {
        let mut message = format!("could not start: {error}");
        let mut cause = error.source();
        while let Some(error) = cause {
            // Many messages already end with their cause's.
            let text = error.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            cause = error.source();
        }
        InitError(message)
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for InitError {}

/// The process's environment, where a deployed function's configuration is.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `engagelab-webhook`, `sendpost-webhook` and `tencent-ses-webhook`.
pub async fn webhook(provider: &'static Provider) -> Result<WebhookReceiver<DynamoStore>, InitError> {
    let settings = Settings::from_env(process_env).await?;
    let store = DynamoStore::from_env(&process_env).await?;
    Ok(WebhookReceiver::from_settings(provider, settings, store).await?)
}

/// `events-api`.
pub async fn events_api() -> Result<EventsApi, InitError> {
    let settings = Settings::from_env(process_env).await?;
    let reader = EventReader::from_env(&process_env).await?;
    Ok(EventsApi::from_settings(settings, reader).await?)
}

/// `suppressions-api`.
pub async fn suppressions_api() -> Result<SuppressionsApi, InitError> {
    let settings = Settings::from_env(process_env).await?;
    let list = SuppressionList::from_env(&process_env).await?;
    Ok(SuppressionsApi::from_settings(settings, list).await?)
}

/// `events-publisher`.
#[cfg(feature = "publisher")]
pub async fn events_publisher() -> Result<crate::fan_out::Publisher, InitError> {
    Ok(crate::fan_out::Publisher::from_env(&process_env).await?)
}

/// `engagelab-registration`.
#[cfg(feature = "engagelab-api")]
pub async fn engagelab_registration(
) -> Result<crate::config::Live<crate::engagelab_api::registration::Registrar>, InitError> {
    let settings = Settings::from_env(process_env).await?;
    Ok(crate::engagelab_api::registration::Registrar::from_settings(settings).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the certificates could not be loaded")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_message_names_each_cause_once_and_is_its_own_debug_form() {
        let error = InitError::from(ConfigError::Invalid { name: "EVENTS_TABLE", expected: "set" });
        assert_eq!(format!("{error:?}"), "could not start: EVENTS_TABLE must be set");
        assert_eq!(format!("{error:?}"), error.to_string());

        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = InitError::from(ConfigError::Unusable(Box::new(Outer(io))));
        assert_eq!(format!("{error:?}"), "could not start: the certificates could not be loaded: no such file");
    }
}
