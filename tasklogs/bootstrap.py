"""Explicit wiring: what one process runs on, built in one place for the app and for the collector.

`Services` holds the settings, the store's units of work, the tail slots, the Kubernetes adapter (and
the access reviews made through it) and the engine (with the store's upkeep beside it: partitions
ahead, retention). The adapter is built on first use (the app
starts, and says why, without a cluster configuration), and so is the engine: its threads must
start after gunicorn forked the worker, and a command such as `prune` never needs one.
"""

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from flask import Flask, current_app
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import sessionmaker

from .archive import ArchiveReads, ControllerRepository
from .artifacts import S3Reader
from .cluster import AccessReviews, Cluster
from .config import Settings
from .engine import Engine
from .engine.oneshot import RefreshTurns
from .errors import TasklogsError
from .extensions import db
from .identity import TaskRef
from .kube import Kube
from .retention import Upkeep
from .reviews import Reviews
from .shards import CollectorPresence
from .slots import TailSlots
from .store import postgres
from .store.unit_of_work import UnitOfWork, UnitsOfWork
from .tasks import ClusterTask, UnknownTasks

if TYPE_CHECKING:
    from .collector import Collector

EXTENSION = "tasklogs"


class Services:
    """Everything one process runs on; `close()` stops what was started."""

    def __init__(
        self,
        settings: Settings,
        units: UnitsOfWork,
        sa_engine: SqlEngine,
        kube: Cluster | None = None,
    ):
        self.settings, self.units, self.sa_engine = settings, units, sa_engine
        self.slots = TailSlots(settings.tails.max_tails, settings.tails.max_tails_per_client)
        self.unknown = UnknownTasks(settings.cluster.not_found_ttl)
        self.refreshes = RefreshTurns()
        self.artifacts = S3Reader(timeout=settings.cluster.read_timeout)
        self._kube = kube
        self._reviews: Reviews | None = None
        self.started_engine: Engine | None = None
        self.upkeep: Upkeep | None = None
        self._lock = threading.RLock()  # two first requests at once must not build two of anything

    def archive_reads(self, ref: TaskRef) -> ArchiveReads:
        """Reads of the task's archived logs (Argo's `main-logs` artifacts): what REST refreshes and
        drivers' final saves use for logs neither the store nor the cluster has."""
        cluster = self.settings.cluster
        controller = cluster.artifact_repository
        return ArchiveReads(
            self.kube.in_namespace(ref.namespace),
            self.artifacts,
            ControllerRepository(*controller) if controller else None,
            max_bytes=cluster.max_artifact_bytes,
            max_nodes_bytes=cluster.max_workflow_bytes,
        )

    @property
    def kube(self) -> Cluster:
        """The Kubernetes adapter, built from the settings on first use unless one was given."""
        with self._lock:
            if self._kube is None:
                self._kube = Kube.from_settings(self.settings.cluster)
            return self._kube

    @property
    def reviews(self) -> Reviews:
        """TokenReviews and SubjectAccessReviews through the adapter, remembered briefly."""
        with self._lock:
            if self._reviews is None:
                api = self.kube
                if not isinstance(api, AccessReviews):
                    raise TypeError(f"{type(api).__name__} cannot review tokens and access")
                access = self.settings.access
                self._reviews = Reviews(api, access.cache_seconds, access.denial_seconds)
            return self._reviews

    @property
    def engine(self) -> Engine:
        """This process's engine, started on first use."""
        return self.start_engine()

    def start_engine(self, read_task: Callable[[TaskRef], ClusterTask] | None = None) -> Engine:
        """Start the engine once; `read_task` replaces reading tasks from the API server (the collector
        reads its watch cache)."""
        with self._lock:
            if self.started_engine is None:
                capture = self.settings.capture
                presence = (
                    None  # the collector's own engine
                    if read_task
                    else CollectorPresence(self.units, capture.collector_ttl, capture.poll_interval)
                )
                self.started_engine = Engine(
                    self.kube,
                    self.units,
                    self.sa_engine,
                    self.settings,
                    read_task,
                    presence,
                    self.archive_reads,
                )
                self.upkeep = Upkeep(self.units, self.settings.database).start()
            return self.started_engine

    def close(self) -> None:
        """Stop the engine (flushing what it captured) if one was started."""
        with self._lock:
            engine, self.started_engine = self.started_engine, None
            upkeep, self.upkeep = self.upkeep, None
        if upkeep is not None:
            upkeep.stop()
        if engine is not None:
            engine.close()


def wire(app: Flask, settings: Settings, kube: Cluster | None = None) -> Services:
    """Build the app's `Services` on its database engine; `kube` replaces the adapter (tests)."""
    with app.app_context():
        sa_engine = db.engine
    if sa_engine.dialect.name == "postgresql":
        postgres.AbandonedSessions().watch(sa_engine)
    units = partial(UnitOfWork, sessionmaker(sa_engine, expire_on_commit=False))
    services = app.extensions[EXTENSION] = Services(settings, units, sa_engine, kube)
    return services


def check_stores(current: Services, collector: bool = False) -> None:
    """Raise the store's error unless the database answers and the cluster answers a request this
    process needs (the collector's: a list of the workflows it is to watch)."""
    from .store import repository

    with current.units() as uow:
        repository.check_database(uow.session)
    cluster = current.settings.cluster
    kube = current.kube
    if not collector:
        kube.check()
        return
    for name in ["*"] if cluster.all_namespaces else cluster.namespaces:
        kube.in_namespace(name).list_workflows()


def describe_stores(current: Services, database_url: str) -> list[tuple[int, str]]:
    """One (log level, line) per store for the start-up log: what this process talks to (no
    secrets); a cluster that is not configured is a warning."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = f"database: SQLite file {url.database} (quick local runs only)"
    else:
        database = (
            f"database: PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/{url.database}"
            f" as {url.username or '(default user)'}"
        )
    cluster = current.settings.cluster
    try:
        kube = current.kube
        where = getattr(getattr(kube, "api_client", None), "configuration", None)
        server = where.host if where is not None else type(kube).__name__
        kubernetes = (
            logging.INFO,
            f"kubernetes: API server {server}, namespaces {cluster.namespaces_text}",
        )
    except TasklogsError as error:
        kubernetes = (logging.WARNING, f"kubernetes: not configured ({error.message})")
    return [(logging.INFO, database), kubernetes]


def services() -> Services:
    """The current app's services (inside a request or an app context)."""
    return current_app.extensions[EXTENSION]


def build_collector(current: Services) -> "Collector":
    """The collector: its watch cache, the process's engine reading tasks from that cache, and its
    membership among the collectors of the same namespaces."""
    from .collector import Collector, Scopes
    from .shards import Membership

    settings = current.settings
    scopes = Scopes(current.kube, settings.cluster)
    membership = Membership(
        current.units, settings.cluster.namespaces_text, settings.capture.collector_ttl
    )
    return Collector(current.start_engine(scopes.read_task), scopes, membership)
