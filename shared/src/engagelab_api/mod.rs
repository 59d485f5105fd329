//! EngageLab's webhooks API, as EngageLab documents it: list, add, modify and delete
//! the callback URLs of an account.
//!
//! Requests carry `Authorization: Basic base64(api_user:api_key)`; the header is built once and
//! marked sensitive, so neither the key nor the header shows in `Debug`, logs or errors. Every
//! call is bounded by the client's timeout, and an answer other than 2xx becomes
//! [`EngageLabApiError::Api`] carrying EngageLab's status and message.

#[cfg(feature = "engagelab-cli")]
pub mod cli;
pub mod https_client;
pub mod registration;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use base64::Engine;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::Secret;
use crate::config::Env;
use crate::engagelab_api::https_client::{HttpsClient, TransportError};

/// EngageLab's documented host (Singapore data center); `ENGAGELAB_API_BASE_URL` picks another.
pub const DEFAULT_BASE_URL: &str = "https://email.api.engagelab.cc";
pub const API_USER_ENV: &str = "ENGAGELAB_API_USER";
pub const API_KEY_ENV: &str = "ENGAGELAB_API_KEY";
pub const BASE_URL_ENV: &str = "ENGAGELAB_API_BASE_URL";
/// The largest page the list call documents (`limit` in [0-100]).
pub const PAGE_LIMIT: usize = 100;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 3986 unreserved characters stay as they are in a query value; everything else is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The events a callback URL can subscribe to, with EngageLab's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEvent {
    Deliver,
    ReportSpam,
    Invalid,
    SoftBounce,
    Click,
    Open,
    Unsubscribe,
    Request,
    Sent,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 9] = [
        WebhookEvent::Deliver,
        WebhookEvent::ReportSpam,
        WebhookEvent::Invalid,
        WebhookEvent::SoftBounce,
        WebhookEvent::Click,
        WebhookEvent::Open,
        WebhookEvent::Unsubscribe,
        WebhookEvent::Request,
        WebhookEvent::Sent,
    ];

    pub fn code(self) -> u32 {
        match self {
            WebhookEvent::Deliver => 1,
            WebhookEvent::ReportSpam => 3,
            WebhookEvent::Invalid => 4,
            WebhookEvent::SoftBounce => 5,
            WebhookEvent::Click => 10,
            WebhookEvent::Open => 11,
            WebhookEvent::Unsubscribe => 12,
            WebhookEvent::Request => 18,
            WebhookEvent::Sent => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::Deliver => "deliver",
            WebhookEvent::ReportSpam => "report_spam",
            WebhookEvent::Invalid => "invalid",
            WebhookEvent::SoftBounce => "soft_bounce",
            WebhookEvent::Click => "click",
            WebhookEvent::Open => "open",
            WebhookEvent::Unsubscribe => "unsubscribe",
            WebhookEvent::Request => "request",
            WebhookEvent::Sent => "sent",
        }
    }

    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.code() == code)
    }

    /// A comma-separated list of names (`deliver,open`), as the CLI and templates write them.
    pub fn parse_list(text: &str) -> Result<Vec<WebhookEvent>, UnknownEvent> {
        text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::parse).collect()
    }

    /// EngageLab's codes for a list of events, sorted and without repeats.
    pub fn codes(events: &[WebhookEvent]) -> Vec<u32> {
        let mut codes: Vec<u32> = events.iter().map(|event| event.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown EngageLab event {0:?}; known events: deliver, report_spam, invalid, soft_bounce, click, open, unsubscribe, request, sent")]
pub struct UnknownEvent(pub String);

impl FromStr for WebhookEvent {
    type Err = UnknownEvent;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|event| event.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownEvent(name.to_owned()))
    }
}

/// The display name of a code as EngageLab stores it; codes it adds later show as numbers.
pub fn event_label(code: u32) -> String {
    WebhookEvent::from_code(code).map_or_else(|| code.to_string(), |event| event.name().to_owned())
}

