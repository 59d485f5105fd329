//! The CloudFormation custom resource that registers the deployed EngageLab callback URL with
//! EngageLab (`functions/engagelab-registration`).
//!
//! Resource properties: `CallbackUrl`, `Events` (EngageLab event names, default all),
//! optional `ApiUser`; any other property (the template's `ConfigurationVersion`) only makes
//! CloudFormation send an Update when it changes. The physical resource id is EngageLab's
//! webhook id.
//!
//! - Create reuses a registration that already points at the URL (whatever token it carries),
//!   bringing its events and api_user up to date, or adds one.
//! - Update modifies the registration in place (URL, events, api_user).
//! - Delete deletes it; a registration already gone, or a resource whose Create never got an
//!   id from EngageLab, is a success.
//!
//! CloudFormation waits for an answer at the request's response URL, up to an hour, so every
//! invocation answers it: SUCCESS, or FAILED with a reason naming EngageLab's answer, and
//! FAILED when EngageLab does not finish in the time the invocation has left.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use http::{Method, Request};
use http_body_util::Full;
use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Secret;
use crate::config::Env;
use crate::config::{ConfigError, Live, Settings};
use crate::engagelab_api::https_client::HttpsClient;
use crate::engagelab_api::{
    encoded_query_value, redacted_url, url_with_token, without_query, ApiConfig, EngageLabApi, EngageLabApiError,
    StartupError, Webhook, WebhookEvent, WebhookSettings, API_KEY_ENV, API_USER_ENV,
};

