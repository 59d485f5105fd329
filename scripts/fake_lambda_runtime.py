#!/usr/bin/env python3
"""A local stand-in for the AWS Lambda Runtime API, to measure one function binary.

It implements the four routes a custom runtime uses:

    GET  /2018-06-01/runtime/invocation/next
    POST /2018-06-01/runtime/invocation/<id>/response
    POST /2018-06-01/runtime/invocation/<id>/error
    POST /2018-06-01/runtime/init/error

and spawns the binary itself with the environment Lambda gives a function, so it can time:

  * init: time.monotonic() just before the process is spawned, to the moment its first
    GET .../invocation/next arrives (the process is then killed; repeated --cold-starts times);
  * a run of --invocations API Gateway HTTP API (payload 2.0) requests, each with a different
    body so every one is a real DynamoDB write: each answer must be a 200 (and for a webhook
    {"stored": 1, ...}); for events-publisher, DynamoDB stream batches of
    --records-per-batch newly stored events, each answered with no batch item failure once
    published to EventBridge (EVENT_BUS_NAME, AWS_ENDPOINT_URL_EVENTBRIDGE). The handler
    latency of one invocation is the time from serving /next to receiving its /response. The
    process's peak resident set (VmHWM in
    /proc/<pid>/status) is read after the last answer, before the process is killed;
  * CPU per invocation: the user plus system time of that process, all threads, from the
    rusage it is reaped with (os.wait4) after the last answer, minus that of an idle baseline
    (the same binary started again, never given an event and killed after the same wall time,
    so its init and idle time cancel out), divided by the number of answers.

EngageLab requests are its sent, delivered, open and click callbacks in turn; --requests
sends one function's requests to another binary (the reference handlers in benchmarks/).

Only the Python standard library is used. The result is one JSON object on stdout; progress
and errors go to stderr. The exit status is 0 when the function ran and answered every
request correctly, 1 otherwise (the numbers are still printed).
"""

import argparse
import base64
import collections
import hashlib
import hmac
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

API = "/2018-06-01"
ACCOUNT = "123456789012"

# The documented local test secrets (scripts/make-events.py uses the same ones).
ENGAGELAB_TEST_KEY = "local-engagelab-key"
SENDPOST_TEST_KEY = "local-sendpost-key"
TENCENT_SES_TEST_TOKEN = "local-tencent-token"
EVENTS_API_TEST_TOKEN = "local-events-token"


def hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def api_gateway_event(method, path, headers, body, query, request_number):
    """An API Gateway HTTP API (payload format 2.0) event, as API Gateway sends it."""
    now = time.time()
    raw_query = urllib.parse.urlencode(query) if query else ""
    headers = {
        "host": "measure.execute-api.us-east-1.amazonaws.com",
        "user-agent": "measure-functions",
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **headers,
    }
    if body is not None:
        headers["content-length"] = str(len(body.encode()))
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "measure",
            "domainName": headers["host"],
            "domainPrefix": "measure",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers["user-agent"],
            },
            "requestId": f"measure-{request_number}",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        event["body"] = body
    return event


# One profile per function: the secret its deployment is configured with, and the i-th
# distinct, correctly authenticated request. Bodies follow the providers' documented payloads.


# The four callbacks that make most of an EngageLab sender's traffic, in turn; none of them
# suppresses its recipient, so each request is one conditional write.
ENGAGELAB_MIX = ("sent", "delivered", "open", "click")


