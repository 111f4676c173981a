"""The follow capture: one container's log followed (`follow=true`) into the task's feed, exactly once."""

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from .. import metrics
from ..cluster import Cluster, ContainerStatus, LogStream
from ..errors import ClusterUnavailable, ContainerWaiting, LogsGone, ObjectNotFound
from ..logstream import LogParser, Position
from ..tasks import Stream
from .backoff import Backoff
from .feed import Feed

log = logging.getLogger(__name__)


class ContainerCapture:
    """Follows one container's log (`follow=true`) into the feed from a position, and reconnects after
    any break (idle timeout, API server restart, network) with `sinceTime`: nothing lost, nothing repeated."""

    def __init__(
        self,
        kube: Cluster,
        feed: Feed,
        stream: Stream,
        position: Position,
        status: ContainerStatus | None,
        poll_interval: float,
        pause: float = 0.0,
        room: Callable[[], bool] = lambda: True,
    ):
        self.kube, self.feed, self.stream = kube, feed, stream
        self.pause = pause
        self.room = room  # False: memory holds enough unsaved text, stop reading for now
        self.position = position
        self.status = status  # latest container status, refreshed by the task capture
        self.poll_interval = poll_interval
        self.finished = threading.Event()
        self.caught_up = (
            threading.Event()
        )  # what the container had logged when the capture began is read
        self.started = False  # it has seen the container run: it ends by itself, never stopped
        self._stopped = threading.Event()
        self._open: LogStream | None = None
        self._took_text = False  # text came since the last break of the stream
        self.complete = False  # the container ended and its whole log was read

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
                        self.complete = True
                        return
                    backoff.reset()
                except ContainerWaiting:
                    self._stopped.wait(self.poll_interval)
                except (ObjectNotFound, LogsGone) as error:
                    self._gone(error)
                    return
                except ClusterUnavailable as error:
                    log.info(
                        "log stream of %s broke (%s); reconnecting",
                        self.stream.log.pod,
                        error.message,
                    )
                    if self._took_text:  # it read well before this break: start the backoff anew
                        backoff.reset()
                    self._took_text = False
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
            if not self._read(
                follow=False, final=False
            ):  # so the first viewers' snapshot holds the log so far
                return False
            self.caught_up.set()
        self._read(follow=True, final=False)
        if not self._stopped.is_set():
            self.status = self._container_status()
        return False

    def _wait_for_room(self) -> None:
        """The database refuses and memory holds enough: the text waits in Kubernetes, read on from
        `position` (with `sinceTime`, nothing lost or repeated) once the journal takes text again."""
        log.warning(
            "capture of %s/%s paused: the database is down and memory holds enough unsaved text",
            self.stream.log.pod,
            self.stream.log.container,
        )
        self.caught_up.set()  # viewers joining meanwhile get what was captured, not a wait
        while not self.room() and not self._stopped.wait(self.poll_interval):
            pass
        log.info("capture of %s/%s goes on", self.stream.log.pod, self.stream.log.container)

    def _read(
        self, *, follow: bool, final: bool, previous: bool = False, tolerate_gone: bool = False
    ) -> bool:
        """Read one stream into the feed; True if read to its end (False: stopped, or no more room)."""
        parser = LogParser(self.position)
        try:
            stream = self.kube.open_log(
                self.stream.log.pod,
                self.stream.log.container,
                follow=follow,
                since_time=self.position.since_time,
                previous=previous,
            )
        except LogsGone:
            if tolerate_gone:
                return True
            raise
        self._open = stream
        stream.pause = lambda: 0.0 if self.feed.watched() else self.pause
        with stream, metrics.CAPTURE_STREAMS_OPEN.track_inprogress():
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
            self.feed.append(self.stream.key, text, self.position, stamps=parser.take_stamps())
            self._took_text = True

    def _container_status(self) -> ContainerStatus | None:
        pod = self.kube.get_pod(self.stream.log.pod)
        if pod is None:
            raise ObjectNotFound(f"pod {self.stream.log.pod} was deleted")
        return pod["containers"].get(self.stream.log.container)

    def _gone(self, error) -> None:
        log.info(
            "capture of %s/%s ends: %s",
            self.stream.log.pod,
            self.stream.log.container,
            error.message,
        )
        self.feed.gone(self.stream.key, f"{error.message}; the log above is everything captured")
