//! A real DynamoDB API for the tests: one moto server per test process, one fresh table per
//! test, created from `template.yaml` so the tests exercise the deployed key schema. The same
//! server answers S3 too (overflow objects), with one fresh bucket per test that needs one.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;
use mailhooks::store::raw_object::RawObjects;
use mailhooks::store::DynamoStore;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("shared/ has a parent").to_path_buf()
}

/// A tool from the repository's virtualenv (made by `scripts/test`), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let local = repo_root().join(".venv/bin").join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

pub struct LocalDynamo {
    pub endpoint: String,
    port: u16,
    server: Mutex<Option<Child>>,
}

static SERVER: OnceLock<LocalDynamo> = OnceLock::new();
static TABLES: AtomicUsize = AtomicUsize::new(0);
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl LocalDynamo {
    /// The process-wide server, started on first use.
    pub fn shared() -> &'static LocalDynamo {
        SERVER.get_or_init(|| {
            let port = free_port();
            let local = LocalDynamo {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
                server: Mutex::new(None),
            };
            local.start();
            local
        })
    }

    /// Starts moto under a guard that stops it when this test process ends: the guard exits
    /// when its stdin, held by this process, closes.
    fn start(&self) {
        let guard = "import subprocess, sys\n\
                     server = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
                     sys.stdin.read()\n\
                     server.terminate()\n\
                     server.wait()\n";
        let child = Command::new(tool("python3"))
            .args(["-c", guard])
            .arg(tool("python3"))
            .arg(repo_root().join("scripts/moto-server"))
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3 and moto_server must be installed: run scripts/test, which installs them");
        *self.server.lock().unwrap() = Some(child);
        wait_until_listening(self.port);
    }

    /// Simulates an outage: the server goes away until [`LocalDynamo::restart`].
    pub fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "moto did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port (with empty state, like a restarted emulator).
    pub fn restart(&self) {
        self.start();
    }

    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }

    /// A new, empty events table created from `template.yaml`.
    pub fn new_table(&self) -> String {
        self.new_tables(1).remove(0)
    }

    /// Several new tables, created in one run of the script (it starts Python once).
    pub fn new_tables(&self, count: usize) -> Vec<String> {
        let names: Vec<String> = (0..count)
            .map(|_| format!("events-{}-{}", std::process::id(), TABLES.fetch_add(1, Ordering::SeqCst)))
            .collect();
        let mut command = Command::new(tool("python3"));
        command.arg(repo_root().join("scripts/create-local-table.py")).args(["--endpoint-url", &self.endpoint]);
        for name in &names {
            command.args(["--table-name", name]);
        }
        let status = command.stdout(Stdio::null()).status().expect("python3 runs");
        assert!(status.success(), "creating tables {names:?} from template.yaml failed");
        names
    }

    /// A new table holding every webhook sample of `events/<provider>/`, each posted through its
    /// provider's receiver as the function receives it: what the read samples of `events/` read.
    pub async fn table_with_every_sample(&self) -> String {
        let table = self.new_table();
        for sample in SampleEvent::all() {
            let receiver =
                mailhooks::http::WebhookReceiver::from_env(sample.provider(), &sample_env, self.store(&table, 0))
                    .expect("sample configuration is valid");
            let response = receiver.handle(sample.request()).await.expect("handlers always answer");
            let (status, body) = status_and_json(response);
            assert_eq!(status, 200, "{}: {body}", sample.name());
        }
        table
    }

    pub fn store(&self, table: &str, retention_days: u32) -> DynamoStore {
        DynamoStore::new(self.client(), table, retention_days)
    }

    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        s3_client_for(&self.endpoint)
    }

    /// A new, empty overflow bucket, created as `scripts/local` creates its own (encrypted,
    /// public access blocked, as `template.yaml`'s RawBucket).
    pub fn new_bucket(&self) -> String {
        let name = format!("raw-{}-{}", std::process::id(), BUCKETS.fetch_add(1, Ordering::SeqCst));
        let status = Command::new(tool("python3"))
            .arg(repo_root().join("scripts/create-local-table.py"))
            .args(["--endpoint-url", &self.endpoint, "--bucket-name", &name])
            .stdout(Stdio::null())
            .status()
            .expect("python3 runs");
        assert!(status.success(), "creating bucket {name} failed");
        name
    }

    pub fn raw_objects(&self, bucket: &str) -> RawObjects {
        RawObjects::new(self.s3_client(), bucket)
    }
}

