//! `events-publisher` against a local AWS (moto): events posted through the webhook handlers
//! are read back from the table's DynamoDB stream, handed to the publisher as Lambda hands
//! them over, and must reach an SQS queue behind an EventBridge rule exactly once each.
//! Refusals and outages use small local endpoints speaking EventBridge's wire protocol.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record, ShardIteratorType};
use base64::Engine;
use mailhooks::receive::event::{event_id, Event, EventIdentity, EventType};
use mailhooks::fan_out::{eventbridge_timeouts, Publisher, StreamBatch, EMAIL_EVENT, SOURCE, SUPPRESSION_CHANGED};
use mailhooks::http::WebhookReceiver;
use mailhooks::store::EventStore;
use mailhooks::read::suppressions::SuppressionList;
use serde_json::{json, Map, Value};
use support::{LocalDynamo, SampleEvent};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The example rule of the fan-out documentation: every Tencent SES bounce.
const TENCENT_BOUNCES: &str = r#"{"source": ["mailhooks"], "detail-type": ["Email Event"],
    "detail": {"provider": ["tencent_ses"], "event_type": ["bounced"]}}"#;

static NAMES: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), NAMES.fetch_add(1, Ordering::SeqCst))
}

fn eventbridge_client(endpoint: &str) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .timeout_config(eventbridge_timeouts())
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

fn streams_client(endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

/// A fresh table with its stream on (as `PublishEvents=true` makes it), a bus with a rule
/// sending everything from `mailhooks` to one queue, and the documentation's example rule
/// sending Tencent SES bounces to another.
struct Stack {
    table: String,
    bus: String,
    stream: Stream,
    everything: String,
    tencent_bounces: String,
    sqs: aws_sdk_sqs::Client,
}

impl Stack {
    async fn new() -> Stack {
        let local = LocalDynamo::shared();
        let table = local.new_table();
        let stream = Stream::enable(local, &table).await;
        let events = eventbridge_client(&local.endpoint);
        let sqs = sqs_client(&local.endpoint);
        let bus = unique("bus");
        events.create_event_bus().name(&bus).send().await.expect("bus created");
        let mut queues = Vec::new();
        for pattern in [r#"{"source": ["mailhooks"]}"#, TENCENT_BOUNCES] {
            let name = unique("queue");
            let url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap();
            let arn = attributes.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
            events.put_rule().name(&name).event_bus_name(&bus).event_pattern(pattern).send().await.unwrap();
            let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build().unwrap();
            events.put_targets().rule(&name).event_bus_name(&bus).targets(target).send().await.unwrap();
            queues.push(url);
        }
        let tencent_bounces = queues.pop().unwrap();
        let everything = queues.pop().unwrap();
        Stack { table, bus, stream, everything, tencent_bounces, sqs }
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(eventbridge_client(&LocalDynamo::shared().endpoint), &self.bus)
    }

    /// Posts a sample through its provider's webhook handler, as API Gateway would.
    async fn post(&self, sample: &SampleEvent) {
        let store = LocalDynamo::shared().store(&self.table, 30);
        let receiver = WebhookReceiver::from_env(sample.provider(), &support::sample_env, store).unwrap();
        let response = receiver.handle(sample.request()).await.expect("handlers always answer");
        let (status, body) = support::status_and_json(response);
        assert_eq!(status, 200, "{}: {body}", sample.name());
    }

    /// The events EventBridge delivered to `queue` so far (taken off it), as (detail type, detail).
    async fn delivered(&self, queue: &str) -> Vec<(String, Value)> {
        let events = self.received(queue).await;
        assert!(events.iter().all(|event| event["source"] == SOURCE));
        events
            .into_iter()
            .map(|event| (event["detail-type"].as_str().unwrap().to_owned(), event["detail"].clone()))
            .collect()
    }

    /// The events EventBridge delivered to `queue` so far, taken off it.
    async fn received(&self, queue: &str) -> Vec<Value> {
        let mut received = Vec::new();
        loop {
            let output = self.sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return received;
            }
            for message in messages {
                received.push(serde_json::from_str(message.body().unwrap()).unwrap());
                let receipt = message.receipt_handle().unwrap();
                self.sqs.delete_message().queue_url(queue).receipt_handle(receipt).send().await.unwrap();
            }
        }
    }

    /// Every item of the table, as JSON.
    async fn items(&self) -> Vec<Map<String, Value>> {
        let output = LocalDynamo::shared().client().scan().table_name(&self.table).send().await.unwrap();
        let mut items = Vec::new();
        for mut item in output.items.unwrap_or_default() {
            // Compressed raw is binary, which has no JSON form; it is never published.
            item.remove("raw");
            items.push(serde_dynamo::from_item(item).unwrap());
        }
        items
    }
}

