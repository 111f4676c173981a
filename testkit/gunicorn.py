"""The deployed shape in a subprocess: `gunicorn -c gunicorn.conf.py wsgi:app` with the gevent worker, and the
environment that points it at a database and a (fake) cluster."""

import os
import subprocess
import sys

from testkit import ROOT
from testkit.processes import free_port, wait_healthy

GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py -b 127.0.0.1:PORT wsgi:app` in a subprocess."""

    def __init__(
        self, env: dict, workers: int | None = 1, log_path: str | None = None, extra_args=()
    ):
        """`workers` None: as many as gunicorn.conf.py says. An `env` value None removes the variable."""
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        command = [
            GUNICORN,
            "-c",
            "gunicorn.conf.py",
            "-b",
            f"127.0.0.1:{self.port}",
            *(("--workers", str(workers)) if workers else ()),
            *extra_args,
            "wsgi:app",
        ]
        environ = {key: value for key, value in {**os.environ, **env}.items() if value is not None}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environ, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            self.wait_ready()
        except Exception:
            self.stop()  # never leave a server behind
            raise

    def wait_ready(self, timeout: float = 30) -> None:
        wait_healthy(self.process, self.port, timeout, "gunicorn", lambda: f": {self.output()}")

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.log_path:
            self.log.close()


def service_env(database_url: str, kubeconfig: str, **extra) -> dict:
    """The service's environment for the tests: quick polls and timeouts, no access log; `extra` added."""
    return {
        "DATABASE_URL": database_url,
        "KUBECONFIG": kubeconfig,
        "TASKLOGS_NAMESPACE": "argo",
        "TASKLOGS_POLL_INTERVAL": "0.2",
        "TASKLOGS_DB_POOL_SIZE": "4",
        "TASKLOGS_ACCESS_LOG": "",
        "TASKLOGS_KUBE_READ_TIMEOUT": "3",
        "TASKLOGS_STREAM_IDLE_TIMEOUT": "5",
        "TASKLOGS_METRICS_PORT": "0",  # collectors side by side: no fixed port (tests name one)
        **{key: str(value) for key, value in extra.items()},
    }