def engagelab_request(i, nonce):
    now = time.time()
    message_id = f"{int(now * 1000)}_{nonce}_{i}.measure-inbound"
    kind = ENGAGELAB_MIX[i % len(ENGAGELAB_MIX)]
    details = {"email_id": message_id, "task_id": "-1", "api_user": "measure", "label_id": 0}
    if kind in ("sent", "delivered"):
        outcome = {"status": {"message_status": kind,
                              "status_data": {**details, "message": f"successfully {kind}"}}}
    else:
        client = {"explorer_ver": "101.0.4951", "os_ver": "8", "explorer_name": "Chrome",
                  "ip": "8.219.124.204", "os_name": "Windows"}
        if kind == "click":
            client["url"] = f"https://www.example.com/offer/{i}"
        outcome = {"response": {"event": kind,
                                "response_data": {**details, **client, "message": f"{kind} email"}}}
    body = json.dumps({
        "server": "email",
        "message_id": message_id,
        "from": "newsletter@mail.example.com",
        "subject": f"Measurement message {i}",
        "to": f"r{i}-{nonce}@measure.example.com",
        "itime": int(now * 1000),
        **outcome,
        "custom_args": {"run": nonce, "n": i},
    }, separators=(",", ":"))
    timestamp = str(int(now))
    headers = {
        "content-type": "application/json; charset=utf-8",
        "x-webhook-appkey": "email",
        "x-webhook-timestamp": timestamp,
        "x-webhook-signature": hmac_hex(ENGAGELAB_TEST_KEY, timestamp.encode()),
    }
    return "POST", "/webhooks/engagelab", headers, body, None


def sendpost_request(i, nonce):
    now_ns = time.time_ns()
    message_id = f"measure-{nonce}-{i}"
    recipient = f"r{i}-{nonce}@measure.example.com"
    body = json.dumps({
        "event": {
            "eventID": f"evt-{nonce}-{i}",
            "groups": ["measure"],
            "ipID": 123,
            "ipPoolID": 123,
            "domainID": 123,
            "messageType": "default",
            "messageSubject": f"Measurement message {i}",
            "accountID": 117,
            "subAccountID": 117,
            "messageID": message_id,
            "type": 2,
            "from": "sender@measure.example.com",
            "fromName": "Sender",
            "to": recipient,
            "toName": "Recipient",
            "submittedAt": now_ns,
            "smtpCode": 250,
            "smtpDescription": "250 2.0.0 OK",
            "eventMetadata": {"smtpCode": 250, "smtpDescription": "250 2.0.0 OK", "clickedURL": "", "trackedIP": ""},
        },
        "emailMessage": {
            "messageID": message_id,
            "accountID": 117,
            "subAccountID": 117,
            "from": {"email": "sender@measure.example.com", "name": "Sender"},
            "to": [{"email": recipient, "name": "Recipient", "customFields": {"n": str(i)}}],
            "subject": f"Measurement message {i}",
            "groups": ["measure"],
            "submittedAt": now_ns,
        },
    }, separators=(",", ":"))
    headers = {
        "content-type": "application/json",
        "x-sendpost-signature": hmac_hex(SENDPOST_TEST_KEY, body.encode()),
        "x-sendpost-signature-alg": "hmac-sha256",
        "x-sendpost-webhook-id": "measure",
        "x-sendpost-webhook-attempt": "1",
    }
    return "POST", "/webhooks/sendpost", headers, body, None


def tencent_ses_request(i, nonce):
    now = int(time.time())
    body = json.dumps({
        "event": "delivered",
        "email": f"r{i}-{nonce}@measure.example.com",
        "bulkId": f"qcloudses-measure-{nonce}-{i}",
        "timestamp": now,
        "username": "251200670",
        "from": "sender@measure.example.com",
        "fromDomain": "measure.example.com",
        "templateId": 123456,
        "subject": f"Measurement message {i}",
        "messageId": f"<{nonce}.{i}@measure.example.com>",
        "sentTimestamp": now - 1,
        "eventid": 1,
        "taskId": 5023,
    }, separators=(",", ":"))
    headers = {"content-type": "application/json"}
    return "POST", "/webhooks/tencent-ses", headers, body, {"token": TENCENT_SES_TEST_TOKEN}


def events_api_request(i, nonce):
    headers = {"authorization": f"Bearer {EVENTS_API_TEST_TOKEN}"}
    return "GET", "/events", headers, None, {"recipient": f"r{i}-{nonce}@measure.example.com"}


def suppressions_api_request(i, nonce):
    headers = {"authorization": f"Bearer {EVENTS_API_TEST_TOKEN}"}
    return "GET", f"/suppressions/r{i}-{nonce}@measure.example.com", headers, None, {}


# Records per events-publisher invocation (--records-per-batch): the stream mapping's
# BatchSize in template.yaml, what a busy table hands over.
RECORDS_PER_BATCH = 100


def text(value):
    return {"S": value}


