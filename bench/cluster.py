"""The fake Kubernetes cluster of the tests, run in this process, and the writers that feed pod logs."""

import os
import threading
import time
import uuid

from testkit import scenarios
from testkit.fakekube import FakeKube

CONTAINER = "main"


class BenchCluster:
    """A FakeKube (namespace `argo`) with its kubeconfig written to `directory`."""

    def __init__(self, directory: str):
        self.kube = FakeKube(namespace="argo")
        self.kubeconfig = self.kube.write_kubeconfig(os.path.join(directory, "kubeconfig"))

    def new_task(self, steps=("a", "b")) -> scenarios.Scenario:
        """A running workflow with one running pod per step and a fresh name."""
        return scenarios.workflow(self.kube, f"bench-{uuid.uuid4().hex[:10]}", list(steps))

    def finish(self, task: scenarios.Scenario) -> None:
        """Every container ends and the workflow succeeds."""
        scenarios.finish(self.kube, task)

    def log_text(self, task: scenarios.Scenario) -> dict[str, str]:
        """{"pod/main": the pod's whole `main` log as text}: what every client must have rebuilt."""
        return {
            f"{pod}/{CONTAINER}": self.kube.log_bytes(pod, CONTAINER).decode("utf-8", "replace")
            for pod in task.pods.values()
        }

    def log_bytes(self, task: scenarios.Scenario) -> int:
        return sum(len(self.kube.log_bytes(pod, CONTAINER)) for pod in task.pods.values())

    def close(self) -> None:
        self.kube.close()


class SteadyWriter(threading.Thread):
    """Writes `count` pieces of log at a steady `rate` per second, round-robin over the task's pods.

    `piece(seq)` returns the text of piece number `seq`; it is called at the moment of the write, so
    a piece may carry its own write time."""

    def __init__(self, kube: FakeKube, pods: list[str], rate: float, count: int, piece):
        super().__init__(name="bench-writer", daemon=True)
        self.kube, self.pods, self.rate, self.count, self.piece = kube, pods, rate, count, piece
        self.written = 0
        self.late = 0.0  # the most the writer fell behind its schedule, in seconds

    def run(self) -> None:
        began = time.monotonic()
        for seq in range(self.count):
            due = began + seq / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                self.late = max(self.late, -delay)
            self.kube.write_log(self.pods[seq % len(self.pods)], CONTAINER, self.piece(seq))
            self.written += 1


def timed_line(seq: int) -> str:
    """`<seq> <write time ns>\\n`: the clients compute each line's latency from it."""
    return f"{seq} {time.time_ns()}\n"


def hex_lines(line_chars: int, lines: int):
    """A piece of `lines` lines of random hex (`line_chars` characters each, plus the newline).

    Random hex defeats PostgreSQL's pglz compression (LZ only: no gain on uniformly random symbols),
    so the WAL measured is what incompressible logs cost."""

    def piece(seq: int) -> str:
        raw = os.urandom(line_chars * lines // 2 + lines).hex()
        return "".join(raw[i * line_chars : (i + 1) * line_chars] + "\n" for i in range(lines))

    return piece
