//! The HTTP face of the functions: requests in, the responses of DESIGN.md out.
//!
//! Every failure is an [`HttpError`], and [`HttpError::status`] is the one place that maps
//! failures to statuses. Handlers always answer; they never return a runtime error.

use std::convert::Infallible;
use std::time::Instant;

use chrono::Utc;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;

use crate::auth::{AuthError, AuthRequest, Authenticator, BearerToken, ConfigError};
use crate::cursor::CursorKey;
use crate::providers::{Env, PayloadError, Provider};
use crate::query::{EventQuery, ParameterError};
use crate::reader::{EventPage, EventReader, ReadError};
use crate::store::{EventStore, StoreError, StoredCounts};

/// Lambda's own request payload limit; a larger body could never have been delivered whole.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(Method),
    #[error("body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error(transparent)]
    BadPayload(#[from] PayloadError),
    #[error("storage unavailable")]
    Storage(#[from] StoreError),
    #[error(transparent)]
    BadParameter(#[from] ParameterError),
    #[error("storage unavailable")]
    Read(#[from] ReadError),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::BadPayload(_) => StatusCode::BAD_REQUEST,
            HttpError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::BadParameter(_) => StatusCode::BAD_REQUEST,
            HttpError::Read(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `{"error": "..."}`; the message never carries secrets, and a storage failure's cause
    /// stays in the log.
    pub fn into_response(self) -> Response<Body> {
        json_response(self.status(), &json!({ "error": self.to_string() }))
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("a status and a static header always make a valid response")
}

/// One provider's webhook: authenticate, normalize, store.
pub struct WebhookReceiver<S> {
    provider: &'static Provider,
    authenticator: Authenticator,
    store: S,
}

impl<S: EventStore> WebhookReceiver<S> {
    pub fn new(provider: &'static Provider, authenticator: Authenticator, store: S) -> Self {
        if !authenticator.is_configured() {
            tracing::error!(
                provider = provider.name,
                "no webhook secret is configured: every request will be refused with 401"
            );
        }
        WebhookReceiver { provider, authenticator, store }
    }

    pub fn from_env(provider: &'static Provider, env: Env<'_>, store: S) -> Result<Self, ConfigError> {
        Ok(Self::new(provider, (provider.authenticator)(env)?, store))
    }

    /// Answers every request; the outcome is logged as one line without body or secrets.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let outcome = self.receive(&request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let response = match outcome {
            Ok((events, counts)) => {
                tracing::info!(
                    provider = self.provider.name,
                    status = 200,
                    events,
                    stored = counts.stored,
                    duplicates = counts.duplicates,
                    elapsed_ms,
                    "webhook stored"
                );
                json_response(
                    StatusCode::OK,
                    &json!({ "stored": counts.stored, "duplicates": counts.duplicates }),
                )
            }
            Err(error) => {
                let status = error.status().as_u16();
                match &error {
                    HttpError::Storage(cause) => tracing::error!(
                        provider = self.provider.name,
                        status,
                        elapsed_ms,
                        error = %cause,
                        "webhook not stored"
                    ),
                    _ => tracing::warn!(
                        provider = self.provider.name,
                        status,
                        elapsed_ms,
                        error = %error,
                        "webhook refused"
                    ),
                }
                error.into_response()
            }
        };
        Ok(response)
    }

    async fn receive(&self, request: &Request) -> Result<(usize, StoredCounts), HttpError> {
        if request.method() != Method::POST {
            return Err(HttpError::MethodNotAllowed(request.method().clone()));
        }
        let body: &[u8] = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(HttpError::PayloadTooLarge);
        }
        let received_at = Utc::now();
        let query = request.query_string_parameters_ref();
        self.authenticator.verify(&AuthRequest {
            headers: request.headers(),
            query_token: query.and_then(|parameters| parameters.first("token")),
            body,
            now: received_at,
        })?;
        let events = self.provider.parse(body, received_at)?;
        let counts = self.store.put_events(&events).await?;
        Ok((events.len(), counts))
    }
}

/// The setting holding the bearer token of `GET /events`.
pub const EVENTS_API_TOKEN: &str = "EVENTS_API_TOKEN";

/// What a configured token allows: checking requests, and signing and checking cursors.
struct ReadAccess {
    token: BearerToken,
    cursor_key: CursorKey,
}

/// `GET /events`: authenticate, check the parameters, read a page of events.
pub struct EventsApi {
    /// `None` without a token: every request is refused.
    access: Option<ReadAccess>,
    reader: EventReader,
}

impl EventsApi {
    pub fn new(token: Option<BearerToken>, reader: EventReader) -> Self {
        if token.is_none() {
            tracing::error!("{EVENTS_API_TOKEN} is not set: every request will be refused with 401");
        }
        let access = token.map(|token| ReadAccess { cursor_key: CursorKey::derived_from(&token), token });
        EventsApi { access, reader }
    }

    pub fn from_env(env: Env<'_>, reader: EventReader) -> Self {
        Self::new(BearerToken::from_env(env, EVENTS_API_TOKEN), reader)
    }

    /// Answers every request; each is logged as one line with the kind of read, never the
    /// token, the address or the message id.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let (selector, outcome) = match self.admit(&request) {
            Ok((query, cursor_key)) => (Some(query.selector.kind()), self.read(&query, cursor_key).await),
            Err(error) => (None, Err(error)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let response = match outcome {
            Ok(answer) => {
                let (events, more) = (answer.events.len(), answer.next_cursor.is_some());
                tracing::info!(selector, status = 200, events, more, elapsed_ms, "events read");
                json_response(StatusCode::OK, &json!(answer))
            }
            Err(error) => {
                let status = error.status().as_u16();
                match &error {
                    HttpError::Read(cause) => {
                        tracing::error!(selector, status, elapsed_ms, error = %cause, "events not read")
                    }
                    _ => tracing::warn!(selector, status, elapsed_ms, error = %error, "events request refused"),
                }
                error.into_response()
            }
        };
        Ok(response)
    }

    /// The request's query, once its method, token and parameters have passed.
    fn admit(&self, request: &Request) -> Result<(EventQuery, &CursorKey), HttpError> {
        if request.method() != Method::GET {
            return Err(HttpError::MethodNotAllowed(request.method().clone()));
        }
        let access = self.access.as_ref().ok_or(AuthError::ReadingNotConfigured)?;
        access.token.verify(request.headers())?;
        let query = EventQuery::from_parameters(&request.query_string_parameters(), &access.cursor_key)?;
        Ok((query, &access.cursor_key))
    }

    async fn read(&self, query: &EventQuery, cursor_key: &CursorKey) -> Result<EventsAnswer, HttpError> {
        let EventPage { events, next } = self.reader.read(query).await?;
        let next_cursor = next.map(|lanes| query.next_cursor(cursor_key, &lanes));
        Ok(EventsAnswer { events, next_cursor })
    }
}

/// `{"events": [...], "next_cursor": "..."}`, without `next_cursor` after the last page.
#[derive(Serialize)]
struct EventsAnswer {
    events: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}
