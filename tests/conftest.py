"""Fixtures: a fresh PostgreSQL database per test session, a fake Kubernetes API server per test,
the app bound to both, and random task ids instead of clean-up."""

import os
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from tasklogs.extensions import db
from tasklogs.kube import Kube, load_api_client
from testkit import ROOT
from testkit.apps import LiveServer, dispose, make_app
from testkit.databases import (
    ADMIN_URL,
    TEST_DATABASE,
    drop_database,
    recreate_database,
    safe_admin_url,
)


@pytest.fixture(scope="session")
def database_url():
    try:
        url = recreate_database(TEST_DATABASE)
    except OperationalError as error:  # one message instead of a traceback per test
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        pytest.exit(
            f"PostgreSQL is not reachable at {safe_admin_url()} ({reason}). Start it "
            "(pg_ctlcluster --skip-systemctl-redirect 15 main start) or point "
            "TASKLOGS_TEST_ADMIN_URL at one; `pytest tests/unit` needs none.",
            returncode=3,
        )
    yield url
    drop_database(TEST_DATABASE)


RBAC = os.path.join(ROOT, "deploy", "overlays", "namespaces", "rbac.yaml")
WEB_ACCOUNT, COLLECTOR_ACCOUNT = "tasklogs-web", "tasklogs-collector"


@pytest.fixture
def kube():
    """The fake API server, enforcing on every request of every test the shipped RBAC: the default token
    is the web pods' service account (`collector_kubeconfig` has the collector's)."""
    from testkit.fakekube import FakeKube

    fake = FakeKube(namespace="argo")
    fake.load_rbac(RBAC, service_account=WEB_ACCOUNT)
    yield fake
    fake.close()


@pytest.fixture
def kubeconfig(kube, tmp_path):
    return kube.write_kubeconfig(str(tmp_path / "kubeconfig"))


@pytest.fixture
def collector_kubeconfig(kube, tmp_path):
    """A kubeconfig with the collector's service account token, under what the shipped RBAC gives it."""
    token = kube.add_service_account(RBAC, COLLECTOR_ACCOUNT)
    return kube.write_kubeconfig(str(tmp_path / "collector-kubeconfig"), token)


def adapter_for(kube, kubeconfig) -> Kube:
    return Kube(
        load_api_client(kubeconfig),
        kube.namespace,
        connect_timeout=1,
        read_timeout=3,
        stream_idle_timeout=5,
    )


@pytest.fixture
def kube_adapter(kube, kubeconfig):
    adapter = adapter_for(kube, kubeconfig)
    yield adapter
    adapter.close()


@pytest.fixture
def collector_kube_adapter(kube, collector_kubeconfig):
    adapter = adapter_for(kube, collector_kubeconfig)
    yield adapter
    adapter.close()


@pytest.fixture
def app(database_url, kube_adapter):
    app = make_app(database_url, kube_adapter)
    yield app
    dispose(app)


@pytest.fixture
def store(database_url):
    """An app context on the test database, for repository tests that need no cluster."""
    app = make_app(database_url)
    with app.app_context():
        yield db.session
        db.session.rollback()
    dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def task_id():
    """A fresh workflow name per test: tests share the database, never a task."""
    return f"wf-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db_proxy():
    """A cuttable TCP path to PostgreSQL."""
    from urllib.parse import urlsplit

    from testkit.tcpproxy import TcpProxy

    admin = urlsplit(ADMIN_URL)
    proxy = TcpProxy(admin.hostname or "127.0.0.1", admin.port or 5432)
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_app(database_url, db_proxy, kube_adapter):
    """The app reaching the test database through `db_proxy`."""
    app = make_app(db_proxy.url(database_url.rsplit("/", 1)[1]), kube_adapter)
    yield app
    dispose(app)


@pytest.fixture
def live(app):
    server = LiveServer(app)
    yield server
    server.close()


@pytest.fixture
def serve(database_url, kube_adapter):
    """`serve(**settings)` starts an app with these settings on a live server; returns (app, live)."""
    started = []

    def start(**settings):
        app = make_app(database_url, kube_adapter, **settings)
        live = LiveServer(app)
        started.append((app, live))
        return app, live

    yield start
    for app, live in started:
        live.close()
        dispose(app)
