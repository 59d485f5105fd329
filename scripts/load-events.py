#!/usr/bin/env python3
"""Send N distinct provider events to the locally served functions and prove each was stored once.

Run by scripts/load, which serves the functions (scripts/local) and passes the ports:

    scripts/load-events.py --port 9000 --endpoint http://127.0.0.1:5055 --table mailhooks-local \
        [--events 10000] [--senders 32] [--outage-seconds 8 --moto-pid PID]

Every event is made from an events/ sample of a single-event kind (27 kinds across EngageLab,
SendPost and Tencent SES) with its ids and recipient made unique, signed like the provider
signs it, and sent as its own request by one of --senders threads. A sender retries an event
until it is answered 200: a 500 means "not stored, try again", as a provider does. With
--outage-seconds, the DynamoDB emulator is frozen (SIGSTOP) once a third of the events are
answered and resumed (SIGCONT) that many seconds later: moto keeps its tables in memory, so
freezing, rather than killing, is how to take it away and bring the same data back.

At the end it counts the event items (MSG# keys) in the table, which must be exactly N, checks
every recipient's suppression against the rules (a hard trigger, or 3 soft-bounced distinct
messages), and prints a JSON report: throughput, latency p50/p99, 500s, retries and, for the
outage, what the requests answered during it got. Exit status 0 only if everything holds.
"""

import argparse
import copy
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENGAGELAB_KEY = "local-engagelab-key"
SENDPOST_KEY = "local-sendpost-key"
TENCENT_TOKEN = "local-tencent-token"

# events/ samples used as templates, and what each does to its recipient's suppression.
SUPPRESS, SOFT, NOTHING = "suppress", "soft", "nothing"
TEMPLATES = {
    "engagelab": {
        "delivered": NOTHING, "sent": NOTHING, "soft_bounce": SOFT, "invalid_email": SUPPRESS,
        "open": NOTHING, "click": NOTHING, "unsubscribe": SUPPRESS, "report_spam": SUPPRESS,
    },
    "sendpost": {
        "processed": NOTHING, "dropped": NOTHING, "delivered": NOTHING, "soft_bounced": SOFT,
        "hard_bounced": SUPPRESS, "opened": NOTHING, "clicked": NOTHING, "unsubscribed": SUPPRESS,
        "spam": SUPPRESS,
    },
    "tencent_ses": {
        "delivered": NOTHING, "deferred": NOTHING, "dropped": NOTHING, "open": NOTHING,
        "click": NOTHING, "bounce_hard": SUPPRESS, "bounce_soft": SOFT, "spamreport": SUPPRESS,
        "unsubscribe": SUPPRESS,
    },
}
FUNCTION = {"engagelab": "engagelab-webhook", "sendpost": "sendpost-webhook", "tencent_ses": "tencent-ses-webhook"}
SOFT_BOUNCE_THRESHOLD = 3


def load_templates():
    kinds = []
    for provider, names in TEMPLATES.items():
        for name, effect in names.items():
            sample = json.loads((REPO / "events" / provider / f"{name}.json").read_text())
            kinds.append((provider, name, effect, json.loads(sample["body"])))
    return kinds


def make_event(kind, i, run, recipient):
    """The i-th event: the template with this run's unique message id and the given recipient."""
    provider, name, effect, template = kind
    body = copy.deepcopy(template)
    message_id = f"load-{run}-{i}"
    if provider == "engagelab":
        body["message_id"] = message_id
        body["to"] = recipient
        for part, data in (("status", "status_data"), ("response", "response_data")):
            if isinstance(body.get(part), dict) and isinstance(body[part].get(data), dict):
                body[part][data]["email_id"] = message_id
    elif provider == "sendpost":
        body["event"]["eventID"] = f"evt-{message_id}"
        body["event"]["messageID"] = message_id
        body["event"]["to"] = recipient
        body["emailMessage"]["messageID"] = message_id
    else:
        body["bulkId"] = message_id
        body["email"] = recipient
        if "messageId" in body:
            body["messageId"] = f"<{message_id}@load.example.com>"
    return {"provider": provider, "kind": name, "effect": effect, "recipient": recipient,
            "message": f"{provider}#{message_id}", "body": json.dumps(body, separators=(",", ":")).encode()}


