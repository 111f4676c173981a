"""Archived logs without servers: repository resolution over the in-memory cluster, decoding bounds,
the setting, and the fake API server's ConfigMaps and Secrets through the real adapter."""

import gzip

import pytest
import yaml

from tasklogs import archive
from tasklogs.config import ConfigError, load_config
from tasklogs.errors import ArtifactUnreadable
from testkit.memcluster import MemoryCluster


def repo(bucket: str) -> dict:
    return {"s3": {"bucket": bucket, "endpoint": "minio:9000", "insecure": True}}


def workflow(status_ref=None, spec_ref=None) -> dict:
    body: dict = {"metadata": {"name": "wf", "namespace": "argo"}, "status": {}, "spec": {}}
    if status_ref is not None:
        body["status"]["artifactRepositoryRef"] = status_ref
    if spec_ref is not None:
        body["spec"]["artifactRepositoryRef"] = spec_ref
    return body


def configmap(cluster: MemoryCluster, name: str, key: str, bucket: str, default: bool = True):
    annotations = {archive.DEFAULT_KEY_ANNOTATION: key} if default else {}
    cluster.configmaps[name] = {
        "data": {key: yaml.safe_dump(repo(bucket))},
        "annotations": annotations,
    }


def test_the_repository_recorded_in_the_status_wins_without_a_request():
    cluster = MemoryCluster()
    configmap(cluster, "artifact-repositories", "k", "from-configmap")
    found, _ = archive.resolve_repository(
        cluster, workflow(status_ref={"artifactRepository": repo("recorded")}), None
    )
    assert found["s3"]["bucket"] == "recorded" and cluster.requests["get configmaps"] == 0


def test_then_the_spec_ref_then_the_namespace_default_then_the_controller():
    cluster = MemoryCluster()
    configmap(cluster, "team", "minio", "team-bucket", default=False)
    found, named = archive.resolve_repository(
        cluster, workflow(spec_ref={"configMap": "team", "key": "minio"}), None
    )
    assert found["s3"]["bucket"] == "team-bucket" and named == "argo/team#minio"
    configmap(cluster, "artifact-repositories", "default-v1", "namespace-bucket")
    found, _ = archive.resolve_repository(cluster, workflow(), None)
    assert found["s3"]["bucket"] == "namespace-bucket"
    del cluster.configmaps["artifact-repositories"]
    controller_ns = cluster.in_namespace("argo-system")
    configmap(controller_ns, "workflow-controller-configmap", "artifactRepository", "controller")
    controller = archive.ControllerRepository(
        "argo-system", "workflow-controller-configmap", "artifactRepository"
    )
    found, _ = archive.resolve_repository(cluster, workflow(), controller)
    assert found["s3"]["bucket"] == "controller"
    with pytest.raises(ArtifactUnreadable, match="TASKLOGS_ARTIFACT_REPOSITORY"):
        archive.resolve_repository(cluster, workflow(), None)


def test_a_configmap_without_the_key_or_with_bad_yaml_is_named():
    cluster = MemoryCluster()
    cluster.configmaps["artifact-repositories"] = {
        "data": {"a": "s3: [unclosed"},
        "annotations": {},
    }
    with pytest.raises(ArtifactUnreadable, match="has no key 'b'"):
        archive.resolve_repository(cluster, workflow(spec_ref={"key": "b"}), None)
    with pytest.raises(ArtifactUnreadable, match="is not YAML"):
        archive.resolve_repository(cluster, workflow(spec_ref={"key": "a"}), None)


def test_gzip_is_inflated_within_the_bound_and_refused_beyond_it():
    text = "x" * 1000 + "\n"
    assert archive._text(gzip.compress(text.encode()), 2000, "s3://b/k", "log") == text
    bomb = gzip.compress(b"\0" * (4 << 20))
    with pytest.raises(ArtifactUnreadable, match="inflates to more than"):
        archive._text(bomb, 1 << 20, "s3://b/k", "log")
    with pytest.raises(ArtifactUnreadable, match="cut short"):
        archive._text(gzip.compress(text.encode())[:-12], 2000, "s3://b/k", "log")
    assert archive._text(b"nul\x00here\xff\n", 100, "u", "log") == "nul\ufffdhere\ufffd\n"


@pytest.mark.parametrize(
    "value", ["argo/cm", "argo//key", "Argo/cm/key", "argo/cm/key/more", "argo/cm/k y"]
)
def test_a_bad_controller_repository_setting_stops_the_start(value):
    with pytest.raises(ConfigError, match="TASKLOGS_ARTIFACT_REPOSITORY"):
        load_config({"TASKLOGS_ARTIFACT_REPOSITORY": value})


def test_the_controller_repository_setting_is_read():
    cluster = load_config(
        {"TASKLOGS_ARTIFACT_REPOSITORY": "argo/workflow-controller-configmap/artifactRepository"}
    ).cluster
    assert cluster.artifact_repository == (
        "argo",
        "workflow-controller-configmap",
        "artifactRepository",
    )
    assert load_config({}).cluster.artifact_repository is None


def test_configmaps_and_secrets_through_the_real_adapter(kube, kube_adapter):
    kube.add_configmap("artifact-repositories", {"k": "s3: {}"}, {"a": "b"})
    kube.add_secret("my-s3", {"accesskey": "AKIA", "secretkey": b"\xffraw"})
    assert kube_adapter.get_configmap("artifact-repositories") == {
        "data": {"k": "s3: {}"},
        "annotations": {"a": "b"},
    }
    assert kube_adapter.get_secret("my-s3") == {"accesskey": b"AKIA", "secretkey": b"\xffraw"}
    assert kube_adapter.get_configmap("absent") is None and kube_adapter.get_secret("x") is None
