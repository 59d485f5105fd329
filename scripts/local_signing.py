"""Signing events/ samples for the local test keys: what scripts/send-event sends and
scripts/sign-event prints (for `sam local invoke -e`) are signed by this one module.

The samples carry fixed timestamps, which go stale, so each is signed again now:
  EngageLab: X-WebHook-Timestamp = now (seconds), X-WebHook-Signature =
    hex HMAC-SHA256(key = ENGAGELAB_APP_KEY, message = timestamp), or the
    32-hex MD5 form (md5(timestamp + X-WebHook-AppKey + key)) when the sample uses that one.
  SendPost:  X-SendPost-Signature = hex HMAC-SHA256(key = SENDPOST_API_KEY, body).
  Tencent:   nothing to sign; the samples carry ?token=local-tencent-token.
Only headers present in the sample are signed again, so a sample without a signature stays
without one. Keys come from ENGAGELAB_APP_KEY and SENDPOST_API_KEY (the first of a
comma-separated list), else the local test keys of scripts/local. Standard library only.
"""

import base64
import copy
import hashlib
import hmac
import json
import os
import time


class SampleError(Exception):
    """A sample that cannot be read; the message is one line naming the file."""


def _key(name, default):
    return (os.environ.get(name) or default).split(",")[0].strip()


def load(path):
    """The API Gateway event of a sample file, as a dict."""
    try:
        with open(path, encoding="utf-8") as f:
            event = json.load(f)
    except OSError as err:
        raise SampleError(f"{path}: {err.strerror}") from None
    except ValueError as err:
        raise SampleError(f"{path}: not a JSON event ({err})") from None
    if not isinstance(event, dict):
        raise SampleError(f"{path}: not a JSON event (not an object)")
    return event


def body_bytes(event):
    """The request body as the function receives it (base64 decoded when so marked)."""
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def _header_name(headers, wanted):
    """The sample's own spelling of a header, or None."""
    for name in headers:
        if name.lower() == wanted:
            return name
    return None


def signed(event, now=None):
    """A copy of the event whose signature headers are renewed for the local test keys."""
    event = copy.deepcopy(event)
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return event
    body = body_bytes(event)

    ts_name = _header_name(headers, "x-webhook-timestamp")
    sig_name = _header_name(headers, "x-webhook-signature")
    if ts_name or sig_name:
        key = _key("ENGAGELAB_APP_KEY", "local-engagelab-key")
        timestamp = str(int(time.time() if now is None else now))
        headers[ts_name or "x-webhook-timestamp"] = timestamp
        old = headers.get(sig_name, "") if sig_name else ""
        if len(old) == 32:
            appkey = headers.get(_header_name(headers, "x-webhook-appkey") or "", "email")
            signature = hashlib.md5((timestamp + appkey + key).encode()).hexdigest()
        else:
            signature = hmac.new(key.encode(), timestamp.encode(), hashlib.sha256).hexdigest()
        headers[sig_name or "x-webhook-signature"] = signature

    sp_name = _header_name(headers, "x-sendpost-signature")
    if sp_name:
        key = _key("SENDPOST_API_KEY", "local-sendpost-key")
        headers[sp_name] = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return event
