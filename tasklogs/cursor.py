"""Cursors: opaque tokens that say how many characters of each log of a task a client already has.

Version 2, what the service issues, is zlib of bytes: 0x02; the logs that have a row in the store, by
row id (ascending, each id as the varint difference to the one before) and varint offset; then the logs
without a row yet, by key (varint length, UTF-8 `pod/container`, varint offset). A log takes 2 to 4
bytes, so the cursor of a task of 1000 pods fits in gunicorn's request line; row ids are the same on
every replica and survive the final save. Logs at offset 0 are left out. Version 1 (zlib of the JSON
`{"v": 1, "o": {key: offset}}`) is still read.
"""

import base64
import binascii
import json
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .errors import InvalidRequest

MAX_CURSOR_LENGTH = 16384
VERSION = 2


@dataclass(frozen=True)
class Cursor:
    """What a client has of each log: offsets by the log's row id, and by key for logs without one."""

    by_key: dict[str, int] = field(default_factory=dict)
    by_log_id: dict[int, int] = field(default_factory=dict)

    def known(self, keys_by_log_id: Mapping[int, str], keys: Collection[str]) -> bool:
        """Whether every log the cursor names is among these."""
        return all(i in keys_by_log_id for i in self.by_log_id) and all(
            key in keys for key in self.by_key
        )

    def offsets(
        self, keys_by_log_id: Mapping[int, str], keys: Collection[str], task_id: str
    ) -> dict[str, int]:
        """Offsets by log key; InvalidRequest naming what is not a log of the task."""
        unknown = [f"{key[:200]!r}" for key in self.by_key if key not in keys]
        unknown += [f"log #{i}" for i in self.by_log_id if i not in keys_by_log_id]
        if unknown:
            raise InvalidRequest(
                f"cursor names {', '.join(unknown[:3])}{' and more' if len(unknown) > 3 else ''}, "
                f"which {'is' if len(unknown) == 1 else 'are'} not a log of task {task_id!r}"
            )
        offsets = dict(self.by_key)
        offsets.update({keys_by_log_id[i]: offset for i, offset in self.by_log_id.items()})
        return offsets


def encode_cursor(offsets: Mapping[str, int], log_ids: Mapping[str, int] | None = None) -> str:
    """Token for `{log key: characters seen}`; `log_ids` gives the logs' row ids where known."""
    log_ids = log_ids or {}
    by_id = sorted((log_ids[k], n) for k, n in offsets.items() if n and k in log_ids)
    by_key = sorted((k, n) for k, n in offsets.items() if n and k not in log_ids)
    out, previous = bytearray([VERSION]), 0
    _varint(out, len(by_id))
    for log_id, offset in by_id:
        _varint(out, log_id - previous)
        _varint(out, offset)
        previous = log_id
    for key, offset in by_key:
        raw = key.encode()
        _varint(out, len(raw))
        out += raw
        _varint(out, offset)
    return base64.urlsafe_b64encode(zlib.compress(bytes(out), 9)).decode().rstrip("=")


def decode_cursor(token: str | None) -> Cursor | None:
    """The cursor inside a token, or None without one; InvalidRequest for anything malformed."""
    if token is None:
        return None
    if len(token) > MAX_CURSOR_LENGTH:
        raise InvalidRequest("cursor is too long")
    try:
        raw = zlib.decompressobj().decompress(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), 1 << 20
        )
        cursor = _binary(raw) if raw[:1] == bytes([VERSION]) else _json(raw)
    except (binascii.Error, zlib.error, ValueError, KeyError, TypeError, AttributeError):
        cursor = None
    if cursor is None:
        raise InvalidRequest("cursor is not one this service issued")
    return cursor


def _json(raw: bytes) -> Cursor | None:
    document = json.loads(raw)
    offsets = document["o"]
    valid = (
        document.get("v") == 1
        and isinstance(offsets, dict)
        and all(
            isinstance(key, str) and type(value) is int and value >= 0
            for key, value in offsets.items()
        )
    )
    return Cursor(by_key={k: n for k, n in offsets.items() if n}) if valid else None


def _binary(raw: bytes) -> Cursor:
    reader = _Reader(raw, 1)
    by_id, log_id = {}, 0
    for _ in range(reader.varint()):
        log_id += reader.varint()
        by_id[log_id] = reader.varint()
    by_key = {}
    while not reader.done:
        key = reader.take(reader.varint()).decode()
        by_key[key] = reader.varint()
    return Cursor(by_key, by_id)


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class _Reader:
    def __init__(self, raw: bytes, position: int):
        self.raw, self.position = raw, position

    @property
    def done(self) -> bool:
        return self.position >= len(self.raw)

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.raw):
            raise ValueError("cut short")
        piece = self.raw[self.position : self.position + size]
        self.position += size
        return piece

    def varint(self) -> int:
        value = 0
        for shift in range(0, 64, 7):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise ValueError("varint too long")
