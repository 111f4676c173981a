"""The collector: captures every workflow of the served namespaces whether or not anyone watches, because Argo
deletes pods (podGC) soon after they finish, often before anyone opened their logs.

Two watches (workflows, and the pods labelled with a workflow) keep a cache of each served namespace
(one cluster-wide pair with `TASKLOGS_NAMESPACES=*`); every
workflow not yet saved gets a pinned driver of the same engine the live tail uses, reading its task from
the cache instead of the API server. Leases make several collectors (and the web workers' tails) share
the work: one capture per task, and a web worker's viewers follow the collector's journal.
"""

import logging
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from . import argo
from .cluster import ALL_NAMESPACES, Cluster, PodSummary
from .config import ClusterSettings
from .engine import Engine, EngineClosed
from .engine.backoff import Backoff
from .errors import ClusterError, StoreUnavailable, TaskNotFound, WatchExpired
from .identity import TaskRef
from .store import repository
from .tasks import ClusterTask, build_task

log = logging.getLogger(__name__)

WATCH_SECONDS = 300


class ClusterCache:
    """Workflows and workflow pods of one watched scope (a namespace, or every namespace), as their
    lists and watches report them."""

    def __init__(self, containers_: tuple[str, ...]):
        self.containers = containers_
        self._workflows: dict[TaskRef, dict] = {}
        self._pods: dict[tuple[str, str], PodSummary] = {}  # (namespace, name) -> pod
        self._pods_of: dict[TaskRef, set[str]] = {}  # task -> names of its pods
        self._lock = threading.Lock()

    def reset(self, kind: str, items: list[Any]) -> None:
        """Replace one kind's objects after a (re-)list."""
        with self._lock:
            if kind == "workflows":
                self._workflows = {_workflow_ref(item): item for item in items}
            else:
                self._pods, self._pods_of = {}, {}
                for pod in items:
                    self._put_pod(pod)

    def apply(self, kind: str, event: str, obj: Any) -> TaskRef | None:
        """Apply one watch event; return the task it concerns."""
        with self._lock:
            if kind == "pods":
                self._drop_pod(obj["namespace"], obj["name"])
                if event != "DELETED":
                    self._put_pod(obj)
                workflow = obj["labels"].get(argo.LABEL_WORKFLOW)
                return TaskRef(obj["namespace"], workflow) if workflow else None
            task = _workflow_ref(obj)
            if event == "DELETED":
                self._workflows.pop(task, None)
            elif task.name:
                self._workflows[task] = obj
            return task if task.name else None

    def _put_pod(self, pod: PodSummary) -> None:
        self._pods[pod["namespace"], pod["name"]] = pod
        self._pods_of.setdefault(_pod_task(pod), set()).add(pod["name"])

    def _drop_pod(self, namespace: str, name: str) -> None:
        pod = self._pods.pop((namespace, name), None)
        if pod is not None:
            self._pods_of.get(_pod_task(pod), set()).discard(name)

    def tasks(self) -> set[TaskRef]:
        with self._lock:
            return set(self._workflows) | {
                task for task, pods in self._pods_of.items() if pods and task.name
            }

    def finished(self, task: TaskRef) -> bool:
        with self._lock:
            workflow = self._workflows.get(task)
        return workflow is not None and argo.is_final_phase(argo.workflow_phase(workflow))

    def read_task(self, task: TaskRef) -> ClusterTask:
        """The task as the cache has it (no API request); TaskNotFound without workflow or pods."""
        with self._lock:
            workflow = self._workflows.get(task)
            pods = [self._pods[task.namespace, name] for name in self._pods_of.get(task, ())]
        return build_task(task, workflow, pods, self.containers)


def _workflow_ref(workflow: dict) -> TaskRef:
    metadata = workflow.get("metadata") or {}
    return TaskRef(metadata.get("namespace", ""), metadata.get("name") or "")


def _pod_task(pod: PodSummary) -> TaskRef:
    return TaskRef(pod["namespace"], pod["labels"].get(argo.LABEL_WORKFLOW, ""))


class Scope(NamedTuple):
    """What one pair of watches covers: a namespace's adapter (or the all-namespaces one) and its cache."""

    kube: Cluster
    cache: ClusterCache