/// One callback registration as EngageLab lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    #[serde(deserialize_with = "number_or_numeric_string")]
    pub id: u64,
    pub url: String,
    /// Codes as EngageLab answered them (see [`WebhookEvent::from_code`]).
    #[serde(rename = "event", default, deserialize_with = "codes_or_null")]
    pub events: Vec<u32>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub api_user: Option<String>,
}

/// What to register, or what to change: fields left `None` are not sent, which EngageLab's
/// modify call documents as "leave unchanged" (and its add call as "all events" / "all
/// api_users").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_user: Option<String>,
    #[serde(rename = "event", skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<u32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngageLabApiError {
    #[error("EngageLab answered {status}: {message}")]
    Api { status: StatusCode, message: String },
    #[error("EngageLab did not answer: {0}")]
    Transport(#[from] TransportError),
    #[error("EngageLab answered {status} with a body this client does not understand: {problem}")]
    UnexpectedAnswer { status: StatusCode, problem: String },
}

impl EngageLabApiError {
    /// EngageLab's HTTP status, when it answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            EngageLabApiError::Api { status, .. } | EngageLabApiError::UnexpectedAnswer { status, .. } => Some(*status),
            EngageLabApiError::Transport(_) => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{BASE_URL_ENV} must be an https URL without query (plain http only for a loopback host): {0}")]
    InvalidBaseUrl(String),
}

/// Why a program using the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ApiConfigError),
    #[error("no usable root certificates for TLS: {0}")]
    RootCertificates(#[from] std::io::Error),
}

