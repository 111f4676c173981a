"""End-to-end: gunicorn with the gevent worker, as deployed, against PostgreSQL and the fake cluster."""

import pytest

from testkit.gunicorn import Gunicorn, service_env


@pytest.fixture
def gunicorn(database_url, kubeconfig, tmp_path):
    servers = []

    def start(workers: int = 1, **env):
        server = Gunicorn(
            service_env(database_url, kubeconfig, **env),
            workers,
            str(tmp_path / f"gunicorn{len(servers)}.log"),
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