/// An S3 client for a local endpoint: path-style addressing (as `RawObjects::from_env` chooses
/// when an endpoint is overridden) and the handlers' S3 timeouts.
pub fn s3_client_for(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .timeout_config(mailhooks::store::raw_object::s3_timeouts())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// An SDK client for a local endpoint, with the short timeouts the handlers use.
pub fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A Secrets Manager client for a local endpoint, with short timeouts so an outage shows fast.
pub fn secrets_client_for(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{timeout::TimeoutConfig, BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().unwrap().port()
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return,
            Err(error) if error.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(error) => panic!("moto server did not start on port {port}: {error}"),
        }
    }
}

/// The local test secrets that `events/` samples are signed with (also used by `scripts/local`).
pub const ENGAGELAB_TEST_KEY: &str = "local-engagelab-key";
pub const SENDPOST_TEST_KEY: &str = "local-sendpost-key";
pub const TENCENT_SES_TEST_TOKEN: &str = "local-tencent-token";

pub fn sample_env(name: &str) -> Option<String> {
    let value = match name {
        "ENGAGELAB_APP_KEY" => ENGAGELAB_TEST_KEY,
        "SENDPOST_API_KEY" => SENDPOST_TEST_KEY,
        "TENCENT_SES_WEBHOOK_TOKEN" => TENCENT_SES_TEST_TOKEN,
        _ => return None,
    };
    Some(value.to_owned())
}

fn hmac_hex(key: &str, message: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// One API Gateway (HTTP API, payload 2.0) event file of `events/<provider>/`.
#[derive(Clone)]
pub struct SampleEvent {
    name: String,
    provider: &'static mailhooks::receive::providers::Provider,
    event: serde_json::Value,
}

impl SampleEvent {
    /// Every webhook sample, in a stable order.
    pub fn all() -> Vec<SampleEvent> {
        let mut samples = Vec::new();
        for provider in mailhooks::receive::providers::ALL {
            let directory = repo_root().join("events").join(provider.name);
            let Ok(entries) = std::fs::read_dir(&directory) else { continue };
            let mut files: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).collect();
            files.sort();
            for file in files.into_iter().filter(|file| file.extension().is_some_and(|ext| ext == "json")) {
                let stem = file.file_stem().unwrap().to_string_lossy();
                samples.push(SampleEvent::load(provider, &format!("{}/{stem}", provider.name)));
            }
        }
        samples
    }

    /// `named("engagelab/delivered")` is `events/engagelab/delivered.json`.
    pub fn named(name: &str) -> SampleEvent {
        let provider_name = name.split('/').next().unwrap();
        let provider = mailhooks::receive::providers::by_name(provider_name).expect("a registered provider");
        SampleEvent::load(provider, name)
    }

    /// The provider's callback as a Lambda function URL delivers it: `events/function-url/`.
    pub fn function_url(provider: &'static mailhooks::receive::providers::Provider) -> SampleEvent {
        SampleEvent::load(provider, &format!("function-url/{}", provider.name))
    }

    fn load(provider: &'static mailhooks::receive::providers::Provider, name: &str) -> SampleEvent {
        let path = repo_root().join("events").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let event = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        SampleEvent { name: name.to_owned(), provider, event }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn provider(&self) -> &'static mailhooks::receive::providers::Provider {
        self.provider
    }

    pub fn body(&self) -> &str {
        self.event["body"].as_str().expect("sample events carry a text body")
    }

    /// The sample as sent now: EngageLab's timestamp signature is renewed, since a fixed
    /// timestamp goes stale.
    pub fn request(&self) -> lambda_http::Request {
        self.signed_request(self.body())
    }

    /// The sample with another body, signed for it as the provider would.
    pub fn signed_request(&self, body: &str) -> lambda_http::Request {
        Self::request_from(&self.signed_event(body))
    }

    /// The API Gateway event of [`SampleEvent::signed_request`], to send the very same request
    /// more than once.
    pub fn signed_event(&self, body: &str) -> serde_json::Value {
        let mut event = self.event.clone();
        event["body"] = body.into();
        let headers = event["headers"].as_object_mut().expect("sample events have headers");
        match self.provider.name {
            "engagelab" => {
                let timestamp = chrono::Utc::now().timestamp().to_string();
                headers.insert("x-webhook-signature".into(), hmac_hex(ENGAGELAB_TEST_KEY, timestamp.as_bytes()).into());
                headers.insert("x-webhook-timestamp".into(), timestamp.into());
            }
            "sendpost" => {
                headers.insert("x-sendpost-signature".into(), hmac_hex(SENDPOST_TEST_KEY, body.as_bytes()).into());
            }
            _ => {}
        }
        event
    }

    /// The same signed request as API Gateway's REST API (payload 1.0) delivers it.
    pub fn as_rest_api(&self) -> lambda_http::Request {
        let v2 = self.signed_event(self.body());
        let path = v2["rawPath"].clone();
        let event = serde_json::json!({
            "resource": path,
            "path": path,
            "httpMethod": "POST",
            "headers": v2["headers"],
            "queryStringParameters": v2.get("queryStringParameters").cloned().unwrap_or_else(|| serde_json::json!({})),
            "requestContext": {
                "resourcePath": path, "httpMethod": "POST", "path": path, "stage": "prod",
                "requestId": "rest-sample", "accountId": "123456789012", "apiId": "local",
                "identity": {"sourceIp": "127.0.0.1"}
            },
            "body": v2["body"],
            "isBase64Encoded": false
        });
        Self::request_from(&event)
    }

    /// The same signed request as an Application Load Balancer (Tencent's port 8080) delivers it.
    pub fn as_alb(&self) -> lambda_http::Request {
        let v2 = self.signed_event(self.body());
        let event = serde_json::json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mailhooks/0123456789abcdef"}},
            "httpMethod": "POST",
            "path": v2["rawPath"],
            "queryStringParameters": v2.get("queryStringParameters").cloned().unwrap_or_else(|| serde_json::json!({})),
            "headers": v2["headers"],
            "body": v2["body"],
            "isBase64Encoded": false
        });
        Self::request_from(&event)
    }

    /// The signed request with its body base64-encoded, as API Gateway sends binary media.
    pub fn base64_encoded(&self) -> lambda_http::Request {
        use base64::Engine;
        let mut event = self.signed_event(self.body());
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.body());
        event["body"] = encoded.into();
        event["isBase64Encoded"] = true.into();
        Self::request_from(&event)
    }

    /// The sample with another body but its original headers (a tampered request).
    pub fn with_body(&self, body: &str) -> lambda_http::Request {
        let mut event = self.event.clone();
        event["body"] = body.into();
        Self::request_from(&event)
    }

    fn request_from(event: &serde_json::Value) -> lambda_http::Request {
        mailhooks::http_event::request_from_str(&event.to_string()).expect("a valid API Gateway event")
    }
}

