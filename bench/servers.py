"""The two services under test, each as `gunicorn --workers 1` with the gevent worker, and their database."""

import os
import signal
import subprocess
import sys

from testkit import databases
from testkit.processes import free_port, wait_healthy

from . import procstat
from .profiling import GC_PROBE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")
DATABASE = os.environ.get(
    "TASKLOGS_BENCH_DATABASE", "tasklogs_bench"
)  # another name for a parallel run

# Every bench client connects from 127.0.0.1: lift tasklogs' per-address and per-worker caps on tails.
TASKLOGS_LIMITS = {"TASKLOGS_MAX_TAILS": "5000", "TASKLOGS_MAX_TAILS_PER_CLIENT": "5000"}

# name -> (gunicorn config file, WSGI app)
SERVICES = {
    "tasklogs": ("gunicorn.conf.py", "wsgi:app"),
    "baseline": ("bench/baseline_gunicorn.py", "bench.baseline:app"),
}


def recreate_database() -> str:
    """Drop and create the bench database; return its URL (the seed's bare postgresql:// form)."""
    return databases.recreate_database(DATABASE)


class Service:
    """One service under gunicorn (one gevent worker) on a free port, its output in `log_path`."""

    def __init__(
        self,
        name: str,
        database_url: str,
        kubeconfig: str,
        log_path: str,
        root: str = ROOT,
        gc_log: str | None = None,
        environment: dict | None = None,
    ):
        """`root`: the source tree tasklogs runs from (the baseline always runs from this one); `gc_log`: load
        bench/gcprobe in the service, which logs its garbage-collection pauses there; `environment`: more
        settings for this service."""
        config, app = SERVICES[name]
        root = root if name == "tasklogs" else ROOT
        self.name, self.port, self.log_path, self.gc_log = name, free_port(), log_path, gc_log
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KUBECONFIG": kubeconfig,
            "TASKLOGS_NAMESPACE": "argo",
            "TASKLOGS_ACCESS_LOG": "",
            "TASKLOGS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": root,
            **TASKLOGS_LIMITS,
            **(environment or {}),
        }
        if gc_log:
            environment.update(PYTHONPATH=f"{GC_PROBE}:{root}", BENCH_GC_LOG=gc_log)
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [
                GUNICORN,
                "-c",
                os.path.join(root, config),
                "-b",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                app,
            ],
            cwd=root,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        self.worker_pid = self._worker()

    def ws_url(self, task_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/tasks/{task_id}/logs"

    def _wait_ready(self, timeout: float = 60) -> None:
        wait_healthy(self.process, self.port, timeout, self.name, lambda: f"; see {self.log_path}")

    def _worker(self) -> int:
        workers = procstat.children(self.process.pid)
        if len(workers) != 1:
            raise RuntimeError(f"{self.name}: expected one gunicorn worker, found {workers}")
        return workers[0]

    def alive(self) -> bool:
        """The worker that started is still the one serving (a crash or heartbeat kill replaces it)."""
        return self.process.poll() is None and procstat.children(self.process.pid) == [
            self.worker_pid
        ]

    def stop(self) -> None:
        """Quick shutdown (SIGINT): every measurement is over by now."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