/// Where the API lives: https, or http on a loopback host for local test servers, so the
/// Basic-auth key never crosses a network in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(text: &str) -> Result<Self, ApiConfigError> {
        let invalid = || ApiConfigError::InvalidBaseUrl(text.to_owned());
        let trimmed = text.trim().trim_end_matches('/');
        let uri: http::Uri = trimmed.parse().map_err(|_| invalid())?;
        let host = uri.host().ok_or_else(invalid)?;
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        let scheme_allowed = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => loopback,
            _ => false,
        };
        if !scheme_allowed || uri.query().is_some() {
            return Err(invalid());
        }
        Ok(BaseUrl(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BaseUrl {
    fn default() -> Self {
        BaseUrl(DEFAULT_BASE_URL.to_owned())
    }
}

/// The account the calls are made as, from `ENGAGELAB_API_USER` / `ENGAGELAB_API_KEY`, and
/// where they go (`ENGAGELAB_API_BASE_URL`, default [`DEFAULT_BASE_URL`]).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub api_user: String,
    pub api_key: Secret,
    pub base_url: BaseUrl,
}

impl ApiConfig {
    pub fn from_env(env: Env<'_>) -> Result<Self, ApiConfigError> {
        let required = |name: &'static str| {
            env(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .ok_or(ApiConfigError::Missing(name))
        };
        let base_url = match env(BASE_URL_ENV).filter(|value| !value.trim().is_empty()) {
            Some(text) => BaseUrl::parse(&text)?,
            None => BaseUrl::default(),
        };
        Ok(ApiConfig { api_user: required(API_USER_ENV)?, api_key: Secret::new(required(API_KEY_ENV)?), base_url })
    }
}

#[derive(Debug, Clone)]
pub struct EngageLabApi {
    http: HttpsClient,
    base_url: BaseUrl,
    /// `Basic base64(api_user:api_key)`, marked sensitive so `Debug` shows no credentials.
    authorization: HeaderValue,
    timeout: Duration,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    result: Vec<Webhook>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct AddAnswer {
    result: Vec<Webhook>,
}

#[derive(Deserialize)]
struct CountAnswer {
    count: u64,
}

impl EngageLabApi {
    pub fn new(http: HttpsClient, config: &ApiConfig) -> Self {
        let credentials = format!("{}:{}", config.api_user, config.api_key.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        let mut authorization =
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 text is a valid header value");
        authorization.set_sensitive(true);
        EngageLabApi { http, base_url: config.base_url.clone(), authorization, timeout: DEFAULT_TIMEOUT }
    }

    /// Bounds each call (connect, send, read the whole answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One page: `GET /v1/webhooks?offset=&limit=[&api_user=]`.
    pub async fn list_page(
        &self,
        api_user: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Webhook>, Option<u64>), EngageLabApiError> {
        let mut path = format!("/v1/webhooks?offset={offset}&limit={limit}");
        if let Some(api_user) = api_user {
            path.push_str("&api_user=");
            path.extend(utf8_percent_encode(api_user, QUERY_VALUE));
        }
        let answer: ListAnswer = self.call(Method::GET, &path, None).await?;
        Ok((answer.result, answer.total))
    }

    /// Every registration, page by page (EngageLab returns at most 100 at a time), optionally
    /// only those associated with one api_user.
    pub async fn list(&self, api_user: Option<&str>) -> Result<Vec<Webhook>, EngageLabApiError> {
        let mut webhooks = Vec::new();
        loop {
            let (page, total) = self.list_page(api_user, webhooks.len(), PAGE_LIMIT).await?;
            let last = page.len() < PAGE_LIMIT;
            webhooks.extend(page);
            let complete = total.is_some_and(|total| webhooks.len() as u64 >= total);
            if last || complete {
                return Ok(webhooks);
            }
        }
    }

    /// `POST /v1/webhooks`; answers the registration EngageLab made, with its id.
    pub async fn add(&self, settings: &WebhookSettings) -> Result<Webhook, EngageLabApiError> {
        let answer: AddAnswer = self.call(Method::POST, "/v1/webhooks", Some(settings)).await?;
        answer.result.into_iter().next().ok_or_else(|| EngageLabApiError::UnexpectedAnswer {
            status: StatusCode::OK,
            problem: "the add answer lists no registration".to_owned(),
        })
    }

    /// `PUT /v1/webhooks/{id}`; answers EngageLab's `count` of changed registrations.
    ///
    /// The page's method table says PUT while its curl example sends POST; PUT is what the
    /// reference states and what modifying one existing resource means in REST, so PUT it is.
    /// A `count` of 0 is ambiguous (no such id, or nothing to change), so it is left to the
    /// caller to interpret.
    pub async fn modify(&self, id: u64, settings: &WebhookSettings) -> Result<u64, EngageLabApiError> {
        let answer: CountAnswer = self.call(Method::PUT, &format!("/v1/webhooks/{id}"), Some(settings)).await?;
        Ok(answer.count)
    }

    /// `DELETE /v1/webhooks/{id}`; answers EngageLab's `count` of deleted registrations.
    ///
    /// The page's URL line omits `/v1` (`/webhooks/{id}`) while its curl example and every
    /// other call use `/v1/webhooks`; the versioned path is the consistent one, so it is used.
    pub async fn delete(&self, id: u64) -> Result<u64, EngageLabApiError> {
        let answer: CountAnswer = self.call(Method::DELETE, &format!("/v1/webhooks/{id}"), None).await?;
        Ok(answer.count)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&WebhookSettings>,
    ) -> Result<T, EngageLabApiError> {
        let started = Instant::now();
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path_and_query}", self.base_url.as_str()))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json");
        let body = match body {
            Some(settings) => {
                request = request.header(CONTENT_TYPE, "application/json; charset=utf-8");
                Bytes::from(serde_json::to_vec(settings).expect("settings always serialize"))
            }
            None => Bytes::new(),
        };
        let request =
            request.body(Full::new(body)).expect("a base URL checked at start and a built path make a valid request");
        let path = path_and_query.split('?').next().unwrap_or_default();
        let answer = match self.http.send(request, self.timeout).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%method, path, elapsed_ms = started.elapsed().as_millis() as u64, %error, "EngageLab API call failed");
                return Err(error.into());
            }
        };
        tracing::info!(
            %method,
            path,
            status = answer.status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "EngageLab API call"
        );
        if !answer.status.is_success() {
            return Err(EngageLabApiError::Api {
                status: answer.status,
                message: error_message(answer.status, &answer.body),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|error| EngageLabApiError::UnexpectedAnswer {
            status: answer.status,
            problem: match error_message_in(&answer.body) {
                Some(message) => format!("{error} (EngageLab says: {message})"),
                None => error.to_string(),
            },
        })
    }
}

