//! Local stand-ins for the servers the EngageLab registration talks to: EngageLab's webhooks
//! API as EngageLab documents it, and CloudFormation's response URL.
//! Both are plain HTTP/1.1 on a loopback port, one request per connection.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const API_USER: &str = "mailhooks_api_user";
pub const API_KEY: &str = "fake-engagelab-api-key-0123456789";
/// Every event code the API page lists, what EngageLab registers when none is given.
pub const ALL_CODES: [u64; 9] = [1, 3, 4, 5, 10, 11, 12, 18, 32];

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// What a server answers, after an optional delay.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

type Handler = Arc<dyn Fn(Recorded) -> Reply + Send + Sync>;

async fn serve(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Some(request) = read_request(&stream).await {
                    let reply = handler(request);
                    tokio::time::sleep(reply.delay).await;
                    write_reply(stream, reply).await;
                }
            });
        }
    });
    format!("http://{address}")
}

/// Appends what the client sent next to `buffer`; `None` when it closed or failed. A spurious
/// wake-up appends nothing and is still `Some`.
async fn read_more(stream: &TcpStream, chunk: &mut [u8], buffer: &mut Vec<u8>) -> Option<()> {
    stream.readable().await.ok()?;
    match stream.try_read(chunk) {
        Ok(0) => None,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            Some(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Some(()),
        Err(_) => None,
    }
}

async fn read_request(stream: &TcpStream) -> Option<Recorded> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        read_more(stream, &mut chunk, &mut buffer).await?;
    };
    let head = String::from_utf8(buffer[..header_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
    while buffer.len() < header_end + length {
        read_more(stream, &mut chunk, &mut buffer).await?;
    }
    let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), percent_decode(value)))
        .collect();
    Some(Recorded { method, path: path.to_owned(), query, headers, body })
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

async fn write_reply(mut stream: TcpStream, reply: Reply) {
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(reply.body.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Drain what the client may still send so closing does not reset the connection.
    let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut [0u8; 64])).await;
}

#[derive(Default)]
struct State {
    webhooks: Vec<Value>,
    next_id: u64,
    requests: Vec<Recorded>,
    failure: Option<(u16, String)>,
    delay: Duration,
}

/// EngageLab's webhooks API: Basic auth, paging (`offset`, `limit` up to 100, `total`), the
/// `api_user` filter, add / modify (PUT) / delete under `/v1/webhooks`, JSON error answers.
/// Modifying an unknown id answers 404; deleting one answers `{"count": 0}`; a modification
/// that changes nothing answers `{"count": 0}`, as a SQL "rows changed" count would.
#[derive(Clone)]
pub struct FakeEngageLab {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl FakeEngageLab {
    pub async fn start() -> FakeEngageLab {
        let state = Arc::new(Mutex::new(State { next_id: 160, ..State::default() }));
        let shared = state.clone();
        let base_url = serve(Arc::new(move |request| {
            let mut state = shared.lock().unwrap();
            state.requests.push(request.clone());
            let delay = state.delay;
            let (status, body) = match state.failure.clone() {
                Some(failure) => failure,
                None => answer(&mut state, &request),
            };
            Reply { status, body, delay }
        }))
        .await;
        FakeEngageLab { base_url, state }
    }

    /// The environment the registrar and the CLI read, pointing at this server.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> {
        let base_url = self.base_url.clone();
        move |name: &str| match name {
            "ENGAGELAB_API_USER" => Some(API_USER.to_owned()),
            "ENGAGELAB_API_KEY" => Some(API_KEY.to_owned()),
            "ENGAGELAB_API_BASE_URL" => Some(base_url.clone()),
            _ => None,
        }
    }

    /// A registration made beforehand (by hand, or by an earlier deployment); answers its id.
    pub fn seed(&self, url: &str, events: &[u64], api_user: &str) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = state.next_id;
        state.webhooks.push(json!({"id": id, "url": url, "event": events, "api_user": api_user}));
        id
    }

    pub fn webhooks(&self) -> Vec<Value> {
        self.state.lock().unwrap().webhooks.clone()
    }

    pub fn webhook(&self, id: u64) -> Option<Value> {
        self.webhooks().into_iter().find(|webhook| webhook["id"] == id)
    }

    /// Deletes a registration behind the stack's back (as in EngageLab's console).
    pub fn remove(&self, id: u64) {
        self.state.lock().unwrap().webhooks.retain(|webhook| webhook["id"] != id);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every following request is answered with this status and body.
    pub fn fail_with(&self, status: u16, body: Value) {
        self.state.lock().unwrap().failure = Some((status, body.to_string()));
    }

    /// Every following answer comes this late.
    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }
}

