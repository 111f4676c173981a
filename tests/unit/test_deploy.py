"""Static checks of what ships for deployment: Dockerfile, docker-compose.yml, RBAC, gunicorn config."""

import os
import re
from importlib import metadata

import psycopg2.extensions
import pytest
import yaml
from gunicorn.app.base import Application
from kubernetes import client, config
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from testkit import ROOT
from testkit.fakekube import FakeKube
from testkit.fakekube.rbac import allows, load_rules


def read(path):
    with open(os.path.join(ROOT, path)) as file:
        return file.read()


def test_rbac_is_read_only_on_pods_logs_and_workflows():
    documents = list(yaml.safe_load_all(read("deploy/rbac.yaml")))
    kinds = {doc["kind"] for doc in documents}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"}, (
        "a namespaced Role, not a ClusterRole of our own"
    )
    [role] = [doc for doc in documents if doc["kind"] == "Role"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        (group, resource, verb)
        for group, resource in (("", "pods"), ("", "pods/log"), ("argoproj.io", "workflows"))
        for verb in ("get", "list", "watch")
    }


def test_the_only_cluster_wide_grant_is_auth_delegation_to_the_service_account():
    """TokenReviews and SubjectAccessReviews (TASKLOGS_AUTH=kubernetes|proxy) are cluster-scoped:
    the bootstrap ClusterRole system:auth-delegator grants `create` on those two and nothing else."""
    [binding] = [
        doc
        for doc in yaml.safe_load_all(read("deploy/rbac.yaml"))
        if doc["kind"] == "ClusterRoleBinding"
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:auth-delegator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tasklogs", "namespace": "argo"}
    ]
    rules = load_rules(os.path.join(ROOT, "deploy", "rbac.yaml"))
    assert allows(rules, "create", "authentication.k8s.io", "tokenreviews", None)
    assert allows(rules, "create", "authorization.k8s.io", "subjectaccessreviews", None)
    assert not allows(rules, "create", "", "pods", None)


