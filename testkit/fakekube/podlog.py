"""GET pods/{name}/log: the apiserver's option checks, the kubelet's container checks, the log itself."""

import os
import time
from dataclasses import dataclass

from .gotime import NS, GoTimeError, parse_rfc3339
from .params import parse_bool, parse_int
from .server import CLIENT_CHECK, Aborted
from .status import bad_request, invalid


@dataclass
class LogOptions:
    container: str
    follow: bool
    previous: bool
    timestamps: bool
    since_seconds: int | None
    since_time: int | None  # nanoseconds, as the client sent it
    tail_lines: int | None
    limit_bytes: int | None

    def since(self):
        """Nanoseconds; older lines are left out. sinceTime reaches the kubelet in whole seconds."""
        if self.since_time is not None:
            return self.since_time // NS * NS
        if self.since_seconds is not None:
            return time.time_ns() - self.since_seconds * NS
        return None


def log_options(query, pod_name) -> LogOptions:
    """Decode (400 on a bad value) and validate (422, ValidatePodLogOptions) the query."""
    opts = LogOptions(
        query.get("container", ""),
        parse_bool(query, "follow"),
        parse_bool(query, "previous"),
        parse_bool(query, "timestamps"),
        parse_int(query, "sinceSeconds"),
        _since_time(query),
        parse_int(query, "tailLines"),
        parse_int(query, "limitBytes"),
    )
    causes = list(_invalid_options(opts))
    if causes:
        raise invalid("PodLogOptions", pod_name, causes)
    return opts


def _invalid_options(opts):
    """(cause type, field, message) of each ValidatePodLogOptions error."""
    if opts.tail_lines is not None and opts.tail_lines < 0:
        yield (
            "FieldValueInvalid",
            "tailLines",
            f"Invalid value: {opts.tail_lines}: must be greater than or equal to 0",
        )
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        yield (
            "FieldValueInvalid",
            "limitBytes",
            f"Invalid value: {opts.limit_bytes}: must be greater than 0",
        )
    if opts.since_seconds is not None and opts.since_time is not None:
        yield (
            "FieldValueForbidden",
            "",
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        )
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        yield (
            "FieldValueInvalid",
            "sinceSeconds",
            f"Invalid value: {opts.since_seconds}: must be greater than 0",
        )


def _since_time(query):
    text = query.get("sinceTime", "")
    if text in ("", "null"):
        return None
    try:
        return parse_rfc3339(text)
    except GoTimeError as err:
        raise bad_request(str(err)) from None


def pick_container(pod, name):
    """validateContainer of pkg/registry/core/pod/strategy.go."""
    mains = pod.names(init=False)
    if not name:
        if len(mains) == 1:
            return pod.containers[mains[0]]
        if not mains:
            raise bad_request(f"a container name must be specified for pod {pod.meta['name']}")
        every = pod.names(init=True) + mains
        raise bad_request(
            f"a container name must be specified for pod {pod.meta['name']}, "
            f"choose one of: [{' '.join(every)}]"
        )
    if name not in pod.containers:
        raise bad_request(f"container {name} is not valid for pod {pod.meta['name']}")
    return pod.containers[name]


def serve_log(ctx, request, body, handler):
    opts = log_options(request.query, request.name)
    pod = ctx.cluster.served_pod(request.namespace, request.name)
    container = pick_container(pod, opts.container)
    with container.cond:
        run = container.log_for(request.name, opts.previous)
        if run.removed:
            data, cursor = (
                f"unable to retrieve container logs for {run.container_id}".encode(),
                None,
            )
        else:
            data, cursor = run.render(
                run.tail_cursor(opts.tail_lines), opts.timestamps, opts.since()
            )
    data = data[: opts.limit_bytes] if opts.limit_bytes else data
    if not opts.follow:
        return body.fixed(200, "text/plain", data)
    stream = ctx.streams.open("pods/log", "pods/log", request.name, container.cond, handler)
    try:
        body.start_stream("text/plain")
        body.chunk(data)
        if cursor is not None:
            Follower(stream, body, run, cursor, opts, len(data)).follow(container)
        body.end_stream()
    finally:
        ctx.streams.close(stream)


class Follower:
    """A follow=true reader of one container run.

    Its thread sends what it finds after its cursor, then parks on the container's Condition. While it
    is parked, a writer sends new bytes straight to its socket (non-blocking) instead of waking it: one
    thread switch less per line, which is what lets hundreds of streams run at tens of thousands of
    lines per second. Bytes the socket would not take wait in `backlog` and the thread is woken.
    """

    def __init__(self, stream, body, run, cursor, opts, sent):
        self.stream, self.body, self.run, self.cursor = stream, body, run, cursor
        self.timestamps, self.since = opts.timestamps, opts.since()
        self.left = None if opts.limit_bytes is None else opts.limit_bytes - sent
        self.direct = body.budget is None and self.left is None  # cuts and limits go the slow way
        self.fd = stream.handler.connection.fileno()
        self.parked = False
        self.backlog = b""

    def push(self) -> bool:
        """Writer side, under the container's lock: send new bytes now; False when the thread must act."""
        if (
            not self.direct or self.stream.aborted or self.backlog
        ):  # a half-sent frame: the thread's turn
            return False
        data, self.cursor = self.run.render(self.cursor, self.timestamps, self.since)
        if not data:
            return True
        frame = b"%x\r\n%s\r\n" % (len(data), data)
        try:
            sent = os.write(self.fd, frame)
        except OSError:  # full socket buffer, or the client is gone: the thread finds out
            sent = 0
        self.backlog = frame[sent:]
        return not self.backlog

    def follow(self, container):
        """Send until the run is over and fully sent (or limitBytes is reached)."""
        with container.cond:
            container.followers.add(self)
        try:
            while self.left is None or self.left > 0:
                backlog, data = self._wait()
                if not (backlog or data):
                    return
                self.body.raw(backlog)
                self._send(data)
        finally:
            with container.cond:
                container.followers.discard(self)

    def _send(self, data):
        if self.left is not None:
            data = data[: self.left]
            self.left -= len(data)
        self.body.chunk(data)

    def _wait(self):
        """(framed backlog, new bytes); both empty when the run is over. Resets when the stream is aborted."""
        cond = self.stream.cond
        while True:
            with cond:
                if self.stream.aborted:
                    self.stream.handler.reset()
                backlog, self.backlog = self.backlog, b""
                data, self.cursor = self.run.render(self.cursor, self.timestamps, self.since)
                if backlog or data or self.run.closed:
                    return backlog, data
                self.parked = True
                woken = cond.wait(CLIENT_CHECK)
                self.parked = False
            if not woken and self.stream.handler.client_gone():
                raise Aborted()
