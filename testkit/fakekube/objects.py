"""GET, LIST and WATCH of pods and workflows."""

import base64
import json
import time

from .cluster import WORKFLOW_API, watch_line
from .params import is_true, parse_int
from .selectors import field_selector, label_selector
from .server import CLIENT_CHECK, Aborted
from .status import ApiError, bad_request, go_json

LIST_KINDS = {"pods": ("v1", "PodList"), "workflows": (WORKFLOW_API[0], "WorkflowList")}


def selection(request):
    """A predicate for the labelSelector and fieldSelector of a list or watch."""
    labels = label_selector(request.query.get("labelSelector"))
    custom = request.resource == "workflows"
    fields = field_selector(request.query.get("fieldSelector"), custom_resource=custom)
    return lambda obj: labels(obj["metadata"].get("labels")) and fields(obj)


def serve_get(ctx, request, body):
    obj = ctx.cluster.get(request.resource, request.namespace, request.name)
    body.json(obj, sort_keys=request.resource == "workflows")


def serve_list(ctx, request, body):
    matches = selection(request)
    items, rv = ctx.cluster.list(request.resource, request.namespace, matches)
    items, meta = _page(items, rv, request.query)
    api_version, kind = LIST_KINDS[request.resource]
    if request.resource == "pods":  # items of built-in lists carry no kind/apiVersion
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        body.json({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items})
    else:
        meta.setdefault("continue", "")
        body.json(
            {"apiVersion": api_version, "items": items, "kind": kind, "metadata": meta},
            sort_keys=True,
        )


def _page(items, rv, query):
    """Apply limit/continue; continue tokens look like the apiserver's (base64 JSON with "start")."""
    start = _continue_start(query.get("continue"))
    if start is not None:
        items = [i for i in items if i["metadata"]["name"] >= start]
    meta = {"resourceVersion": str(rv)}
    limit = parse_int(query, "limit", 0)
    if limit > 0 and len(items) > limit:
        token = {
            "v": "meta.k8s.io/v1",
            "rv": rv,
            "start": items[limit - 1]["metadata"]["name"] + "\x00",
        }
        meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return items, meta


def _continue_start(token):
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["start"]
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None


def serve_watch(ctx, request, body, handler):
    watch = Watch(ctx, request, body, handler)
    stream = ctx.streams.open("watch", request.resource, None, ctx.cluster.changed, handler)
    try:
        watch.run(stream)
    finally:
        ctx.streams.close(stream)


class Watch:
    """One watch stream: synthetic ADDED events or history from resourceVersion, then live events."""

    def __init__(self, ctx, request, body, handler):
        self.cluster, self.request, self.body, self.handler = ctx.cluster, request, body, handler
        self.matches = selection(request)
        self.custom = request.resource == "workflows"
        self.from_now = request.query.get("resourceVersion", "") in (
            "",
            "0",
        )  # "any"/"latest": replay state
        if not self.from_now:
            self.rv = parse_int(request.query, "resourceVersion")
        timeout = parse_int(request.query, "timeoutSeconds")
        self.deadline = time.monotonic() + timeout if timeout else float("inf")
        self.bookmarks = is_true(request.query.get("allowWatchBookmarks"))
        self.bookmark_interval = ctx.bookmark_interval

    def run(self, stream):
        self.body.start_stream("application/json")
        with self.cluster.lock:
            self.epoch = self.cluster.watch_epoch
            if self.from_now:
                request = self.request
                objects, self.rv = self.cluster.list(
                    request.resource, request.namespace, self.matches
                )
        if self.from_now:
            self.body.chunk(b"".join(watch_line("ADDED", o, self.custom) for o in objects))
        self._follow(stream)

    def _follow(self, stream):
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            try:
                events, ended = self._wait(stream, next_bookmark)
            except ApiError as err:  # the history no longer reaches back to our resourceVersion
                self.body.chunk(watch_line("ERROR", err.body()))
                break
            if stream.aborted:
                self.handler.reset()
            if ended:
                break
            self.body.chunk(b"".join(self._lines(events)))
            if self.bookmarks and time.monotonic() >= next_bookmark:
                self.body.chunk(self._bookmark())
                next_bookmark = time.monotonic() + self.bookmark_interval
        self.body.end_stream()

    def _wait(self, stream, next_bookmark):
        """(events after self.rv, whether the watch is over); waits for either."""
        while True:
            with self.cluster.lock:
                events = self.cluster.events_after(self.rv)
                if events:
                    self.rv = events[-1].rv
                    return events, False
                if stream.aborted or self.cluster.watch_epoch != self.epoch:
                    return [], True
                now = time.monotonic()
                if now >= self.deadline:
                    return [], True
                if self.bookmarks and now >= next_bookmark:
                    self.rv = self.cluster.rv
                    return [], False
                until = min(self.deadline, next_bookmark if self.bookmarks else float("inf"))
                woken = self.cluster.changed.wait(min(CLIENT_CHECK, until - now))
            if not woken and self.handler.client_gone():
                raise Aborted()

    def _lines(self, events):
        resource, namespace = self.request.resource, self.request.namespace
        for event in events:
            if event.resource != resource or (
                namespace is not None and event.obj["metadata"].get("namespace") != namespace
            ):
                continue
            now = self.matches(event.obj)
            before = self.matches(event.prev) if event.prev is not None else now
            if now and before:
                yield event.line(event.type)
            elif now:
                yield event.line("ADDED")
            elif before:
                yield event.line("DELETED", use_prev=True)

    def _bookmark(self):
        if self.request.resource == "pods":
            obj = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv), "creationTimestamp": None},
            }
            return b'{"type":"BOOKMARK","object":' + go_json(obj) + b"}\n"
        obj = {
            "apiVersion": WORKFLOW_API[0],
            "kind": WORKFLOW_API[1],
            "metadata": {"resourceVersion": str(self.rv)},
        }
        return watch_line("BOOKMARK", obj, sort_keys=True)