/// The URL secret of the EngageLab route; the registered URL carries it as `?token=`.
pub const WEBHOOK_TOKEN_ENV: &str = "ENGAGELAB_WEBHOOK_TOKEN";
/// Time kept back from the invocation's deadline to answer CloudFormation (an S3 PUT).
pub const RESPONSE_RESERVE: Duration = Duration::from_secs(3);
/// The physical id of a resource whose Create failed: not a number, so no EngageLab id.
const NOT_REGISTERED: &str = "not-registered";
/// Answering CloudFormation is attempted even when the deadline is all but gone.
const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const REDACTED: &str = "<redacted>";

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("invalid resource properties: {0}")]
    Properties(String),
    #[error(transparent)]
    EngageLab(#[from] EngageLabApiError),
    #[error("EngageLab did not finish within the {} ms this invocation had left before answering CloudFormation", .0.as_millis())]
    OutOfTime(Duration),
    #[error("not a CloudFormation custom resource request: {0}")]
    NotACustomResourceRequest(String),
    #[error("could not answer CloudFormation: {0}")]
    Respond(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegistrationProperties {
    callback_url: String,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    api_user: Option<String>,
}

/// The registration as it should be at EngageLab.
#[derive(Debug)]
struct Desired {
    /// `CallbackUrl`, with the token when one is configured.
    url: String,
    events: Vec<u32>,
    api_user: Option<String>,
}

impl Desired {
    fn from_properties(properties: &Value, token: Option<&Secret>) -> Result<Self, RegistrationError> {
        let properties: RegistrationProperties = serde_json::from_value(properties.clone())
            .map_err(|error| RegistrationError::Properties(error.to_string()))?;
        let callback_url = properties.callback_url.trim();
        if !callback_url.starts_with("https://") {
            return Err(RegistrationError::Properties(format!(
                "CallbackUrl must be an https URL, not {callback_url:?}"
            )));
        }
        let events = match properties.events {
            None => WebhookEvent::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|name| name.parse::<WebhookEvent>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| RegistrationError::Properties(error.to_string()))?,
        };
        if events.is_empty() {
            return Err(RegistrationError::Properties("Events names no event".to_owned()));
        }
        Ok(Desired {
            url: url_with_token(callback_url, token),
            events: WebhookEvent::codes(&events),
            api_user: properties.api_user.map(|user| user.trim().to_owned()).filter(|user| !user.is_empty()),
        })
    }

    fn settings(&self) -> WebhookSettings {
        WebhookSettings {
            url: Some(self.url.clone()),
            api_user: self.api_user.clone(),
            events: Some(self.events.clone()),
        }
    }

    fn points_at_us(&self, webhook: &Webhook) -> bool {
        without_query(&webhook.url) == without_query(&self.url)
    }

    /// EngageLab's modify call cannot clear an api_user, so without one desired any is fine.
    fn is_met_by(&self, webhook: &Webhook) -> bool {
        let mut events = webhook.events.clone();
        events.sort_unstable();
        events.dedup();
        webhook.url == self.url
            && events == self.events
            && self.api_user.as_ref().is_none_or(|user| webhook.api_user.as_ref() == Some(user))
    }
}

/// What a request ended in: the physical id to report and what happened.
#[derive(Debug)]
struct Outcome {
    physical_id: String,
    webhook_id: Option<u64>,
    summary: String,
}

impl Outcome {
    fn registered(id: u64, summary: impl Into<String>) -> Self {
        Outcome { physical_id: id.to_string(), webhook_id: Some(id), summary: summary.into() }
    }
}

/// The request fields every answer repeats, whatever the request type.
#[derive(Debug)]
struct Envelope {
    request_type: &'static str,
    response_url: String,
    stack_id: String,
    request_id: String,
    logical_resource_id: String,
    /// The current physical id (none for Create).
    physical_resource_id: Option<String>,
}

pub struct Registrar {
    api: EngageLabApi,
    http: HttpsClient,
    webhook_token: Option<Secret>,
    /// Kept only to scrub it out of anything that leaves the function.
    api_key: Secret,
}

impl Registrar {
    /// `ENGAGELAB_API_USER`, `ENGAGELAB_API_KEY`, `ENGAGELAB_API_BASE_URL` and
    /// `ENGAGELAB_WEBHOOK_TOKEN` (comma-separated for rotation: the first is registered, the
    /// receiver keeps accepting every one).
    pub fn from_env(env: Env<'_>) -> Result<Self, StartupError> {
        let config = ApiConfig::from_env(env)?;
        let http = HttpsClient::new()?;
        let webhook_token = env(WEBHOOK_TOKEN_ENV)
            .and_then(|tokens| tokens.split(',').map(str::trim).find(|token| !token.is_empty()).map(Secret::new));
        Ok(Registrar { api: EngageLabApi::new(http.clone(), &config), http, webhook_token, api_key: config.api_key })
    }

    /// The same settings from `settings`: the API user, its key and the token from the secret
    /// when it names one, which must hold the user and key; rebuilt when the secret is read again.
    pub async fn from_settings(settings: Settings) -> Result<Live<Self>, ConfigError> {
        Live::load(settings, &[API_USER_ENV, API_KEY_ENV], |env| {
            Registrar::from_env(env).map_err(|error| ConfigError::Unusable(Box::new(error)))
        })
        .await
    }

    /// Handles one custom resource event and answers CloudFormation. An error means
    /// CloudFormation could not be answered (Lambda's retry of the invocation may still do it).
    pub async fn handle(&self, event: Value, deadline: SystemTime) -> Result<(), RegistrationError> {
        let request = match serde_json::from_value::<CloudFormationCustomResourceRequest>(event.clone()) {
            Ok(request) => request,
            Err(error) => return self.answer_unreadable(&event, error, deadline).await,
        };
        let envelope = Envelope::of(&request);
        tracing::info!(
            request_type = envelope.request_type,
            logical_resource_id = %envelope.logical_resource_id,
            physical_resource_id = envelope.physical_resource_id.as_deref(),
            "custom resource request"
        );
        let budget = remaining(deadline).saturating_sub(RESPONSE_RESERVE);
        let outcome = match tokio::time::timeout(budget, self.apply(&request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(RegistrationError::OutOfTime(budget)),
        };
        let response = match outcome {
            Ok(outcome) => {
                tracing::info!(physical_resource_id = %outcome.physical_id, summary = %outcome.summary, "registration done");
                success(&envelope, outcome)
            }
            Err(error) => {
                let reason = self.scrub(&error.to_string());
                tracing::error!(request_type = envelope.request_type, reason = %reason, "registration failed");
                let physical_id = envelope.physical_resource_id.clone().unwrap_or_else(|| NOT_REGISTERED.to_owned());
                failure(&envelope, physical_id, reason)
            }
        };
        self.respond(&envelope.response_url, &response, deadline).await
    }

    async fn apply(&self, request: &CloudFormationCustomResourceRequest) -> Result<Outcome, RegistrationError> {
        match request {
            CloudFormationCustomResourceRequest::Create(create) => {
                let desired = Desired::from_properties(&create.resource_properties, self.webhook_token.as_ref())?;
                self.ensure_registered(&desired).await
            }
            CloudFormationCustomResourceRequest::Update(update) => {
                let desired = Desired::from_properties(&update.resource_properties, self.webhook_token.as_ref())?;
                self.update(&update.physical_resource_id, &desired).await
            }
            CloudFormationCustomResourceRequest::Delete(delete) => self.delete(&delete.physical_resource_id).await,
            _ => Err(RegistrationError::NotACustomResourceRequest("unknown RequestType".to_owned())),
        }
    }

    async fn ensure_registered(&self, desired: &Desired) -> Result<Outcome, RegistrationError> {
        // Every api_user's registrations: one of ours made for another api_user is reused too.
        let existing = self.api.list(None).await?;
        let mut ours: Vec<&Webhook> = existing.iter().filter(|webhook| desired.points_at_us(webhook)).collect();
        ours.sort_by_key(|webhook| webhook.id);
        let Some(webhook) = ours.first() else {
            let added = self.api.add(&desired.settings()).await?;
            return Ok(Outcome::registered(
                added.id,
                format!("registered {} as webhook {}", redacted_url(&desired.url), added.id),
            ));
        };
        if ours.len() > 1 {
            tracing::warn!(
                count = ours.len(),
                kept = webhook.id,
                "several EngageLab registrations point at this URL; only the oldest is managed by the stack"
            );
        }
        if desired.is_met_by(webhook) {
            return Ok(Outcome::registered(webhook.id, format!("webhook {} already registered as wanted", webhook.id)));
        }
        self.api.modify(webhook.id, &desired.settings()).await?;
        Ok(Outcome::registered(webhook.id, format!("reused webhook {} and updated it", webhook.id)))
    }

    async fn update(&self, physical_id: &str, desired: &Desired) -> Result<Outcome, RegistrationError> {
        // A physical id that is no EngageLab id means the resource's Create failed and nothing
        // is registered: register now. Returning a new physical id makes CloudFormation send a
        // Delete for the old one, which succeeds without calling EngageLab.
        let Some(id) = webhook_id(physical_id) else {
            return self.ensure_registered(desired).await;
        };
        let vanished = match self.api.modify(id, &desired.settings()).await {
            Ok(changed) if changed > 0 => false,
            // 0 changed can mean "no such id" or "nothing to change": the list tells which.
            Ok(_) => !self.api.list(None).await?.iter().any(|webhook| webhook.id == id),
            Err(error) if error.is_not_found() => true,
            Err(error) => return Err(error.into()),
        };
        if vanished {
            // Someone deleted the registration at EngageLab. The stack still wants one, so it is
            // registered again under a new id; CloudFormation then deletes the old id, which
            // EngageLab no longer has, and that Delete succeeds.
            tracing::warn!(webhook_id = id, "the registration is gone at EngageLab; registering again");
            return self.ensure_registered(desired).await;
        }
        Ok(Outcome::registered(id, format!("updated webhook {id}")))
    }

    async fn delete(&self, physical_id: &str) -> Result<Outcome, RegistrationError> {
        let Some(id) = webhook_id(physical_id) else {
            return Ok(Outcome {
                physical_id: physical_id.to_owned(),
                webhook_id: None,
                summary: "nothing was registered".to_owned(),
            });
        };
        let summary = match self.api.delete(id).await {
            Ok(deleted) if deleted > 0 => format!("deleted webhook {id}"),
            Ok(_) => format!("webhook {id} was already gone"),
            Err(error) if error.is_not_found() => format!("webhook {id} was already gone"),
            Err(error) => return Err(error.into()),
        };
        Ok(Outcome { physical_id: physical_id.to_owned(), webhook_id: Some(id), summary })
    }

    /// An event that is not a custom resource request still gets a FAILED answer when it names
    /// a response URL, so a stack never waits on it.
    async fn answer_unreadable(
        &self,
        event: &Value,
        error: serde_json::Error,
        deadline: SystemTime,
    ) -> Result<(), RegistrationError> {
        let field = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
        let problem = format!("unreadable request: {error}");
        let Some(response_url) = field("ResponseURL") else {
            tracing::error!(%problem, "event without a ResponseURL; nobody to answer");
            return Err(RegistrationError::NotACustomResourceRequest(problem));
        };
        let envelope = Envelope {
            request_type: "unknown",
            response_url,
            stack_id: field("StackId").unwrap_or_default(),
            request_id: field("RequestId").unwrap_or_default(),
            logical_resource_id: field("LogicalResourceId").unwrap_or_default(),
            physical_resource_id: field("PhysicalResourceId"),
        };
        tracing::error!(%problem, "answering FAILED");
        let physical_id = envelope.physical_resource_id.clone().unwrap_or_else(|| NOT_REGISTERED.to_owned());
        let response = failure(&envelope, physical_id, problem);
        self.respond(&envelope.response_url, &response, deadline).await
    }

    /// PUTs the answer to the presigned response URL, with whatever time is left.
    async fn respond(
        &self,
        response_url: &str,
        response: &CloudFormationCustomResourceResponse,
        deadline: SystemTime,
    ) -> Result<(), RegistrationError> {
        let body = serde_json::to_vec(response).expect("a custom resource response always serializes");
        // No Content-Type: the URL is presigned for a PUT without one.
        let request = Request::builder()
            .method(Method::PUT)
            .uri(response_url)
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| RegistrationError::Respond(format!("invalid ResponseURL: {error}")))?;
        let timeout = remaining(deadline).max(MIN_RESPONSE_TIMEOUT);
        let answer =
            self.http.send(request, timeout).await.map_err(|error| RegistrationError::Respond(error.to_string()))?;
        if !answer.status.is_success() {
            let body = String::from_utf8_lossy(&answer.body).chars().take(300).collect::<String>();
            tracing::error!(status = answer.status.as_u16(), "CloudFormation's response URL refused the answer");
            return Err(RegistrationError::Respond(format!("response URL answered {}: {body}", answer.status)));
        }
        tracing::info!(status = ?response.status, "answered CloudFormation");
        Ok(())
    }

    /// Takes configured secrets out of a text that goes to CloudFormation or the log (an
    /// EngageLab error could quote the URL it was given).
    fn scrub(&self, text: &str) -> String {
        let mut secrets = vec![self.api_key.expose().to_owned()];
        if let Some(token) = &self.webhook_token {
            secrets.push(token.expose().to_owned());
            secrets.push(encoded_query_value(token.expose()));
        }
        secrets
            .iter()
            .filter(|secret| !secret.is_empty())
            .fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), REDACTED))
    }
}

