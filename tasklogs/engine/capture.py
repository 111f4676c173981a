"""The capture engine: reading a container's log from where the store stands, exactly once.

`read_container` is the one primitive: it reads the log once (no follow) from a `Position` and yields
text with the position after it. The live tail follows the same parser over `follow=true` streams.
"""
import logging
import random
import threading
from dataclasses import replace

from ..errors import ClusterUnavailable, ContainerWaiting, LogsGone, ObjectNotFound
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
    if offset and position == Position():
        return offset  # text saved whole, without a resume position: reading from the start would repeat it
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


class Backoff:
    """Exponential backoff with full jitter: 0.2 s, 0.4 s ... capped, each drawn from [d/2, d]."""

    def __init__(self, base: float = 0.2, cap: float = 10.0):
        self.base, self.cap, self.failures = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2 ** self.failures)
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


class ContainerCapture:
    """Follows one container's log (`follow=true`) into the feed from a position, and reconnects after
    any break (idle timeout, API server restart, network) with `sinceTime`: nothing lost, nothing repeated."""

    def __init__(self, kube, feed, stream, position: Position, status: dict | None, poll_interval: float,
                 pause: float = 0.0, room=lambda: True):
        self.kube, self.feed, self.stream = kube, feed, stream
        self.pause = pause
        self.room = room                      # False: memory holds enough unsaved text, stop reading for now
        self.position = position
        self.status = status                  # latest container status, refreshed by the task capture
        self.poll_interval = poll_interval
        self.finished = threading.Event()
        self.caught_up = threading.Event()    # what the container had logged when the capture began is read
        self.started = False                  # it has seen the container run: it ends by itself, never stopped
        self._stopped = threading.Event()
        self._open = None

    def stop(self) -> None:
        self._stopped.set()
        if self._open is not None:
            self._open.abort()

    def run(self) -> None:
        backoff = Backoff()
        try:
            while not self._stopped.is_set():
                try:
                    if self._step():
                        return
                    backoff.reset()
                except ContainerWaiting:
                    self._stopped.wait(self.poll_interval)
                except (ObjectNotFound, LogsGone) as error:
                    self._gone(error)
                    return
                except ClusterUnavailable as error:
                    log.info("log stream of %s broke (%s); reconnecting", self.stream.pod_name, error.message)
                    self._stopped.wait(backoff.next())
        finally:
            self.caught_up.set()
            self.finished.set()

    def _step(self) -> bool:
        """Read until the stream ends; True once the container's log is complete."""
        status = self.status
        if status is None or status["state"] == "waiting":
            self.caught_up.set()
            self._stopped.wait(self.poll_interval)
            return False
        if not self.room():
            self._wait_for_room()
            return False
        self.started = True
        if status["restarts"] > self.position.restarts:
            if not self._read(follow=False, final=True, previous=True, tolerate_gone=True):
                return False
            self.position = replace(self.position, restarts=status["restarts"])
        if status["state"] == "terminated":
            return self._read(follow=False, final=True)
        if not self.caught_up.is_set():
            if not self._read(follow=False, final=False):  # so the first viewers' snapshot holds the log so far
                return False
            self.caught_up.set()
        self._read(follow=True, final=False)
        if not self._stopped.is_set():
            self.status = self._container_status()
        return False

    def _wait_for_room(self) -> None:
        """The database refuses and memory holds enough: the text waits in Kubernetes, read on from
        `position` (with `sinceTime`, nothing lost or repeated) once the journal takes text again."""
        log.warning("capture of %s/%s paused: the database is down and memory holds enough unsaved text",
                    self.stream.pod_name, self.stream.container)
        self.caught_up.set()   # viewers joining meanwhile get what was captured, not a wait
        while not self.room() and not self._stopped.wait(self.poll_interval):
            pass
        log.info("capture of %s/%s goes on", self.stream.pod_name, self.stream.container)

    def _read(self, *, follow: bool, final: bool, previous: bool = False, tolerate_gone: bool = False) -> bool:
        """Read one stream into the feed; True if read to its end (False: stopped, or no more room)."""
        parser = LogParser(self.position)
        try:
            stream = self.kube.open_log(self.stream.pod_name, self.stream.container, follow=follow,
                                        since_time=self.position.since_time, previous=previous)
        except LogsGone:
            if tolerate_gone:
                return True
            raise
        self._open = stream
        stream.pause = lambda: 0.0 if self.feed.watched() else self.pause
        with stream:
            for raw in stream:
                self._take(parser.feed(raw), parser)
                if self._stopped.is_set() or not self.room():
                    return False
        self._open = None
        if final:
            self._take(parser.finish(), parser)
        return True

    def _take(self, text: str, parser: LogParser) -> None:
        self.position = parser.position
        if text:
            self.feed.append(self.stream.key, text, self.position)

    def _container_status(self) -> dict | None:
        pod = self.kube.get_pod(self.stream.pod_name)
        if pod is None:
            raise ObjectNotFound(f"pod {self.stream.pod_name} was deleted")
        return pod["containers"].get(self.stream.container)

    def _gone(self, error) -> None:
        log.info("capture of %s/%s ends: %s", self.stream.pod_name, self.stream.container, error.message)
        self.feed.gone(self.stream.key, f"{error.message}; the log above is everything captured")
