"""The demo's simulated cluster, as a process: `python -m demo.cluster --dir DIR`.

The wire-level fake Kubernetes API server of testkit/fakekube, enforcing the shipped
deploy/overlays/namespaces/rbac.yaml, with Argo workflows that keep producing logs in two namespaces
and new ones starting every so often. Once it listens it writes DIR/web.kubeconfig and
DIR/collector.kubeconfig (each with its service account's token) and DIR/cluster.json (the server and
the first workflows); it runs until SIGTERM or SIGINT.
"""

import argparse
import itertools
import json
import os
import random
import signal
import threading

from demo.workflows import Run, generated_name, plans
from testkit import ROOT
from testkit.fakekube import FakeKube

NAMESPACES = ("argo", "argo-ci")
RBAC = os.path.join(ROOT, "deploy", "overlays", "namespaces", "rbac.yaml")
# The first workflows: (kind, namespace). Later ones take turns over NEW_KINDS and the namespaces.
FIRST = [
    ("running", "argo"),
    ("succeeded", "argo"),
    ("failed", "argo"),
    ("large", "argo"),
    ("retried", "argo-ci"),
    ("ansi", "argo-ci"),
]
NEW_KINDS = ("succeeded", "failed", "retried", "ansi")


class Simulation:
    """Starts the first workflows, then a new one every `new_every` seconds, until `stop` is set."""

    def __init__(
        self, kube: FakeKube, large_lines: int, new_every: float, pod_gc: float, seed=None
    ):
        self.kube, self.new_every, self.pod_gc = kube, new_every, pod_gc
        self.rng = random.Random(seed)
        self.plans = plans(self.rng, large_lines)
        self.stop = threading.Event()
        self.runs: list[Run] = []

    def start_first(self) -> None:
        for kind, namespace in FIRST:
            self.start_run(kind, namespace)
        threading.Thread(target=self._spawn, name="demo-spawner", daemon=True).start()

    def start_run(self, kind: str, namespace: str) -> Run:
        plan = self.plans[kind]
        name = generated_name(plan.prefix, self.rng)
        run = Run(self.kube.in_namespace(namespace), name, plan, self.stop, self.pod_gc)
        self.runs.append(run.start())
        return run

    def _spawn(self) -> None:
        turns = zip(itertools.cycle(NEW_KINDS), itertools.cycle(reversed(NAMESPACES)), strict=False)
        while not self.stop.wait(self.new_every):
            kind, namespace = next(turns)
            self.start_run(kind, namespace)

    def described(self) -> list[dict]:
        return [
            {"namespace": r.kube.namespace, "name": r.name, "kind": r.plan.kind} for r in self.runs
        ]


def write_atomically(path: str, text: str) -> None:
    """Whoever waits for `path` sees it whole or not at all."""
    with open(path + ".part", "w") as out:
        out.write(text)
    os.replace(path + ".part", path)


def serve(directory: str, large_lines: int, new_every: float, pod_gc: float) -> None:
    kube = FakeKube(namespace="argo")
    kube.load_rbac(RBAC, service_account="tasklogs-web")
    collector_token = kube.add_service_account(RBAC, "tasklogs-collector")
    simulation = Simulation(kube, large_lines, new_every, pod_gc)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        kube.write_kubeconfig(os.path.join(directory, "web.kubeconfig"))
        kube.write_kubeconfig(os.path.join(directory, "collector.kubeconfig"), collector_token)
        simulation.start_first()
        described = {
            "server": kube.url,
            "namespaces": NAMESPACES,
            "workflows": simulation.described(),
        }
        write_atomically(os.path.join(directory, "cluster.json"), json.dumps(described, indent=2))
        stopping.wait()
    finally:
        simulation.stop.set()
        kube.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo.cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dir", required=True, help="where to write the kubeconfigs and cluster.json"
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
    args = parser.parse_args(argv)
    serve(args.dir, args.large_lines, args.new_every, args.pod_gc)


if __name__ == "__main__":
    main()
