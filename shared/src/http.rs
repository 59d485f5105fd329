//! The HTTP face of the functions: requests in, the documented responses out.
//!
//! Every failure is an [`HttpError`], and [`HttpError::status`] is the one place that maps
//! failures to statuses. Handlers always answer; they never return a runtime error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;

use crate::auth::{AuthError, AuthRequest, Authenticator, BearerToken};
use crate::config::{ConfigError, Env, Live, Settings};
use crate::metrics::{tally, MetricsSink, Outcome, RequestMetrics, Stdout};
use crate::read::cursor::CursorKey;
use crate::read::events::{EventPage, EventReader, ReadError};
use crate::read::query::{EventQuery, ParameterError};
use crate::read::suppressions::{address_from_path, ListQuery, SuppressionList};
use crate::receive::providers::{PayloadError, Provider};
use crate::store::suppressions::SuppressionError;
use crate::store::{EventStore, StoreError, StoreReport};

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
    #[error("{0}")]
    NotFound(String),
    #[error("storage unavailable")]
    Suppressions(#[from] SuppressionError),
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
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::Suppressions(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Outcome` of a refused or failed request in the `Requests` metric.
    pub fn outcome(&self) -> Outcome {
        match self {
            HttpError::Unauthorized(_) => Outcome::Unauthorized,
            HttpError::PayloadTooLarge => Outcome::TooLarge,
            HttpError::MethodNotAllowed(_)
            | HttpError::BadPayload(_)
            | HttpError::BadParameter(_)
            | HttpError::NotFound(_) => Outcome::BadRequest,
            HttpError::Storage(_) | HttpError::Read(_) | HttpError::Suppressions(_) => Outcome::StorageFailed,
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

/// One provider's webhook: authenticate, normalize, store, count.
pub struct WebhookReceiver<S> {
    provider: &'static Provider,
    authenticator: Live<Authenticator>,
    store: S,
    metrics: Arc<dyn MetricsSink>,
}

impl<S: EventStore> WebhookReceiver<S> {
    pub fn new(provider: &'static Provider, authenticator: Authenticator, store: S) -> Self {
        Self::with_live(provider, Live::fixed(authenticator), store)
    }

    pub fn from_env(provider: &'static Provider, env: Env<'_>, store: S) -> Result<Self, ConfigError> {
        Ok(Self::new(provider, (provider.authenticator)(env)?, store))
    }

    /// The provider's secrets from `settings`: its secret when it names one (read again after
    /// its TTL, so a rotated key is accepted without a redeploy), else its environment.
    pub async fn from_settings(provider: &'static Provider, settings: Settings, store: S) -> Result<Self, ConfigError> {
        Ok(Self::with_live(provider, Live::load(settings, &[], provider.authenticator).await?, store))
    }

    fn with_live(provider: &'static Provider, authenticator: Live<Authenticator>, store: S) -> Self {
        if !authenticator.in_hand().is_configured() {
            tracing::error!(
                provider = provider.name,
                "no webhook secret is configured: every request will be refused with 401"
            );
        }
        WebhookReceiver { provider, authenticator, store, metrics: Arc::new(Stdout) }
    }

    /// Metrics go to `sink` instead of standard output.
    pub fn with_metrics(self, sink: impl MetricsSink + 'static) -> Self {
        WebhookReceiver { metrics: Arc::new(sink), ..self }
    }

    /// Answers every request. Each is logged as one line without body, secrets, addresses or
    /// ids but the Lambda request id, and counted in one metrics document written before the
    /// answer is returned.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let provider = self.provider.name;
        let request_id = request.lambda_context_ref().map(|context| context.request_id.as_str());
        let outcome = self.receive(&request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (response, metrics) = match outcome {
            Ok(report) => {
                let (stored, duplicates) = (report.stored.len(), report.duplicates);
                let outcome = if stored == 0 { Outcome::Duplicate } else { Outcome::Stored };
                tracing::info!(
                    provider,
                    request_id,
                    status = 200,
                    outcome = outcome.as_str(),
                    stored,
                    duplicates,
                    suppressed = report.suppressed.len(),
                    elapsed_ms,
                    "webhook stored"
                );
                let metrics = RequestMetrics {
                    provider,
                    outcome,
                    events: tally(report.stored.iter().map(|event_type| event_type.as_str())),
                    suppressions: tally(report.suppressed.iter().map(|reason| reason.as_str())),
                    request_id,
                };
                (json_response(StatusCode::OK, &json!({ "stored": stored, "duplicates": duplicates })), metrics)
            }
            Err(error) => {
                let (status, outcome) = (error.status().as_u16(), error.outcome());
                match &error {
                    HttpError::Storage(cause) => tracing::error!(
                        provider,
                        request_id,
                        status,
                        outcome = outcome.as_str(),
                        elapsed_ms,
                        error = %cause,
                        "webhook not stored"
                    ),
                    _ => tracing::warn!(
                        provider,
                        request_id,
                        status,
                        outcome = outcome.as_str(),
                        elapsed_ms,
                        error = %error,
                        "webhook refused"
                    ),
                }
                let metrics = RequestMetrics { provider, outcome, events: vec![], suppressions: vec![], request_id };
                (error.into_response(), metrics)
            }
        };
        self.metrics.write(&metrics.documents(Utc::now().timestamp_millis()));
        Ok(response)
    }

    async fn receive(&self, request: &Request) -> Result<StoreReport, HttpError> {
        if request.method() != Method::POST {
            return Err(HttpError::MethodNotAllowed(request.method().clone()));
        }
        let body: &[u8] = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(HttpError::PayloadTooLarge);
        }
        let received_at = Utc::now();
        let query = request.query_string_parameters_ref();
        self.authenticator.current().await.verify(&AuthRequest {
            headers: request.headers(),
            query_token: query.and_then(|parameters| parameters.first("token")),
            body,
            now: received_at,
        })?;
        let events = self.provider.parse(body, received_at)?;
        Ok(self.store.put_events(&events).await?)
    }
}

/// The setting holding the bearer token of `GET /events` and `/suppressions`.
pub const EVENTS_API_TOKEN: &str = "EVENTS_API_TOKEN";

/// What a configured token allows: checking requests, and signing and checking cursors.
struct ReadAccess {
    token: BearerToken,
    cursor_key: CursorKey,
}

impl ReadAccess {
    /// `None` without a token, which refuses every request and says so in the log.
    fn configured(token: Option<BearerToken>) -> Option<Self> {
        if token.is_none() {
            tracing::error!("{EVENTS_API_TOKEN} is not set: every request will be refused with 401");
        }
        token.map(|token| ReadAccess { cursor_key: CursorKey::derived_from(&token), token })
    }

    /// `EVENTS_API_TOKEN` from `settings`; a secret must have it.
    async fn load(settings: Settings) -> Result<Live<Option<Self>>, ConfigError> {
        Live::load(settings, &[EVENTS_API_TOKEN], |env| {
            Ok(ReadAccess::configured(BearerToken::from_env(env, EVENTS_API_TOKEN)))
        })
        .await
    }
}

/// `GET /events`: authenticate, check the parameters, read a page of events.
pub struct EventsApi {
    /// `None` without a token: every request is refused.
    access: Live<Option<ReadAccess>>,
    reader: EventReader,
}

impl EventsApi {
    pub fn new(token: Option<BearerToken>, reader: EventReader) -> Self {
        EventsApi { access: Live::fixed(ReadAccess::configured(token)), reader }
    }

    pub fn from_env(env: Env<'_>, reader: EventReader) -> Self {
        Self::new(BearerToken::from_env(env, EVENTS_API_TOKEN), reader)
    }

    /// The token from `settings`: the secret when it names one (read again after its TTL).
    pub async fn from_settings(settings: Settings, reader: EventReader) -> Result<Self, ConfigError> {
        Ok(EventsApi { access: ReadAccess::load(settings).await?, reader })
    }

    /// Answers every request; each is logged as one line with the kind of read, never the
    /// token, the address or the message id.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let request_id = request.lambda_context_ref().map(|context| context.request_id.as_str());
        let access = self.access.current().await;
        let (selector, outcome) = match Self::admit(&request, &access) {
            Ok((query, cursor_key)) => (Some(query.selector.kind()), self.read(&query, cursor_key).await),
            Err(error) => (None, Err(error)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let response = match outcome {
            Ok(answer) => {
                let (events, more) = (answer.events.len(), answer.next_cursor.is_some());
                tracing::info!(request_id, selector, status = 200, events, more, elapsed_ms, "events read");
                json_response(StatusCode::OK, &json!(answer))
            }
            Err(error) => {
                let status = error.status().as_u16();
                match &error {
                    HttpError::Read(cause) => {
                        tracing::error!(request_id, selector, status, elapsed_ms, error = %cause, "events not read")
                    }
                    _ => tracing::warn!(
                        request_id,
                        selector,
                        status,
                        elapsed_ms,
                        error = %error,
                        "events request refused"
                    ),
                }
                error.into_response()
            }
        };
        Ok(response)
    }

    /// The request's query, once its method, token and parameters have passed.
    fn admit<'a>(request: &Request, access: &'a Option<ReadAccess>) -> Result<(EventQuery, &'a CursorKey), HttpError> {
        if request.method() != Method::GET {
            return Err(HttpError::MethodNotAllowed(request.method().clone()));
        }
        let access = access.as_ref().ok_or(AuthError::ReadingNotConfigured)?;
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

/// Who lifted a suppression, when the caller says so; else the caller's address is recorded.
pub const ACTOR_HEADER: &str = "x-mailhooks-actor";

/// What a suppressions request asks for.
enum SuppressionRequest {
    List(ListQuery),
    Status(String),
    Lift { email: String, lifted_by: String },
}

impl SuppressionRequest {
    /// For the log line: never the address.
    fn kind(&self) -> &'static str {
        match self {
            SuppressionRequest::List(_) => "list",
            SuppressionRequest::Status(_) => "status",
            SuppressionRequest::Lift { .. } => "lift",
        }
    }
}

/// `GET /suppressions`, `GET /suppressions/{email}`, `DELETE /suppressions/{email}`, with the
/// bearer token of `GET /events`.
pub struct SuppressionsApi {
    access: Live<Option<ReadAccess>>,
    list: SuppressionList,
}

impl SuppressionsApi {
    pub fn new(token: Option<BearerToken>, list: SuppressionList) -> Self {
        SuppressionsApi { access: Live::fixed(ReadAccess::configured(token)), list }
    }

    pub fn from_env(env: Env<'_>, list: SuppressionList) -> Self {
        Self::new(BearerToken::from_env(env, EVENTS_API_TOKEN), list)
    }

    /// The token from `settings`: the secret when it names one (read again after its TTL).
    pub async fn from_settings(settings: Settings, list: SuppressionList) -> Result<Self, ConfigError> {
        Ok(SuppressionsApi { access: ReadAccess::load(settings).await?, list })
    }

    /// Answers every request, logged as one line without the token or the address.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let request_id = request.lambda_context_ref().map(|context| context.request_id.as_str());
        let access = self.access.current().await;
        let (kind, outcome) = match Self::admit(&request, &access) {
            Ok((asked, cursor_key)) => (Some(asked.kind()), self.answer(asked, cursor_key).await),
            Err(error) => (None, Err(error)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let response = match outcome {
            Ok(answer) => {
                tracing::info!(request_id, request = kind, status = 200, elapsed_ms, "suppressions answered");
                json_response(StatusCode::OK, &answer)
            }
            Err(error) => {
                let status = error.status().as_u16();
                match &error {
                    HttpError::Suppressions(cause) => tracing::error!(
                        request_id,
                        request = kind,
                        status,
                        elapsed_ms,
                        error = %cause,
                        "suppressions failed"
                    ),
                    _ => tracing::warn!(
                        request_id,
                        request = kind,
                        status,
                        elapsed_ms,
                        error = %error,
                        "suppressions refused"
                    ),
                }
                error.into_response()
            }
        };
        Ok(response)
    }

    fn admit<'a>(
        request: &Request,
        access: &'a Option<ReadAccess>,
    ) -> Result<(SuppressionRequest, &'a CursorKey), HttpError> {
        let access = access.as_ref().ok_or(AuthError::ReadingNotConfigured)?;
        let email = email_in_path(request)?;
        if !matches!((request.method(), &email), (&Method::GET, _) | (&Method::DELETE, Some(_))) {
            return Err(HttpError::MethodNotAllowed(request.method().clone()));
        }
        access.token.verify(request.headers())?;
        let asked = match (email, request.method() == Method::DELETE) {
            (None, _) => {
                let parameters = request.query_string_parameters();
                let pairs = parameters.iter();
                SuppressionRequest::List(ListQuery::from_parameters(pairs, &access.cursor_key)?)
            }
            (Some(email), false) => SuppressionRequest::Status(email),
            (Some(email), true) => SuppressionRequest::Lift { email, lifted_by: actor(request) },
        };
        Ok((asked, &access.cursor_key))
    }

    async fn answer(&self, asked: SuppressionRequest, cursor_key: &CursorKey) -> Result<serde_json::Value, HttpError> {
        Ok(match asked {
            SuppressionRequest::List(query) => json!(self.list.list(&query, cursor_key).await?),
            SuppressionRequest::Status(email) => self.list.status(&email).await?,
            SuppressionRequest::Lift { email, lifted_by } => self
                .list
                .lift(&email, &lifted_by, Utc::now())
                .await?
                .ok_or_else(|| HttpError::NotFound(format!("{email} is not suppressed")))?,
        })
    }
}

/// `None` for `/suppressions`, the address for `/suppressions/{email}`; any other path is 404.
/// API Gateway hands the address over as the `email` path parameter; without one (a Function
/// URL, a local run) it is the path segment after `suppressions`.
fn email_in_path(request: &Request) -> Result<Option<String>, HttpError> {
    let segment = match request.path_parameters_ref().and_then(|parameters| parameters.first("email")) {
        Some(email) => Some(email.to_owned()),
        None => {
            let path = request.uri().path();
            let tail = path
                .split_once("/suppressions")
                .map(|(_, tail)| tail)
                .ok_or_else(|| HttpError::NotFound(format!("no such path {path}")))?;
            match tail.trim_end_matches('/') {
                "" => None,
                tail => Some(tail.strip_prefix('/').ok_or_else(|| HttpError::NotFound(format!("no such path {path}")))?.to_owned()),
            }
        }
    };
    segment
        .map(|segment| {
            let decoded = percent_encoding::percent_decode_str(&segment).decode_utf8_lossy();
            address_from_path(&decoded).ok_or_else(|| {
                HttpError::BadParameter(ParameterError::Invalid {
                    name: "email",
                    expected: "an email address, such as /suppressions/jane@example.com".to_owned(),
                })
            })
        })
        .transpose()
}

/// The `X-Mailhooks-Actor` header, else the caller's source address.
fn actor(request: &Request) -> String {
    if let Some(named) = request.headers().get(ACTOR_HEADER).and_then(|value| value.to_str().ok()) {
        if !named.trim().is_empty() {
            return named.trim().to_owned();
        }
    }
    let source_ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
        _ => None,
    };
    match source_ip {
        Some(ip) => format!("bearer token from {ip}"),
        None => "bearer token".to_owned(),
    }
}
