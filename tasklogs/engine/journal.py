"""The journal, seen from one process: a writer that batches captured text into `log_pages`, and a
listener that hears other processes' commits (LISTEN/NOTIFY) so their viewers here get the text."""

import logging
import random
import select
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine as SqlEngine

from .. import metrics
from ..errors import StoreUnavailable
from ..logstream import START
from ..pages import LogEnd, drop_head, paginate
from ..store import postgres, repository
from ..store.postgres import Dedicated
from ..store.repository import PageRun
from ..store.unit_of_work import UnitOfWork, UnitsOfWork
from .feed import Feed

log = logging.getLogger(__name__)


class JournalWriter:
    """Commits every feed's unsaved text every `interval` seconds, one transaction for all of them.

    It also counts the text waiting in memory: while the database refuses, captures read on only as long
    as that stays under `limit` characters (`has_room`)."""

    def __init__(
        self,
        units: UnitsOfWork,
        interval: float = 0.1,
        limit: int = 256_000_000,
        hurried_gap: float = 0.02,
    ):
        self._units = units
        self.interval = interval
        self.limit = limit
        self.hurried_gap = min(hurried_gap, interval)  # hurried commits come at most this often
        self._last_flush = 0.0
        self.held = 0  # characters captured and not yet committed, in every feed
        self._held_lock = threading.Lock()
        self._dirty: set[Feed] = set()
        self._hurry = threading.Event()  # text that viewers elsewhere wait for: flush now
        self._known_end: dict[int, LogEnd] = {}  # where each log's stored text ends, as last seen
        self._lock = threading.Lock()  # one flush at a time
        self._failures = 0
        self._stopped = threading.Event()
        self.healthy = True

    def mark(self, feed, size: int) -> None:
        """The feed took `size` characters of unsaved text; commit it at once if other processes' viewers
        wait for it (they see it only once it is committed)."""
        self._dirty.add(feed)
        with self._held_lock:
            self.held += size
        metrics.UNSAVED_BYTES.inc(size)
        if feed.watched_elsewhere():
            self._hurry.set()

    def has_room(self) -> bool:
        """Whether captures may take more text: the database takes it, or memory holds less than `limit`."""
        return self.healthy or self.held < self.limit

    def run(self) -> None:
        while not self._stopped.is_set():
            if self._failures:
                self._stopped.wait(self._delay())  # the database refuses: back off, hurried or not
            elif self._hurry.wait(self.interval):
                # at most one hurried commit per gap: lines that come meanwhile share the next one
                self._stopped.wait(max(0.0, self._last_flush + self.hurried_gap - time.monotonic()))
            self._hurry.clear()
            if not self._stopped.is_set():
                self._last_flush = time.monotonic()
                self._flush_guarded()

    def _flush_guarded(self) -> None:
        """A flush that cannot end the writer's thread: anything unexpected is logged and retried."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the writer must never die silently
            log.exception("journal flush failed; the text stays unsaved and is retried")
            self._failures += 1
            self.healthy = False

    def stop(self) -> None:
        self._stopped.set()
        self._hurry.set()

    def flush(self, feeds=None) -> bool:
        """Write the unsaved text of `feeds` (default: every dirty feed); False if the database refused."""
        with self._lock:
            feeds = list(self._dirty) if feeds is None else list(feeds)
            if not feeds:
                return True
            started = time.monotonic()
            try:
                written = self._write(feeds)
            except StoreUnavailable as error:  # the text stays unsaved and is retried
                self._failed(error)
                return False
            metrics.JOURNAL_COMMIT.observe(time.monotonic() - started)
            self._failures, self.healthy = 0, True
            freed = sum(feed.saved(key, end) for feed, key, end in written)
            with self._held_lock:
                self.held -= freed
            metrics.UNSAVED_BYTES.dec(freed)
            for feed in feeds:
                if not feed.has_unsaved():
                    self._dirty.discard(feed)
            return True

    def _write(self, feeds: list[Feed]) -> list[tuple[Feed, str, int]]:
        runs: list[tuple[Feed, str, PageRun]] = []
        written: list[tuple[Feed, str, int]] = []
        with self._units() as uow:
            for feed in feeds:
                for run in feed.unsaved_runs(self._ensure_rows(uow, feed)):
                    known = self._known(uow, run.log_id)
                    if run.start > known.offset:  # another collector wrote on since: read again
                        known = self._known(uow, run.log_id, fresh=True)
                    if run.start + len(run.text) <= known.offset:
                        written.append((feed, run.key, known.offset))
                    elif run.start <= known.offset:
                        text, stamps = drop_head(run.text, run.stamps, known.offset - run.start)
                        pages = paginate(known, text, stamps, run.position or START)
                        runs.append((feed, run.key, PageRun(run.log_id, pages)))
                    else:
                        log.error(
                            "journal gap for %s: stored %d, unsaved from %d",
                            run.key,
                            known.offset,
                            run.start,
                        )
            inserted = uow.append_runs(
                [page_run for _, _, page_run in runs], {f.task for f, _, _ in [*runs, *written]}
            )
            for feed, key, page_run in runs:
                if (page_run.log_id, page_run.start) in inserted:
                    self._known_end[page_run.log_id] = page_run.pages[-1].end
                    written.append((feed, key, page_run.end))
                else:  # someone else wrote there: re-read next time
                    self._known_end.pop(page_run.log_id, None)
            uow.commit()
        now = time.time()
        for _, _, page_run in runs:
            if (page_run.log_id, page_run.start) in inserted:
                pages = page_run.pages
                stamps = [stamp for page in pages for stamp in page.stamps]
                metrics.committed(stamps, sum(_utf8_size(page.text) for page in pages), now)
        return written

    def _ensure_rows(self, uow: UnitOfWork, feed: Feed) -> dict[str, int]:
        missing = feed.streams_without_rows()
        if missing:
            ids = repository.record_logs(
                uow.session, feed.task, [(s.log, s.phase) for s in missing]
            )
            feed.set_log_ids({s.key: ids[s.log] for s in missing})
        return feed.log_ids()

    def _known(self, uow: UnitOfWork, log_id: int, fresh: bool = False) -> LogEnd:
        """Where the stored log ends, as this writer last wrote or read it; `fresh`: read it now (the
        end is stale once another writer went on with the log, as when a task comes back to this
        collector after another captured it for a while)."""
        if fresh or log_id not in self._known_end:
            self._known_end[log_id] = repository.stored_end(uow.session, log_id)
        return self._known_end[log_id]

    def _failed(self, error: StoreUnavailable) -> None:
        self._failures += 1
        self._known_end.clear()
        if self.healthy:
            log.warning(
                "journal writes failing, keeping captured text in memory until the database is back: %s",
                error.message,
            )
        self.healthy = False

    def _delay(self) -> float:
        if not self._failures:
            return self.interval
        return min(5.0, self.interval * 2 ** min(self._failures, 6)) * random.uniform(0.5, 1.0)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class JournalListener:
    """LISTENs on a dedicated connection and calls `wake(task_id)` for every committed change, and
    `tick()` every `interval` seconds (the fallback when a notification is missed)."""

    def __init__(
        self,
        sa_engine: SqlEngine,
        wake: Callable[[str], None],
        tick: Callable[[], None],
        interval: float,
    ):
        self._engine = sa_engine
        self._wake, self._tick = wake, tick
        self.interval = interval
        self._stopped = threading.Event()
        self._connection = Dedicated(sa_engine, postgres.listen)

    def run(self) -> None:
        next_tick = time.monotonic() + self.interval
        while not self._stopped.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            for task_id in self._receive(timeout):
                self._wake(task_id)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.interval
                self._tick()

    def stop(self) -> None:
        self._stopped.set()

    def _receive(self, timeout: float) -> set[str]:
        if self._engine.dialect.name != "postgresql":
            self._stopped.wait(timeout)
            return set()
        try:
            connection = self._connection.get()
            if select.select([connection], [], [], timeout)[0]:
                connection.poll()
            payloads = {notify.payload for notify in connection.notifies}
            connection.notifies.clear()
            return payloads
        except (
            postgres.CONNECTION_ERRORS
        ) as error:  # reconnect on the next round, polling meanwhile
            log.info("journal listener reconnecting: %s", type(error).__name__)
            self._connection.drop()
            self._stopped.wait(min(timeout, 1.0))
            return set()