def stream_batch(i, nonce, args):
    """A DynamoDB stream batch as Lambda hands it to events-publisher: the INSERTs of newly
    stored EngageLab events, items as the webhook writes them."""
    records = []
    for n in range(args.records_per_batch):
        number = i * args.records_per_batch + n
        occurred = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        event_id = hashlib.sha256(f"{nonce}/{number}".encode()).hexdigest()[:32]
        message_id = f"{nonce}_{number}.measure-inbound"
        recipient = f"r{number}-{nonce}@measure.example.com"
        kind = ENGAGELAB_MIX[number % len(ENGAGELAB_MIX)]
        event_type = {"open": "opened", "click": "clicked"}.get(kind, kind)
        image = {
            "pk": text(f"MSG#engagelab#{message_id}"), "sk": text(f"{occurred}#{event_id}"),
            "gsi1pk": text(f"RCPT#{recipient}"), "gsi2pk": text(f"TYPE#{event_type}#{occurred[:10]}#0"),
            "event_id": text(event_id), "provider": text("engagelab"), "event_type": text(event_type),
            "provider_event": text(kind), "occurred_at": text(occurred), "received_at": text(occurred),
            "message_id": text(message_id), "recipient": text(recipient),
            "sender": text("newsletter@mail.example.com"), "subject": text(f"Measurement message {number}"),
            "account": text("measure"), "expires_at": {"N": str(int(time.time()) + 30 * 86_400)},
            "metadata": {"M": {"task_id": {"N": "-1"}, "label_id": {"N": "0"},
                               "custom_args": {"M": {"run": text(nonce), "n": {"N": str(number)}}}}},
            "raw": {"B": base64.b64encode(os.urandom(80)).decode()},
        }
        records.append({
            "eventID": uuid.uuid4().hex, "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": int(time.time()),
                "Keys": {"pk": image["pk"], "sk": image["sk"]},
                "NewImage": image,
                "SequenceNumber": f"{number + 1:021d}",
                "SizeBytes": len(json.dumps(image)),
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/measure/stream/2026-01-01T00:00:00.000",
        })
    return {"Records": records}


def http_event(make_request):
    """The i-th event of an HTTP function: its request as API Gateway delivers it."""
    return lambda i, nonce, _args: api_gateway_event(*make_request(i, nonce), request_number=i)


def http_answer(answer_ok):
    """Checks an HTTP function's response: a 200 whose JSON body answer_ok accepts."""
    def check(response):
        status = response.get("statusCode")
        payload = response.get("body") or ""
        if response.get("isBase64Encoded"):
            payload = base64.b64decode(payload).decode(errors="replace")
        try:
            answer = json.loads(payload) if payload else None
        except ValueError:
            answer = None
        return None if status == 200 and answer_ok(answer) else f"status {status}: {payload[:300]}"
    return check


def stored_one(answer):
    return isinstance(answer, dict) and answer.get("stored") == 1


def stored_as_duplicate(answer):
    return isinstance(answer, dict) and answer.get("stored") == 0 and answer.get("duplicates") == 1


def has_events(answer):
    return isinstance(answer, dict) and isinstance(answer.get("events"), list)


def has_status(answer):
    return isinstance(answer, dict) and answer.get("suppressed") is False


def nothing_failed(response):
    failures = response.get("batchItemFailures")
    return None if failures == [] else f"batch item failures: {json.dumps(failures)[:300]}"


# Per function: its secrets, the i-th event it gets, the check of its answer, and that answer
# in words.
PROFILES = {
    "engagelab-webhook": (
        {"ENGAGELAB_APP_KEY": ENGAGELAB_TEST_KEY}, http_event(engagelab_request), http_answer(stored_one), '{"stored":1}'),
    "sendpost-webhook": (
        {"SENDPOST_API_KEY": SENDPOST_TEST_KEY}, http_event(sendpost_request), http_answer(stored_one), '{"stored":1}'),
    "tencent-ses-webhook": (
        {"TENCENT_SES_WEBHOOK_TOKEN": TENCENT_SES_TEST_TOKEN}, http_event(tencent_ses_request), http_answer(stored_one),
        '{"stored":1}'),
    "events-api": (
        {"EVENTS_API_TOKEN": EVENTS_API_TEST_TOKEN}, http_event(events_api_request), http_answer(has_events),
        '{"events":[...]}'),
    "suppressions-api": (
        {"EVENTS_API_TOKEN": EVENTS_API_TEST_TOKEN}, http_event(suppressions_api_request), http_answer(has_status),
        '{"suppressed":false}'),
    "events-publisher": ({}, stream_batch, nothing_failed, '{"batchItemFailures":[]}'),
}


