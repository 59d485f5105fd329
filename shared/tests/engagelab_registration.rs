//! The EngageLab registration custom resource against a local EngageLab and a local response
//! URL: every request type, what EngageLab holds afterwards, and what CloudFormation is told;
//! the account and token read from a Secrets Manager secret (moto's).

mod fake_engagelab;
mod support;

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use fake_engagelab::{FakeEngageLab, ResponseUrl, ALL_CODES, API_KEY, API_USER};
use mailhooks::config::Settings;
use mailhooks::engagelab_api::registration::{Registrar, RESPONSE_RESERVE};
use serde_json::{json, Value};

const CALLBACK_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/engagelab";
const WEBHOOK_TOKEN: &str = "url-secret/+token";
const ENCODED_TOKEN: &str = "url-secret%2F%2Btoken";

fn registrar(engagelab: &FakeEngageLab, token: Option<&str>) -> Registrar {
    let api_env = engagelab.env();
    let token = token.map(str::to_owned);
    let env = move |name: &str| match name {
        "ENGAGELAB_WEBHOOK_TOKEN" => token.clone(),
        _ => api_env(name),
    };
    Registrar::from_env(&env).expect("the test configuration is complete")
}

fn properties(events: &[&str], api_user: Option<&str>) -> Value {
    let mut properties = json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:mailhooks-EngageLabRegistrationFunction",
        "CallbackUrl": CALLBACK_URL,
        "Events": events,
    });
    if let Some(api_user) = api_user {
        properties["ApiUser"] = api_user.into();
    }
    properties
}

/// A custom resource event as CloudFormation sends it.
fn request(request_type: &str, response: &ResponseUrl, physical_id: Option<&str>, properties: Value) -> Value {
    let mut event = json!({
        "RequestType": request_type,
        "ServiceToken": properties["ServiceToken"],
        "ResponseURL": response.url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/mailhooks/5b9f0c70-0000-11ef-8000-0a1b2c3d4e5f",
        "RequestId": format!("{request_type}-request"),
        "LogicalResourceId": "EngageLabRegistration",
        "ResourceType": "Custom::EngageLabRegistration",
        "ResourceProperties": properties,
    });
    if let Some(physical_id) = physical_id {
        event["PhysicalResourceId"] = physical_id.into();
    }
    if request_type == "Update" {
        event["OldResourceProperties"] = properties_with_url("https://old.example/webhooks/engagelab");
    }
    event
}

fn properties_with_url(url: &str) -> Value {
    let mut properties = properties(&["deliver"], None);
    properties["CallbackUrl"] = url.into();
    properties
}

fn deadline_in(duration: Duration) -> SystemTime {
    SystemTime::now() + duration
}

/// Runs one request with plenty of time and answers what CloudFormation was told.
async fn handle(registrar: &Registrar, event: &Value, response: &ResponseUrl) -> Value {
    registrar.handle(event.clone(), deadline_in(Duration::from_secs(30))).await.expect("CloudFormation is answered");
    response.only_answer()
}

fn assert_answer(answer: &Value, status: &str, event: &Value) {
    assert_eq!(answer["Status"], status, "{answer}");
    assert_eq!(answer["StackId"], event["StackId"]);
    assert_eq!(answer["RequestId"], event["RequestId"]);
    assert_eq!(answer["LogicalResourceId"], "EngageLabRegistration");
    assert!(answer["Reason"].as_str().is_some_and(|reason| !reason.is_empty()), "{answer}");
}

/// Neither the API key, its Basic-auth form, nor the URL token may reach CloudFormation.
fn assert_no_secrets(text: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{API_USER}:{API_KEY}"));
    for secret in [API_KEY, basic.as_str(), WEBHOOK_TOKEN, ENCODED_TOKEN] {
        assert!(!text.contains(secret), "a secret leaked into {text}");
    }
}

#[tokio::test]
async fn create_registers_the_callback_url_with_its_token_and_events() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, Some(WEBHOOK_TOKEN));
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver", "open", "click"], Some("marketing")));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    let webhooks = engagelab.webhooks();
    assert_eq!(webhooks.len(), 1);
    let id = webhooks[0]["id"].as_u64().unwrap();
    assert_eq!(answer["PhysicalResourceId"], id.to_string());
    assert_eq!(answer["Data"]["WebhookId"], id.to_string());
    assert_eq!(webhooks[0]["url"], format!("{CALLBACK_URL}?token={ENCODED_TOKEN}"));
    assert_eq!(webhooks[0]["event"], json!([1, 10, 11]));
    assert_eq!(webhooks[0]["api_user"], "marketing");
    assert_no_secrets(&response.answers()[0].body);
    let methods: Vec<String> = engagelab.requests().iter().map(|request| request.method.clone()).collect();
    assert_eq!(methods, ["GET", "POST"], "it looks for an existing registration before adding one");
}

