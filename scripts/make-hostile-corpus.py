#!/usr/bin/env python3
"""Writes the hostile request corpus: shared/tests/hostile/<provider>/NNN-<name>.json.

Each case is one request to a provider's webhook and the answer it must get. The test
`shared/tests/hostile_requests.rs` sends every case through the real WebhookReceiver against the
local DynamoDB. A case is:

  name      short identifier (also the file name)
  attack    what it attacks
  method    HTTP method (default POST)
  auth      "signed" (default): the test adds the provider's valid credentials for the test
            keys (EngageLab: fresh timestamp and HMAC; SendPost: HMAC of the exact body bytes;
            Tencent SES: the URL token), so a malformed body reaches the parser, not only auth;
            "none": only what the case itself carries
  headers   added after signing, replacing; null removes a header. Placeholders:
            {now}, {now+N}, {now-N} (epoch seconds), {now_ms} (milliseconds),
            {engagelab_hmac} / {engagelab_md5} (signature of the final x-webhook-timestamp with
            the test key), {sendpost_hmac} (HMAC of the final body with the test key),
            {token} (the Tencent test token), {basic_token} (base64 of "any:{token}")
  multi_headers  {name: [values]}: sent as a REST API (payload 1.0) event, whose multiValueHeaders
            can repeat a header (an HTTP API event joins repeats with commas)
  query     raw query string (replaces the signed one when given)
  body | body_base64   the body as text, or bytes as base64 (API Gateway's isBase64Encoded)
  expand    {marker: [text, times]}: the test replaces marker in the body, header values and
            query by text repeated, for
            bodies too big to commit (6 MB and more, megabyte strings)
  encode_base64  true: the (expanded) body is sent base64-encoded
  expect    {"status": 200, "events": N} (optionally "event_types"), or
            {"status": 4xx, "error": substring of the {"error": ...} message}, or
            {"before_handler": true}: a request API Gateway cannot deliver and lambda_http refuses
            to deserialize (CR/LF or NUL in a header), which the test checks instead

Run from the repository root: python3 scripts/make-hostile-corpus.py
"""

import base64
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "shared", "tests", "hostile")
MB = 1024 * 1024
DEEP_ARRAYS = {"@@OPEN@@": ["[", 10000], "@@CLOSE@@": ["]", 10000]}
DEEP_OBJECTS = {"@@OPEN@@": ['{"a":', 10000], "@@CLOSE@@": ["}", 10000]}
SIX_MB = 6 * MB


def sample_body(provider, name):
    with open(os.path.join(ROOT, "events", provider, name + ".json")) as f:
        return json.load(f)["body"]


def ok(events, *types):
    expect = {"status": 200, "events": events}
    if types:
        expect["event_types"] = list(types)
    return expect


def bad(status, error=None):
    expect = {"status": status}
    if error:
        expect["error"] = error
    return expect


def case(name, attack, expect, **request):
    return dict(name=name, attack=attack, expect=expect, **request)


