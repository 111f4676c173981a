"""Argo workflows played out on the fake cluster the way the controller and the kubelet would: nodes
appear as steps start (Steps -> StepGroup -> Pod, or Retry -> one Pod per attempt), pods go Pending ->
Running -> Succeeded/Failed with `init`, `wait` and `main` containers, and the workflow ends."""

import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from demo import logs
from testkit.fakekube import argo_pod_name, argo_workflow, node_id
from testkit.fakekube.gotime import format_seconds


@dataclass
class Step:
    """One step; more than one attempt makes it a Retry node with a Pod node per attempt."""

    name: str
    attempts: list[Callable[[], logs.Script]]
    exit_codes: list[int]
    template: str = ""

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


@dataclass
class Plan:
    kind: str  # running, succeeded, failed, retried, large, ansi
    prefix: str  # the workflow's generateName
    steps: list[Step] = field(default_factory=list)


def plans(rng: random.Random, large_lines: int) -> dict[str, Plan]:
    """The demo's workflows by kind."""
    ok = [0]
    return {
        "running": Plan(
            "running",
            "train-model-",
            [
                Step("prepare", [lambda: logs.build(rng)], ok),
                Step("train", [lambda: logs.training(rng)], ok),
            ],
        ),
        "succeeded": Plan("succeeded", "ci-build-", [Step("build", [lambda: logs.build(rng)], ok)]),
        "failed": Plan(
            "failed",
            "deploy-staging-",
            [
                Step("render", [lambda: logs.build(rng)], ok),
                Step("deploy", [logs.deploy_fails], [1]),
            ],
        ),
        "retried": Plan(
            "retried",
            "integration-",
            [Step("test", [lambda: logs.flaky_test(0), lambda: logs.flaky_test(1)], [1, 0])],
        ),
        "large": Plan(
            "large",
            "nightly-export-",
            [Step("export", [lambda: logs.export(large_lines, rng)], ok)],
        ),
        "ansi": Plan(
            "ansi", "fetch-weights-", [Step("download", [lambda: logs.downloads(rng)], ok)]
        ),
    }


def generated_name(prefix: str, rng: random.Random) -> str:
    """metadata.generateName's five random characters."""
    return prefix + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def now() -> str:
    return format_seconds(time.time_ns())


