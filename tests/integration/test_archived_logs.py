"""Logs of pods that are gone, read from the artifacts Argo's archiveLogs wrote: real PostgreSQL, the
fake Kubernetes API server (ConfigMaps, Secrets, the shipped RBAC) and a real S3 API server (moto)."""

import gzip
import json

import pytest
import yaml

from tasklogs.extensions import db
from tasklogs.identity import TaskRef
from tasklogs.store import repository
from testkit import scenarios
from testkit.apps import dispose, make_app
from testkit.s3server import start_s3_server

BUCKET = "argo-logs"


@pytest.fixture(scope="module")
def s3():
    server = start_s3_server()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def get(client, task_id):
    response = client.get(f"/api/v1/tasks/{task_id}/logs")
    return response, response.get_json()


def s3_repository(s3, bucket=BUCKET, secret="my-s3") -> dict:
    """An artifact repository as Argo's docs write it for MinIO."""
    return {
        "archiveLogs": True,
        "s3": {
            "bucket": bucket,
            "endpoint": s3.endpoint,
            "insecure": True,
            "accessKeySecret": {"name": secret, "key": "accesskey"},
            "secretKeySecret": {"name": secret, "key": "secretkey"},
        },
    }


def add_repository(kube, s3, name="artifact-repositories", key="default-v1", **repository):
    kube.add_configmap(
        name,
        {key: yaml.safe_dump(s3_repository(s3, **repository))},
        {"workflows.argoproj.io/default-artifact-repository": key},
    )
    kube.add_secret("my-s3", {"accesskey": s3.access_key, "secretkey": s3.secret_key})


def archived(kube, task_id, *, status_ref=None, spec_ref=None, artifact=None):
    """A finished workflow whose pod was garbage-collected, its node recording `main-logs`."""
    wf = scenarios.workflow(kube, task_id, phase="Succeeded", make_pods=False)
    key = f"{task_id}/{wf.pod()}/main.log"

    def record(body):
        node = body["status"]["nodes"][wf.nodes["a"]]
        node["finishedAt"] = "2026-01-02T03:05:00Z"
        node["outputs"] = {
            "artifacts": [artifact or {"name": "main-logs", "s3": {"key": key}}],
            "exitCode": "0",
        }
        body["status"]["finishedAt"] = "2026-01-02T03:05:01Z"
        if status_ref is not None:
            body["status"]["artifactRepositoryRef"] = status_ref
        if spec_ref is not None:
            body.setdefault("spec", {})["artifactRepositoryRef"] = spec_ref

    kube.update_workflow(task_id, record)
    return wf, key


def stored_pages(app, task_id):
    with app.app_context():
        logs = repository.get_stored_logs(db.session, TaskRef("argo", task_id))
        return [(row.length, row.source) for row in logs]


def test_a_plain_archived_log_is_read_stored_and_then_served_from_the_database(
    app, client, kube, s3, task_id
):
    add_repository(kube, s3)
    wf, key = archived(kube, task_id)
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"hello from the archive\nsecond line\n")
    response, body = get(client, task_id)
    assert response.status_code == 200
    assert (body["source"], body["complete"], body["phase"]) == ("artifacts", True, "Succeeded")
    [entry] = body["logs"]
    assert (entry["pod"], entry["source"], entry["lines"]) == (wf.pod(), "artifacts", 2)
    assert entry["logs"] == "hello from the archive\nsecond line\n" and "note" not in entry
    kube.reset_requests()
    _, body = get(client, task_id)
    assert (body["source"], body["logs"][0]["source"]) == ("database", "artifacts")
    assert body["logs"][0]["logs"] == "hello from the archive\nsecond line\n"
    assert kube.count() == 0, "once stored, the archived log is served by the database alone"
    lines = client.get(f"/api/v1/tasks/{task_id}/logs?format=ndjson&timestamps=true").data
    first = json.loads(lines.splitlines()[0])
    assert first["ts"].startswith("2026-01-02T03:05:00"), "lines carry the node's finishedAt"


def test_a_gzipped_archived_log_through_the_repository_recorded_in_the_status(
    client, kube, s3, task_id
):
    kube.add_secret("my-s3", {"accesskey": s3.access_key, "secretkey": s3.secret_key})
    recorded = {"namespace": "argo", "artifactRepository": s3_repository(s3)}
    _, key = archived(kube, task_id, status_ref=recorded)
    text = "".join(f"line {n} é\n" for n in range(5000))
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(text.encode()))
    _, body = get(client, task_id)
    assert body["source"] == "artifacts" and body["logs"][0]["logs"] == text
    assert body["logs"][0]["lines"] == 5000


def test_the_workflow_spec_names_another_configmap_and_key(client, kube, s3, task_id):
    add_repository(kube, s3, name="team-repos", key="minio")
    _, key = archived(kube, task_id, spec_ref={"configMap": "team-repos", "key": "minio"})
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"from team-repos\n")
    _, body = get(client, task_id)
    assert body["logs"][0]["logs"] == "from team-repos\n"


def test_a_missing_key_is_a_note_stores_nothing_and_is_tried_again(app, client, kube, s3, task_id):
    add_repository(kube, s3)
    _, key = archived(kube, task_id)
    _, body = get(client, task_id)
    [entry] = body["logs"]
    assert "NoSuchKey" in entry["note"] and f"s3://{BUCKET}/{key}" in entry["note"]
    assert (entry["logs"], body["complete"], body["source"]) == ("", False, "kubernetes")
    assert stored_pages(app, task_id) == [(0, "")]
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"uploaded late\n")
    _, body = get(client, task_id)
    assert (body["logs"][0]["logs"], body["complete"]) == ("uploaded late\n", True)


