"""The Python peer of benchmarks/plain-handler: the same EngageLab check, the same item and one
conditional PutItem per callback, with boto3, as a custom runtime that polls the Lambda Runtime
API itself (what the managed Python runtime does for a handler, without its extra process).

Run by scripts/measure-cpu as `python3 bootstrap.py` with the environment Lambda sets.
"""

import hashlib
import hmac
import http.client
import json
import os
import time

import boto3

API = "/2018-06-01/runtime/invocation"
TOLERANCE_SECS = 300  # EngageLab's own tolerance for a callback's clock


def signed(headers, app_key):
    if headers.get("x-webhook-appkey") != "email":
        return False
    timestamp = headers.get("x-webhook-timestamp", "")
    signature = headers.get("x-webhook-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECS:
        return False
    expected = hmac.new(app_key, timestamp.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.lower())


def answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handle(event, client, table, app_key):
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    if not signed(headers, app_key):
        return answer(401, {"error": "unauthorized"})
    body = event.get("body") or ""
    try:
        callback = json.loads(body)
        event_type = (callback.get("status") or {}).get("message_status") or (callback.get("response") or {})["event"]
        message_id, recipient = callback["message_id"], callback["to"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return answer(400, {"error": "not an EngageLab callback"})
    item = {
        "pk": {"S": f"MSG#engagelab#{message_id}"},
        "sk": {"S": f"EVT#{callback.get('itime', 0)}#{event_type}"},
        "recipient": {"S": recipient.lower()},
        "event_type": {"S": event_type},
        "raw": {"S": body},
    }
    try:
        client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except client.exceptions.ConditionalCheckFailedException:
        return answer(200, {"stored": 0, "duplicates": 1})
    return answer(200, {"stored": 1, "duplicates": 0})


def main():
    client = boto3.client("dynamodb")
    table = os.environ["EVENTS_TABLE"]
    app_key = os.environ["ENGAGELAB_APP_KEY"].encode()
    runtime = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    while True:
        runtime.request("GET", f"{API}/next")
        response = runtime.getresponse()
        event = json.loads(response.read())
        request_id = response.headers["lambda-runtime-aws-request-id"]
        # Bytes, so http.client sends them with the headers in one write.
        result = json.dumps(handle(event, client, table, app_key)).encode()
        runtime.request("POST", f"{API}/{request_id}/response", result, {"content-type": "application/json"})
        runtime.getresponse().read()


if __name__ == "__main__":
    main()
