//! What each function builds from its environment (and its secret) before its first request,
//! how a failure to build it is reported, and how it logs.
//!
//! A function that cannot start returns [`InitError`] from `main`, and Lambda's log shows the
//! `Debug` form of what `main` returns. Derived `Debug` forms are nests of variant names and
//! fields; an `InitError`'s is the message itself, with its causes, once.

use std::error::Error;
use std::fmt;

use crate::config::{sdk_config, ConfigError, Settings};
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

/// Sends the function's log lines to standard output, where Lambda collects them, in Lambda's
/// log settings: JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, at `AWS_LAMBDA_LOG_LEVEL`, else
/// `RUST_LOG`'s directives, else INFO. As `lambda_runtime`'s default subscriber does, but a line
/// carries only the level and its fields, and spans are not recorded at all: the runtime's span
/// would repeat the request id (already a field) and add the X-Ray trace id, about half of every
/// line's bytes, and log ingestion is billed by the byte (docs/cost.md); a span no line shows
/// would still cost every request its creation, entry and exit.
pub fn init_logs() {
    // Only fails when a subscriber is already set, and then that one logs.
    let _ = tracing::subscriber::set_global_default(log_subscriber(&process_env, std::io::stdout));
}

/// The subscriber [`init_logs`] installs, given the environment and where lines go.
fn log_subscriber<W>(env: &dyn Fn(&str) -> Option<String>, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    use tracing_subscriber::filter::{filter_fn, EnvFilter, LevelFilter};
    use tracing_subscriber::layer::SubscriberExt;

    let filter = match env("AWS_LAMBDA_LOG_LEVEL") {
        Some(level) => EnvFilter::default().add_directive(level.parse().unwrap_or(LevelFilter::INFO).into()),
        None => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse_lossy(env("RUST_LOG").unwrap_or_default()),
    };
    let lines = tracing_subscriber::fmt().with_target(false).without_time().with_env_filter(filter).with_writer(writer);
    let events_only = filter_fn(|metadata| metadata.is_event());
    if env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json")) {
        Box::new(lines.json().with_current_span(false).with_span_list(false).finish().with(events_only))
    } else {
        Box::new(lines.finish().with(events_only))
    }
}

/// The process's environment, where a deployed function's configuration is.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `engagelab-webhook`, `sendpost-webhook` and `tencent-ses-webhook`.
pub async fn webhook(provider: &'static Provider) -> Result<WebhookReceiver<DynamoStore>, InitError> {
    // One SDK configuration (and so one HTTP client) for every client the function builds.
    let config = sdk_config().await;
    let settings = Settings::from_env(process_env, &config)?;
    let store = DynamoStore::from_env(&process_env, &config)?;
    Ok(WebhookReceiver::from_settings(provider, settings, store).await?)
}

/// `events-api`.
pub async fn events_api() -> Result<EventsApi, InitError> {
    let config = sdk_config().await;
    let settings = Settings::from_env(process_env, &config)?;
    let reader = EventReader::from_env(&process_env, &config)?;
    Ok(EventsApi::from_settings(settings, reader).await?)
}

/// `suppressions-api`.
pub async fn suppressions_api() -> Result<SuppressionsApi, InitError> {
    let config = sdk_config().await;
    let settings = Settings::from_env(process_env, &config)?;
    let list = SuppressionList::from_env(&process_env, &config)?;
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
    let settings = Settings::from_env(process_env, &sdk_config().await)?;
    Ok(crate::engagelab_api::registration::Registrar::from_settings(settings).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the certificates could not be loaded")]
    struct Outer(#[source] std::io::Error);

    /// Log lines written under `env`, from inside a span like the one `lambda_runtime` opens
    /// around each invocation.
    fn lines_logged(env: &[(&str, &str)]) -> Vec<String> {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = written.clone();
        let env = |name: &str| env.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
        let subscriber = log_subscriber(&env, move || Sink(sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1", xrayTraceId = "Root=1-abc");
            let _entered = span.enter();
            tracing::info!(provider = "engagelab", request_id = "req-1", status = 200, "webhook stored");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_holds_the_level_and_fields_and_not_the_runtime_span() {
        let lines = lines_logged(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]);
        assert_eq!(lines.len(), 1, "INFO by default: {lines:?}");
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "level": "INFO",
                "fields": {"message": "webhook stored", "provider": "engagelab", "request_id": "req-1", "status": 200},
            })
        );
    }

    #[test]
    fn the_level_comes_from_lambda_then_rust_log_and_text_is_the_default_format() {
        assert_eq!(lines_logged(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("RUST_LOG", "error")]).len(), 2);
        assert_eq!(lines_logged(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]).len(), 0);
        assert_eq!(lines_logged(&[("RUST_LOG", "debug")]).len(), 2);
        let text = lines_logged(&[]);
        assert_eq!(text.len(), 1);
        assert!(text[0].starts_with(" INFO ") && text[0].contains("webhook stored"), "{text:?}");
        assert!(!text[0].contains("Lambda runtime invoke"), "no span in a text line either: {text:?}");
    }

    #[test]
    fn spans_are_not_recorded_at_any_level() {
        for env in [[("AWS_LAMBDA_LOG_FORMAT", "JSON")], [("AWS_LAMBDA_LOG_LEVEL", "TRACE")]] {
            let env = |name: &str| env.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
            tracing::subscriber::with_default(log_subscriber(&env, std::io::sink), || {
                assert!(tracing::info_span!("Lambda runtime invoke", requestId = "req-1").is_disabled());
                assert!(tracing::error_span!("invoke").is_disabled());
                assert!(tracing::event_enabled!(tracing::Level::INFO), "events still are");
            });
        }
    }

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