impl Envelope {
    fn of(request: &CloudFormationCustomResourceRequest) -> Self {
        match request {
            CloudFormationCustomResourceRequest::Create(create) => Envelope {
                request_type: "Create",
                response_url: create.response_url.clone(),
                stack_id: create.stack_id.clone(),
                request_id: create.request_id.clone(),
                logical_resource_id: create.logical_resource_id.clone(),
                physical_resource_id: None,
            },
            CloudFormationCustomResourceRequest::Update(update) => Envelope {
                request_type: "Update",
                response_url: update.response_url.clone(),
                stack_id: update.stack_id.clone(),
                request_id: update.request_id.clone(),
                logical_resource_id: update.logical_resource_id.clone(),
                physical_resource_id: Some(update.physical_resource_id.clone()),
            },
            CloudFormationCustomResourceRequest::Delete(delete) => Envelope {
                request_type: "Delete",
                response_url: delete.response_url.clone(),
                stack_id: delete.stack_id.clone(),
                request_id: delete.request_id.clone(),
                logical_resource_id: delete.logical_resource_id.clone(),
                physical_resource_id: Some(delete.physical_resource_id.clone()),
            },
            _ => Envelope {
                request_type: "unknown",
                response_url: String::new(),
                stack_id: String::new(),
                request_id: String::new(),
                logical_resource_id: String::new(),
                physical_resource_id: None,
            },
        }
    }
}

