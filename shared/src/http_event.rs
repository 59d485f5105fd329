//! How an HTTP function's Lambda event becomes a [`Request`]: API Gateway's payload format
//! 2.0 (an HTTP API or a function URL, the stack's two ingress options) is read first, and any
//! other shape as lambda_http reads it.
//!
//! lambda_http tries the REST API shape before format 2.0, and a format 2.0 event is parsed
//! in full as a REST API event before that attempt fails, so every request the stack delivers
//! was parsed twice. Only the order changes here: the event becomes lambda_http's own
//! [`LambdaRequest`], and its request and response are mapped by lambda_http as before.

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::{self, Diagnostic};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Error, IntoResponse, LambdaEvent, Request, Service};
use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::value::RawValue;

/// The version field of a payload format 2.0 event.
const FORMAT_2_0: &str = "2.0";

/// One HTTP event, in the shape it came in.
#[derive(Debug)]
pub struct HttpEvent(LambdaRequest);

impl<'de> Deserialize<'de> for HttpEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        if let Ok(event) = serde_json::from_str::<ApiGatewayV2httpRequest>(raw.get()) {
            // An event that has format 2.0's fields without saying it is format 2.0 is read
            // in lambda_http's order, as before.
            if event.version.as_deref() == Some(FORMAT_2_0) {
                return Ok(HttpEvent(LambdaRequest::ApiGatewayV2(event)));
            }
        }
        serde_json::from_str(raw.get()).map(HttpEvent).map_err(D::Error::custom)
    }
}

impl From<HttpEvent> for Request {
    fn from(event: HttpEvent) -> Self {
        event.0.into()
    }
}

/// The request a Lambda event's JSON text carries, as a function receives it.
pub fn request_from_str(event: &str) -> Result<Request, serde_json::Error> {
    serde_json::from_str::<HttpEvent>(event).map(Request::from)
}

/// `lambda_http::run` with the events read as [`HttpEvent`]s: the same requests, responses
/// and errors, with format 2.0 parsed once.
pub async fn run<'a, S, R, E>(handler: S) -> Result<(), Error>
where
    S: Service<Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: IntoResponse,
    E: std::fmt::Debug + Into<Diagnostic>,
{
    // lambda_http's adapter is public, though left out of its docs, and its own tests wrap it
    // in other services as here; it maps the request and the response as `lambda_http::run`
    // does, and Cargo.lock holds the version these tests ran against.
    let adapter = Adapter::from(handler)
        .map_request(|event: LambdaEvent<HttpEvent>| LambdaEvent::new(event.payload.0, event.context));
    lambda_runtime::run(adapter).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    use serde_json::json;

    fn format_2_0() -> serde_json::Value {
        json!({
            "version": "2.0",
            "routeKey": "POST /webhooks/engagelab",
            "rawPath": "/webhooks/engagelab",
            "rawQueryString": "token=t",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "http": {"method": "POST", "path": "/webhooks/engagelab", "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "agent"},
                "requestId": "r",
                "routeKey": "POST /webhooks/engagelab",
                "stage": "$default",
                "time": "07/Dec/2026:12:00:00 +0000",
                "timeEpoch": 1796644800000u64
            },
            "body": "{}",
            "isBase64Encoded": false
        })
    }

    fn rest_api() -> serde_json::Value {
        json!({
            "resource": "/webhooks/engagelab",
            "path": "/webhooks/engagelab",
            "httpMethod": "POST",
            "headers": {"content-type": "application/json"},
            "multiValueHeaders": {"content-type": ["application/json"]},
            "queryStringParameters": {"token": "t"},
            "multiValueQueryStringParameters": {"token": ["t"]},
            "requestContext": {
                "accountId": "123456789012",
                "resourceId": "res",
                "stage": "prod",
                "requestId": "r",
                "identity": {"sourceIp": "192.0.2.1"},
                "resourcePath": "/webhooks/engagelab",
                "httpMethod": "POST",
                "apiId": "api",
                "path": "/prod/webhooks/engagelab"
            },
            "body": "{}",
            "isBase64Encoded": false
        })
    }

    fn context(event: &serde_json::Value) -> RequestContext {
        request_from_str(&event.to_string()).unwrap().request_context()
    }

    #[test]
    fn each_shape_reads_as_itself() {
        assert!(matches!(context(&format_2_0()), RequestContext::ApiGatewayV2(_)));
        assert!(matches!(context(&rest_api()), RequestContext::ApiGatewayV1(_)));
        let mut format_1_0 = rest_api();
        format_1_0["version"] = json!("1.0");
        assert!(matches!(context(&format_1_0), RequestContext::ApiGatewayV1(_)));
        // Both shapes in one event and no version: lambda_http's order decides, as before.
        let mut both = rest_api();
        both["requestContext"]["http"] = format_2_0()["requestContext"]["http"].clone();
        assert!(matches!(context(&both), RequestContext::ApiGatewayV1(_)));
        let alb = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1"}},
            "httpMethod": "POST",
            "path": "/webhooks/engagelab",
            "queryStringParameters": {"token": "t"},
            "headers": {"content-type": "application/json"},
            "body": "{}",
            "isBase64Encoded": false
        });
        assert!(matches!(context(&alb), RequestContext::Alb(_)));
    }

    #[test]
    fn a_request_reads_the_same_as_through_lambda_http() {
        for event in [format_2_0(), rest_api()] {
            let ours = request_from_str(&event.to_string()).unwrap();
            let theirs = lambda_http::request::from_str(&event.to_string()).unwrap();
            assert_eq!(ours.method(), theirs.method());
            assert_eq!(ours.uri(), theirs.uri());
            assert_eq!(ours.headers(), theirs.headers());
            assert_eq!(ours.body().as_ref(), theirs.body().as_ref());
            assert_eq!(ours.query_string_parameters(), theirs.query_string_parameters());
        }
    }

    #[test]
    fn an_event_of_no_known_shape_is_refused_as_lambda_http_refuses_it() {
        for text in [r#"{"hello": "world"}"#, r#"{"version": "2.0"}"#, "[]", "3"] {
            let ours = request_from_str(text).err().unwrap().to_string();
            let theirs = lambda_http::request::from_str(text).err().unwrap().to_string();
            assert_eq!(ours, theirs, "{text}");
        }
    }
}