fn of_type<'a>(delivered: &'a [(String, Value)], detail_type: &str) -> Vec<&'a Value> {
    delivered.iter().filter(|(kind, _)| kind == detail_type).map(|(_, detail)| detail).collect()
}

/// The table's DynamoDB stream, read as Lambda reads it.
struct Stream {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    iterator: String,
}

impl Stream {
    async fn enable(local: &LocalDynamo, table: &str) -> Stream {
        use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
        let specification = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
            .build()
            .unwrap();
        let output =
            local.client().update_table().table_name(table).stream_specification(specification).send().await.unwrap();
        let arn = output.table_description.unwrap().latest_stream_arn.expect("the stream is on");
        let client = streams_client(&local.endpoint);
        let description = client.describe_stream().stream_arn(&arn).send().await.unwrap().stream_description.unwrap();
        let shard = description.shards()[0].shard_id().unwrap().to_owned();
        let iterator = client
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        Stream { client, arn, iterator }
    }

    /// The records written since the last read, in Lambda's stream event form.
    async fn read(&mut self) -> Vec<Value> {
        let output = self.client.get_records().shard_iterator(&self.iterator).limit(1000).send().await.unwrap();
        self.iterator = output.next_shard_iterator.clone().expect("an open shard goes on");
        output.records().iter().map(|record| lambda_record(record, &self.arn)).collect()
    }
}

fn batch(records: &[Value]) -> StreamBatch {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn sequence_numbers(records: &[Value]) -> Vec<String> {
    records.iter().map(|record| record["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned()).collect()
}

fn is_event_insert(record: &Value) -> bool {
    record["eventName"] == "INSERT" && record["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().starts_with("MSG#")
}

fn failures(response: &aws_lambda_events::streams::DynamoDbEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|failure| failure.item_identifier.clone().unwrap()).collect()
}

fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

/// A record as the DynamoDB Streams API answers it, in the JSON of Lambda's stream event.
fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb().unwrap();
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.approximate_creation_date_time().map(|at| at.secs()),
        "Keys": image(change.keys().unwrap()),
        "SequenceNumber": change.sequence_number(),
        "SizeBytes": change.size_bytes(),
        "StreamViewType": change.stream_view_type().map(|view| view.as_str()),
    });
    if let Some(new) = change.new_image() {
        dynamodb["NewImage"] = image(new);
    }
    if let Some(old) = change.old_image() {
        dynamodb["OldImage"] = image(old);
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|name| name.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region(),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    })
}

fn image(attributes: &HashMap<String, StreamValue>) -> Value {
    Value::Object(attributes.iter().map(|(name, value)| (name.clone(), attribute(value))).collect())
}

fn attribute(value: &StreamValue) -> Value {
    let base64 = |blob: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
    };
    match value {
        StreamValue::S(text) => json!({ "S": text }),
        StreamValue::N(number) => json!({ "N": number }),
        StreamValue::B(blob) => json!({ "B": base64(blob) }),
        StreamValue::Bool(flag) => json!({ "BOOL": flag }),
        StreamValue::Null(flag) => json!({ "NULL": flag }),
        StreamValue::Ss(texts) => json!({ "SS": texts }),
        StreamValue::Ns(numbers) => json!({ "NS": numbers }),
        StreamValue::Bs(blobs) => json!({ "BS": blobs.iter().map(base64).collect::<Vec<_>>() }),
        StreamValue::L(values) => json!({ "L": values.iter().map(attribute).collect::<Vec<_>>() }),
        StreamValue::M(map) => json!({ "M": image(map) }),
        other => panic!("an attribute type the tests do not know: {other:?}"),
    }
}

