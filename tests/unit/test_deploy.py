"""Static checks of what ships for deployment: Dockerfile, docker-compose.yml, RBAC, gunicorn config."""
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(ROOT, path)) as file:
        return file.read()


def test_rbac_is_read_only_on_pods_logs_and_workflows():
    documents = list(yaml.safe_load_all(read("deploy/rbac.yaml")))
    kinds = {doc["kind"] for doc in documents}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding"}, "a namespaced Role, not a ClusterRole"
    [role] = [doc for doc in documents if doc["kind"] == "Role"]
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == {(group, resource, verb) for group, resource in
                       (("", "pods"), ("", "pods/log"), ("argoproj.io", "workflows"))
                       for verb in ("get", "list", "watch")}


def test_the_test_suite_enforces_the_shipped_rbac():
    conftest = read("tests/conftest.py")
    assert 'fake.load_rbac(RBAC)' in conftest and '"deploy", "rbac.yaml"' in conftest


def test_compose_waits_for_a_healthy_postgres_and_uses_the_seed_url():
    compose = yaml.safe_load(read("docker-compose.yml"))
    postgres, backend = compose["services"]["postgres"], compose["services"]["backend"]
    assert postgres["healthcheck"]["test"] and "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert backend["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert backend["environment"]["DATABASE_URL"] == "postgresql://postgres:password@postgres:5432/postgres"
    assert backend["build"] == "."


def test_dockerfile_is_slim_non_root_and_runs_gunicorn():
    dockerfile = read("Dockerfile")
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert os.path.exists(os.path.join(ROOT, copied)), f"COPY {copied}: no such file"


def test_gunicorn_config_uses_gevent_and_psycogreen():
    namespace = {}
    exec(compile(read("gunicorn.conf.py"), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["worker_class"] == "gevent"
    assert "patch_psycopg" in read("gunicorn.conf.py") and callable(namespace["post_fork"])
    assert "%(q)s" not in namespace["access_log_format"] and "%(r)s" not in namespace["access_log_format"], \
        "the access log must not print query strings (access_token)"


def test_requirements_pin_the_fixed_stack():
    requirements = read("requirements.txt")
    for package in ("flask==", "flask-sock==", "flask-sqlalchemy==", "psycopg2-binary==", "kubernetes==",
                    "gunicorn[gevent]==", "psycogreen=="):
        assert package in requirements


def test_compose_runs_the_collector_with_the_same_database():
    compose = yaml.safe_load(read("docker-compose.yml"))
    collector = compose["services"]["collector"]
    assert collector["command"] == ["flask", "--app", "wsgi", "collect"]
    assert collector["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert collector["environment"]["DATABASE_URL"] == compose["services"]["backend"]["environment"]["DATABASE_URL"]


def test_kubernetes_manifests_run_web_collector_and_prune_under_the_service_account():
    documents = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(read("deploy/tasklogs.yaml"))}
    web = documents[("Deployment", "tasklogs")]["spec"]["template"]["spec"]
    collector = documents[("Deployment", "tasklogs-collector")]["spec"]["template"]["spec"]
    cron = documents[("CronJob", "tasklogs-prune")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert web["serviceAccountName"] == collector["serviceAccountName"] == "tasklogs"
    assert collector["containers"][0]["command"] == ["flask", "--app", "wsgi", "collect"]
    assert cron["containers"][0]["command"][:4] == ["flask", "--app", "wsgi", "prune"]
    assert "automountServiceAccountToken" not in cron or cron["automountServiceAccountToken"] is False
    probes = web["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