class Scopes:
    """The collector's watched scopes: one per served namespace, or one cluster-wide for `*`."""

    def __init__(self, kube: Cluster, cluster: ClusterSettings):
        self.everywhere = cluster.all_namespaces
        names = [ALL_NAMESPACES] if self.everywhere else list(cluster.namespaces)
        self.by_name = {
            name: Scope(kube.in_namespace(name), ClusterCache(cluster.containers)) for name in names
        }

    def __iter__(self) -> Iterator[Scope]:
        return iter(self.by_name.values())

    def read_task(self, task: TaskRef) -> ClusterTask:
        """The task from the cache of its scope (what the collector's engine reads instead of the API)."""
        scope = self.by_name.get(ALL_NAMESPACES if self.everywhere else task.namespace)
        if scope is None:
            raise TaskNotFound(f"namespace {task.namespace!r} is not watched by this collector")
        return scope.cache.read_task(task)

    def tasks(self) -> set[TaskRef]:
        return set().union(*(scope.cache.tasks() for scope in self))

    def finished(self, task: TaskRef) -> bool:
        return any(scope.cache.finished(task) for scope in self)

    @property
    def names(self) -> str:
        return ", ".join(self.by_name)


class Collector:
    """Keeps the caches current and a pinned driver on every task not yet saved; the engine it is given
    reads its tasks from the caches (see `bootstrap.build_collector`)."""

    def __init__(self, engine: Engine, scopes: Scopes):
        self.engine, self.scopes = engine, scopes
        self.stopped = threading.Event()
        self._synced = {
            (name, kind): threading.Event()
            for name in scopes.by_name
            for kind in ("workflows", "pods")
        }

    def run(self) -> None:
        """Watch and capture until `stopped` is set."""
        watchers = [
            threading.Thread(
                target=self._watch, args=(name, kind), name=f"watch-{kind}-{name}", daemon=True
            )
            for name, kind in self._synced
        ]
        for watcher in watchers:
            watcher.start()
        while not self.stopped.wait(self.engine.capture.poll_interval * 5):
            self._claim_all()

    def stop(self) -> None:
        self.stopped.set()

    def _watch(self, name: str, kind: str) -> None:
        """List, then watch from the list's resourceVersion; re-list on 410 Gone, re-watch when one ends."""
        kube, cache = self.scopes.by_name[name]
        listing, watching = (
            (kube.list_workflows, kube.watch_workflows)
            if kind == "workflows"
            else (kube.list_workflow_pods, kube.watch_workflow_pods)
        )
        backoff = Backoff(base=1.0, cap=30.0)
        while not self.stopped.is_set():
            try:
                items, version = listing()
                cache.reset(kind, items)
                self._synced[name, kind].set()
                self._claim_all()
                while not self.stopped.is_set():
                    for event, obj, version_ in watching(version, timeout_seconds=WATCH_SECONDS):
                        version = version_ or version
                        if event != "BOOKMARK":
                            self._changed(cache.apply(kind, event, obj))
                    backoff.reset()
            except WatchExpired:
                log.info("%s watch of %s expired (410 Gone); listing again", kind, name)
            except ClusterError as error:
                log.warning("%s watch of %s failed (%s); retrying", kind, name, error.message)
                self.stopped.wait(backoff.next())

    def _changed(self, task: TaskRef | None) -> None:
        if task is not None:
            self._claim(task)
            self.engine.wake(task)

    def _synced_all(self) -> bool:
        return all(event.is_set() for event in self._synced.values())

    def _claim_all(self) -> None:
        if not self._synced_all():
            return
        tasks = self.scopes.tasks() - self.engine.completed
        self._forget_saved(tasks)
        for task in sorted(tasks - self.engine.completed):
            self._claim(task)

    def _claim(self, task: TaskRef) -> None:
        """Make sure the task has a pinned driver here, unless its final save has run."""
        if self.stopped.is_set() or task in self.engine.completed:
            return
        if self._synced_all():
            try:
                self.engine.driver(task, pinned=True)
            except EngineClosed:
                pass

    def _forget_saved(self, tasks: set[TaskRef]) -> None:
        """Tasks already complete in the database (saved before a restart, or by another collector)."""
        finished = [task for task in tasks if self.scopes.finished(task)]
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
    log.info("collector watching namespace(s) %s", collector.scopes.names)
    try:
        collector.run()
    finally:
        collector.engine.close()
