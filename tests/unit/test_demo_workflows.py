"""The demo's workflows have Argo's shapes: Steps -> StepGroup -> Pod nodes, a Retry node with a Pod node
per attempt, pods named as the controller names them (tasklogs' own argo.py finds each from the nodes
alone), phases that end as the exit codes say, and nothing more once the demo stops."""

import threading

import pytest

from demo.workflows import Plan, Run, Step
from tasklogs import argo
from testkit.fakekube import FakeKube
from testkit.waiting import wait_for


@pytest.fixture
def kube():
    fake = FakeKube(namespace="argo")
    yield fake
    fake.close()


def says(*lines):
    """A container script that writes `lines` at once."""
    return lambda: iter([(0, line) for line in lines])


def played(kube, plan: Plan, stop=None) -> Run:
    run = Run(kube, f"{plan.prefix}abcde", plan, stop or threading.Event(), pod_gc=0)
    kube.add_workflow(run._workflow())
    run.play()  # in this thread: the test waits for the whole story
    return run


def test_a_retried_step_is_a_retry_node_with_a_pod_per_attempt(kube):
    step = Step("test", [says("timeout\n"), says("passed\n")], [1, 0])
    run = played(kube, Plan("retried", "integration-", [step]))
    workflow = kube.workflow(run.name)
    nodes = {node["name"]: node for node in workflow["status"]["nodes"].values()}
    retry = nodes[f"{run.name}[0].test"]
    assert (retry["type"], retry["phase"]) == ("Retry", "Succeeded")
    attempts = [nodes[f"{run.name}[0].test({n})"] for n in (0, 1)]
    assert [(a["type"], a["phase"]) for a in attempts] == [("Pod", "Failed"), ("Pod", "Succeeded")]
    assert retry["children"] == [a["id"] for a in attempts]
    assert nodes[run.name]["children"] == [nodes[f"{run.name}[0]"]["id"]]
    assert (workflow["status"]["phase"], workflow["status"]["progress"]) == ("Succeeded", "1/2")
    targets = argo.resolve_pod_targets(workflow, [])  # computed names only, as the fallback does
    assert [t.pod_name for t in targets] == run.pods, (
        "pod names as Argo's GeneratePodName makes them"
    )
    assert kube.pod(run.pods[0]) is None, "pod GC deletes the pods once the workflow is done"


def test_a_failing_step_fails_the_workflow_and_later_steps_never_start(kube):
    steps = [Step("deploy", [says("Traceback\n")], [1]), Step("notify", [says("sent\n")], [0])]
    stop = threading.Event()
    run = Run(kube, "deploy-abcde", Plan("failed", "deploy-", steps), stop, pod_gc=60).start()
    assert wait_for(lambda: kube.workflow(run.name)["status"]["phase"] == "Failed")
    assert kube.log_bytes(run.pods[0], "main") == b"Traceback\n"
    assert b"Starting Workflow Executor" in kube.log_bytes(run.pods[0], "init")
    assert kube.pod(run.pods[0])["status"]["phase"] == "Failed"
    stop.set()
    run.thread.join(5)
    workflow = kube.workflow(run.name)
    nodes = {node["name"]: node for node in workflow["status"]["nodes"].values()}
    assert workflow["status"]["phase"] == "Failed" and "deploy" in workflow["status"]["message"]
    assert nodes[f"{run.name}[0].deploy"]["message"] == "Error (exit code 1)"
    assert f"{run.name}[1].notify" not in nodes and len(run.pods) == 1
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"


def test_a_stopped_demo_leaves_its_workflows_as_they_were(kube):
    stop = threading.Event()
    stop.set()
    run = played(kube, Plan("running", "train-", [Step("train", [says("x\n")], [0])]), stop)
    workflow = kube.workflow(run.name)
    assert workflow["status"]["phase"] == "Running" and "finishedAt" not in workflow["status"]
    assert kube.pod(run.pods[0])["status"]["phase"] == "Pending"