def nested(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


def nested_objects(depth, inner="1"):
    return '{"a":' * depth + inner + "}" * depth


def set_path(obj, path, value):
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


def with_field(body, path, value):
    return json.dumps(set_path(json.loads(body), path, value))


def variant(event, index):
    """Another event like `event`: SendPost's own eventID names an event, so it changes too."""
    other = json.loads(json.dumps(event))
    other["hostile_index"] = index
    if isinstance(other.get("event"), dict) and "eventID" in other["event"]:
        other["event"]["eventID"] += "-%d" % index
    return other


def body_cases(provider, valid, fields):
    """Malformed and hostile bodies, properly signed. `fields` names where the provider keeps
    its event name, recipient, message id, subject and free-form object."""
    event = json.loads(valid)
    compact = json.dumps(event)
    cases = [
        # Not JSON, or not the right JSON.
        case("empty-body", "no body at all", bad(400, "not valid JSON"), body=""),
        case("whitespace-body", "only whitespace", bad(400, "not valid JSON"), body=" \r\n\t "),
        case("truncated-json", "body cut in the middle", bad(400, "not valid JSON"), body=compact[: len(compact) // 2]),
        case("trailing-garbage", "a valid object then garbage", bad(400, "not valid JSON"), body=compact + " x"),
        case("two-objects", "two objects one after the other", bad(400, "not valid JSON"), body=compact + compact),
        case("trailing-comma", "a trailing comma", bad(400, "not valid JSON"), body=compact[:-1] + ",}"),
        case("single-quotes", "JavaScript-style quotes", bad(400, "not valid JSON"), body=compact.replace('"', "'")),
        case("unquoted-keys", "keys without quotes", bad(400, "not valid JSON"), body='{event: "delivered"}'),
        case("comment", "a comment in the JSON", bad(400, "not valid JSON"), body="// hi\n" + compact),
        case("nan-literal", "NaN, not JSON", bad(400, "not valid JSON"), body='{"timestamp": NaN}'),
        case("infinity-literal", "Infinity, not JSON", bad(400, "not valid JSON"), body='{"timestamp": -Infinity}'),
        case("number-overflow", "a number beyond f64", bad(400, "not valid JSON"), body='{"timestamp": 1e400}'),
        case("byte-order-mark", "a UTF-8 BOM before the JSON", bad(400, "not valid JSON"), body="\ufeff" + compact),
        case("raw-nul-in-string", "an unescaped NUL inside a string", bad(400, "not valid JSON"), body='{"a": "x\u0000y"}'),
        case("raw-nul-outside", "a NUL byte between tokens", bad(400, "not valid JSON"), body=compact + "\u0000"),
        case("lone-surrogate", "an unpaired UTF-16 surrogate escape", bad(400, "not valid JSON"), body='{"subject": "\\ud800"}'),
        case("invalid-utf8", "bytes that are not UTF-8", bad(400, "UTF-8"),
             body_base64=base64.b64encode(b'{"subject": "\xff\xfe"}').decode()),
        case("overlong-utf8", "an overlong UTF-8 encoding of '/'", bad(400, "UTF-8"),
             body_base64=base64.b64encode(b'{"a": "\xc0\xaf"}').decode()),
        case("utf16-body", "the body in UTF-16", bad(400, "UTF-8"),
             body_base64=base64.b64encode(compact.encode("utf-16")).decode()),
        case("deep-array-10k", "arrays nested 10,000 deep", bad(400, "not valid JSON"), body="@@OPEN@@1@@CLOSE@@",
             expand=DEEP_ARRAYS),
        case("deep-object-10k", "objects nested 10,000 deep", bad(400, "not valid JSON"), body="@@OPEN@@1@@CLOSE@@",
             expand=DEEP_OBJECTS),
        case("deep-in-batch-10k", "a batch element nested 10,000 deep", bad(400, "not valid JSON"),
             body="[" + compact + ",@@OPEN@@1@@CLOSE@@]", expand=DEEP_OBJECTS),
        case("deep-in-field-10k", "a field nested 10,000 deep", bad(400, "not valid JSON"),
             body=compact[:-1] + ',"deep":@@OPEN@@1@@CLOSE@@}', expand=DEEP_ARRAYS),
        case("empty-array", "an empty batch", bad(400, "empty JSON array"), body="[]"),
        case("array-of-array", "a batch whose element is an array", bad(400, "element 0"), body="[[]]"),
        case("scalar-number", "a number as the body", bad(400, "not a number"), body="42"),
        case("scalar-string", "a string as the body", bad(400, "not a string"), body=json.dumps(compact)),
        case("scalar-true", "a boolean as the body", bad(400, "not a boolean"), body="true"),
        case("scalar-null", "null as the body", bad(400, "not null"), body="null"),
        case("batch-bad-last", "a batch whose last element is a number", bad(400, "element 2"),
             body="[" + compact + "," + compact + ",3]"),
        case("batch-null-element", "a batch with a null element", bad(400, "element 1"), body="[" + compact + ",null]"),
        case("batch-string-first", "a batch whose first element is text", bad(400, "element 0"),
             body='["' + "x" * 100 + '",' + compact + "]"),
        case("batch-broken-element", "a batch whose element is not JSON", bad(400, "not valid JSON"),
             body="[" + compact + ",{]"),
        # Accepted: odd but well-formed; everything must be stored, raw exactly as sent.
        case("empty-object", "an empty object: one unknown event", ok(1, "unknown"), body="{}"),
        case("unknown-event-type", "an event name nobody documents", ok(1, "unknown"),
             body=with_field(valid, fields["event"], "mystery_event")),
        case("event-type-as-object", "the event name as an object", ok(1),
             body=with_field(valid, fields["event"], {"event": "delivered"})),
        case("event-type-as-list", "the event name as a list", ok(1),
             body=with_field(valid, fields["event"], ["delivered"])),
        case("recipient-as-number", "a number where the address goes", ok(1),
             body=with_field(valid, fields["recipient"], 12345)),
        case("recipient-as-object", "an object where the address goes", ok(1),
             body=with_field(valid, fields["recipient"], {"email": "a@x.com"})),
        case("message-id-as-float", "a float where the message id goes", ok(1),
             body=with_field(valid, fields["message_id"], 1.5e300)),
        case("time-as-text", "words where the timestamp goes", ok(1),
             body=with_field(valid, fields["time"], "yesterday")),
        case("time-negative", "a negative timestamp", ok(1), body=with_field(valid, fields["time"], -1)),
        case("time-huge", "a timestamp far beyond year 9999", ok(1),
             body=with_field(valid, fields["time"], 9223372036854775807)),
        case("time-float-huge", "a float timestamp of 1e300", ok(1), body=with_field(valid, fields["time"], 1e300)),
        case("duplicate-keys", "the event's first key twice: first a decoy, then its real value", ok(1),
             body=compact[:-1] + "," + json.dumps(fields["event"][0]) + ':"decoy",' + json.dumps(fields["event"][0])
             + ":" + json.dumps(event[fields["event"][0]]) + "}"),
        case("escaped-nul", "an escaped NUL inside strings", ok(1),
             body=with_field(valid, fields["subject"], "a\u0000b\u0000")),
        case("unicode-subject", "emoji, right-to-left override, zero-width joiner, combining marks, line separator",
             ok(1), body=with_field(valid, fields["subject"], "👩‍👩‍👧 \u202egnp.exe\u202c e\u0301\u2028\u0000 ＠ 𝕏")),
        case("unicode-recipient", "non-ASCII, fullwidth and dotted capital I in the address", ok(1),
             body=with_field(valid, fields["recipient"], "İSTANBUL＠例え.テスト <Ünï@Bücher.DE>")),
        case("address-injection", "CR/LF and a second header in the address", ok(1),
             body=with_field(valid, fields["recipient"], "a@x.com\r\nBcc: victim@y.com")),
        case("long-recipient", "an address of 3,000 bytes (keys are limited to 2,048)", ok(1),
             body=with_field(valid, fields["recipient"], "a" * 3000 + "@x.com")),
        case("long-unicode-recipient", "an address of 2,000 three-byte characters", ok(1),
             body=with_field(valid, fields["recipient"], "邮" * 2000 + "@x.com")),
        case("long-message-id", "a message id of 4,000 bytes", ok(1),
             body=with_field(valid, fields["message_id"], "m" * 4000)),
        case("big-subject", "a 1 MB subject (well under 6 MB)", ok(1),
             body=with_field(valid, fields["subject"], "@@BIG@@"), expand={"@@BIG@@": ["Re: ", MB // 4]}),
        case("big-unknown-field", "a 2 MB field nobody reads", ok(1),
             body=compact[:-1] + ',"padding":"@@BIG@@"}', expand={"@@BIG@@": ["0123456789abcdef", 2 * MB // 16]}),
        case("many-keys", "an object with 2,000 keys", ok(1),
             body=compact[:-1] + "," + ",".join('"k%d":%d' % (i, i) for i in range(2000)) + "}"),
        case("deep-in-metadata-100", "a free-form object nested 100 deep (DynamoDB maps nest 32 deep)", ok(1),
             body=with_field(valid, fields["free"], json.loads(nested_objects(100, '"x"')))),
        case("numbers-out-of-range", "numbers DynamoDB cannot hold in a free-form object", ok(1),
             body=with_field(valid, fields["free"], {"big": 1e300, "tiny": 1e-300, "long": 123456789012345678901234567890123456789012345,
                                                    "neg": -9.99e200})),
        case("empty-keys", "empty and odd keys in a free-form object", ok(1),
             body=with_field(valid, fields["free"], {"": "empty", " ": 1, "a.b": 2, "#x": 3, ":y": [], "\u0000": "nul"})),
        case("whitespace-around", "the body wrapped in whitespace", ok(1), body="\r\n \t" + compact + "\n\n"),
        case("batch-of-one", "a batch of one element", ok(1), body="[" + compact + "]"),
        case("batch-of-50", "a batch of 50 different events", ok(50),
             body="[" + ",".join(json.dumps(variant(event, i)) for i in range(50)) + "]"),
        case("batch-with-duplicates", "the same event three times in one batch", ok(3),
             body="[" + ",".join([compact] * 3) + "]"),
        case("batch-whitespace", "a batch with odd whitespace between elements", ok(2),
             body="[\n\t" + compact + "\r\n ,\n" + json.dumps(variant(event, 1)) + "\t]"),
    ]
    return cases


def transport_cases(provider, valid):
    cases = [
        case("method-get", "GET instead of POST", bad(405, "GET"), method="GET", body=valid),
        case("method-put", "PUT instead of POST", bad(405, "PUT"), method="PUT", body=valid),
        case("method-delete", "DELETE instead of POST", bad(405, "DELETE"), method="DELETE", body=valid),
        case("method-patch", "PATCH instead of POST", bad(405, "PATCH"), method="PATCH", body=valid),
        case("method-options", "OPTIONS instead of POST", bad(405, "OPTIONS"), method="OPTIONS", body=""),
        case("no-auth", "no credentials at all", bad(401), auth="none", body=valid),
        case("no-auth-bad-body", "no credentials and a broken body: auth is checked first", bad(401),
             auth="none", body="{"),
        case("over-6mb", "a body one byte over 6 MB", bad(413, "larger than"),
             body="@@PAD@@", expand={"@@PAD@@": ["x", SIX_MB + 1]}),
        case("over-6mb-json", "a well-formed, signed event padded past 6 MB", bad(413, "larger than"),
             body=valid.rstrip()[:-1] + ',"pad":"@@PAD@@"}', expand={"@@PAD@@": ["a", SIX_MB]}),
        case("over-6mb-unsigned", "an unsigned body over 6 MB: refused before anything is read", bad(413),
             auth="none", body="@@PAD@@", expand={"@@PAD@@": ["[", SIX_MB + 10]}),
        case("over-6mb-base64", "a base64 body that decodes to over 6 MB", bad(413),
             body="@@PAD@@", expand={"@@PAD@@": [" ", SIX_MB + 1]}, encode_base64=True),
        case("exactly-6mb", "a body of exactly 6 MB (whitespace then an event) is read", ok(1),
             body="@@PAD@@" + valid.strip(), expand={"@@PAD@@": [" ", SIX_MB - len(valid.strip().encode())]}),
        case("header-crlf-injection", "CR/LF and a second header inside a header value",
             {"before_handler": True}, headers={"x-forwarded-for": "1.2.3.4\r\nX-Injected: yes"}, body=valid),
        case("header-nul", "a NUL byte in a header value", {"before_handler": True},
             headers={"user-agent": "ua\u0000"}, body=valid),
        case("header-bad-name", "a header name with a space and a colon", {"before_handler": True},
             headers={"x bad:name": "1"}, body=valid),
    ]
    return cases


def engagelab_auth_cases(valid):
    signed = {"x-webhook-appkey": "email", "x-webhook-timestamp": "{now}", "x-webhook-signature": "{engagelab_hmac}"}

    def headers(**changes):
        merged = dict(signed)
        for name, value in changes.items():
            merged[name.replace("_", "-")] = value
        return merged

    wrong_hmac = "4593531c8fffbb8e7eb292bc0018aa5fe6d0dec40c7a0a13a199435663e0b416"
    return [
        case("md5-form", "EngageLab's MD5 signature form is accepted", ok(1),
             headers=headers(x_webhook_signature="{engagelab_md5}"), body=valid),
        case("uppercase-hex", "the signature in upper-case hex is accepted", ok(1),
             headers=headers(x_webhook_signature="{engagelab_hmac_upper}"), body=valid),
        case("mixed-case-names", "header names in odd case are the same headers", ok(1), auth="none",
             headers={"X-WebHook-AppKey": "email", "X-WEBHOOK-TIMESTAMP": "{now}", "x-Webhook-Signature": "{engagelab_hmac}"},
             body=valid),
        case("millisecond-timestamp", "a timestamp in milliseconds", ok(1),
             headers=headers(x_webhook_timestamp="{now_ms}"), body=valid),
        case("wrong-signature", "a signature made with another key", bad(401, "signature"),
             headers=headers(x_webhook_signature=wrong_hmac), body=valid),
        case("missing-signature", "no signature header", bad(401, "missing"),
             headers=headers(x_webhook_signature=None), body=valid),
        case("empty-signature", "an empty signature header", bad(401, "missing"),
             headers=headers(x_webhook_signature=""), body=valid),
        case("non-hex-signature", "a signature that is not hex", bad(401, "malformed"),
             headers=headers(x_webhook_signature="zz" * 32), body=valid),
        case("short-signature", "a 31-byte signature", bad(401, "malformed"),
             headers=headers(x_webhook_signature="ab" * 31), body=valid),
        case("oversized-signature", "a 16 KB signature", bad(401, "malformed"),
             headers=headers(x_webhook_signature="@@LONG@@"), expand={"@@LONG@@": ["ab", 8192]}, body=valid),
        case("duplicated-signature", "two signature headers (API Gateway joins them with a comma)",
             bad(401, "malformed"), headers=headers(x_webhook_signature="{engagelab_hmac},{engagelab_hmac}"), body=valid),
        case("repeated-signature-wrong-first", "REST API multi-value signature header, wrong one first",
             bad(401, "signature"), multi_headers={"x-webhook-signature": [wrong_hmac, "{engagelab_hmac}"]}, body=valid),
        case("encoded-crlf-signature", "a percent-encoded CR/LF after the signature", bad(401, "malformed"),
             headers=headers(x_webhook_signature="{engagelab_hmac}%0d%0aX-Injected:%20yes"), body=valid),
        case("non-ascii-signature", "non-ASCII text in the signature header", bad(401, "malformed"),
             headers=headers(x_webhook_signature="é" * 32), body=valid),
        case("stale-timestamp", "a valid signature over a timestamp 301 s old", bad(401, "window"),
             headers=headers(x_webhook_timestamp="{now-301}"), body=valid),
        case("old-timestamp", "a valid signature over a timestamp a day old", bad(401, "window"),
             headers=headers(x_webhook_timestamp="{now-86400}"), body=valid),
        case("future-timestamp", "a valid signature over a timestamp an hour ahead", bad(401, "window"),
             headers=headers(x_webhook_timestamp="{now+3600}"), body=valid),
        case("zero-timestamp", "timestamp 0, validly signed", bad(401, "window"),
             headers=headers(x_webhook_timestamp="0"), body=valid),
        case("max-timestamp", "timestamp i64::MAX, validly signed", bad(401, "window"),
             headers=headers(x_webhook_timestamp="9223372036854775807"), body=valid),
        case("min-timestamp", "timestamp i64::MIN, validly signed", bad(401, "window"),
             headers=headers(x_webhook_timestamp="-9223372036854775808"), body=valid),
        case("text-timestamp", "a timestamp that is not a number", bad(401, "malformed"),
             headers=headers(x_webhook_timestamp="now"), body=valid),
        case("float-timestamp", "a timestamp with a fraction", bad(401, "malformed"),
             headers=headers(x_webhook_timestamp="{now}.5"), body=valid),
        case("missing-timestamp", "no timestamp header", bad(401, "missing"),
             headers=headers(x_webhook_timestamp=None, x_webhook_signature="0" * 64), body=valid),
        case("wrong-appkey", "X-WebHook-AppKey other than email", bad(401, "AppKey"),
             headers=headers(x_webhook_appkey="sms"), body=valid),
        case("appkey-case", "X-WebHook-AppKey EMAIL", bad(401, "AppKey"),
             headers=headers(x_webhook_appkey="EMAIL"), body=valid),
        case("missing-appkey", "no X-WebHook-AppKey", bad(401, "missing"),
             headers=headers(x_webhook_appkey=None), body=valid),
        case("sendpost-signature", "another provider's signature header", bad(401), auth="none",
             headers={"x-sendpost-signature": "{sendpost_hmac}"}, body=valid),
        case("url-token-only", "a URL token when signatures are required", bad(401), auth="none",
             query="token=local-engagelab-key", body=valid),
    ]


def sendpost_auth_cases(valid):
    # Not the sample's own signature, which the test key makes right for the sample body.
    wrong = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592"
    return [
        case("uppercase-hex", "the signature in upper-case hex is accepted", ok(1),
             headers={"x-sendpost-signature": "{sendpost_hmac_upper}"}, body=valid),
        case("algorithm-upper", "the algorithm named in upper case", ok(1),
             headers={"x-sendpost-signature-alg": "HMAC-SHA256"}, body=valid),
        case("no-algorithm-header", "no algorithm header: HMAC-SHA256 is assumed", ok(1),
             headers={"x-sendpost-signature-alg": None}, body=valid),
        case("mixed-case-name", "X-SENDPOST-SIGNATURE in capitals", ok(1), auth="none",
             headers={"X-SENDPOST-SIGNATURE": "{sendpost_hmac}"}, body=valid),
        case("tampered-body", "the body changed after signing", bad(401, "signature"),
             headers={"x-sendpost-signature": wrong}, body=valid.replace("Gavin", "Gavim")),
        case("signature-of-other-body", "a signature of the body plus a newline", bad(401, "signature"),
             headers={"x-sendpost-signature": "{sendpost_hmac_of_body_newline}"}, body=valid),
        case("missing-signature", "no signature header", bad(401, "missing"),
             headers={"x-sendpost-signature": None}, body=valid),
        case("empty-signature", "an empty signature header", bad(401, "missing"),
             headers={"x-sendpost-signature": "  "}, body=valid),
        case("non-hex-signature", "a signature that is not hex", bad(401, "malformed"),
             headers={"x-sendpost-signature": "g" * 64}, body=valid),
        case("odd-hex-signature", "a signature of odd length", bad(401, "malformed"),
             headers={"x-sendpost-signature": "a" * 63}, body=valid),
        case("short-signature", "a 16-byte signature", bad(401, "signature"),
             headers={"x-sendpost-signature": "ab" * 16}, body=valid),
        case("oversized-signature", "a 16 KB signature", bad(401, "signature"),
             headers={"x-sendpost-signature": "@@LONG@@"}, expand={"@@LONG@@": ["ab", 8192]}, body=valid),
        case("prefixed-signature", "sha256= before the signature", bad(401, "malformed"),
             headers={"x-sendpost-signature": "sha256={sendpost_hmac}"}, body=valid),
        case("duplicated-signature", "two signature headers (API Gateway joins them with a comma)",
             bad(401, "malformed"), headers={"x-sendpost-signature": "{sendpost_hmac},{sendpost_hmac}"}, body=valid),
        case("repeated-signature-wrong-first", "REST API multi-value signature header, wrong one first",
             bad(401, "signature"), multi_headers={"x-sendpost-signature": [wrong, "{sendpost_hmac}"]}, body=valid),
        case("sha1-algorithm", "an algorithm we do not support", bad(401, "algorithm"),
             headers={"x-sendpost-signature-alg": "hmac-sha1"}, body=valid),
        case("none-algorithm", "algorithm none", bad(401, "algorithm"),
             headers={"x-sendpost-signature-alg": "none"}, body=valid),
        case("non-ascii-algorithm", "non-ASCII algorithm header", bad(401, "algorithm"),
             headers={"x-sendpost-signature-alg": "hmac-sha256é"}, body=valid),
        case("encoded-crlf-signature", "a percent-encoded CR/LF after the signature", bad(401, "malformed"),
             headers={"x-sendpost-signature": "{sendpost_hmac}%0d%0aX-Injected:%20yes"}, body=valid),
        case("engagelab-signature", "another provider's signature headers", bad(401, "missing"), auth="none",
             headers={"x-webhook-appkey": "email", "x-webhook-timestamp": "{now}", "x-webhook-signature": "{engagelab_hmac}"},
             body=valid),
        case("url-token-only", "a URL token when the signature is required", bad(401, "missing"), auth="none",
             query="token=local-sendpost-key", body=valid),
        case("basic-auth-only", "Basic auth when the signature is required", bad(401, "missing"), auth="none",
             headers={"authorization": "Basic {basic_token}"}, body=valid),
        case("signed-empty-body", "a valid signature of an empty body", bad(400, "not valid JSON"), body=""),
    ]


def tencent_auth_cases(valid):
    return [
        case("basic-auth", "the token as Basic-auth password is accepted", ok(1), auth="none",
             headers={"authorization": "Basic {basic_token}"}, body=valid),
        case("basic-auth-lowercase-scheme", "basic in lower case", ok(1), auth="none",
             headers={"authorization": "basic {basic_token}"}, body=valid),
        case("token-after-others", "the token among other parameters", ok(1), auth="none",
             query="a=1&token={token}&b=%00", body=valid),
        case("wrong-token", "a wrong URL token", bad(401, "does not match"), auth="none",
             query="token=local-tencent-tokem", body=valid),
        case("token-case", "the token in other case", bad(401, "does not match"), auth="none",
             query="token=LOCAL-TENCENT-TOKEN", body=valid),
        case("token-prefix", "a prefix of the token", bad(401, "does not match"), auth="none",
             query="token=local-tencent", body=valid),
        case("token-trailing-space", "the token with an encoded space after it", bad(401, "does not match"),
             auth="none", query="token={token}%20", body=valid),
        case("token-encoded-crlf", "the token with an encoded CR/LF after it", bad(401, "does not match"),
             auth="none", query="token={token}%0d%0aX-Injected:%20yes", body=valid),
        case("token-empty", "an empty token parameter", bad(401), auth="none", query="token=", body=valid),
        case("token-long", "an 8 KB token (API Gateway's whole request line is at most 10 KB)",
             bad(401, "does not match"), auth="none", query="token=@@LONG@@", expand={"@@LONG@@": ["t", 8192]},
             body=valid),
        case("no-token", "no token at all", bad(401, "missing"), auth="none", body=valid),
        case("other-parameter", "the token under another name", bad(401, "missing"), auth="none",
             query="Token={token}", body=valid),
        case("basic-wrong-password", "Basic auth with a wrong password", bad(401, "does not match"), auth="none",
             headers={"authorization": "Basic " + base64.b64encode(b"any:wrong").decode()}, body=valid),
        case("basic-token-as-user", "the token as Basic-auth user name", bad(401), auth="none",
             headers={"authorization": "Basic " + base64.b64encode(b"local-tencent-token:").decode()}, body=valid),
        case("basic-not-base64", "Basic auth that is not base64", bad(401, "missing"), auth="none",
             headers={"authorization": "Basic !!!not-base64!!!"}, body=valid),
        case("basic-no-colon", "Basic auth without user:password", bad(401, "missing"), auth="none",
             headers={"authorization": "Basic " + base64.b64encode(b"local-tencent-token").decode()}, body=valid),
        case("basic-invalid-utf8", "Basic auth whose credentials are not UTF-8", bad(401, "missing"), auth="none",
             headers={"authorization": "Basic " + base64.b64encode(b"any:\xff\xfe").decode()}, body=valid),
        case("bearer-token", "the token as a bearer token", bad(401, "missing"), auth="none",
             headers={"authorization": "Bearer {token}"}, body=valid),
        case("non-ascii-authorization", "non-ASCII Authorization header", bad(401, "missing"), auth="none",
             headers={"authorization": "Basic é"}, body=valid),
    ]


PROVIDERS = {
    "engagelab": dict(
        sample="delivered",
        fields=dict(event=["status", "message_status"], recipient=["to"],
                    message_id=["status", "status_data", "email_id"],
                    subject=["subject"], time=["itime"], free=["custom_args"]),
        auth=engagelab_auth_cases,
    ),
    "sendpost": dict(
        sample="delivered",
        fields=dict(event=["event", "type"], recipient=["event", "to"], message_id=["event", "messageID"],
                    subject=["event", "messageSubject"], time=["event", "submittedAt"],
                    free=["emailMessage", "customFields"]),
        auth=sendpost_auth_cases,
    ),
    "tencent_ses": dict(
        sample="delivered",
        fields=dict(event=["event"], recipient=["email"], message_id=["bulkId"], subject=["subject"],
                    time=["timestamp"], free=["templateId"]),
        auth=tencent_auth_cases,
    ),
}


def provider_specific(provider):
    """Cases only one provider's payloads call for."""
    if provider == "engagelab":
        target = json.loads(sample_body("engagelab", "target_two_recipients"))
        route = sample_body("engagelab", "route")
        return [
            case("target-tos-not-list", "a target whose tos is an object", ok(1),
                 body=json.dumps(set_path(json.loads(json.dumps(target)), ["status", "status_data", "tos"], {"a": "b"}))),
            case("target-200-recipients", "a target fanned out to 200 recipients", ok(200),
                 body=json.dumps(set_path(json.loads(json.dumps(target)), ["status", "status_data", "tos"],
                                          ["user%d@x.com" % i for i in range(200)]))),
            case("target-duplicate-recipients", "a target naming one recipient twice, in two cases", ok(2),
                 body=json.dumps(set_path(json.loads(json.dumps(target)), ["status", "status_data", "tos"],
                                          ["a@x.com", "A@X.COM"]))),
            case("target-email-ids-mismatch", "more email_ids than tos, and non-text ids", ok(2),
                 body=json.dumps(set_path(json.loads(json.dumps(target)), ["status", "status_data", "email_ids"],
                                          [1, None, "x", {"y": 1}]))),
            case("route-big-message", "an inbound route carrying a 1 MB message body (compresses under 400 KB)",
                 ok(1, "inbound"), body=route.replace('"text": "Hi Team,Let\'s start ......"', '"text": "@@BIG@@"'),
                 expand={"@@BIG@@": ["Hi team, the plan for next month. ", MB // 34]}),
            case("route-headers-wrong-type", "route headers as a list of numbers", ok(1, "inbound"),
                 body=with_field(route, ["response", "response_data", "headers"], [1, 2, 3])),
            case("status-and-response", "a callback with both a status and a response", ok(1),
                 body=json.dumps(dict(json.loads(sample_body("engagelab", "delivered")),
                                      response={"event": "open", "response_data": {}}))),
        ]
    if provider == "sendpost":
        return [
            case("type-out-of-range", "event type 99", ok(1, "unknown"),
                 body=with_field(sample_body("sendpost", "delivered"), ["event", "type"], 99)),
            case("type-negative", "event type -1", ok(1, "unknown"),
                 body=with_field(sample_body("sendpost", "delivered"), ["event", "type"], -1)),
            case("event-not-object", "event as a string", ok(1, "unknown"),
                 body=with_field(sample_body("sendpost", "delivered"), ["event"], "delivered")),
            case("to-list-of-junk", "emailMessage.to with numbers and nulls", ok(1),
                 body=with_field(sample_body("sendpost", "delivered"), ["emailMessage", "to"], [1, None, [], "x"])),
            case("event-id-huge", "a 10 KB eventID", ok(1),
                 body=with_field(sample_body("sendpost", "delivered"), ["event", "eventID"], "e" * 10240)),
        ]
    return [
        case("eventid-out-of-range", "eventid 99 and no event name", ok(1, "unknown"),
             body=json.dumps({"eventid": 99, "email": "a@x.com"})),
        case("subject-bad-encoded-words", "malformed RFC 2047 words in the subject", ok(1),
             body=with_field(sample_body("tencent_ses", "delivered"), ["subject"], "=?UTF-8?B?####?= =?x?Q?=ZZ?=")),
        case("subject-encoded-crlf", "an encoded-word that decodes to CR/LF and a header", ok(1),
             body=with_field(sample_body("tencent_ses", "delivered"), ["subject"], "=?UTF-8?B?DQpCY2M6IHhAeS5jb20=?=")),
        case("bounce-type-odd", "bounceType as a number", ok(1, "bounced"),
             body=with_field(sample_body("tencent_ses", "bounce_hard"), ["bounceType"], 2)),
    ]


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    counts = {}
    for provider, spec in PROVIDERS.items():
        valid = sample_body(provider, spec["sample"])
        cases = (
            transport_cases(provider, valid)
            + spec["auth"](valid)
            + body_cases(provider, valid, spec["fields"])
            + provider_specific(provider)
        )
        names = [c["name"] for c in cases]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            sys.exit(f"{provider}: duplicate case names {sorted(duplicates)}")
        directory = os.path.join(OUT, provider)
        os.makedirs(directory)
        for index, c in enumerate(cases, 1):
            with open(os.path.join(directory, "%03d-%s.json" % (index, c["name"])), "w") as f:
                json.dump(c, f, indent=1, ensure_ascii=False)
                f.write("\n")
        counts[provider] = len(cases)
    print(" ".join(f"{provider}: {count}" for provider, count in counts.items()))


if __name__ == "__main__":
    main()