def request_for(event):
    """Method, path and headers as the provider sends them, signed now."""
    body, provider = event["body"], event["provider"]
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    path = f"/lambda-url/{FUNCTION[provider]}/"
    if provider == "engagelab":
        timestamp = str(int(time.time()))
        headers["x-webhook-appkey"] = "email"
        headers["x-webhook-timestamp"] = timestamp
        headers["x-webhook-signature"] = hmac.new(ENGAGELAB_KEY.encode(), timestamp.encode(), hashlib.sha256).hexdigest()
    elif provider == "sendpost":
        headers["x-sendpost-signature"] = hmac.new(SENDPOST_KEY.encode(), body, hashlib.sha256).hexdigest()
    else:
        path += f"?token={TENCENT_TOKEN}"
    return path, headers


class Outage:
    """Freezes the emulator once `after` events are answered, for `seconds`."""

    def __init__(self, moto_pid, after, seconds):
        self.moto_pid, self.after, self.seconds = moto_pid, after, seconds
        self.started_at = self.ended_at = None
        self.lock = threading.Lock()

    def maybe_start(self, answered):
        if not self.moto_pid or answered < self.after:
            return
        with self.lock:
            if self.started_at is not None:
                return
            os.kill(self.moto_pid, signal.SIGSTOP)
            self.started_at = time.monotonic()
        threading.Timer(self.seconds, self.end).start()

    def end(self):
        os.kill(self.moto_pid, signal.SIGCONT)
        self.ended_at = time.monotonic()

    def covers(self, sent_at, answered_at):
        """Sent and answered while DynamoDB was away."""
        return (self.started_at is not None and sent_at >= self.started_at
                and answered_at <= (self.ended_at or float("inf")))


class Sender:
    def __init__(self, port, outage, deadline):
        self.port, self.outage, self.deadline = port, outage, deadline
        self.local = threading.local()
        self.lock = threading.Lock()
        self.answered = 0
        self.latencies = []   # seconds, of every answered request
        self.statuses = {}
        self.retries = 0
        self.transport_errors = {}  # message -> count: connections refused or reset, timeouts
        self.during_outage = {}  # status -> count, of requests sent and answered in the outage
        self.failures = []       # events given up on, with the last answer

    def connection(self):
        if getattr(self.local, "connection", None) is None:
            self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return self.local.connection

    def send_once(self, event):
        path, headers = request_for(event)
        sent_at = time.monotonic()
        try:
            connection = self.connection()
            connection.request("POST", path, body=event["body"], headers=headers)
            response = connection.getresponse()
            status, answer = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            self.local.connection = None
            return None, str(error), sent_at, time.monotonic()
        return status, answer, sent_at, time.monotonic()

    def deliver(self, event):
        backoff = 0.2
        while True:
            status, answer, sent_at, answered_at = self.send_once(event)
            with self.lock:
                if status is None:
                    self.transport_errors[answer] = self.transport_errors.get(answer, 0) + 1
                if status is not None:
                    self.latencies.append(answered_at - sent_at)
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if self.outage.covers(sent_at, answered_at):
                        self.during_outage[status] = self.during_outage.get(status, 0) + 1
                if status == 200:
                    self.answered += 1
                    answered = self.answered
            if status == 200:
                self.outage.maybe_start(answered)
                return json.loads(answer)
            if status is not None and status != 500 or time.monotonic() > self.deadline:
                with self.lock:
                    self.failures.append({"kind": f"{event['provider']}/{event['kind']}", "status": status,
                                          "answer": answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer})
                return None
            with self.lock:
                self.retries += 1
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