def test_wrong_credentials_are_a_note_and_store_nothing(app, client, kube, s3, task_id):
    kube.add_configmap(
        "artifact-repositories",
        {"default-v1": yaml.safe_dump(s3_repository(s3, secret="wrong"))},
        {"workflows.argoproj.io/default-artifact-repository": "default-v1"},
    )
    kube.add_secret("wrong", {"accesskey": "AKIAWRONGWRONGWRONG0", "secretkey": "nope"})
    _, key = archived(kube, task_id)
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"secret text\n")
    _, body = get(client, task_id)
    note = body["logs"][0]["note"]
    assert "InvalidAccessKeyId" in note and "accessKeySecret" in note and "nope" not in note
    assert body["logs"][0]["logs"] == "" and stored_pages(app, task_id) == [(0, "")]


def test_a_bucket_that_does_not_exist_is_a_note(app, client, kube, s3, task_id):
    add_repository(kube, s3, bucket="no-such-bucket")
    archived(kube, task_id)
    _, body = get(client, task_id)
    assert (
        "NoSuchBucket" in body["logs"][0]["note"] and "'no-such-bucket'" in body["logs"][0]["note"]
    )
    assert stored_pages(app, task_id) == [(0, "")]


def test_a_missing_secret_or_configmap_is_a_note(client, kube, s3, task_id):
    _, _ = archived(kube, task_id, spec_ref={"configMap": "absent"})
    _, body = get(client, task_id)
    assert "ConfigMap argo/absent does not exist" in body["logs"][0]["note"]
    other = task_id + "-b"
    kube.add_configmap(
        "artifact-repositories",
        {"default-v1": yaml.safe_dump(s3_repository(s3))},
        {"workflows.argoproj.io/default-artifact-repository": "default-v1"},
    )
    archived(kube, other)
    _, body = get(client, other)
    assert "Secret argo/my-s3 (accessKeySecret) does not exist" in body["logs"][0]["note"]


@pytest.mark.parametrize("kind", ["gcs", "azure", "oss", "hdfs", "artifactory", "http"])
def test_other_repository_kinds_are_named_as_not_yet_supported(client, kube, task_id, kind):
    artifact = {"name": "main-logs", kind: {"key": "x/main.log"}}
    archived(kube, task_id, artifact=artifact)
    _, body = get(client, task_id)
    note = body["logs"][0]["note"]
    assert kind.upper() in note and "not yet supported" in note


def test_the_controller_default_needs_its_setting(database_url, kube_adapter, kube, s3, task_id):
    recorded = {"default": True, "namespace": "argo"}
    _, key = archived(kube, task_id, status_ref=recorded)
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"from the controller's default\n")
    kube.add_secret("my-s3", {"accesskey": s3.access_key, "secretkey": s3.secret_key})
    kube.add_configmap(
        "workflow-controller-configmap", {"artifactRepository": yaml.safe_dump(s3_repository(s3))}
    )
    plain = make_app(database_url, kube_adapter)
    try:
        _, body = get(plain.test_client(), task_id)
        assert "TASKLOGS_ARTIFACT_REPOSITORY" in body["logs"][0]["note"]
    finally:
        dispose(plain)
    configured = make_app(
        database_url,
        kube_adapter,
        TASKLOGS_ARTIFACT_REPOSITORY="argo/workflow-controller-configmap/artifactRepository",
    )
    try:
        _, body = get(configured.test_client(), task_id)
        assert body["logs"][0]["logs"] == "from the controller's default\n"
    finally:
        dispose(configured)


def test_a_log_the_cluster_still_has_is_not_read_from_the_archive(client, kube, s3, task_id):
    add_repository(kube, s3)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "live text\n")
    scenarios.finish(kube, wf)
    _, body = get(client, task_id)
    assert (body["source"], body["logs"][0]["logs"]) == ("kubernetes", "live text\n")
    assert "source" not in body["logs"][0]


def test_the_collector_stores_an_archived_log_before_its_final_save(
    database_url, collector_kube_adapter, client, kube, s3, task_id
):
    """A workflow that finished while no collector ran, its pods garbage-collected: the collector
    final-saves it, and reads the archived log first, so REST serves it complete from the store."""
    import threading

    from tasklogs.bootstrap import build_collector
    from testkit.waiting import wait_for

    add_repository(kube, s3)
    wf, key = archived(kube, task_id)
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"archived while nobody watched\n")
    app = make_app(database_url, collector_kube_adapter)
    collector = build_collector(app.extensions["tasklogs"])
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: stored_pages(app, task_id) == [(30, "artifacts")], 15)
        assert wait_for(lambda: get(client, task_id)[1].get("complete") is True, 10)
    finally:
        collector.stop()
        thread.join(10)
        dispose(app)
    kube.reset_requests()
    _, body = get(client, task_id)
    assert (body["source"], body["complete"]) == ("database", True)
    assert [(e["source"], e["logs"]) for e in body["logs"]] == [
        ("artifacts", "archived while nobody watched\n")
    ]
    assert kube.count() == 0