fn error(status: u16, code: u32, message: &str) -> (u16, String) {
    (status, json!({"code": code, "message": message}).to_string())
}

fn answer(state: &mut State, request: &Recorded) -> (u16, String) {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{API_USER}:{API_KEY}")));
    if request.headers.get("authorization") != Some(&expected) {
        return error(401, 40101, "invalid api_user or api_key");
    }
    let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
    let id: Option<u64> = request.path.strip_prefix("/v1/webhooks/").and_then(|id| id.parse().ok());
    match (request.method.as_str(), request.path.as_str(), id) {
        ("GET", "/v1/webhooks", _) => {
            let offset: usize = request.query.get("offset").map_or(Ok(0), |value| value.parse()).unwrap_or(usize::MAX);
            let limit: usize = request.query.get("limit").map_or(Ok(100), |value| value.parse()).unwrap_or(usize::MAX);
            if limit > 100 || offset == usize::MAX {
                return error(400, 40001, "limit must be within [0-100] and offset a number");
            }
            let matching: Vec<&Value> = state
                .webhooks
                .iter()
                .filter(|webhook| request.query.get("api_user").is_none_or(|user| webhook["api_user"] == user.as_str()))
                .collect();
            let page: Vec<&Value> = matching.iter().skip(offset).take(limit).copied().collect();
            (200, json!({"result": page, "count": page.len(), "total": matching.len()}).to_string())
        }
        ("POST", "/v1/webhooks", _) => {
            let Some(url) = body["url"].as_str() else {
                return error(400, 40002, "url is required");
            };
            state.next_id += 1;
            let webhook = json!({
                "id": state.next_id,
                "url": url,
                "event": body.get("event").cloned().unwrap_or_else(|| json!(ALL_CODES)),
                "api_user": body.get("api_user").cloned().unwrap_or_else(|| json!("")),
            });
            state.webhooks.push(webhook.clone());
            (200, json!({"result": [webhook]}).to_string())
        }
        ("PUT", _, Some(id)) => {
            let Some(webhook) = state.webhooks.iter_mut().find(|webhook| webhook["id"] == id) else {
                return error(404, 40401, "webhook not found");
            };
            let before = webhook.clone();
            for (field, value) in body.as_object().into_iter().flatten() {
                if ["url", "event", "api_user"].contains(&field.as_str()) {
                    webhook[field] = value.clone();
                }
            }
            (200, json!({"count": u8::from(*webhook != before)}).to_string())
        }
        ("DELETE", _, Some(id)) => {
            let before = state.webhooks.len();
            state.webhooks.retain(|webhook| webhook["id"] != id);
            (200, json!({"count": before - state.webhooks.len()}).to_string())
        }
        ("POST" | "GET", _, Some(_)) => error(405, 40501, "method not allowed"),
        _ => error(404, 40400, "no such API"),
    }
}

/// CloudFormation's presigned response URL: records every answer PUT to it.
#[derive(Clone)]
pub struct ResponseUrl {
    pub url: String,
    answers: Arc<Mutex<Vec<Recorded>>>,
}

impl ResponseUrl {
    pub async fn start() -> ResponseUrl {
        Self::answering(200).await
    }

    /// A response URL that refuses answers with this status (an expired presigned URL: 403).
    pub async fn answering(status: u16) -> ResponseUrl {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let recorded = answers.clone();
        let base = serve(Arc::new(move |request| {
            recorded.lock().unwrap().push(request);
            Reply { status, body: String::new(), delay: Duration::ZERO }
        }))
        .await;
        ResponseUrl { url: format!("{base}/cloudformation-response?X-Amz-Signature=abc"), answers }
    }

    pub fn answers(&self) -> Vec<Recorded> {
        self.answers.lock().unwrap().clone()
    }

    /// The one answer received, as JSON.
    pub fn only_answer(&self) -> Value {
        let answers = self.answers();
        assert_eq!(answers.len(), 1, "CloudFormation must be answered exactly once: {answers:?}");
        assert_eq!(answers[0].method, "PUT");
        serde_json::from_str(&answers[0].body).expect("the answer is JSON")
    }
}
