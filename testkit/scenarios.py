"""Argo workflows and their pods on the fake cluster, built the way the controller names them."""

import time
from dataclasses import dataclass, field

from testkit.fakekube import argo_pod_name, argo_workflow, node_id
from testkit.fakekube.gotime import format_seconds


@dataclass
class Scenario:
    task_id: str
    version: str
    pods: dict[str, str] = field(default_factory=dict)  # step -> pod name
    nodes: dict[str, str] = field(default_factory=dict)  # step -> node id
    node_names: dict[str, str] = field(default_factory=dict)

    def pod(self, step: str = "a") -> str:
        return self.pods[step]


def pod_nodes(task_id: str, steps, phase: str, template: str = "echo") -> list[dict]:
    root = {
        "name": task_id,
        "type": "Steps",
        "templateName": "main",
        "phase": phase,
        "children": [f"{task_id}[0].{step}" for step in steps],
    }
    return [root] + [
        {
            "name": f"{task_id}[0].{step}",
            "type": "Pod",
            "templateName": template,
            "phase": phase,
            "displayName": step,
            "startedAt": f"2026-01-02T03:04:{index:02d}Z",
        }
        for index, step in enumerate(steps)
    ]


def workflow(
    kube,
    task_id: str,
    steps=("a",),
    *,
    version: str = "v2",
    annotate_version: bool = True,
    node_id_annotation: bool = True,
    phase: str = "Running",
    compressed: bool = False,
    container_state: str = "running",
    pod_phase: str = "Running",
    make_pods: bool = True,
) -> Scenario:
    """A running workflow with one Pod node (and pod) per step."""
    nodes = pod_nodes(task_id, steps, phase)
    kube.add_workflow(
        argo_workflow(
            task_id,
            phase=phase,
            nodes=nodes,
            compressed=compressed,
            pod_name_format=version if annotate_version else None,
        )
    )
    scenario = Scenario(task_id, version)
    for step, node in zip(steps, nodes[1:], strict=True):
        scenario.nodes[step] = node_id(task_id, node["name"])
        scenario.node_names[step] = node["name"]
        scenario.pods[step] = argo_pod_name(task_id, node["name"], "echo", version)
        if make_pods:
            kube.add_argo_pod(
                task_id,
                scenario.nodes[step],
                scenario.pods[step],
                node_name=node["name"],
                node_id_annotation=node_id_annotation,
                phase=pod_phase,
                container_state=container_state,
            )
    return scenario


def finish(kube, scenario: Scenario, phase: str = "Succeeded") -> None:
    """Every pod's containers end, then the workflow and its nodes reach `phase`."""
    for pod in scenario.pods.values():
        if kube.pod(pod):
            kube.finish_pod(pod, phase=phase)

    def ended(body):
        body["status"]["phase"] = phase
        body["status"]["finishedAt"] = format_seconds(time.time_ns())  # as the controller sets it
        body["metadata"]["labels"]["workflows.argoproj.io/phase"] = phase
        for node in (body["status"].get("nodes") or {}).values():
            node["phase"] = phase

    kube.update_workflow(scenario.task_id, ended)
