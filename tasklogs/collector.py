"""The collector: captures every workflow of the namespace whether or not anyone watches, because Argo
deletes pods (podGC) soon after they finish, often before anyone opened their logs.

Two watches (workflows, and the pods labelled with a workflow) keep a cache of the namespace; every
workflow not yet saved gets a pinned driver of the same engine the live tail uses, reading its task from
the cache instead of the API server. Leases make several collectors (and the web workers' tails) share
the work: one capture per task, and a web worker's viewers follow the collector's journal.
"""

import logging
import threading
from typing import Any

from . import argo
from .cluster import Cluster, PodSummary
from .engine import Engine, EngineClosed
from .engine.backoff import Backoff
from .errors import ClusterError, StoreUnavailable, WatchExpired
from .store import repository
from .tasks import ClusterTask, build_task

log = logging.getLogger(__name__)

WATCH_SECONDS = 300


class ClusterCache:
    """Workflows and workflow pods of the namespace, as their lists and watches report them."""

    def __init__(
        self, containers_: tuple[str, ...], max_nodes_bytes: int = argo.DEFAULT_MAX_NODES_BYTES
    ):
        self.containers = containers_
        self.max_nodes_bytes = max_nodes_bytes
        self._workflows: dict[str, dict] = {}
        self._pods: dict[str, PodSummary] = {}
        self._pods_of: dict[str, set[str]] = {}  # workflow -> names of its pods
        self._lock = threading.Lock()

    def reset(self, kind: str, items: list[Any]) -> None:
        """Replace one kind's objects after a (re-)list."""
        with self._lock:
            if kind == "workflows":
                self._workflows = {item["metadata"]["name"]: item for item in items}
            else:
                self._pods, self._pods_of = {}, {}
                for pod in items:
                    self._put_pod(pod)

    def apply(self, kind: str, event: str, obj: Any) -> str | None:
        """Apply one watch event; return the task it concerns."""
        with self._lock:
            if kind == "pods":
                self._drop_pod(obj["name"])
                if event != "DELETED":
                    self._put_pod(obj)
                return obj["labels"].get(argo.LABEL_WORKFLOW)
            name = obj.get("metadata", {}).get("name")
            if event == "DELETED":
                self._workflows.pop(name, None)
            elif name:
                self._workflows[name] = obj
            return name

    def _put_pod(self, pod: PodSummary) -> None:
        self._pods[pod["name"]] = pod
        self._pods_of.setdefault(pod["labels"].get(argo.LABEL_WORKFLOW, ""), set()).add(pod["name"])

    def _drop_pod(self, name: str) -> None:
        pod = self._pods.pop(name, None)
        if pod is not None:
            self._pods_of.get(pod["labels"].get(argo.LABEL_WORKFLOW, ""), set()).discard(name)

    def task_ids(self) -> set[str]:
        with self._lock:
            return set(self._workflows) | {
                task_id for task_id, pods in self._pods_of.items() if pods and task_id
            }

    def finished(self, task_id: str) -> bool:
        with self._lock:
            workflow = self._workflows.get(task_id)
        try:
            return workflow is not None and argo.is_final_phase(argo.workflow_phase(workflow))
        except argo.MalformedStatus:  # its driver reports it, and keeps polling
            return False

    def read_task(self, task_id: str) -> ClusterTask:
        """The task as the cache has it (no API request); TaskNotFound without workflow or pods."""
        with self._lock:
            workflow = self._workflows.get(task_id)
            pods = [self._pods[name] for name in self._pods_of.get(task_id, ())]
        return build_task(task_id, workflow, pods, self.containers, self.max_nodes_bytes)


class Collector:
    """Keeps the cache current and a pinned driver on every task not yet saved; the engine it is given
    reads its tasks from `cache` (see `bootstrap.build_collector`)."""

    def __init__(self, engine: Engine, kube: Cluster, cache: ClusterCache):
        self.engine, self.kube, self.cache = engine, kube, cache
        self.stopped = threading.Event()
        self._synced = {"workflows": threading.Event(), "pods": threading.Event()}

    def run(self) -> None:
        """Watch and capture until `stopped` is set."""
        watchers = [
            threading.Thread(target=self._watch, args=(kind,), name=f"watch-{kind}", daemon=True)
            for kind in ("workflows", "pods")
        ]
        for watcher in watchers:
            watcher.start()
        while not self.stopped.wait(self.engine.capture.poll_interval * 5):
            self._claim_all()

    def stop(self) -> None:
        self.stopped.set()

    def _watch(self, kind: str) -> None:
        """List, then watch from the list's resourceVersion; re-list on 410 Gone, re-watch when one ends."""
        listing, watching = (
            (self.kube.list_workflows, self.kube.watch_workflows)
            if kind == "workflows"
            else (self.kube.list_workflow_pods, self.kube.watch_workflow_pods)
        )
        backoff = Backoff(base=1.0, cap=30.0)
        while not self.stopped.is_set():
            try:
                items, version = listing()
                self.cache.reset(kind, items)
                self._synced[kind].set()
                self._claim_all()
                while not self.stopped.is_set():
                    for event, obj, version_ in watching(version, timeout_seconds=WATCH_SECONDS):
                        version = version_ or version
                        if event != "BOOKMARK":
                            self._changed(self.cache.apply(kind, event, obj))
                    backoff.reset()
            except WatchExpired:
                log.info("%s watch expired (410 Gone); listing again", kind)
            except ClusterError as error:
                log.warning("%s watch failed (%s); retrying", kind, error.message)
                self.stopped.wait(backoff.next())

    def _changed(self, task_id: str | None) -> None:
        if task_id:
            self._claim(task_id)
            self.engine.wake(task_id)

    def _claim_all(self) -> None:
        if not all(event.is_set() for event in self._synced.values()):
            return
        task_ids = self.cache.task_ids() - self.engine.completed
        self._forget_saved(task_ids)
        for task_id in sorted(task_ids - self.engine.completed):
            self._claim(task_id)

    def _claim(self, task_id: str) -> None:
        """Make sure the task has a pinned driver here, unless its final save has run."""
        if self.stopped.is_set() or task_id in self.engine.completed:
            return
        if all(event.is_set() for event in self._synced.values()):
            try:
                self.engine.driver(task_id, pinned=True)
            except EngineClosed:
                pass

    def _forget_saved(self, task_ids: set[str]) -> None:
        """Tasks already complete in the database (saved before a restart, or by another collector)."""
        finished = [task_id for task_id in task_ids if self.cache.finished(task_id)]
        if not finished:
            return
        try:
            with self.engine.units() as uow:
                self.engine.completed.update(repository.complete_tasks(uow.session, finished))
        except StoreUnavailable as error:  # the drivers find out by themselves
            log.info("cannot check which tasks are saved (%s)", error.message)


def run_collector(collector: Collector) -> None:
    """`flask --app wsgi collect`: run until SIGTERM or SIGINT, then flush what was captured."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: collector.stop())
    log.info("collector watching namespace %s", collector.kube.namespace)
    try:
        collector.run()
    finally:
        collector.engine.close()
