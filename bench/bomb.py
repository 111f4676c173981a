"""Peak memory of one REST GET of a workflow whose status.compressedNodes is a gzip bomb.

`python -m bench.bomb [--mb 200]` starts the fake API server, adds a workflow whose compressedNodes is
base64 of gzip of about MB megabytes of JSON (a node with one long string field) and one pod, serves
the app on a throw-away SQLite file, and prints the GET's status, its time, the peak of Python
allocations during the GET (tracemalloc) and the process's peak RSS growth.
"""

import argparse
import base64
import gzip
import tempfile
import time
import tracemalloc
import uuid


def bomb_nodes(megabytes: int) -> str:
    """base64(gzip(JSON)) of about `megabytes` MB: one Pod node with one long string field."""
    padding = b"a" * (megabytes << 20)
    body = gzip.compress(b'{"n":{"type":"Pod","name":"n","x":"' + padding + b'"}}', 9)
    return base64.b64encode(body).decode()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS (Linux: clear_refs 5) to its current RSS; return that, in KB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kb("VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()

    from tasklogs.kube import Kube, load_api_client
    from testkit.apps import dispose, make_app
    from testkit.fakekube import FakeKube, argo_workflow

    compressed = bomb_nodes(args.mb)
    task_id = f"bomb-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as directory, FakeKube(namespace="argo") as kube:
        workflow = argo_workflow(task_id)
        workflow["status"]["compressedNodes"] = compressed
        kube.add_workflow(workflow)
        adapter = Kube(load_api_client(kube.write_kubeconfig(f"{directory}/kubeconfig")), "argo")
        app = make_app(f"sqlite:///{directory}/tasklogs.db", adapter)
        client = app.test_client()
        client.get("/healthz")
        rss_before = _reset_peak_rss()
        tracemalloc.start()
        started = time.perf_counter()
        response = client.get(f"/api/v1/tasks/{task_id}/logs")
        response.get_data()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = _status_kb("VmHWM")
        print(
            f"compressedNodes {len(compressed) / 1024:.0f} KB of base64, inflating to {args.mb} MB: "
            f"GET {response.status_code} {response.get_json().get('error', '')} in {elapsed:.2f} s; "
            f"peak Python allocations {peak / 2**20:.1f} MB; "
            f"peak RSS growth {(rss_after - rss_before) / 1024:.0f} MB"
        )
        dispose(app)
        adapter.close()


if __name__ == "__main__":
    main()