#[tokio::test]
async fn create_without_events_subscribes_to_all_of_them_and_without_token_registers_the_bare_url() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let mut properties = properties(&[], None);
    properties.as_object_mut().unwrap().remove("Events");
    let event = request("Create", &response, None, properties);

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    let webhooks = engagelab.webhooks();
    assert_eq!(webhooks[0]["url"], CALLBACK_URL);
    assert_eq!(webhooks[0]["event"], json!(ALL_CODES));
}

#[tokio::test]
async fn create_reuses_a_registration_that_already_points_at_the_url() {
    let engagelab = FakeEngageLab::start().await;
    for page_filler in 0..120 {
        engagelab.seed(&format!("https://elsewhere.example/{page_filler}"), &[1], "");
    }
    let existing = engagelab.seed(&format!("{CALLBACK_URL}?token=old-token"), &[1, 3], "");
    let registrar = registrar(&engagelab, Some(WEBHOOK_TOKEN));
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver", "soft_bounce"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], existing.to_string());
    assert_eq!(engagelab.webhooks().len(), 121, "nothing added");
    let reused = engagelab.webhook(existing).unwrap();
    assert_eq!(reused["url"], format!("{CALLBACK_URL}?token={ENCODED_TOKEN}"), "brought up to date");
    assert_eq!(reused["event"], json!([1, 5]));
    let requests = engagelab.requests();
    let offsets: Vec<&str> = requests
        .iter()
        .filter(|request| request.method == "GET")
        .map(|request| request.query["offset"].as_str())
        .collect();
    assert_eq!(offsets, ["0", "100"], "the registration was on the second page");
    assert!(requests.iter().all(|request| request.method != "POST"));
}

#[tokio::test]
async fn create_reuses_a_registration_of_another_api_user_and_moves_it() {
    let engagelab = FakeEngageLab::start().await;
    let existing = engagelab.seed(CALLBACK_URL, &[1], "transactional");
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver"], Some("marketing")));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], existing.to_string());
    assert_eq!(engagelab.webhooks().len(), 1);
    assert_eq!(engagelab.webhook(existing).unwrap()["api_user"], "marketing");
}

#[tokio::test]
async fn create_of_a_registration_already_as_wanted_changes_nothing() {
    let engagelab = FakeEngageLab::start().await;
    let existing = engagelab.seed(CALLBACK_URL, &[11, 1], "");
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["open", "deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], existing.to_string());
    assert!(engagelab.requests().iter().all(|request| request.method == "GET"));
}

#[tokio::test]
async fn update_modifies_url_events_and_api_user_in_place() {
    let engagelab = FakeEngageLab::start().await;
    let id = engagelab.seed("https://old.example/webhooks/engagelab", &[1], "");
    let registrar = registrar(&engagelab, Some(WEBHOOK_TOKEN));
    let response = ResponseUrl::start().await;
    let event =
        request("Update", &response, Some(&id.to_string()), properties(&["unsubscribe", "report_spam"], Some("ops")));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], id.to_string(), "same registration, so no replacement");
    let updated = engagelab.webhook(id).unwrap();
    assert_eq!(updated["url"], format!("{CALLBACK_URL}?token={ENCODED_TOKEN}"));
    assert_eq!(updated["event"], json!([3, 12]));
    assert_eq!(updated["api_user"], "ops");
    let put = engagelab.requests().into_iter().find(|request| request.method == "PUT").expect("modified with PUT");
    assert_eq!(put.path, format!("/v1/webhooks/{id}"));
}

#[tokio::test]
async fn update_with_nothing_to_change_keeps_the_registration() {
    let engagelab = FakeEngageLab::start().await;
    let id = engagelab.seed(CALLBACK_URL, &[1], "");
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Update", &response, Some(&id.to_string()), properties(&["deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], id.to_string());
    assert_eq!(engagelab.webhooks().len(), 1, "a count of 0 was checked by listing, not taken as gone");
}

#[tokio::test]
async fn update_of_a_vanished_registration_registers_again_under_a_new_id() {
    let engagelab = FakeEngageLab::start().await;
    let id = engagelab.seed(CALLBACK_URL, &[1], "");
    engagelab.remove(id);
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Update", &response, Some(&id.to_string()), properties(&["open"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    let webhooks = engagelab.webhooks();
    assert_eq!(webhooks.len(), 1);
    let new_id = webhooks[0]["id"].as_u64().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(answer["PhysicalResourceId"], new_id.to_string());
    assert_eq!(webhooks[0]["event"], json!([11]));
}

