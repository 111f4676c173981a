"""The fake Kubernetes cluster in a process of its own, with the writers that feed its pod logs.

`python -m bench.kubeproc KUBECONFIG` starts a `testkit.fakekube.FakeKube` (namespace `argo`), writes its
kubeconfig to KUBECONFIG, and then answers each JSON command on a stdin line with one JSON line on stdout:

    {"command": "workflows", "count": 200, "steps": ["a", "b", "c"]}   -> [{"task_id", "pods"}, ...]
    {"command": "write", "pods": [...], "rate": 50, "seconds": 30, "line_chars": 100}   (blocks meanwhile)
    {"command": "fill", "pod": ..., "pieces": 100, "piece_bytes": 1048576, "line_chars": 100}
    {"command": "finish", "task_ids": [...]}
    {"command": "digests", "pods": [...]}     -> {pod: {"bytes", "lines", "sha256", "json_sha256"}}
    {"command": "generate", "pod": ..., "kind": "realistic", "size": 104857600, "seed": 1}
    {"command": "stamps", "pod": ..., "lines": [0, 500]}     -> the lines' timestamps (ns)
    {"command": "expect", "pod": ..., "queries": {"tail": {"tail": 100}, ...}}  -> {name: {"sha256", "lines"}}
    {"command": "save", "pod": ..., "path": ...}   (the pod's log, as bytes, into a file)
    {"command": "open_streams"}               -> follow log streams open now

In its own process the fake's threads and the writer do not compete with the bench process for one GIL,
and `/proc` tells the fake's CPU apart from the bench's (the sampler, the download client).
`RemoteCluster` is the bench's side of the pipe.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

from .servers import ROOT

CONTAINER = "main"
FILLER = "the quick brown fox jumps over the lazy dog 0123456789 " * 4
SLOTS_PER_TICK = 10  # a tick's lines go out in this many groups, spread over the tick


# --- the cluster process ---


def timed_line(seq: int, line_chars: int) -> bytes:
    """`<seq> <write time ns> <filler>\\n`, `line_chars` characters before the newline.

    The write time is taken right here, just before the line goes into the fake's log: the capture lag
    of the line is measured from it."""
    head = f"{seq} {time.time_ns()} "
    filler = FILLER * (line_chars // len(FILLER) + 1)
    return (head + filler[: max(0, line_chars - len(head))] + "\n").encode()


class Commands:
    """What the bench may ask of the cluster process; each method answers one command."""

    NAMES = (
        "workflows",
        "write",
        "fill",
        "finish",
        "digests",
        "open_streams",
        "generate",
        "stamps",
        "expect",
        "save",
    )

    def __init__(self, kube):
        self.kube = kube
        self.tasks = {}  # task id -> testkit.scenarios.Scenario

    def workflows(self, count: int, steps: list[str]) -> list[dict]:
        """`count` running Argo workflows with one running pod per step (testkit.scenarios.workflow)."""
        from testkit import scenarios

        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        made = [
            scenarios.workflow(self.kube, f"{prefix}-{index:04d}", list(steps))
            for index in range(count)
        ]
        self.tasks.update((task.task_id, task) for task in made)
        return [
            {"task_id": task.task_id, "pods": [task.pods[step] for step in steps]} for task in made
        ]

    def write(self, pods: list[str], rate: float, seconds: float, line_chars: int) -> dict:
        """Every pod gets `rate` timed lines per second for `seconds`.

        Tick k (every 1/rate s) writes one line to each pod, in SLOTS_PER_TICK groups spread over the tick
        so that the load is even. A tick that is late (the writer cannot keep up) runs at once: every line
        is still written, later, and stamped with its real write time."""
        containers = [self.kube.cluster.container(pod, CONTAINER) for pod in pods]
        groups = [containers[slot::SLOTS_PER_TICK] for slot in range(SLOTS_PER_TICK)]
        late, lines = 0.0, 0
        began = time.monotonic()
        for tick in range(int(rate * seconds)):
            for slot, group in enumerate(groups):
                delay = began + (tick + slot / SLOTS_PER_TICK) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    late = max(late, -delay)
                for container in group:
                    container.write(timed_line(tick, line_chars))
                lines += len(group)
        elapsed = time.monotonic() - began
        return {
            "lines": lines,
            "seconds": round(elapsed, 2),
            "lines_per_s": round(lines / elapsed),
            "late_max_s": round(late, 3),
        }

    def fill(self, pod: str, pieces: int, piece_bytes: int, line_chars: int) -> dict:
        """`pieces` writes of about `piece_bytes` bytes each, of lines of random hex characters."""
        from .cluster import hex_lines

        piece = hex_lines(line_chars, max(1, piece_bytes // (line_chars + 1)))
        began = time.monotonic()
        for seq in range(pieces):
            self.kube.write_log(pod, CONTAINER, piece(seq))
        return {
            "bytes": len(self.kube.log_bytes(pod, CONTAINER)),
            "seconds": round(time.monotonic() - began, 2),
        }

    def finish(self, task_ids: list[str]) -> int:
        """Every container of the tasks' pods ends, then each workflow succeeds (testkit.scenarios.finish)."""
        from testkit import scenarios

        for task_id in task_ids:
            scenarios.finish(self.kube, self.tasks[task_id])
        return len(task_ids)

    def digests(self, pods: list[str]) -> dict:
        """Each pod's `main` log as tasklogs must store it (decoded UTF-8): byte and line counts, the SHA-256
        of the text, and that of its JSON string form (what `format=json` sends between the quotes)."""
        found = {}
        for pod in pods:
            text = self.kube.log_bytes(pod, CONTAINER).decode("utf-8", "replace")
            encoded = text.encode()
            found[pod] = {
                "bytes": len(encoded),
                "lines": text.count("\n"),
                "sha256": hashlib.sha256(encoded).hexdigest(),
                "json_sha256": hashlib.sha256(
                    json.dumps(text, ensure_ascii=False)[1:-1].encode()
                ).hexdigest(),
            }
        return found

    def open_streams(self) -> int:
        """Follow log streams open now."""
        return self.kube.open_streams()

    def generate(self, pod: str, kind: str, size: int, seed: int) -> dict:
        """About `size` bytes of `bench.loglines` lines (`realistic` or `random`), one write per line,
        each stamped with its simulated print time."""
        from . import loglines

        lines = (
            loglines.realistic_lines(seed) if kind == "realistic" else loglines.random_lines(seed)
        )
        container = self.kube.cluster.container(pod, CONTAINER)
        began = time.monotonic()
        for at, line in loglines.take(lines, size):
            container.write(line.encode(), at)
        return {
            "bytes": len(self.kube.log_bytes(pod, CONTAINER)),
            "lines": len(container.current.lines),
            "seconds": round(time.monotonic() - began, 2),
        }

    def stamps(self, pod: str, lines: list[int]) -> list[int]:
        """The timestamps (ns) the fake gave those lines (0-based)."""
        run = self.kube.cluster.container(pod, CONTAINER).current
        return [run.lines[index][0] for index in lines]

    def expect(self, pod: str, queries: dict) -> dict:
        """For each named query, the SHA-256 and line count of the lines it selects from the pod's log:
        `{"tail": n}`, `{"start": i, "count": n}` (0-based), `{"since": ns, "until": ns, "closed": bool}`
        (until inclusive when closed)."""
        lines = self.kube.cluster.container(pod, CONTAINER).current.lines
        found = {}
        for name, query in queries.items():
            if "tail" in query:
                chosen = lines[-query["tail"] :]
            elif "start" in query:
                chosen = lines[query["start"] : query["start"] + query["count"]]
            else:
                chosen = [line for line in lines if in_window(line[0], **query)]
            text = b"".join(bytes(line) for _, line in chosen)
            found[name] = {"sha256": hashlib.sha256(text).hexdigest(), "lines": len(chosen)}
        return found

    def save(self, pod: str, path: str) -> int:
        """Write the pod's log into the file `path`; its size."""
        data = self.kube.log_bytes(pod, CONTAINER)
        with open(path, "wb") as file:
            file.write(data)
        return len(data)