/// A TCP proxy in front of the local DynamoDB (and S3) that can be taken down, cutting open connections,
/// and brought back: an outage without losing the emulator's state.
pub struct FaultyProxy {
    port: u16,
    down: tokio::sync::watch::Sender<bool>,
}

impl FaultyProxy {
    pub async fn start(upstream: &LocalDynamo) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, _) = tokio::sync::watch::channel(false);
        let watcher = down.clone();
        let upstream_port = upstream.port;
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut outage = watcher.subscribe();
                if *outage.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = outage.wait_for(|is_down| *is_down) => {}
                    }
                });
            }
        });
        FaultyProxy { port, down }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// A handler's answer: its status and JSON body.
pub fn status_and_json(response: lambda_http::Response<lambda_http::Body>) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).expect("responses are JSON"),
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

/// An API Gateway HTTP API (payload 2.0) event for `method path?raw_query`, as a function
/// receives it, from the documentation address 203.0.113.9.
pub fn http_api_event(method: &str, path: &str, raw_query: &str, headers: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "tests"},
            "requestId": "test", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000", "timeEpoch": 1_700_000_000_000_i64
        },
        "isBase64Encoded": false
    })
}

pub fn request_from_event(event: &serde_json::Value) -> lambda_http::Request {
    mailhooks::http_event::request_from_str(&event.to_string()).expect("a valid API Gateway event")
}

thread_local! {
    static THREAD_LOGS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A `tracing` writer into the calling thread's buffer.
struct ThreadLog;

impl std::io::Write for ThreadLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        THREAD_LOGS.with(|logs| logs.borrow_mut().extend_from_slice(bytes));
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines a test's own thread writes from now on. Each test runs its handlers on its own
/// thread (a current-thread runtime), so it reads only its own lines, whatever runs alongside.
/// The subscriber is the process-wide default, installed by the first capture of the test
/// binary: one set for a single thread would race with tests on other threads over which log
/// statements are enabled, and lose lines.
pub struct ThreadLogs {
    start: usize,
}

impl ThreadLogs {
    pub fn capture(level: tracing::Level, json: bool) -> ThreadLogs {
        static SET: std::sync::Once = std::sync::Once::new();
        SET.call_once(|| {
            let builder = tracing_subscriber::fmt().with_writer(|| ThreadLog).with_max_level(level);
            let installed = if json {
                tracing::subscriber::set_global_default(builder.json().finish())
            } else {
                tracing::subscriber::set_global_default(builder.finish())
            };
            installed.expect("one log subscriber per test binary");
        });
        ThreadLogs { start: THREAD_LOGS.with(|logs| logs.borrow().len()) }
    }

    pub fn text(&self) -> String {
        THREAD_LOGS.with(|logs| String::from_utf8_lossy(&logs.borrow()[self.start..]).into_owned())
    }
}