#[tokio::test]
async fn update_of_a_resource_whose_create_failed_registers() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Update", &response, Some("not-registered"), properties(&["open"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    let id = engagelab.webhooks()[0]["id"].as_u64().unwrap();
    assert_eq!(answer["PhysicalResourceId"], id.to_string());
}

#[tokio::test]
async fn delete_removes_the_registration() {
    let engagelab = FakeEngageLab::start().await;
    let id = engagelab.seed(CALLBACK_URL, &[1], "");
    let other = engagelab.seed("https://elsewhere.example/hook", &[1], "");
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Delete", &response, Some(&id.to_string()), properties(&["deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], id.to_string());
    assert!(engagelab.webhook(id).is_none());
    assert!(engagelab.webhook(other).is_some(), "other registrations stay");
    let delete = engagelab.requests().into_iter().find(|request| request.method == "DELETE").unwrap();
    assert_eq!(delete.path, format!("/v1/webhooks/{id}"));
}

#[tokio::test]
async fn delete_of_a_registration_already_gone_succeeds() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Delete", &response, Some("168"), properties(&["deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], "168");
    assert!(answer["Reason"].as_str().unwrap().contains("already gone"), "{answer}");
}

#[tokio::test]
async fn delete_after_a_failed_create_succeeds_without_calling_engagelab() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Delete", &response, Some("not-registered"), properties(&["deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(answer["PhysicalResourceId"], "not-registered");
    assert!(engagelab.requests().is_empty());
}

#[tokio::test]
async fn engagelab_answering_500_fails_the_resource_with_its_status_and_message() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.fail_with(500, json!({"code": 50000, "message": "internal error, try again later"}));
    let registrar = registrar(&engagelab, Some(WEBHOOK_TOKEN));
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "FAILED", &event);
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.contains("500") && reason.contains("internal error, try again later (code 50000)"), "{reason}");
    assert_eq!(
        answer["PhysicalResourceId"], "not-registered",
        "no EngageLab id, so the rollback's Delete calls nobody"
    );
    assert_no_secrets(&response.answers()[0].body);
}

#[tokio::test]
async fn failed_update_and_delete_keep_the_physical_id() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.fail_with(503, json!({"message": "maintenance"}));
    let registrar = registrar(&engagelab, None);
    for request_type in ["Update", "Delete"] {
        let response = ResponseUrl::start().await;
        let event = request(request_type, &response, Some("170"), properties(&["deliver"], None));

        let answer = handle(&registrar, &event, &response).await;

        assert_answer(&answer, "FAILED", &event);
        assert_eq!(answer["PhysicalResourceId"], "170", "{request_type}");
        assert!(answer["Reason"].as_str().unwrap().contains("503 Service Unavailable: maintenance"), "{answer}");
    }
}

#[tokio::test]
async fn an_error_quoting_the_url_does_not_leak_the_token_or_key() {
    let engagelab = FakeEngageLab::start().await;
    let quoted = format!("url {CALLBACK_URL}?token={ENCODED_TOKEN} rejected for {API_KEY} ({WEBHOOK_TOKEN})");
    engagelab.fail_with(400, json!({"code": 40003, "message": quoted}));
    let registrar = registrar(&engagelab, Some(WEBHOOK_TOKEN));
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "FAILED", &event);
    assert!(answer["Reason"].as_str().unwrap().contains("token=<redacted>"), "{answer}");
    assert_no_secrets(&response.answers()[0].body);
}

#[tokio::test]
async fn engagelab_timing_out_fails_the_resource_before_the_lambda_deadline() {
    let engagelab = FakeEngageLab::start().await;
    engagelab.delay(Duration::from_secs(20));
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver"], None));
    let deadline = deadline_in(RESPONSE_RESERVE + Duration::from_secs(1));
    let started = Instant::now();

    registrar.handle(event.clone(), deadline).await.expect("CloudFormation is answered");

    assert!(SystemTime::now() < deadline, "answered {:?} after the start, past the deadline", started.elapsed());
    let answer = response.only_answer();
    assert_answer(&answer, "FAILED", &event);
    assert!(answer["Reason"].as_str().unwrap().contains("did not finish"), "{answer}");
}

