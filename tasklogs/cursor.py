"""Cursors: opaque tokens that say how many characters of each pod's log a client already has."""

import base64
import binascii
import json
import zlib

from .errors import InvalidRequest

MAX_CURSOR_LENGTH = 16384


def encode_cursor(offsets: dict[str, int]) -> str:
    """Token for `{stream key: characters seen}`; URL-safe, compressed (pod names share a prefix)."""
    payload = json.dumps({"v": 1, "o": offsets}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(payload, 6)).decode().rstrip("=")


def decode_cursor(token: str | None) -> dict[str, int] | None:
    """The offsets inside a token, or None without one; InvalidRequest for anything malformed."""
    if token is None:
        return None
    if len(token) > MAX_CURSOR_LENGTH:
        raise InvalidRequest("cursor is too long")
    try:
        raw = zlib.decompressobj().decompress(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), 1 << 20
        )
        document = json.loads(raw)
        offsets = document["o"]
        valid = (
            document.get("v") == 1
            and isinstance(offsets, dict)
            and all(
                isinstance(key, str) and isinstance(value, int) and value >= 0
                for key, value in offsets.items()
            )
        )
    except (binascii.Error, zlib.error, ValueError, KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise InvalidRequest("cursor is not one this service issued")
    return offsets
