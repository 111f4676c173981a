"""`make demo` (`python -m demo`): tasklogs with a simulated cluster, in one command.

Starts the simulated cluster (`python -m demo.cluster`: the wire-level fake Kubernetes API server with Argo
workflows that keep logging, in the namespaces argo and argo-ci), tasklogs under gunicorn with the gevent
worker and the collector (`flask --app wsgi collect`), each with its own service account's kubeconfig.
The database is PostgreSQL when it answers at the usual local URL (a database `tasklogs_demo`, made
afresh), else an SQLite file in instance/. Prints where to look, and stops everything on Ctrl-C.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from testkit import ROOT
from testkit.processes import wait_healthy

BIN = os.path.dirname(sys.executable)
ADMIN_URL = os.environ.get(
    "TASKLOGS_DEMO_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database(name: str, admin_url: str, sqlite_path: str, force_sqlite: bool) -> tuple[str, str]:
    """(DATABASE_URL, what it is, for people): `name` made afresh on PostgreSQL if it answers, else SQLite."""
    if not force_sqlite:
        try:
            return recreate(
                name, admin_url
            ), f"PostgreSQL database {name} ({admin_url.rsplit('/', 1)[0]})"
        except OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
            print(
                f"PostgreSQL is not reachable at {admin_url} ({reason}): using SQLite", flush=True
            )
    os.makedirs(os.path.dirname(sqlite_path), exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(sqlite_path + suffix):
            os.remove(sqlite_path + suffix)
    return f"sqlite:///{sqlite_path}", f"SQLite file {os.path.relpath(sqlite_path, ROOT)}"


def recreate(name: str, admin_url: str) -> str:
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _die_with_parent() -> None:
    """In the child: SIGTERM when the demo itself dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Child:
    """One process of the demo, in a session of its own (Ctrl-C reaches only the demo, which stops the
    children in order), its output in `log_path`."""

    def __init__(self, name: str, command: list[str], env: dict, log_path: str):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def output(self, last: int = 2000) -> str:
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")[-last:]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then SIGKILL after `timeout`; whatever is left of its process group goes too."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group: gunicorn's workers, if any
        except ProcessLookupError:
            pass
        self.log.close()
        return code


def wait_for_file(path: str, child: Child, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if child.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not start: {child.output()}")
        time.sleep(0.1)
    with open(path) as file:
        return json.load(file)


def banner(port: int, store: str, cluster: dict, directory: str) -> str:
    base = f"http://127.0.0.1:{port}"
    running = next(w for w in cluster["workflows"] if w["kind"] == "running")
    task = f"namespaces/{running['namespace']}/tasks/{running['name']}"
    workflows = "\n".join(
        f"    {w['kind']:<10} {w['namespace']}/{w['name']}" for w in cluster["workflows"]
    )
    logs = os.path.relpath(directory, ROOT) if directory.startswith(ROOT + os.sep) else directory
    return f"""
tasklogs demo: tasklogs (gunicorn + gevent), the collector and a simulated cluster at {cluster["server"]}
store: {store}; namespaces {", ".join(cluster["namespaces"])}; a new workflow starts every so often.

  viewer     {base}/
  tasks      curl -s {base}/api/v1/tasks
  a log      curl -s '{base}/api/v1/{task}/logs?format=text&tail=20'
  live tail  {BIN}/wsdump {base.replace("http", "ws")}/ws/{task}/logs

workflows:
{workflows}

logs of the processes: {logs}/cluster.log, gunicorn.log, collector.log
Ctrl-C stops everything.
"""


def run(args) -> int:
    os.makedirs(args.dir, exist_ok=True)
    url, store = database(
        args.database,
        args.admin_url,
        os.path.join(args.dir, "tasklogs.sqlite"),
        args.sqlite,
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TASKLOGS_AUTH", "KUBECONFIG")
    }
    env.update(DATABASE_URL=url, TASKLOGS_NAMESPACE="argo", TASKLOGS_NAMESPACES="argo,argo-ci")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    children: list[Child] = []
    try:
        cluster = start_cluster(args, env, children)
        start_tasklogs(args, env, children)
        print(banner(args.port, store, cluster, args.dir), flush=True)
        status = watch(children, stopping)
    except RuntimeError as error:
        print(f"demo: {error}", file=sys.stderr, flush=True)
        status = 1
    finally:
        failed = stop_all(children)
    return status or failed


def stop_all(children: list[Child]) -> int:
    """The collector, then tasklogs, then the cluster; 1 if one of them did not end cleanly."""
    failed = 0
    for child in reversed(children):
        code = child.stop()
        if code != 0:
            print(f"demo: {child.name} ended with {code}", file=sys.stderr, flush=True)
            failed = 1
    print("demo: stopped", flush=True)
    return failed


def start_cluster(args, env: dict, children: list) -> dict:
    for name in ("cluster.json", "web.kubeconfig", "collector.kubeconfig"):
        if os.path.exists(os.path.join(args.dir, name)):
            os.remove(os.path.join(args.dir, name))
    command = [
        sys.executable,
        "-m",
        "demo.cluster",
        "--dir",
        args.dir,
        "--large-lines",
        str(args.large_lines),
        "--new-every",
        str(args.new_every),
        "--pod-gc",
        str(args.pod_gc),
    ]
    children.append(
        Child("the simulated cluster", command, env, os.path.join(args.dir, "cluster.log"))
    )
    return wait_for_file(os.path.join(args.dir, "cluster.json"), children[-1])


def start_tasklogs(args, env: dict, children: list) -> None:
    web = {**env, "KUBECONFIG": os.path.join(args.dir, "web.kubeconfig")}
    command = [
        os.path.join(BIN, "gunicorn"),
        "-c",
        "gunicorn.conf.py",
        "-b",
        f"127.0.0.1:{args.port}",
        "wsgi:app",
    ]
    gunicorn = Child("gunicorn", command, web, os.path.join(args.dir, "gunicorn.log"))
    children.append(gunicorn)
    wait_healthy(gunicorn.process, args.port, 60, "gunicorn", lambda: f": {gunicorn.output()}")
    collector = {**env, "KUBECONFIG": os.path.join(args.dir, "collector.kubeconfig")}
    command = [os.path.join(BIN, "flask"), "--app", "wsgi", "collect"]
    children.append(
        Child("the collector", command, collector, os.path.join(args.dir, "collector.log"))
    )


def watch(children: list[Child], stopping: threading.Event) -> int:
    """Until Ctrl-C (0), or until a child ends on its own (1, with what it said)."""
    while not stopping.wait(0.5):
        for child in children:
            if child.process.poll() is not None:
                print(
                    f"demo: {child.name} exited with {child.process.returncode}:\n{child.output()}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="where tasklogs listens (127.0.0.1)")
    parser.add_argument(
        "--dir",
        default=os.path.join(ROOT, "instance", "demo"),
        help="kubeconfigs and the processes' logs",
    )
    parser.add_argument(
        "--database", default="tasklogs_demo", help="the PostgreSQL database, made afresh"
    )
    parser.add_argument(
        "--admin-url", default=ADMIN_URL, help="PostgreSQL to make it on (TASKLOGS_DEMO_ADMIN_URL)"
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="use SQLite even if PostgreSQL answers"
    )
    parser.add_argument(
        "--large-lines", type=int, default=200_000, help="lines of the large workflow"
    )
    parser.add_argument(
        "--new-every", type=float, default=30.0, help="seconds between new workflows"
    )
    parser.add_argument(
        "--pod-gc", type=float, default=300.0, help="seconds before a finished workflow's pods go"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
