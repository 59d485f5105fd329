#!/usr/bin/env python3
"""Regenerates events/<provider>/*.json from the provider fixtures in shared/tests/fixtures.

Each fixture (a provider's JSON body) becomes an API Gateway HTTP API (payload 2.0) event,
signed with the documented local test secrets, for `sam local invoke -e`, `scripts/send-event`
and the tests. EngageLab signatures carry a fixed timestamp, so they go stale: the tests and
scripts/send-event re-sign them with the current time.

events/function-url/ gets the same requests as a Lambda function URL delivers them (the
template's Ingress=FunctionUrl): one `delivered` callback per provider, posted to the URL's
own path `/`, and the read API samples `events-api/recipient` and `suppressions-api/status`.
"""

import hashlib
import hmac
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "shared" / "tests" / "fixtures"
EVENTS = ROOT / "events"

ENGAGELAB_TEST_KEY = "local-engagelab-key"
SENDPOST_TEST_KEY = "local-sendpost-key"
TENCENT_SES_TEST_TOKEN = "local-tencent-token"
FIXED_EPOCH = 1_700_000_000

ROUTES = {
    "engagelab": "/webhooks/engagelab",
    "sendpost": "/webhooks/sendpost",
    "tencent_ses": "/webhooks/tencent-ses",
}


def hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def provider_headers(provider: str, body: str) -> dict:
    if provider == "engagelab":
        timestamp = str(FIXED_EPOCH)
        return {
            "x-webhook-appkey": "email",
            "x-webhook-timestamp": timestamp,
            "x-webhook-signature": hmac_hex(ENGAGELAB_TEST_KEY, timestamp.encode()),
        }
    if provider == "sendpost":
        return {
            "x-sendpost-signature": hmac_hex(SENDPOST_TEST_KEY, body.encode()),
            "x-sendpost-signature-alg": "hmac-sha256",
            "x-sendpost-webhook-id": "local-webhook",
            "x-sendpost-webhook-attempt": "1",
        }
    return {}


def api_gateway_event(provider: str, name: str, body: str) -> dict:
    path = ROUTES[provider]
    query = {"token": TENCENT_SES_TEST_TOKEN} if provider == "tencent_ses" else None
    headers = {
        "content-type": "application/json; charset=utf-8",
        "host": "localhost",
        "user-agent": f"{provider}-webhook-sample",
        **provider_headers(provider, body),
    }
    event = {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": f"token={TENCENT_SES_TEST_TOKEN}" if query else "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers["user-agent"],
            },
            "requestId": f"sample-{provider}-{name}",
            "routeKey": f"POST {path}",
            "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": FIXED_EPOCH * 1000,
        },
        "body": body,
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    return event


FUNCTION_URL_ID = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
FUNCTION_URL_HOST = f"{FUNCTION_URL_ID}.lambda-url.us-east-1.on.aws"
# The read API samples as a function URL delivers them, by name under events/.
FUNCTION_URL_READS = {"events-api": "events-api/recipient", "suppressions-api": "suppressions-api/status"}


def function_url_event(event: dict, path: str) -> dict:
    """An API Gateway HTTP API event as a function URL (AuthType NONE) delivers the same request:
    route `$default`, the URL's own host and path, no path parameters, Lambda's forwarding headers."""
    event = json.loads(json.dumps(event))
    event.pop("pathParameters", None)
    event["routeKey"] = "$default"
    event["rawPath"] = path
    event["headers"].update({
        "host": FUNCTION_URL_HOST,
        "x-amzn-tls-version": "TLSv1.3",
        "x-amzn-tls-cipher-suite": "TLS_AES_128_GCM_SHA256",
        "x-amzn-trace-id": "Root=1-65540e40-3c2a5f9e6b7d8a9b0c1d2e3f",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    })
    context = event["requestContext"]
    context.update({
        "accountId": "anonymous",
        "apiId": FUNCTION_URL_ID,
        "domainName": FUNCTION_URL_HOST,
        "domainPrefix": FUNCTION_URL_ID,
        "routeKey": "$default",
        "stage": "$default",
    })
    context["http"].update({"path": path, "sourceIp": "203.0.113.7"})
    context["requestId"] = context["requestId"].replace("sample-", "sample-function-url-", 1)
    return event


def write(path: pathlib.Path, event: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    written = 0
    for provider in ROUTES:
        source = FIXTURES / provider
        target = EVENTS / provider
        target.mkdir(parents=True, exist_ok=True)
        for fixture in sorted(source.glob("*.json")):
            if fixture.name.endswith(".expected.json"):
                continue
            body = fixture.read_text(encoding="utf-8")
            event = api_gateway_event(provider, fixture.stem, body)
            write(target / fixture.name, event)
            written += 1
            if fixture.stem == "delivered":
                write(EVENTS / "function-url" / f"{provider}.json", function_url_event(event, "/"))
                written += 1
    for name, sample in FUNCTION_URL_READS.items():
        event = json.loads((EVENTS / f"{sample}.json").read_text(encoding="utf-8"))
        write(EVENTS / "function-url" / f"{name}.json", function_url_event(event, event["rawPath"]))
        written += 1
    print(f"wrote {written} events under events/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