def in_window(ts: int, since: int, until: int, closed: bool) -> bool:
    return since <= ts and (ts < until or closed and ts == until)


def serve(kubeconfig: str) -> None:
    """Answer commands until stdin closes or says `quit`."""
    from testkit.fakekube import FakeKube

    kube = FakeKube(namespace="argo")
    kube.write_kubeconfig(kubeconfig)
    commands = Commands(kube)
    reply({"event": "ready", "url": kube.url})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            name = request.pop("command")
            if name == "quit":
                break
            try:
                if name not in Commands.NAMES:
                    raise ValueError("unknown command")
                reply({"result": getattr(commands, name)(**request)})
            except Exception as error:  # noqa: BLE001 - the bench raises it on its side
                reply({"error": f"{name}: {type(error).__name__}: {error}"})
    finally:
        kube.close()


def reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --- the bench's side ---


class RemoteCluster:
    """A `python -m bench.kubeproc` process; `call(command, **arguments)` returns its result."""

    def __init__(self, directory: str):
        self.kubeconfig = os.path.join(directory, f"kubeconfig-{uuid.uuid4().hex[:6]}")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.kubeproc", self.kubeconfig],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        self.pid = self.process.pid
        self.url = self._receive("start")["url"]

    def call(self, command: str, **arguments):
        self.process.stdin.write(json.dumps({"command": command, **arguments}) + "\n")
        self.process.stdin.flush()
        answer = self._receive(command)
        if "error" in answer:
            raise RuntimeError(f"fake cluster process: {answer['error']}")
        return answer["result"]

    def _receive(self, command: str) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"fake cluster process ended during {command!r} (exit {self.process.poll()})"
            )
        return json.loads(line)

    def close(self) -> None:
        try:
            self.process.stdin.write('{"command": "quit"}\n')
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1])