def test_the_shipped_web_deployment_authenticates_with_kubernetes_and_no_proxy_fix():
    web = next(
        doc
        for doc in yaml.safe_load_all(read("deploy/tasklogs.yaml"))
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "tasklogs"
    )
    env = {
        e["name"]: e.get("value") for e in web["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TASKLOGS_AUTH"] == "kubernetes" and "TASKLOGS_PROXY_FIX" not in env


def without(resource: str, path) -> str:
    """The shipped rbac.yaml with `resource` taken out of its Role's rules, written to `path`."""
    documents = list(yaml.safe_load_all(read("deploy/rbac.yaml")))
    for doc in documents:
        for rule in doc.get("rules", []) if doc["kind"] == "Role" else []:
            rule["resources"] = [name for name in rule["resources"] if name != resource]
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def log_read_status(rbac_path, kubeconfig_path) -> int:
    """The status of a pod log read by the real kubernetes client from a fake cluster under `rbac_path`."""
    fake = FakeKube(namespace="argo")
    try:
        fake.load_rbac(rbac_path)
        fake.add_pod("p")
        fake.write_log("p", "main", "hello\n")
        api = config.new_client_from_config(config_file=fake.write_kubeconfig(str(kubeconfig_path)))
        try:
            assert (
                client.CoreV1Api(api).read_namespaced_pod_log("p", "argo", container="main")
                == "hello\n"
            )
            return 200
        except client.ApiException as error:
            return error.status
        finally:
            api.close()
    finally:
        fake.close()


def test_the_fake_enforces_the_rbac_it_loads(tmp_path):
    """The shipped Role reads pod logs; the same Role without `pods/log` gets 403 from the same fake."""
    assert log_read_status(os.path.join(ROOT, "deploy", "rbac.yaml"), tmp_path / "shipped") == 200
    assert log_read_status(without("pods/log", tmp_path / "rbac.yaml"), tmp_path / "trimmed") == 403


def test_the_suites_cluster_runs_under_the_shipped_rbac(kube):
    """tests/conftest.py's `kube`, which every service test uses, holds exactly the shipped rules."""
    assert kube.rbac_rules == load_rules(os.path.join(ROOT, "deploy", "rbac.yaml"))


def test_compose_waits_for_a_healthy_postgres_and_uses_the_seed_url():
    compose = yaml.safe_load(read("docker-compose.yml"))
    postgres, backend = compose["services"]["postgres"], compose["services"]["backend"]
    assert postgres["healthcheck"]["test"] and "pg_isready" in " ".join(
        postgres["healthcheck"]["test"]
    )
    assert backend["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        backend["environment"]["DATABASE_URL"]
        == "postgresql://postgres:password@postgres:5432/postgres"
    )
    assert backend["build"] == "."


def test_dockerfile_is_slim_non_root_and_runs_gunicorn():
    dockerfile = read("Dockerfile")
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert os.path.exists(os.path.join(ROOT, copied)), f"COPY {copied}: no such file"


class GunicornConfig(Application):
    """gunicorn.conf.py as gunicorn itself loads it (`self.cfg`), without an app."""

    def load_config(self):
        self.load_config_from_file(os.path.join(ROOT, "gunicorn.conf.py"))

    def load(self):
        raise AssertionError("no app: only the configuration is read")


def test_gunicorn_config_uses_gevent_and_psycogreen():
    from psycogreen.gevent import gevent_wait_callback

    cfg = GunicornConfig().cfg
    assert cfg.worker_class_str == "gevent"
    assert psycopg2.extensions.get_wait_callback() is None
    try:
        cfg.post_fork(server=None, worker=None)
        assert psycopg2.extensions.get_wait_callback() is gevent_wait_callback, (
            "post_fork makes psycopg2 cooperative"
        )
    finally:
        psycopg2.extensions.set_wait_callback(None)
    assert "%(q)s" not in cfg.access_log_format and "%(r)s" not in cfg.access_log_format, (
        "the access log must not print query strings (access_token)"
    )


def requirements(path: str) -> dict[str, Requirement]:
    """Each requirement line of a requirements file by its normalized name (`-r` lines left out)."""
    lines = [line.split("#")[0].strip() for line in read(path).splitlines()]
    found = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return {canonicalize_name(req.name): req for req in found}


@pytest.mark.parametrize("path", ["requirements.txt", "requirements-dev.txt"])
def test_requirements_pin_every_package_and_the_venv_has_the_pins(path):
    for name, req in requirements(path).items():
        [spec] = list(req.specifier)
        assert spec.operator == "==", f"{path}: {req} is not pinned with =="
        assert metadata.version(name) == spec.version, (
            f"{path}: {req} pinned, {metadata.version(name)} installed"
        )


def test_requirements_hold_the_fixed_stack():
    shipped, dev = requirements("requirements.txt"), requirements("requirements-dev.txt")
    assert {
        "flask",
        "flask-sock",
        "flask-sqlalchemy",
        "psycopg2-binary",
        "psycogreen",
        "kubernetes",
        "gunicorn",
    } <= set(shipped)
    assert shipped["gunicorn"].extras == {"gevent"}
    assert "-r requirements.txt" in read("requirements-dev.txt").splitlines() and "pytest" in dev


def test_compose_runs_the_collector_with_the_same_database():
    compose = yaml.safe_load(read("docker-compose.yml"))
    collector = compose["services"]["collector"]
    assert collector["command"] == ["flask", "--app", "wsgi", "collect"]
    assert collector["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        collector["environment"]["DATABASE_URL"]
        == compose["services"]["backend"]["environment"]["DATABASE_URL"]
    )


def test_kubernetes_manifests_run_web_collector_and_prune_under_the_service_account():
    documents = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for doc in yaml.safe_load_all(read("deploy/tasklogs.yaml"))
    }
    web = documents[("Deployment", "tasklogs")]["spec"]["template"]["spec"]
    collector = documents[("Deployment", "tasklogs-collector")]["spec"]["template"]["spec"]
    cron = documents[("CronJob", "tasklogs-prune")]["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]
    assert web["serviceAccountName"] == collector["serviceAccountName"] == "tasklogs"
    assert collector["containers"][0]["command"] == ["flask", "--app", "wsgi", "collect"]
    assert cron["containers"][0]["command"][:4] == ["flask", "--app", "wsgi", "prune"]
    assert (
        "automountServiceAccountToken" not in cron or cron["automountServiceAccountToken"] is False
    )
    probes = web["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
