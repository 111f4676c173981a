"""Unit-test fixtures: an in-memory cluster, a SQLite store, and `Services` over both (no PostgreSQL)."""

import json
import threading
import uuid

import pytest

from tasklogs.engine.frames import SharedFrame
from testkit.memcluster import MemoryCluster
from testkit.memstore import MemoryStore


@pytest.fixture
def cluster():
    cluster = MemoryCluster()
    yield cluster
    cluster.close()


@pytest.fixture
def memstore(tmp_path):
    store = MemoryStore(str(tmp_path))
    yield store
    store.close()


@pytest.fixture
def services(memstore, cluster):
    services = memstore.services(cluster)
    yield services
    services.close()


@pytest.fixture
def wf():
    """A fresh workflow name per test."""
    return f"wf-{uuid.uuid4().hex[:8]}"


def text_of(frame) -> str:
    return frame.text if isinstance(frame, SharedFrame) else frame


class TailReader:
    """Runs a Tail's `frames()` in a thread and keeps every frame as a dict (`frames`), the shared ones
    counted in `shared`; `error` holds what the generator raised."""

    def __init__(self, tail):
        self.tail, self.frames, self.shared, self.error = tail, [], 0, None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            with self.tail:
                for frame in self.tail.frames():
                    self.shared += isinstance(frame, SharedFrame)
                    self.frames.append(json.loads(text_of(frame)))
        except Exception as error:  # noqa: BLE001 - the test asserts on it
            self.error = error
        finally:
            self.done.set()

    def of_type(self, kind: str) -> list[dict]:
        return [frame for frame in list(self.frames) if frame["type"] == kind]

    def text(self, pod: str, container: str = "main") -> str:
        """What the client rebuilt of one log: the snapshot's text, then every append at its offset."""
        text, key = "", (pod, container)
        for frame in list(self.frames):
            pieces = (
                [
                    (e["offset"], e["logs"])
                    for e in frame["logs"]
                    if (e["pod"], e["container"]) == key
                ]
                if frame["type"] == "snapshot"
                else [(frame["offset"], frame["data"])]
                if frame["type"] == "append" and (frame["pod"], frame["container"]) == key
                else []
            )
            for offset, data in pieces:
                assert offset == len(text), f"offset {offset} after {len(text)} characters"
                text += data
        return text

    def stop(self):
        self.tail.stop()
        assert self.done.wait(5), "tail did not end"