/// The backquoted names of the text of docs/fan-out.md that starts with `start` and ends before
/// `end`: what the documentation promises, read from it rather than copied.
fn documented_names(start: &str, end: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fan-out.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let from = doc.find(start).unwrap_or_else(|| panic!("docs/fan-out.md no longer says {start:?}"));
    let text = &doc[from..];
    let text = &text[..text.find(end).unwrap_or_else(|| panic!("docs/fan-out.md: no {end:?} after {start:?}"))];
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The attributes of an `Email Event`'s detail, as docs/fan-out.md lists them.
fn documented_detail_names() -> Vec<String> {
    let names = documented_names("`event_id`, `provider`", "\n\n");
    assert_eq!(names.len(), 20, "the documented detail attributes were read: {names:?}");
    names
}

/// The rest of an event's item, which docs/fan-out.md says is never published: keys, TTL and
/// the provider's payload.
fn documented_left_out_names() -> Vec<String> {
    let names = documented_names("Nothing else of the item is published", "An attribute added");
    assert_eq!(names.len(), 7, "the documented keys, TTL and payload were read: {names:?}");
    names
}

/// What `Email Event` must publish of an event's item; an attribute the documentation neither
/// publishes nor leaves out fails here, so the list and the items cannot drift apart.
fn documented_detail(item: &Map<String, Value>) -> Value {
    let (published, left_out) = (documented_detail_names(), documented_left_out_names());
    for name in item.keys() {
        assert!(
            published.contains(name) || left_out.contains(name),
            "the item's {name} is neither a documented attribute of the detail nor documented as left out"
        );
    }
    let detail = item.iter().filter(|(name, _)| published.contains(name));
    Value::Object(detail.map(|(name, value)| (name.clone(), value.clone())).collect())
}

#[tokio::test]
async fn every_stored_event_reaches_the_queue_once_with_its_detail() {
    let mut stack = Stack::new().await;
    let samples = SampleEvent::all();
    for sample in &samples {
        stack.post(sample).await;
    }
    let records = stack.stream.read().await;
    let response = stack.publisher().handle(batch(&records), in_a_minute()).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{:?}", failures(&response));

    let items = stack.items().await;
    let events: Vec<&Map<String, Value>> =
        items.iter().filter(|item| item["pk"].as_str().unwrap().starts_with("MSG#")).collect();
    let suppressed: Vec<&Map<String, Value>> =
        items.iter().filter(|item| item.get("suppressed") == Some(&json!(true))).collect();
    assert!(events.len() > 20 && !suppressed.is_empty());
    // Soft bounces counted and triggers added change suppression items without changing
    // whether anyone is suppressed: those records are in the stream and publish nothing.
    assert!(records.len() > events.len() + suppressed.len(), "the stream has writes that publish nothing");

    let delivered = stack.delivered(&stack.everything).await;
    let mut published = of_type(&delivered, EMAIL_EVENT);
    assert_eq!(published.len(), events.len(), "each stored event exactly once");
    published.sort_by_key(|detail| detail["event_id"].as_str().unwrap().to_owned());
    let mut expected: Vec<Value> = events.iter().map(|item| documented_detail(item)).collect();
    expected.sort_by_key(|detail| detail["event_id"].as_str().unwrap().to_owned());
    for (detail, expected) in published.iter().zip(&expected) {
        assert_eq!(*detail, expected);
    }
    let shown: HashSet<&str> =
        published.iter().flat_map(|detail| detail.as_object().unwrap().keys()).map(String::as_str).collect();
    assert!(shown.len() >= 15, "the samples exercise most of the detail's attributes: {shown:?}");

    let changes = of_type(&delivered, SUPPRESSION_CHANGED);
    assert_eq!(changes.len(), suppressed.len(), "one change per recipient suppressed");
    for item in &suppressed {
        let change = changes.iter().find(|change| change["recipient"] == item["recipient"]).expect("published");
        let fields = ["recipient", "reason", "provider", "since"].map(|name| (name.to_owned(), item[name].clone()));
        let mut expected: Map<String, Value> = fields.into_iter().collect();
        expected.insert("suppressed".into(), json!(true));
        assert_eq!(**change, Value::Object(expected));
    }

    // The documentation's example rule: Tencent SES bounces, and nothing else.
    let bounces = stack.delivered(&stack.tencent_bounces).await;
    let expected_bounces =
        events.iter().filter(|item| item["provider"] == "tencent_ses" && item["event_type"] == "bounced").count();
    assert!(expected_bounces >= 2);
    assert_eq!(bounces.len(), expected_bounces);
    assert!(bounces.iter().all(|(_, detail)| detail["provider"] == "tencent_ses" && detail["event_type"] == "bounced"));

    // Every sample again: all duplicates, so nothing new is published. (A payload without a
    // time of its own occurs when received, so its retry is keyed anew: left out here.)
    let now = chrono::Utc::now();
    let timed = samples.iter().filter(|sample| {
        let events = sample.provider().parse(sample.body().as_bytes(), now).unwrap();
        events.iter().all(|event| event.occurred_at != now)
    });
    let mut posted = 0;
    for sample in timed {
        stack.post(sample).await;
        posted += 1;
    }
    assert!(posted > samples.len() / 2);
    let records = stack.stream.read().await;
    assert!(!records.iter().any(is_event_insert), "a duplicate writes no event");
    let response = stack.publisher().handle(batch(&records), in_a_minute()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let again = stack.delivered(&stack.everything).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_suppression_and_its_lift_are_published_as_changes() {
    let mut stack = Stack::new().await;
    stack.post(&SampleEvent::named("sendpost/hard_bounced")).await;
    let records = stack.stream.read().await;
    stack.publisher().handle(batch(&records), in_a_minute()).await.unwrap();
    let delivered = stack.delivered(&stack.everything).await;
    assert_eq!(of_type(&delivered, EMAIL_EVENT).len(), 1);
    let suppressed = of_type(&delivered, SUPPRESSION_CHANGED);
    assert_eq!(suppressed.len(), 1);
    let recipient = suppressed[0]["recipient"].as_str().unwrap().to_owned();
    assert_eq!(suppressed[0]["reason"], "hard_bounce");

    let list = SuppressionList::new(LocalDynamo::shared().client(), &stack.table);
    let lifted_at = chrono::DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z").unwrap().to_utc();
    list.lift(&recipient, "support desk", lifted_at).await.unwrap().expect("it was suppressed");
    let records = stack.stream.read().await;
    assert_eq!(records.len(), 1, "the lift is one write");
    let response = stack.publisher().handle(batch(&records), in_a_minute()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let delivered = stack.delivered(&stack.everything).await;
    assert_eq!(
        delivered,
        [(
            SUPPRESSION_CHANGED.to_owned(),
            json!({
                "recipient": recipient, "suppressed": false, "reason": "hard_bounce", "provider": "sendpost",
                "since": suppressed[0]["since"], "lifted_at": "2024-06-01T12:00:00.000Z"
            })
        )]
    );
}

/// A local EventBridge endpoint: answers PutEvents (JSON 1.1 over HTTP/1.1, as the SDK sends
/// it) with an entry refused whenever `refuse(detail, times this detail was sent)` says so, and
/// keeps the details it accepted.
struct RefusingEventBridge {
    endpoint: String,
    accepted: Arc<Mutex<Vec<Value>>>,
}

impl RefusingEventBridge {
    async fn start(refuse: impl Fn(&Value, usize) -> bool + Send + Sync + 'static) -> RefusingEventBridge {
        let refuse = Arc::new(refuse);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let kept = accepted.clone();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                let (accepted, seen, refuse) = (kept.clone(), seen.clone(), refuse.clone());
                tokio::spawn(async move {
                    let (reader, mut writer) = connection.into_split();
                    let mut reader = BufReader::new(reader);
                    // One connection carries request after request.
                    while let Some(body) = read_request(&mut reader).await {
                        let request: Value = serde_json::from_slice(&body).unwrap();
                        let mut answers = Vec::new();
                        for entry in request["Entries"].as_array().unwrap() {
                            let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
                            let times = {
                                let mut seen = seen.lock().unwrap();
                                let count = seen.entry(detail.to_string()).or_default();
                                *count += 1;
                                *count
                            };
                            if refuse(&detail, times) {
                                answers.push(json!({"ErrorCode": "InternalFailure", "ErrorMessage": "refused"}));
                            } else {
                                accepted.lock().unwrap().push(detail);
                                answers.push(json!({"EventId": format!("fake-{times}")}));
                            }
                        }
                        let failed = answers.iter().filter(|answer| answer.get("ErrorCode").is_some()).count();
                        let answer = json!({"FailedEntryCount": failed, "Entries": answers}).to_string();
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
                             x-amzn-requestid: fake\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if writer.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RefusingEventBridge { endpoint, accepted }
    }
}

/// One HTTP/1.1 request's body; `None` when the connection closes.
async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Events of several messages, stored, and their records from the stream.
async fn stored_event_records(stack: &mut Stack) -> Vec<Value> {
    for name in [
        "sendpost/delivered",
        "sendpost/opened",
        "sendpost/clicked",
        "tencent_ses/batch",
        "engagelab/target_two_recipients",
    ] {
        stack.post(&SampleEvent::named(name)).await;
    }
    let records: Vec<Value> = stack.stream.read().await.into_iter().filter(is_event_insert).collect();
    assert!(records.len() >= 6);
    records
}

fn event_id_of(record: &Value) -> &str {
    record["dynamodb"]["NewImage"]["event_id"]["S"].as_str().unwrap()
}

#[tokio::test]
async fn entries_eventbridge_refuses_are_tried_again_then_reported_as_failures() {
    let mut stack = Stack::new().await;
    let records = stored_event_records(&mut stack).await;
    // Refused on every try: the first and the fourth record's events. Refused once: the second's.
    let always = [event_id_of(&records[0]).to_owned(), event_id_of(&records[3]).to_owned()];
    let once = event_id_of(&records[1]).to_owned();
    let endpoint = RefusingEventBridge::start(move |detail, times| {
        let id = detail["event_id"].as_str().unwrap();
        always.iter().any(|refused| refused == id) || (id == once && times == 1)
    })
    .await;
    let publisher = Publisher::new(eventbridge_client(&endpoint.endpoint), "bus");

    let response = publisher.handle(batch(&records), in_a_minute()).await.unwrap();
    let all = sequence_numbers(&records);
    assert_eq!(failures(&response), [all[0].clone(), all[3].clone()]);
    let accepted: HashSet<String> = endpoint
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|detail| detail["event_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: HashSet<String> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| ![0, 3].contains(i))
        .map(|(_, record)| event_id_of(record).to_owned())
        .collect();
    assert_eq!(accepted, expected, "the entry refused once went through on a later try");
    assert_eq!(endpoint.accepted.lock().unwrap().len(), records.len() - 2, "and nothing twice");
}

#[tokio::test]
async fn an_unreachable_eventbridge_fails_the_batch_in_time_and_loses_nothing() {
    let mut stack = Stack::new().await;
    let records = stored_event_records(&mut stack).await;
    // Accepts connections (the kernel does, for a listener never accepting) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let publisher = Publisher::new(eventbridge_client(&format!("http://{}", silent.local_addr().unwrap())), &stack.bus);

    let started = Instant::now();
    let deadline = SystemTime::now() + Duration::from_secs(3);
    let response = publisher.handle(batch(&records), deadline).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
    assert_eq!(failures(&response), sequence_numbers(&records), "every record is handed back");

    // Lambda's retry of the batch, with EventBridge back, publishes every event.
    let response = stack.publisher().handle(batch(&records), in_a_minute()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(of_type(&stack.delivered(&stack.everything).await, EMAIL_EVENT).len(), records.len());
}

#[tokio::test]
async fn a_malformed_record_is_reported_and_the_others_published() {
    let mut stack = Stack::new().await;
    let mut records = stored_event_records(&mut stack).await;
    let all = sequence_numbers(&records);
    // An event's image without its id, and a record of an attribute type DynamoDB has not.
    records[1]["dynamodb"]["NewImage"].as_object_mut().unwrap().remove("event_id");
    records[2]["dynamodb"]["NewImage"]["subject"] = json!({"Q": "?"});

    let response = stack.publisher().handle(batch(&records), in_a_minute()).await.unwrap();
    assert_eq!(failures(&response), [all[1].clone(), all[2].clone()]);
    assert_eq!(of_type(&stack.delivered(&stack.everything).await, EMAIL_EVENT).len(), records.len() - 2);

    // A record without a sequence number cannot be named: the batch fails whole.
    records[0]["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
    assert!(stack.publisher().handle(batch(&records), in_a_minute()).await.is_err());
}

/// The mapping's filter patterns, as `template.yaml` writes them.
fn template_filters() -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  class Loader(yaml.SafeLoader): pass\n\
                  Loader.add_multi_constructor('!', lambda loader, suffix, node: None)\n\
                  template = yaml.load(open(sys.argv[1]), Loader=Loader)\n\
                  mapping = template['Resources']['EventsPublisherStream']['Properties']\n\
                  print(json.dumps([f['Pattern'] for f in mapping['FilterCriteria']['Filters']]))\n";
    let output = std::process::Command::new(support::tool("python3"))
        .args(["-c", script])
        .arg(support::repo_root().join("template.yaml"))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let patterns: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    patterns.iter().map(|pattern| serde_json::from_str(pattern).expect("a filter is JSON")).collect()
}

#[tokio::test]
async fn the_templates_filters_pass_exactly_the_records_the_function_publishes() {
    let mut stack = Stack::new().await;
    for sample in SampleEvent::all() {
        stack.post(&sample).await;
    }
    // A lift, and a new suppression of the same recipient after it.
    let list = SuppressionList::new(LocalDynamo::shared().client(), &stack.table);
    let recipient = "hard@bounce.example";
    let mut complaint = Event::new("sendpost", EventType::Complained, chrono::Utc::now(), chrono::Utc::now(), "{}");
    complaint.event_id = event_id("sendpost", EventIdentity::ProviderId("filters-1"), None);
    complaint.recipient = Some(recipient.to_owned());
    let store = LocalDynamo::shared().store(&stack.table, 0);
    store.put_events(std::slice::from_ref(&complaint)).await.unwrap();
    list.lift(recipient, "support desk", chrono::Utc::now()).await.unwrap().expect("suppressed");
    complaint.event_id = event_id("sendpost", EventIdentity::ProviderId("filters-2"), None);
    store.put_events(&[complaint]).await.unwrap();
    let records = stack.stream.read().await;

    // What the function publishes: the records whose entries an endpoint refusing every entry
    // hands back.
    let refusing = RefusingEventBridge::start(|_, _| true).await;
    let publisher = Publisher::new(eventbridge_client(&refusing.endpoint), "bus");
    let published: HashSet<String> =
        failures(&publisher.handle(batch(&records), in_a_minute()).await.unwrap()).into_iter().collect();

    // What the filters pass, by EventBridge's matching of the same pattern language: each
    // record goes onto the bus as the detail of an entry, behind one rule per filter.
    let local = LocalDynamo::shared();
    let events = eventbridge_client(&local.endpoint);
    let queue = stack.sqs.create_queue().queue_name(unique("filtered")).send().await.unwrap().queue_url.unwrap();
    let queue_arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let filters = template_filters();
    assert_eq!(filters.len(), 4);
    for filter in filters {
        let name = unique("filter");
        let pattern = json!({"source": ["stream"], "detail": filter}).to_string();
        events.put_rule().name(&name).event_bus_name(&stack.bus).event_pattern(pattern).send().await.unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(&queue_arn).build().unwrap();
        events.put_targets().rule(&name).event_bus_name(&stack.bus).targets(target).send().await.unwrap();
    }
    for chunk in records.chunks(10) {
        let entries = chunk.iter().map(|record| {
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("stream")
                .detail_type("record")
                .detail(record.to_string())
                .event_bus_name(&stack.bus)
                .build()
        });
        let output = events.put_events().set_entries(Some(entries.collect())).send().await.unwrap();
        assert_eq!(output.failed_entry_count, 0);
    }
    let passed: HashSet<String> = stack
        .received(&queue)
        .await
        .into_iter()
        .map(|event| event["detail"]["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned())
        .collect();

    let changes = records.iter().filter(|record| !is_event_insert(record)).count();
    assert!(published.len() > changes && published.len() < records.len());
    assert_eq!(passed, published);
}
