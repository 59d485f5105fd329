//! The one HTTP client for calls mailhooks makes itself: EngageLab's webhooks API and
//! CloudFormation's response URL.
//!
//! It runs on the TLS stack the AWS SDK already links (rustls with aws-lc-rs, the system's
//! root certificates), so no second crypto library enters the binaries. Every exchange is
//! bounded by a timeout that covers connecting, sending and reading the whole answer.

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A TCP connection that takes longer than this is not going to answer in time anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no complete answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
}

/// A status and the whole body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct HttpsClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpsClient {
    /// Fails only when the system has no usable root certificates.
    pub fn new() -> std::io::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // Plain http is allowed by the connector because callers decide which URLs are
        // acceptable: `engagelab_api::BaseUrl` admits it only for loopback test servers.
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpsClient { client: Client::builder(TokioExecutor::new()).build(https) })
    }

    pub async fn send(&self, request: Request<Full<Bytes>>, timeout: Duration) -> Result<Answer, TransportError> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| describe(&error))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|error| describe(&error))?.to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| TransportError::Timeout(timeout))?
    }
}

/// hyper's errors say little at the top ("client error (Connect)"); the cause is in the chain.
fn describe(error: &(dyn std::error::Error + 'static)) -> TransportError {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    TransportError::Failed(text)
}
