"""The capture engine: reading a container's log from where the store stands, exactly once.

`read_container` is the one primitive: it reads the log once (no follow) from a `Position` and yields
text with the position after it. The live tail follows the same parser over `follow=true` streams.
"""
import logging
from dataclasses import replace

from ..errors import ContainerWaiting, LogsGone, ObjectNotFound
from ..logstream import LogParser, Position
from .. import repository

log = logging.getLogger(__name__)

APPEND_PIECE = 1 << 20  # characters per journal row when catching up a long log


def read_container(kube, pod: str, container: str, status: dict | None, position: Position = Position()):
    """Yield (text, position after it) for the container's log after `position`, read once.

    A restarted container's previous instance is read first (`previous=true`); a container that has
    terminated is read to its very end. Nothing is yielded for a container that has not started."""
    if status is None or status["state"] == "waiting":
        return
    if status["restarts"] > position.restarts:
        try:
            position = yield from _read_once(kube, pod, container, position, previous=True, final=True)
        except LogsGone:
            log.warning("previous log of %s/%s is gone; continuing with the current instance", pod, container)
        position = replace(position, restarts=status["restarts"])
    yield from _read_once(kube, pod, container, position, previous=False, final=status["state"] == "terminated")


def _read_once(kube, pod, container, position, *, previous, final):
    parser = LogParser(position)
    with kube.open_log(pod, container, follow=False, since_time=position.since_time, previous=previous) as stream:
        for raw in stream:
            text = parser.feed(raw)
            if text:
                yield text, parser.position
    if final:
        text = parser.finish()
        if text:
            yield text, parser.position
    return parser.position


def store_container(kube, session, stored: repository.StoredLog, stream, status: dict | None) -> int:
    """Append whatever the container logged beyond the stored text; return the stored length after.

    A pod that is gone, a container not started or whose log the node dropped leaves the store as is."""
    offset, pending, position = stored.length, [], stored.position
    try:
        for text, position in read_container(kube, stream.pod_name, stream.container, status, stored.position):
            pending.append(text)
            if sum(map(len, pending)) >= APPEND_PIECE:
                offset = _append(session, stored.log_id, offset, pending, position)
        return _append(session, stored.log_id, offset, pending, position)
    except (ObjectNotFound, ContainerWaiting, LogsGone) as error:
        log.info("no more log from %s/%s: %s", stream.pod_name, stream.container, error.message)
        return _append(session, stored.log_id, offset, pending, position)


def _append(session, log_id: int, offset: int, pending: list[str], position: Position) -> int:
    if not pending:
        return offset
    data = "".join(pending)
    pending.clear()
    repository.append_chunk(session, log_id, offset, data, position)
    return offset + len(data)