class Runtime:
    """State shared by the HTTP handler threads and the measuring thread."""

    def __init__(self):
        self.lock = threading.Condition()
        self.reset(events=[])

    def reset(self, events):
        with self.lock:
            self.events = events  # what to serve, in order
            self.served = 0
            self.first_next_at = None
            self.sent_at = {}  # request id -> monotonic time /next was answered
            self.answers = {}  # request id -> (monotonic time, "response" | "error", body bytes)
            self.init_error = None
            self.generation = getattr(self, "generation", 0) + 1
            self.lock.notify_all()

    def stop_serving(self):
        """Releases every /next that is waiting, so its thread can end."""
        with self.lock:
            self.generation += 1
            self.lock.notify_all()


def make_handler(runtime):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real Runtime API
        # Headers and body leave in one write, as the real Runtime API sends them. Sent apart,
        # the body may arrive after a client has read the headers, and a client that drops a
        # response without reading its body (lambda_runtime, the 202 to an answer) cannot put
        # the connection back in its pool: it connected again after about one answer in seven.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def read_body(self):
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def reply(self, status, payload, headers=None):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def do_GET(self):
            arrived = time.monotonic()
            if self.path != f"{API}/runtime/invocation/next":
                self.reply(404, {"errorMessage": f"no route {self.path}"})
                return
            with runtime.lock:
                if runtime.first_next_at is None:
                    runtime.first_next_at = arrived
                    runtime.lock.notify_all()
                generation = runtime.generation
                while runtime.served >= len(runtime.events) and runtime.generation == generation:
                    runtime.lock.wait()
                if runtime.generation != generation:
                    self.close_connection = True
                    return  # the process is being killed; nothing to serve
                number = runtime.served
                runtime.served += 1
                event = runtime.events[number]
            request_id = str(uuid.uuid4())
            deadline_ms = int(time.time() * 1000) + 30_000
            data = json.dumps(event).encode()
            with runtime.lock:
                runtime.sent_at[request_id] = time.monotonic()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("lambda-runtime-aws-request-id", request_id)
            self.send_header("lambda-runtime-deadline-ms", str(deadline_ms))
            self.send_header(
                "lambda-runtime-invoked-function-arn",
                f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{os.environ.get('MEASURE_FUNCTION', 'f')}")
            self.send_header("lambda-runtime-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def do_POST(self):
            arrived = time.monotonic()
            body = self.read_body()
            parts = self.path.split("/")
            # /2018-06-01/runtime/invocation/<id>/(response|error) or /2018-06-01/runtime/init/error
            if self.path == f"{API}/runtime/init/error":
                with runtime.lock:
                    runtime.init_error = body.decode(errors="replace")
                    runtime.lock.notify_all()
                self.reply(202, {"status": "OK"})
                return
            if len(parts) == 6 and parts[1:4] == ["2018-06-01", "runtime", "invocation"] and parts[5] in (
                    "response", "error"):
                with runtime.lock:
                    runtime.answers[parts[4]] = (arrived, parts[5], body)
                    runtime.lock.notify_all()
                self.reply(202, {"status": "OK"})
                return
            self.reply(404, {"errorMessage": f"no route {self.path}"})

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A killed function leaves its connections reset or half-written: expected here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def function_env(args, port, secrets):
    """What Lambda sets for a provided.al2023 function, plus the function's configuration."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": os.path.dirname(os.path.abspath(args.binary)),
        "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.abspath(args.binary)),
        "_HANDLER": "bootstrap",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": args.function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{args.function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "measure",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        **secrets,
    }
    for pair in args.env:
        name, _, value = pair.partition("=")
        env[name] = value
    return env


# The function process alive now, killed on any exit (SIGTERM included).
LIVE = set()


def spawn(args, env, log):
    started = time.monotonic()
    binary = os.path.abspath(args.binary)
    command = [args.interpreter, binary] if args.interpreter else [binary]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               cwd=env["LAMBDA_TASK_ROOT"])
    LIVE.add(process)
    return started, process


def kill(runtime, process):
    """Kills the process first, then releases its waiting /next, so it never sees a closed
    connection (it would exit with an error and log it). Returns the user plus system CPU
    seconds of the whole process, all threads, from the rusage it is reaped with (None when
    it had exited and was reaped already)."""
    cpu_s = None
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu_s = usage.ru_utime + usage.ru_stime
    process.wait()
    LIVE.discard(process)
    runtime.stop_serving()
    return cpu_s


def wait_for(runtime, process, condition, timeout):
    """Waits until condition() holds (under the lock), the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    with runtime.lock:
        while not condition():
            if process.poll() is not None:
                return "exited"
            if runtime.init_error is not None:
                return "init-error"
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            runtime.lock.wait(min(left, 0.05))
    return "ok"


def memory_kib(pid):
    """VmHWM (peak resident set) and VmRSS of a live process, in KiB."""
    figures = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                figures[name] = int(value.split()[0])
    return figures


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def describe_failure(status, runtime, log_path):
    detail = {"exited": "the process exited", "init-error": "the function reported an init error",
              "timeout": "timed out"}[status]
    if runtime.init_error:
        detail += f": {runtime.init_error[:500]}"
    return f"{detail} (log: {log_path})"


def measure_init(args, runtime, env, log, log_path):
    samples, problems = [], []
    for _ in range(args.cold_starts):
        runtime.reset(events=[])
        started, process = spawn(args, env, log)
        status = wait_for(runtime, process, lambda: runtime.first_next_at is not None, args.timeout)
        if status == "ok":
            samples.append((runtime.first_next_at - started) * 1000)
        else:
            problems.append(describe_failure(status, runtime, log_path))
        kill(runtime, process)
        if problems:
            break
    return samples, problems


def measure_invocations(args, runtime, env, log, log_path, make_event, check):
    nonce = uuid.uuid4().hex[:12]
    events = [make_event(i, nonce, args) for i in range(args.invocations)]
    result = {"invocations": args.invocations, "ok": 0, "failures": [], "latencies_ms": []}
    wrong = collections.Counter()
    runtime.reset(events=events)
    started, process = spawn(args, env, log)
    busy_cpu_s = None
    try:
        status = wait_for(runtime, process, lambda: runtime.first_next_at is not None, args.timeout)
        if status != "ok":
            result["failures"].append(describe_failure(status, runtime, log_path))
            return result
        result["rss_after_init_kib"] = memory_kib(process.pid)["VmRSS"]
        status = wait_for(runtime, process, lambda: len(runtime.answers) >= len(events),
                          args.timeout + args.invocations * 3.0)
        if status != "ok":
            result["failures"].append(
                f"{describe_failure(status, runtime, log_path)} after {len(runtime.answers)} answers")
        if process.poll() is None:
            result["peak_rss_kib"] = memory_kib(process.pid)["VmHWM"]
    finally:
        busy_cpu_s = kill(runtime, process)
    wall_s = time.monotonic() - started
    with runtime.lock:
        sent_at, answers = dict(runtime.sent_at), dict(runtime.answers)
    idle_cpu_s = idle_baseline(args, runtime, env, log, wall_s) if busy_cpu_s is not None else None
    if idle_cpu_s is not None and answers:
        result["cpu"] = {"busy_ms": busy_cpu_s * 1000, "idle_ms": idle_cpu_s * 1000, "wall_s": wall_s}
        result["cpu_ms_per_invocation"] = (busy_cpu_s - idle_cpu_s) * 1000 / len(answers)
    first_sent = min(sent_at.values(), default=None)
    last_answer = max((answer[0] for answer in answers.values()), default=None)
    if first_sent is not None and last_answer is not None and last_answer > first_sent:
        result["invocations_per_s"] = len(answers) / (last_answer - first_sent)
    result["retried_writes"] = 0
    for request_id, (arrived, kind, body) in answers.items():
        result["latencies_ms"].append((arrived - sent_at[request_id]) * 1000)
        problem = check_answer(kind, body, check)
        if problem is None:
            result["ok"] += 1
        elif check_answer(kind, body, http_answer(stored_as_duplicate)) is None:
            # Its write landed after the SDK's attempt timeout, and the retry found it stored:
            # the right answer for a retried write, counted apart.
            result["retried_writes"] += 1
        else:
            wrong[problem] += 1
    # A loaded machine retries a few writes; more than 1 % is a problem of the run.
    if result["retried_writes"] > args.invocations // 100:
        wrong["answered as duplicates: writes retried after their attempt timed out"] += result["retried_writes"]
    else:
        result["ok"] += result["retried_writes"]
    result["failures"] += [f"{count} x {problem}" for problem, count in wrong.most_common(5)]
    return result


def idle_baseline(args, runtime, env, log, wall_s):
    """CPU seconds of the same process started again and left waiting for its first event for
    wall_s: its init and whatever it does while idle, which the busy run paid for too."""
    runtime.reset(events=[])
    started, process = spawn(args, env, log)
    try:
        if wait_for(runtime, process, lambda: runtime.first_next_at is not None, args.timeout) != "ok":
            return None
        time.sleep(max(0.0, started + wall_s - time.monotonic()))
    finally:
        idle_cpu_s = kill(runtime, process)
    return idle_cpu_s


def check_answer(kind, body, check):
    """None when the function answered as expected, else what was wrong."""
    text = body.decode(errors="replace")
    if kind == "error":
        return f"invocation error: {text[:300]}"
    try:
        response = json.loads(text)
    except ValueError as error:
        return f"unreadable response ({error}): {text[:300]}"
    if not isinstance(response, dict):
        return f"unexpected response: {text[:300]}"
    return check(response)


def log_lines_not_json(log_path):
    count = 0
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            line = line.strip()
            if not line:
                continue
            try:
                json.loads(line)
            except ValueError:
                count += 1
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the function's bootstrap executable")
    parser.add_argument("--function", required=True, help="the function's name")
    parser.add_argument("--requests", choices=sorted(PROFILES),
                        help="whose requests to send and answers to expect (default: --function's)")
    parser.add_argument("--interpreter", help="runs --binary with this program, e.g. python3 bootstrap.py")
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument("--invocations", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the first /next")
    parser.add_argument("--records-per-batch", type=int, default=RECORDS_PER_BATCH,
                        help="stream records per events-publisher invocation")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="configuration for the function, e.g. EVENTS_TABLE=events (repeatable)")
    parser.add_argument("--log", required=True, help="file that receives the function's stdout and stderr")
    args = parser.parse_args()
    if (args.requests or args.function) not in PROFILES:
        parser.error(f"--requests is needed: no requests are known for {args.function}")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return measure(args)
    finally:
        for process in list(LIVE):
            process.kill()
            process.wait()


def measure(args):
    secrets, make_event, check, expected = PROFILES[args.requests or args.function]
    os.environ["MEASURE_FUNCTION"] = args.function
    runtime = Runtime()
    server = Server(("127.0.0.1", 0), make_handler(runtime))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = function_env(args, server.server_address[1], secrets)

    summary = {"function": args.function, "expected_answer": expected, "problems": []}
    with open(args.log, "ab") as log:
        print(f"  {args.function}: {args.cold_starts} cold starts ...", file=sys.stderr)
        samples, problems = measure_init(args, runtime, env, log, args.log)
        summary["problems"] += problems
        if samples:
            summary["init_ms"] = {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
                                  "samples": len(samples)}
        if not problems and args.invocations > 0:
            print(f"  {args.function}: {args.invocations} invocations ...", file=sys.stderr)
            run = measure_invocations(args, runtime, env, log, args.log, make_event, check)
            latencies = run.pop("latencies_ms")
            summary["problems"] += run.pop("failures")
            if latencies:
                run["latency_ms"] = {"p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
                                     "max": max(latencies)}
            summary.update(run)
    server.shutdown()
    summary["log_lines_not_json"] = log_lines_not_json(args.log)
    print(json.dumps(summary))
    complete = not summary["problems"] and summary.get("ok") == args.invocations
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