def dynamodb(endpoint):
    import boto3  # from .venv, which scripts/load puts first on PATH
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def scan(client, table, prefix):
    items, start = [], None
    while True:
        arguments = {"TableName": table, "FilterExpression": "begins_with(pk, :prefix)",
                     "ExpressionAttributeValues": {":prefix": {"S": prefix}}}
        if start:
            arguments["ExclusiveStartKey"] = start
        page = client.scan(**arguments)
        items.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def expected_suppressions(events):
    hard, soft = set(), {}
    for event in events:
        if event["effect"] == SUPPRESS:
            hard.add(event["recipient"])
        elif event["effect"] == SOFT:
            soft.setdefault(event["recipient"], set()).add(event["message"])
    return hard | {recipient for recipient, messages in soft.items() if len(messages) >= SOFT_BOUNCE_THRESHOLD}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--recipients", type=int, default=2_000,
                        help="distinct recipients the events are spread over (several events per recipient)")
    parser.add_argument("--outage-seconds", type=float, default=0)
    parser.add_argument("--moto-pid", type=int, default=0)
    parser.add_argument("--deadline-seconds", type=float, default=1800)
    arguments = parser.parse_args()

    run = f"{int(time.time())}{random.randrange(1000):03d}"
    kinds = load_templates()
    rng = random.Random(run)
    events = [make_event(kinds[i % len(kinds)], i, run, f"r{rng.randrange(arguments.recipients)}-{run}@load.example.com")
              for i in range(arguments.events)]
    rng.shuffle(events)

    outage = Outage(arguments.moto_pid if arguments.outage_seconds else 0, arguments.events // 3, arguments.outage_seconds)
    sender = Sender(arguments.port, outage, time.monotonic() + arguments.deadline_seconds)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=arguments.senders) as pool:
        answers = list(pool.map(sender.deliver, events))
    elapsed = time.monotonic() - started
    if outage.started_at is not None and outage.ended_at is None:
        time.sleep(max(0, outage.started_at + outage.seconds - time.monotonic()) + 0.1)

    client = dynamodb(arguments.endpoint)
    stored_items = scan(client, arguments.table, "MSG#")
    ours = [item for item in stored_items if f"load-{run}-" in item["pk"]["S"]]
    suppression_items = scan(client, arguments.table, "SUPP#")
    suppressed = {item["recipient"]["S"] for item in suppression_items
                  if item.get("suppressed", {}).get("BOOL") and run in item["recipient"]["S"]}
    expected = expected_suppressions(events)
    delivered = [answer for answer in answers if answer is not None]

    report = {
        "events": arguments.events,
        "senders": arguments.senders,
        "answered_200": len(delivered),
        "stored_first_time": sum(answer["stored"] for answer in delivered),
        "items_in_table": len(ours),
        "distinct_event_ids": len({item["event_id"]["S"] for item in ours}),
        "seconds": round(elapsed, 2),
        "events_per_second": round(arguments.events / elapsed, 1),
        "latency_ms_p50": round(percentile(sender.latencies, 0.50) * 1000, 1),
        "latency_ms_p99": round(percentile(sender.latencies, 0.99) * 1000, 1),
        "latency_ms_mean": round(statistics.mean(sender.latencies) * 1000, 1),
        "statuses": {str(status): count for status, count in sorted(sender.statuses.items())},
        "retries": sender.retries,
        "transport_errors": sender.transport_errors,
        "suppressed_recipients": len(suppressed),
        "suppressions_as_expected": suppressed == expected,
        "failures": sender.failures[:5],
    }
    if arguments.outage_seconds:
        report["outage"] = {
            "seconds": arguments.outage_seconds,
            "began_after_answers": outage.after,
            "answers_during_outage": {str(status): count for status, count in sorted(sender.during_outage.items())},
        }
    print(json.dumps(report, indent=2))

    problems = []
    if sender.failures:
        problems.append(f"{len(sender.failures)} events were never answered 200")
    if len(ours) != arguments.events or report["distinct_event_ids"] != arguments.events:
        problems.append(f"the table holds {len(ours)} items ({report['distinct_event_ids']} distinct), not {arguments.events}")
    if suppressed != expected:
        problems.append(f"suppressions differ: {len(expected - suppressed)} missing, {len(suppressed - expected)} unexpected")
    if arguments.outage_seconds:
        if outage.started_at is None:
            problems.append("the outage never began")
        elif not sender.during_outage or set(sender.during_outage) != {500}:
            problems.append(f"requests answered during the outage got {sender.during_outage}, not only 500")
    elif set(sender.statuses) != {200} or sender.transport_errors:
        problems.append(f"errors without an outage: statuses {sender.statuses}, transport {sender.transport_errors}")
    for problem in problems:
        print(f"load: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