class Run:
    """One workflow of `plan` in the namespace of `kube` (a FakeKube view), played in its own thread."""

    def __init__(self, kube, name: str, plan: Plan, stop: threading.Event, pod_gc: float):
        self.kube, self.name, self.plan, self.stop, self.pod_gc = kube, name, plan, stop, pod_gc
        self.pods: list[str] = []
        self.thread = threading.Thread(target=self.play, name=f"demo-{name}", daemon=True)

    def start(self) -> "Run":
        self.kube.add_workflow(self._workflow())
        self.thread.start()
        return self

    def play(self) -> None:
        parent = self.name
        for index, step in enumerate(self.plan.steps):
            passed = self._step(index, step, parent)
            if passed is None:
                return  # the demo is stopping
            if not passed:
                return self._end("Failed", f"child '{self._node_name(index, step)}' failed")
            parent = self._node_name(index, step)
        self._end("Succeeded")

    def _workflow(self) -> dict:
        body = argo_workflow(self.name, pod_name_format="v2", namespace=self.kube.namespace)
        root = {"name": self.name, "type": "Steps", "templateName": "main", "phase": "Running"}
        body["status"].update(startedAt=now(), nodes={self.name: self._node(root)})
        body["spec"]["entrypoint"] = "main"
        return body

    def _node_name(self, index: int, step: Step) -> str:
        return f"{self.name}[{index}].{step.name}"

    def _step(self, index: int, step: Step, parent: str) -> bool | None:
        group = f"{self.name}[{index}]"
        name = self._node_name(index, step)
        self._add_node(parent, {"name": group, "type": "StepGroup", "displayName": f"[{index}]"})
        if not step.retried:
            return self._pod(group, name, step.name, step, 0)
        self._add_node(group, {"name": name, "type": "Retry", "displayName": step.name})
        for attempt in range(len(step.attempts)):
            passed = self._pod(name, f"{name}({attempt})", f"{step.name}({attempt})", step, attempt)
            if passed is None:
                return None
            if passed:
                self._set_node(name, "Succeeded")
                return True
        self._set_node(name, "Failed", "No more retries left")
        return False

    def _pod(self, parent: str, name: str, display: str, step: Step, attempt: int) -> bool | None:
        """A Pod node and its pod, from Pending to its end; None when the demo stopped meanwhile."""
        template = step.template or step.name
        pod = argo_pod_name(self.name, name, template, "v2")
        self._add_node(
            parent, {"name": name, "type": "Pod", "displayName": display, "templateName": template}
        )
        self.kube.add_argo_pod(
            self.name,
            node_id(self.name, name),
            pod,
            node_name=name,
            phase="Pending",
            container_state="waiting",
        )
        self.pods.append(pod)
        if not self._run_init(pod):
            return None
        self._set_node(name, "Running")
        if not self._play(pod, "wait", logs.executor("wait")) or not self._play(
            pod, "main", step.attempts[attempt]()
        ):
            return None
        code = step.exit_codes[attempt]
        self.kube.set_container_state(pod, "main", "terminated", exit_code=code)
        self._play(pod, "wait", logs.executor_done())
        self.kube.finish_pod(pod, "Succeeded" if code == 0 else "Failed")
        self._set_node(
            name,
            "Succeeded" if code == 0 else "Failed",
            f"Error (exit code {code})" if code else None,
        )
        return code == 0

    def _run_init(self, pod: str) -> bool:
        if self.stop.wait(0.5):
            return False
        self.kube.set_container_state(pod, "init", "running")
        if not self._play(pod, "init", logs.executor("init")):
            return False
        self.kube.set_container_state(pod, "init", "terminated")
        for container in ("wait", "main"):
            self.kube.set_container_state(pod, container, "running")
        self.kube.set_pod_phase(pod, "Running")
        return True

    def _play(self, pod: str, container: str, script: logs.Script) -> bool:
        """Write the script's pieces at its pace; False when the demo stopped meanwhile."""
        for delay, text in script:
            if self.stop.wait(delay):
                return False
            self.kube.write_log(pod, container, text)
        return True

    def _node(self, fields: dict) -> dict:
        node = {
            "id": node_id(self.name, fields["name"]),
            "displayName": fields["name"],
            "phase": "Pending",
            "startedAt": now(),
            "templateName": "main",
            **fields,
        }
        if node["type"] == "Pod":
            node["hostNodeName"] = "demo-node-1"
        return node

    def _add_node(self, parent: str, fields: dict) -> None:
        def add(body):
            nodes = body["status"]["nodes"]
            node = self._node({"phase": "Running", **fields})
            nodes[node["id"]] = node
            siblings = nodes[node_id(self.name, parent)].setdefault("children", [])
            siblings.append(node["id"])

        self.kube.update_workflow(self.name, add)

    def _set_node(self, name: str, phase: str, message: str | None = None) -> None:
        """A node's phase, its end time once final, and the workflow's progress."""

        def change(body):
            node = body["status"]["nodes"][node_id(self.name, name)]
            node["phase"] = phase
            if phase in ("Succeeded", "Failed"):
                node["finishedAt"] = now()
            if message:
                node["message"] = message
            body["status"]["progress"] = _progress(body["status"]["nodes"])

        self.kube.update_workflow(self.name, change)

    def _end(self, phase: str, message: str | None = None) -> None:
        def end(body):
            status = body["status"]
            for node in status["nodes"].values():
                if node["phase"] == "Running":  # the root and the step groups
                    node.update(phase=phase, finishedAt=now())
            status.update(phase=phase, finishedAt=now(), progress=_progress(status["nodes"]))
            if message:
                status["message"] = message
            labels = body["metadata"]["labels"]
            labels.update(
                {"workflows.argoproj.io/phase": phase, "workflows.argoproj.io/completed": "true"}
            )

        self.kube.update_workflow(self.name, end)
        if not self.stop.wait(self.pod_gc):
            for pod in self.pods:  # podGC: OnWorkflowCompletion; the logs stay in tasklogs
                self.kube.delete_pod(pod)


def _progress(nodes: dict) -> str:
    pods = [node for node in nodes.values() if node["type"] == "Pod"]
    return f"{sum(node['phase'] == 'Succeeded' for node in pods)}/{len(pods)}"