#[tokio::test]
async fn wrong_properties_fail_with_a_reason_naming_them() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver", "bounce"], None));

    let answer = handle(&registrar, &event, &response).await;

    assert_answer(&answer, "FAILED", &event);
    assert!(answer["Reason"].as_str().unwrap().contains("\"bounce\""), "{answer}");
    assert!(engagelab.requests().is_empty());
}

#[tokio::test]
async fn an_unreadable_request_with_a_response_url_is_answered_failed() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::start().await;
    let event = json!({"RequestType": "Rename", "ResponseURL": response.url, "StackId": "stack", "RequestId": "r1", "LogicalResourceId": "EngageLabRegistration"});

    registrar.handle(event, deadline_in(Duration::from_secs(30))).await.expect("CloudFormation is answered");

    let answer = response.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["RequestId"], "r1");
    assert!(registrar.handle(json!({"hello": "world"}), deadline_in(Duration::from_secs(30))).await.is_err());
}

#[tokio::test]
async fn a_response_url_refusing_the_answer_is_an_error_so_lambda_retries() {
    let engagelab = FakeEngageLab::start().await;
    let registrar = registrar(&engagelab, None);
    let response = ResponseUrl::answering(403).await;
    let event = request("Delete", &response, Some("not-registered"), properties(&["deliver"], None));

    let error = registrar.handle(event, deadline_in(Duration::from_secs(30))).await.unwrap_err();

    assert!(error.to_string().contains("403"), "{error}");
    assert_eq!(response.answers().len(), 1);
}

/// The EngageLab secret as the stack writes it, with `token`.
fn engagelab_secret(token: &str) -> String {
    json!({
        "ENGAGELAB_API_USER": API_USER,
        "ENGAGELAB_API_KEY": API_KEY,
        "ENGAGELAB_WEBHOOK_TOKEN": token,
    })
    .to_string()
}

/// Settings with only the API host in the environment and everything secret in `arn`.
fn settings_with_secret(engagelab: &FakeEngageLab, arn: &str) -> Settings {
    let base_url = engagelab.env()("ENGAGELAB_API_BASE_URL");
    let env = move |name: &str| if name == "ENGAGELAB_API_BASE_URL" { base_url.clone() } else { None };
    let client = support::secrets_client_for(&support::LocalDynamo::shared().endpoint);
    Settings::with_secret(env, client, arn, Duration::from_secs(1))
}

async fn new_secret(name: &str, text: String) -> String {
    let client = support::secrets_client_for(&support::LocalDynamo::shared().endpoint);
    let name = format!("{name}-{}", std::process::id());
    let output = client.create_secret().name(name).secret_string(text).send().await.expect("moto creates it");
    output.arn().expect("a created secret has an ARN").to_owned()
}

#[tokio::test]
async fn the_account_and_token_come_from_the_secret_and_a_rotated_token_is_registered_after_the_ttl() {
    let engagelab = FakeEngageLab::start().await;
    let arn = new_secret("registration", engagelab_secret("first-token,older-token")).await;
    let registrar = Registrar::from_settings(settings_with_secret(&engagelab, &arn)).await.expect("a complete secret");

    let response = ResponseUrl::start().await;
    let event = request("Create", &response, None, properties(&["deliver"], None));
    let answer = handle(&*registrar.current().await, &event, &response).await;
    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(engagelab.webhooks()[0]["url"], format!("{CALLBACK_URL}?token=first-token"));

    let client = support::secrets_client_for(&support::LocalDynamo::shared().endpoint);
    client.put_secret_value().secret_id(&arn).secret_string(engagelab_secret("second-token")).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = ResponseUrl::start().await;
    let id = answer["PhysicalResourceId"].as_str().unwrap().to_owned();
    let event = request("Update", &response, Some(&id), properties(&["deliver"], None));
    let answer = handle(&*registrar.current().await, &event, &response).await;
    assert_answer(&answer, "SUCCESS", &event);
    assert_eq!(engagelab.webhooks()[0]["url"], format!("{CALLBACK_URL}?token=second-token"));
    assert!(!answer.to_string().contains("second-token"), "{answer}");
}

#[tokio::test]
async fn a_secret_without_the_api_key_fails_the_start_naming_it() {
    let engagelab = FakeEngageLab::start().await;
    let text = json!({ "ENGAGELAB_API_USER": API_USER, "ENGAGELAB_WEBHOOK_TOKEN": "some-token" }).to_string();
    let arn = new_secret("registration-no-key", text).await;
    let error = Registrar::from_settings(settings_with_secret(&engagelab, &arn)).await.err().unwrap().to_string();
    assert!(error.contains("has no ENGAGELAB_API_KEY") && !error.contains("some-token"), "{error}");
}
