"""Containers and their logs, modelled on the CRI log files the kubelet reads.

A container run (an "instance") keeps its log as lines; each line carries the timestamp of the
write that started it, a partial last line grows with the next write. Followers keep a cursor
(line index, byte offset) and wait on the container's Condition, which every write notifies.
"""

import secrets
import threading
import time

from .gotime import format_nano, format_seconds
from .status import bad_request

_IMAGE_PULL_WAITS = {
    "ErrImagePull": "image can't be pulled",
    "ImagePullBackOff": "trying and failing to pull image",
}


def new_container_id() -> str:
    return "containerd://" + secrets.token_hex(32)


class LogInstance:
    """The log of one run of a container."""

    def __init__(self):
        self.container_id = new_container_id()
        self.lines = []  # [timestamp ns, bytearray]; only the last may lack its b"\n"
        self.closed = False  # the run is over: followers end once they have everything
        self.removed = False  # the runtime removed the container: its log is gone
        self.started_at = time.time_ns()
        self.last_ts = 0

    def append(self, data: bytes, ts: int | None):
        pos = 0
        if self.lines and not self.lines[-1][1].endswith(b"\n"):
            pos = _line_end(data, 0)
            self.lines[-1][1] += data[:pos]
        while pos < len(data):
            end = _line_end(data, pos)
            self.lines.append([self._stamp(ts), bytearray(data[pos:end])])
            pos = end

    def _stamp(self, ts):
        if ts is None:
            ts = max(time.time_ns(), self.last_ts + 1)
        self.last_ts = max(self.last_ts, ts)
        return ts

    def tail_cursor(self, tail_lines):
        """Where reading starts: the first of the last tail_lines lines (all when None)."""
        start = 0 if tail_lines is None else max(0, len(self.lines) - tail_lines)
        return (start, 0)

    def render(self, cursor, timestamps=False, since=None):
        """Bytes after cursor (lines older than since left out) and the cursor after them."""
        index, offset = cursor
        out = []
        while index < len(self.lines):
            ts, line = self.lines[index]
            if since is None or ts >= since:
                if timestamps and offset == 0:
                    out.append(format_nano(ts).encode() + b" ")
                out.append(bytes(line[offset:]) if offset else bytes(line))
            if not line.endswith(b"\n"):
                return b"".join(out), (index, len(line))
            index, offset = index + 1, 0
        return b"".join(out), (index, 0)

    def at_end(self, cursor) -> bool:
        index, offset = cursor
        if index >= len(self.lines):
            return True
        return index == len(self.lines) - 1 and offset == len(self.lines[-1][1])

    def content(self) -> bytes:
        return b"".join(bytes(line) for _, line in self.lines)


def _line_end(data: bytes, pos: int) -> int:
    newline = data.find(b"\n", pos)
    return len(data) if newline < 0 else newline + 1


class Container:
    """A container of a pod: its state as the kubelet reports it, and its log instances."""

    def __init__(self, name, init=False, state="running", image="busybox:latest"):
        self.name = name
        self.init = init
        self.image = image
        self.cond = threading.Condition()
        self.current = LogInstance()
        self.previous = None
        self.followers = (
            set()
        )  # open follow streams; parked ones get new bytes pushed by the writer
        self.last_terminated = None
        self.restart_count = 0
        self.state, self.reason, self.exit_code, self.finished_at = (
            "waiting",
            "ContainerCreating",
            0,
            0,
        )
        self.set_state(state)

    def write(self, data: bytes, ts=None):
        """Append to the current run; parked followers are sent the bytes right here, others are woken."""
        with self.cond:
            self.current.append(data, ts)
            if not all(f.push() for f in self.followers if f.parked):
                self.cond.notify_all()

    def set_state(self, state, reason=None, exit_code=0):
        """waiting | running | terminated; terminated ends the followers of the current run."""
        if state not in ("waiting", "running", "terminated"):
            raise ValueError(f"unknown container state {state!r}")
        with self.cond:
            if state == "running" and self.current.closed:
                self._restart()
            self.state, self.exit_code = state, exit_code
            self.reason = (
                reason
                or {
                    "waiting": "ContainerCreating",
                    "running": None,
                    "terminated": "Completed" if exit_code == 0 else "Error",
                }[state]
            )
            if state == "terminated":
                self.finished_at = time.time_ns()
                self.current.closed = True
            self.cond.notify_all()

    def restart(self):
        """The current run ends; it becomes the previous one and a new run starts with an empty log."""
        with self.cond:
            if self.state != "terminated":
                self.set_state("terminated", exit_code=self.exit_code or 1)
            self._restart()
            self.state, self.reason, self.exit_code = "running", None, 0
            self.cond.notify_all()

    def _restart(self):
        self.current.closed = True
        self.last_terminated = self._terminated_state()
        self.previous, self.current = self.current, LogInstance()
        self.restart_count += 1

    def remove_logs(self):
        with self.cond:
            for run in (self.current, self.previous):
                if run is not None:
                    run.removed = True
                    run.closed = True
            self.cond.notify_all()

    def end(self):
        """The pod is gone: every run is over."""
        with self.cond:
            self.current.closed = True
            self.cond.notify_all()

    def log_for(self, pod_name, previous):
        """The run whose log a request reads (kubelet validateContainerLogStatus), or a 400."""
        quoted = f'"{self.name}" in pod "{pod_name}"'
        if previous:
            if self.previous is None:
                raise bad_request(f"previous terminated container {quoted} not found")
            return self.previous
        if self.state in ("running", "terminated"):
            return self.current
        if self.previous is not None:
            return self.previous
        why = _IMAGE_PULL_WAITS.get(self.reason, self.reason)
        raise bad_request(f"container {quoted} is waiting to start: {why}")

    def status(self) -> dict:
        """The V1ContainerStatus of this container."""
        status = {
            "name": self.name,
            "state": self._state(),
            "lastState": {},
            "ready": self.state == "running",
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image.split(":")[0] + "@sha256:" + "0" * 64,
        }
        if self.last_terminated:
            status["lastState"] = {"terminated": self.last_terminated}
        run = (
            self.current if self.state != "waiting" else self.previous
        )  # a waiting container that ran
        if run is not None:
            status["containerID"] = run.container_id
        status["started"] = self.state == "running"
        return status

    def _state(self):
        if self.state == "running":
            return {"running": {"startedAt": format_seconds(self.current.started_at)}}
        if self.state == "waiting":
            return {"waiting": {"reason": self.reason}}
        return {"terminated": self._terminated_state()}

    def _terminated_state(self):
        return {
            "exitCode": self.exit_code,
            "reason": self.reason or "Completed",
            "startedAt": format_seconds(self.current.started_at),
            "finishedAt": format_seconds(self.finished_at or time.time_ns()),
            "containerID": self.current.container_id,
        }