/// The longest piece of an answer body quoted in an error.
const QUOTED_BODY_CHARS: usize = 300;

/// EngageLab's explanation: the JSON `message` (with its `code`) when there is one, else the
/// start of the body, else the status's own reason.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Some(message) = error_message_in(body) {
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("no explanation").to_owned()
    } else {
        text.chars().take(QUOTED_BODY_CHARS).collect()
    }
}

fn error_message_in(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = ["message", "msg", "error"].iter().find_map(|key| value.get(key)?.as_str())?;
    let message: String = message.chars().take(QUOTED_BODY_CHARS).collect();
    Some(match value.get("code") {
        Some(code) if !code.is_null() => format!("{message} (code {code})"),
        _ => message,
    })
}

/// EngageLab documents ids as numbers; its callbacks already send documented ints as strings,
/// so both are accepted.
fn number_or_numeric_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(number) => Ok(number),
        NumberOrText::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn codes_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u32>, D::Error> {
    let codes: Option<Vec<NumberOrText>> = Option::deserialize(deserializer)?;
    codes
        .unwrap_or_default()
        .into_iter()
        .map(|code| match code {
            NumberOrText::Number(number) => u32::try_from(number).map_err(serde::de::Error::custom),
            NumberOrText::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
        })
        .collect()
}

fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.trim().is_empty()))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

/// The callback URL with the URL secret (`ENGAGELAB_WEBHOOK_TOKEN`) as its `token` parameter.
pub fn url_with_token(url: &str, token: Option<&Secret>) -> String {
    match token {
        None => url.to_owned(),
        Some(token) => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}token={}", encoded_query_value(token.expose()))
        }
    }
}

/// A value as it appears in a query string.
pub(crate) fn encoded_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// A URL fit for logs and terminals: the value of a `token` parameter and the password of
/// `user:password@` (the two places mailhooks' URL secrets travel) are replaced.
pub fn redacted_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (url, None),
    };
    let mut shown = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}:<redacted>@{host}{path}")
                }
                _ => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("token") => format!("{name}=<redacted>"),
                _ => parameter.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&parameters.join("&"));
    }
    shown
}

