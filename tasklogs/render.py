"""Response bodies of the REST route, streamed: `text`, `json` and `ndjson`.

A whole log goes out page by page as it is stored; a line query's lines are rendered one by one
(with their timestamp when asked), gathered into pieces of about PIECE characters before they are
written, so the body stays bounded whatever the log's size.
"""

import heapq
import json
from collections.abc import Iterable, Iterator

import orjson

from .linequery import Hit, LineQuery, format_ts
from .service import FoundLine, LogEntry, TaskView

PIECE = 1 << 16


def text_body(view: TaskView, query: LineQuery, length: int | None = None) -> Iterator[bytes]:
    """The `text` body; with `length` (the Content-Length sent, see `text_length`), a body that comes
    out shorter ends in an error, so the server closes the connection rather than leave the client
    waiting for the rest."""
    sent = 0
    for entry in view.entries:
        for piece in _text_pieces(view, entry, query):
            sent += len(piece)
            yield piece
    if length is not None and sent != length:
        raise RuntimeError(f"{view.task_id}: the text body was {sent} bytes, not the {length} sent")


def text_length(view: TaskView, query: LineQuery) -> int | None:
    """The `text` body's length in bytes, when it is known before it is read: a whole stored log (or
    several) of a task whose final save is done, which nothing appends to any more."""
    lengths = [entry.byte_length for entry in view.entries]
    if query.by_line or not view.complete or None in lengths:
        return None
    several = len(view.entries) > 1
    framing = sum(len(b"".join(_framing(entry, several))) for entry in view.entries)
    return framing + sum(length or 0 for length in lengths)


def _text_pieces(view: TaskView, entry: LogEntry, query: LineQuery) -> Iterator[bytes]:
    before, after = _framing(entry, len(view.entries) > 1)
    if before:
        yield before
    if query.by_line:
        for piece in _text_of(entry, query):
            yield piece.encode("utf-8", "surrogatepass")
    else:
        yield from entry.utf8(0)
    if after:
        yield after


def _framing(entry: LogEntry, several: bool = True) -> tuple[bytes, bytes]:
    """What the `text` body has before and after a log: nothing for a task of one log, else a
    `==> pod (node) <==` line before it and a blank line after it (as `tail` heads several files)."""
    if not several:
        return b"", b""
    return f"==> {entry.log.pod} ({entry.log.node}) <==\n".encode(), b"\n"


def json_body(view: TaskView, query: LineQuery) -> Iterator[bytes]:
    head = {
        "namespace": view.task.namespace,
        "task_id": view.task_id,
        "phase": view.phase,
        "source": view.source,
        "complete": view.complete,
    }
    yield (json.dumps(head)[:-1] + ', "logs": [').encode()
    for index, entry in enumerate(view.entries):
        fields: dict = {**entry.log.fields(), "phase": entry.phase}
        if entry.source:
            fields["source"] = entry.source
        if entry.note:
            fields["note"] = entry.note
        yield (("," if index else "") + json.dumps(fields)[:-1] + ', "logs": "').encode()
        for piece in _text_of(entry, query):
            yield json_string_body(piece)
        yield f'", "lines": {entry.line_count()}}}'.encode()
    yield b"]}"


def json_string_body(text: str) -> bytes:
    """`text` as the inside of a JSON string, UTF-8 encoded (orjson: about ten times `json.dumps`)."""
    try:
        return orjson.dumps(text)[1:-1]
    except orjson.JSONEncodeError:  # a lone surrogate, which orjson refuses
        return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")


def ndjson_body(view: TaskView, query: LineQuery, merge: bool) -> Iterator[bytes]:
    """One JSON object per line; with `merge`, every log's lines in one timeline by capture time (ties
    keep the order of the logs in the task)."""
    streams = [_objects(entry, query) for entry in view.entries]
    objects: Iterable[tuple[int, str]]
    if merge:
        objects = heapq.merge(*streams, key=lambda pair: pair[0])
    else:
        objects = (pair for stream in streams for pair in stream)
    for piece in _gathered(text for _, text in objects):
        yield piece.encode("utf-8", "surrogatepass")


def search_body(found: list[FoundLine]) -> Iterator[bytes]:
    """The search's answer: one JSON object per line found, in the order given (newest first)."""
    records = (
        json.dumps(
            {
                "namespace": line.namespace,
                "task_id": line.task_id,
                **line.log.fields(),
                "line": line.number,
                "ts": format_ts(line.ts),
                "text": line.text,
            },
            ensure_ascii=False,
        )
        + "\n"
        for line in found
    )
    for piece in _gathered(records):
        yield piece.encode("utf-8", "surrogatepass")


def _objects(entry: LogEntry, query: LineQuery) -> Iterator[tuple[int, str]]:
    fields = entry.log.fields()
    for hit in entry.select(query):
        line = hit.line
        record = {**fields, "line": line.number, "ts": format_ts(line.ts), "text": line.content}
        if hit.match is not None:
            record["match"] = hit.match
        yield line.ts, json.dumps(record, ensure_ascii=False) + "\n"


def _text_of(entry: LogEntry, query: LineQuery) -> Iterator[str]:
    if not query.by_line:
        return iter(entry.read(0))
    return _gathered(_rendered(entry.select(query), query))


def _rendered(hits: Iterable[Hit], query: LineQuery) -> Iterator[str]:
    separate = query.grep is not None and query.context > 0
    for hit in hits:
        if separate and hit.gap:
            yield "--\n"
        if query.timestamps:
            yield f"{format_ts(hit.line.ts)} {hit.line.text}"
        else:
            yield hit.line.text


def _gathered(texts: Iterable[str]) -> Iterator[str]:
    """Small texts joined into pieces of about PIECE characters."""
    buffer: list[str] = []
    size = 0
    for text in texts:
        buffer.append(text)
        size += len(text)
        if size >= PIECE:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)
