"""The Python peer of engagelab-webhook, for scripts/measure-cpu: for EngageLab's sent,
delivered, open and click callbacks it does the same work and writes the same item, with
boto3, as a custom runtime polling the Lambda Runtime API itself (what the managed Python
runtime does for a handler, without its extra process).

Per request, as engagelab-webhook: check the signature and its timestamp; read the body;
normalize it (event type, times, addresses, user agent, metadata, an event id hashed from the
payload's canonical JSON); build the item (table and index keys, TTL, `raw` as zlib with the
provider's preset dictionary and the item's own texts when that is smaller); one conditional
PutItem; one JSON log line and one CloudWatch embedded-metrics line. The other callbacks
(bounces, suppressions, inbound mail, `target` fan-out) are not implemented: the measured
workload does not send them.

Run as `python3 bootstrap.py` with the environment Lambda sets, EVENTS_TABLE, RETENTION_DAYS
and ENGAGELAB_APP_KEY.
"""

import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import boto3
from boto3.dynamodb.types import TypeSerializer

API = "/2018-06-01/runtime/invocation"
TOLERANCE_SECS = 300  # EngageLab's own tolerance for a callback's clock
TYPE_SHARDS = 8
EVENT_TYPES = {
    ("status", "sent"): "sent",
    ("status", "delivered"): "delivered",
    ("response", "open"): "opened",
    ("response", "click"): "clicked",
}
CONTEXT_ATTRIBUTES = ("message_id", "recipient", "sender", "subject", "reason", "click_url", "user_agent", "ip",
                      "account", "provider_event", "tags", "metadata")
MAX_CONTEXT_BYTES = 4096
DICTIONARY = (Path(__file__).resolve().parents[2] / "shared/src/store/raw_dictionaries/engagelab-v1.json").read_bytes()
SERIALIZER = TypeSerializer()


class Refused(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def verify(headers, app_key):
    if headers.get("x-webhook-appkey") != "email":
        raise Refused(401, "wrong app key")
    timestamp = headers.get("x-webhook-timestamp", "").strip()
    signature = headers.get("x-webhook-signature", "").strip().lower()
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECS:
        raise Refused(401, "timestamp is outside the accepted window")
    expected = hmac.new(app_key, timestamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Refused(401, "signature does not match")


def text(mapping, key):
    value = mapping.get(key)
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def identifier(mapping, key):
    value = mapping.get(key)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value if value not in (None, "", {}, []) else None


def timestamp_text(at):
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def normalize(callback, received_at):
    family = "status" if isinstance(callback.get("status"), dict) else "response"
    notice = callback.get(family) or {}
    data = notice.get(f"{family}_data") or {}
    name = text(notice, "message_status" if family == "status" else "event")
    event_type = EVENT_TYPES.get((family, name), "unknown")
    itime = callback.get("itime")
    occurred_at = datetime.fromtimestamp(itime / 1000, timezone.utc) if isinstance(itime, int) else received_at
    canonical = json.dumps(callback, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    event_id = hashlib.sha256(b"engagelab\0json:" + canonical.encode()).hexdigest()[:32]
    browser = " ".join(filter(None, (text(data, "explorer_name"), text(data, "explorer_ver"))))
    system = " ".join(filter(None, (text(data, "os_name"), text(data, "os_ver"))))
    metadata = {key: value for key, value in (
        ("task_id", identifier(data, "task_id")),
        ("label_id", identifier(data, "label_id")),
        ("custom_args", callback.get("custom_args") or None),
    ) if value is not None}
    event = {
        "event_id": event_id,
        "provider": "engagelab",
        "event_type": event_type,
        "provider_event": name,
        "occurred_at": timestamp_text(occurred_at),
        "received_at": timestamp_text(received_at),
        "message_id": text(data, "email_id") or text(callback, "message_id"),
        "recipient": (text(callback, "to") or "").lower() or None,
        "sender": (text(callback, "from") or "").lower() or None,
        "subject": text(callback, "subject"),
        "click_url": text(data, "url"),
        "ip": text(data, "ip"),
        "user_agent": f"{browser} ({system})" if browser and system else browser or (system and f"({system})"),
        "account": text(data, "api_user"),
        "metadata": metadata,
    }
    return {key: value for key, value in event.items() if value not in (None, "", {})}


def context(event):
    parts = []

    def add(value):
        if isinstance(value, str):
            parts.append(value.encode())
        elif isinstance(value, list):
            for item in value:
                add(item)
        elif isinstance(value, dict):
            for key in sorted(value):
                add(value[key])

    for name in CONTEXT_ATTRIBUTES:
        if name in event:
            add(event[name])
    return b"".join(parts)[:MAX_CONTEXT_BYTES]


def raw_attribute(raw, event):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=DICTIONARY + context(event))
    compressed = compressor.compress(raw.encode()) + compressor.flush()
    return {"B": compressed} if len(compressed) < len(raw.encode()) else {"S": raw}


def item(event, raw, retention_days):
    attributes = {name: SERIALIZER.serialize(value) for name, value in event.items()}
    day = event["occurred_at"][:10]
    attributes["pk"] = {"S": f"MSG#engagelab#{event.get('message_id') or '~' + event['event_id']}"}
    attributes["sk"] = {"S": f"{event['occurred_at']}#{event['event_id']}"}
    if "recipient" in event:
        attributes["gsi1pk"] = {"S": f"RCPT#{event['recipient']}"}
    shard = int(event["event_id"][:2], 16) % TYPE_SHARDS
    attributes["gsi2pk"] = {"S": f"TYPE#{event['event_type']}#{day}#{shard}"}
    if retention_days:
        received = datetime.strptime(event["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        attributes["expires_at"] = {"N": str(int(received.timestamp()) + retention_days * 86_400)}
    attributes["raw"] = raw_attribute(raw, event)
    return attributes


def log(line):
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def metrics(outcome, event_type, request_id):
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": "Mailhooks", "Dimensions": [["Provider", "Outcome"]],
                 "Metrics": [{"Name": "Requests", "Unit": "Count"}]},
                {"Namespace": "Mailhooks", "Dimensions": [["Provider", "EventType"]],
                 "Metrics": [{"Name": "Events", "Unit": "Count"}]},
            ],
        },
        "Provider": "engagelab", "Outcome": outcome, "EventType": event_type, "Requests": 1,
        "Events": 1 if outcome == "stored" else 0, "request_id": request_id,
    }


def answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handle(request, request_id, client, table, app_key, retention_days):
    started = time.monotonic()
    headers = {name.lower(): value for name, value in (request.get("headers") or {}).items()}
    try:
        verify(headers, app_key)
        raw = request.get("body") or ""
        try:
            callback = json.loads(raw)
        except ValueError:
            raise Refused(400, "body is not JSON") from None
        if not isinstance(callback, dict):
            raise Refused(400, "body is not a JSON object")
        event = normalize(callback, datetime.now(timezone.utc))
        try:
            client.put_item(TableName=table, Item=item(event, raw, retention_days),
                            ConditionExpression="attribute_not_exists(pk)")
            stored, duplicates = 1, 0
        except client.exceptions.ConditionalCheckFailedException:
            stored, duplicates = 0, 1
    except Refused as refusal:
        log({"level": "WARN", "fields": {"message": "webhook refused", "provider": "engagelab",
                                         "request_id": request_id, "status": refusal.status, "error": str(refusal)}})
        return answer(refusal.status, {"error": str(refusal)})
    outcome = "stored" if stored else "duplicate"
    log({"level": "INFO", "fields": {"message": "webhook stored", "provider": "engagelab", "request_id": request_id,
                                     "status": 200, "outcome": outcome, "stored": stored, "duplicates": duplicates,
                                     "suppressed": 0, "elapsed_ms": int((time.monotonic() - started) * 1000)}})
    log(metrics(outcome, event["event_type"], request_id))
    return answer(200, {"stored": stored, "duplicates": duplicates})


def main():
    client = boto3.client("dynamodb")
    table = os.environ["EVENTS_TABLE"]
    app_key = os.environ["ENGAGELAB_APP_KEY"].encode()
    retention_days = int(os.environ.get("RETENTION_DAYS") or 0)
    runtime = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    while True:
        runtime.request("GET", f"{API}/next")
        response = runtime.getresponse()
        request = json.loads(response.read())
        request_id = response.headers["lambda-runtime-aws-request-id"]
        # Bytes, so http.client sends them with the headers in one write.
        result = json.dumps(handle(request, request_id, client, table, app_key, retention_days)).encode()
        runtime.request("POST", f"{API}/{request_id}/response", result, {"content-type": "application/json"})
        runtime.getresponse().read()


if __name__ == "__main__":
    main()