/// The URL without its query: a registration "points at our URL" whatever token it carries.
pub fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_and_codes_are_those_documented() {
        let pairs: Vec<(&str, u32)> = WebhookEvent::ALL.iter().map(|event| (event.name(), event.code())).collect();
        assert_eq!(
            pairs,
            [
                ("deliver", 1),
                ("report_spam", 3),
                ("invalid", 4),
                ("soft_bounce", 5),
                ("click", 10),
                ("open", 11),
                ("unsubscribe", 12),
                ("request", 18),
                ("sent", 32)
            ]
        );
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::from_code(event.code()), Some(event));
            assert_eq!(event.name().parse::<WebhookEvent>(), Ok(event));
        }
        assert_eq!(WebhookEvent::from_code(2), None);
        assert_eq!(event_label(99), "99");
    }

    #[test]
    fn event_lists_parse_names_and_reject_unknown_ones() {
        assert_eq!(
            WebhookEvent::parse_list(" Open,click ,,deliver"),
            Ok(vec![WebhookEvent::Open, WebhookEvent::Click, WebhookEvent::Deliver])
        );
        assert_eq!(WebhookEvent::parse_list("open,bounce"), Err(UnknownEvent("bounce".into())));
        assert_eq!(WebhookEvent::codes(&[WebhookEvent::Sent, WebhookEvent::Deliver, WebhookEvent::Sent]), vec![1, 32]);
    }

    #[test]
    fn base_url_must_be_https_except_on_loopback() {
        assert_eq!(
            BaseUrl::parse("https://emailapi-tr.engagelab.com/").unwrap().as_str(),
            "https://emailapi-tr.engagelab.com"
        );
        assert_eq!(BaseUrl::parse("http://127.0.0.1:8080").unwrap().as_str(), "http://127.0.0.1:8080");
        assert!(BaseUrl::parse("http://email.api.engagelab.cc").is_err());
        assert!(BaseUrl::parse("https://email.api.engagelab.cc/?x=1").is_err());
        assert!(BaseUrl::parse("email.api.engagelab.cc").is_err());
    }

    #[test]
    fn config_requires_user_and_key_and_defaults_the_host() {
        let env = |name: &str| match name {
            API_USER_ENV => Some("user".to_owned()),
            API_KEY_ENV => Some("key".to_owned()),
            _ => None,
        };
        let config = ApiConfig::from_env(&env).unwrap();
        assert_eq!(config.base_url.as_str(), DEFAULT_BASE_URL);
        let no_key = |name: &str| (name == API_USER_ENV).then(|| "user".to_owned());
        assert_eq!(ApiConfig::from_env(&no_key).unwrap_err(), ApiConfigError::Missing(API_KEY_ENV));
    }

    #[test]
    fn client_debug_shows_no_credentials() {
        let config = ApiConfig {
            api_user: "user".into(),
            api_key: Secret::new("very-secret-key"),
            base_url: BaseUrl::default(),
        };
        let api = EngageLabApi::new(HttpsClient::new().unwrap(), &config);
        let shown = format!("{api:?} {config:?}");
        let encoded = base64::engine::general_purpose::STANDARD.encode("user:very-secret-key");
        assert!(!shown.contains("very-secret-key") && !shown.contains(&encoded), "{shown}");
    }

    #[test]
    fn registrations_parse_numbers_sent_as_text_and_missing_fields() {
        let webhook: Webhook =
            serde_json::from_str(r#"{"id":"168","url":"https://x","event":["1",3],"api_user":""}"#).unwrap();
        assert_eq!(webhook, Webhook { id: 168, url: "https://x".into(), events: vec![1, 3], api_user: None });
        let webhook: Webhook = serde_json::from_str(r#"{"id":7,"url":"https://x","event":null}"#).unwrap();
        assert!(webhook.events.is_empty());
    }

    #[test]
    fn token_is_added_as_a_parameter_and_redacted_for_display() {
        let token = Secret::new("s3cr/t");
        let url = url_with_token("https://api.example/webhooks/engagelab", Some(&token));
        assert_eq!(url, "https://api.example/webhooks/engagelab?token=s3cr%2Ft");
        assert_eq!(url_with_token("https://h/p?a=1", Some(&token)), "https://h/p?a=1&token=s3cr%2Ft");
        assert_eq!(redacted_url(&url), "https://api.example/webhooks/engagelab?token=<redacted>");
        assert_eq!(redacted_url("https://any:pw@h/p?a=1"), "https://any:<redacted>@h/p?a=1");
        assert_eq!(redacted_url("https://h/p"), "https://h/p");
        assert_eq!(without_query(&url), "https://api.example/webhooks/engagelab");
    }

    #[test]
    fn error_messages_quote_engagelab() {
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, br#"{"code":30001,"message":"url is invalid"}"#),
            "url is invalid (code 30001)"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b"upstream down"), "upstream down");
        assert_eq!(error_message(StatusCode::INTERNAL_SERVER_ERROR, b""), "Internal Server Error");
    }
}