fn webhook_id(physical_id: &str) -> Option<u64> {
    physical_id.parse().ok()
}

fn remaining(deadline: SystemTime) -> Duration {
    deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
}

fn response(
    envelope: &Envelope,
    status: CloudFormationCustomResourceResponseStatus,
    physical_id: String,
    reason: String,
    data: HashMap<String, String>,
) -> CloudFormationCustomResourceResponse {
    // The type is #[non_exhaustive]: start from its default and fill every field.
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = status;
    response.reason = Some(reason);
    response.physical_resource_id = physical_id;
    response.stack_id = envelope.stack_id.clone();
    response.request_id = envelope.request_id.clone();
    response.logical_resource_id = envelope.logical_resource_id.clone();
    response.no_echo = false;
    response.data = data;
    response
}

fn success(envelope: &Envelope, outcome: Outcome) -> CloudFormationCustomResourceResponse {
    let data = outcome.webhook_id.map(|id| ("WebhookId".to_owned(), id.to_string())).into_iter().collect();
    response(envelope, CloudFormationCustomResourceResponseStatus::Success, outcome.physical_id, outcome.summary, data)
}

fn failure(envelope: &Envelope, physical_id: String, reason: String) -> CloudFormationCustomResourceResponse {
    response(envelope, CloudFormationCustomResourceResponseStatus::Failed, physical_id, reason, HashMap::new())
}
