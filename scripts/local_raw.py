"""An event item's `raw` back as the provider's JSON text, from a stored item in DynamoDB's
attribute-value form (what boto3's low-level client answers): scripts/read-events --raw.

The same rules as shared/src/raw_codec.rs, described in docs/reading.md:
- `S`: the text itself.
- `B`: a zlib stream. Without FDICT it is plain zlib. With FDICT its preset dictionary is the
  provider's file in shared/src/store/raw_dictionaries/, alone (older items) or followed by the
  item's context: the strings of the CONTEXT attributes in that order (list elements in order,
  map values by key in byte order, depth first; other types add nothing), cut at 4,096 bytes.
  The stream's DICTID (Adler-32 of the dictionary) says which.
- no `raw` but `raw_object` {key, sha256, bytes}: the JSON text is that S3 object, checked
  against the recorded SHA-256.
"""

import hashlib
import zlib
from pathlib import Path

DICTIONARIES = Path(__file__).resolve().parent.parent / "shared" / "src" / "store" / "raw_dictionaries"
CONTEXT = ("message_id", "recipient", "sender", "subject", "reason", "click_url", "user_agent",
           "ip", "account", "provider_event", "tags", "metadata")
MAX_CONTEXT_BYTES = 4096
FDICT = 0x20


class RawError(Exception):
    """raw that cannot be decoded; the message is one line."""


def _texts(value):
    if "S" in value:
        yield value["S"].encode("utf-8")
    elif "L" in value:
        for element in value["L"]:
            yield from _texts(element)
    elif "M" in value:
        for name in sorted(value["M"], key=lambda name: name.encode("utf-8")):
            yield from _texts(value["M"][name])


def context(item):
    """The item's context, as raw_codec::item_context makes it."""
    joined = b"".join(text for name in CONTEXT if name in item for text in _texts(item[name]))
    return joined[:MAX_CONTEXT_BYTES]


def _dictionary(dictid, item):
    files = sorted(DICTIONARIES.glob("*.json"))
    if not files:
        raise RawError(f"no dictionaries under {DICTIONARIES}")
    own = context(item)
    for path in files:
        for candidate in (path.read_bytes(), path.read_bytes() + own):
            if zlib.adler32(candidate) == dictid:
                return candidate
    raise RawError(f"raw names preset dictionary {dictid:#010x}: no dictionary file, "
                   "alone or with the item's context, has that Adler-32")


def decompress(blob, item):
    if len(blob) < 2 or blob[0] & 0x0F != 8 or ((blob[0] << 8) | blob[1]) % 31 != 0:
        raise RawError("raw is not a zlib stream")
    if blob[1] & FDICT:
        if len(blob) < 6:
            raise RawError("raw is a truncated zlib stream")
        decoder = zlib.decompressobj(zdict=_dictionary(int.from_bytes(blob[2:6], "big"), item))
    else:
        decoder = zlib.decompressobj()
    try:
        data = decoder.decompress(blob) + decoder.flush()
    except zlib.error as err:
        raise RawError(f"raw is corrupt compressed data ({err})") from None
    if not decoder.eof:
        raise RawError("raw is a truncated zlib stream")
    return data


def decode(item, read_object=None):
    """The provider's JSON text of an event item. read_object(key) -> bytes reads an S3 object
    (needed only for an item whose raw is in an object)."""
    raw = item.get("raw")
    if raw is None:
        reference = item.get("raw_object", {}).get("M")
        if reference is None:
            raise RawError("the item has neither raw nor raw_object")
        key = reference.get("key", {}).get("S")
        if not key or read_object is None:
            raise RawError("raw_object names no key" if not key else "raw is in an S3 object and no bucket is set")
        data = read_object(key)
        if hashlib.sha256(data).hexdigest() != reference.get("sha256", {}).get("S"):
            raise RawError(f"S3 object {key} does not match the SHA-256 its item records")
    elif "S" in raw:
        return raw["S"]
    elif "B" in raw:
        data = decompress(bytes(raw["B"]), item)
    else:
        raise RawError("raw is neither text (S) nor binary (B)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RawError("raw is not UTF-8 text") from None
