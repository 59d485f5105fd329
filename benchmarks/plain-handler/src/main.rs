//! An EngageLab callback handler written the way the crates' documentation shows: the same
//! signature check as `engagelab-webhook`, the body read into a `serde_json::Value`, and one
//! conditional PutItem per callback.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::{run, service_fn, tracing, Body, Error, Request, Response};
use serde_json::{json, Value};
use sha2::Sha256;

/// EngageLab's own tolerance for a callback's clock.
const TOLERANCE_SECS: u64 = 300;

struct Handler {
    client: Client,
    table: String,
    app_key: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let handler = Handler {
        client: Client::new(&config),
        table: std::env::var("EVENTS_TABLE")?,
        app_key: std::env::var("ENGAGELAB_APP_KEY")?,
    };
    run(service_fn(|request| handler.handle(request))).await
}

impl Handler {
    async fn handle(&self, request: Request) -> Result<Response<Body>, Error> {
        if !self.signed(&request) {
            return answer(401, json!({ "error": "unauthorized" }));
        }
        let Ok(callback) = serde_json::from_slice::<Value>(request.body()) else {
            return answer(400, json!({ "error": "body is not JSON" }));
        };
        let event_type = callback["status"]["message_status"]
            .as_str()
            .or_else(|| callback["response"]["event"].as_str());
        let (Some(message_id), Some(recipient), Some(event_type)) =
            (callback["message_id"].as_str(), callback["to"].as_str(), event_type)
        else {
            return answer(400, json!({ "error": "not an EngageLab callback" }));
        };
        let itime = callback["itime"].as_i64().unwrap_or_default();
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("MSG#engagelab#{message_id}")))
            .item("sk", AttributeValue::S(format!("EVT#{itime}#{event_type}")))
            .item("recipient", AttributeValue::S(recipient.to_lowercase()))
            .item("event_type", AttributeValue::S(event_type.to_owned()))
            .item("raw", AttributeValue::S(String::from_utf8_lossy(request.body()).into_owned()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match outcome {
            Ok(_) => answer(200, json!({ "stored": 1, "duplicates": 0 })),
            Err(SdkError::ServiceError(failure))
                if matches!(failure.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                answer(200, json!({ "stored": 0, "duplicates": 1 }))
            }
            Err(error) => {
                tracing::error!(%error, "put_item failed");
                answer(500, json!({ "error": "storage unavailable" }))
            }
        }
    }

    /// `x-webhook-signature` is the hex HMAC-SHA256 of `x-webhook-timestamp` keyed with the
    /// app key, and the timestamp must be recent.
    fn signed(&self, request: &Request) -> bool {
        let header = |name| request.headers().get(name).and_then(|value| value.to_str().ok());
        let (Some("email"), Some(timestamp), Some(signature)) =
            (header("x-webhook-appkey"), header("x-webhook-timestamp"), header("x-webhook-signature"))
        else {
            return false;
        };
        let Ok(sent) = timestamp.parse::<u64>() else { return false };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        if now.abs_diff(sent) > TOLERANCE_SECS {
            return false;
        }
        let Ok(signature) = hex::decode(signature) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.app_key.as_bytes()).expect("HMAC takes a key of any length");
        mac.update(timestamp.as_bytes());
        mac.verify_slice(&signature).is_ok()
    }
}

fn answer(status: u16, body: Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))?)
}
