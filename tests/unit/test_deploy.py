"""Static checks of what ships for deployment: Dockerfile, docker-compose.yml, RBAC, gunicorn config."""

import json
import os
import re
import shutil
import subprocess
from importlib import metadata

import psycopg2.extensions
import pytest
import yaml
from gunicorn.app.base import Application
from kubernetes import client, config
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tasklogs.config import load_config
from testkit import ROOT
from testkit.fakekube import FakeKube
from testkit.fakekube.rbac import grants_of, load_documents, load_grants


def read(path):
    with open(os.path.join(ROOT, path)) as file:
        return file.read()


RBAC_VARIANTS = {
    "namespaces": "deploy/overlays/namespaces/rbac.yaml",
    "cluster": "deploy/overlays/all-namespaces/rbac-cluster.yaml",
}
WEB = "system:serviceaccount:argo:tasklogs-web"
COLLECTOR = "system:serviceaccount:argo:tasklogs-collector"
PRUNE = "system:serviceaccount:argo:tasklogs-prune"

# What tasklogs/kube.py calls for each, as (API group, resource, verb) in a workflow namespace.
WEB_CALLS = {
    ("argoproj.io", "workflows", "get"),  # Kube.get_workflow (REST refresh, tails' drivers)
    ("", "pods", "list"),  # Kube.list_pods, Kube.check (/readyz)
    ("", "pods", "get"),  # Kube.get_pod, once a follow stream ended
    ("", "pods/log", "get"),  # Kube.open_log
    ("", "configmaps", "get"),  # Kube.get_configmap (an archived log's artifact repository)
    ("", "secrets", "get"),  # Kube.get_secret (that repository's credentials)
}
COLLECTOR_CALLS = {
    ("argoproj.io", "workflows", "list"),  # Kube.list_workflows
    ("argoproj.io", "workflows", "watch"),  # Kube.watch_workflows
    ("", "pods", "list"),  # Kube.list_workflow_pods
    ("", "pods", "watch"),  # Kube.watch_workflow_pods
    ("", "pods", "get"),  # Kube.get_pod, once a follow stream ended
    ("", "pods/log", "get"),  # Kube.open_log
    ("", "configmaps", "get"),  # the final save's archived logs (Driver._read_archives)
    ("", "secrets", "get"),  # their repository's credentials
}
# Cluster-scoped, for TASKLOGS_AUTH=kubernetes (system:auth-delegator's rules).
REVIEWS = {
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
}


def granted(rules) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def kinds_of(path: str) -> set[str]:
    return {doc["kind"] for doc in yaml.safe_load_all(read(path))}


def test_both_rbac_variants_ship():
    """A Role and RoleBinding per namespace for a list of namespaces, ClusterRoles for `*`."""
    assert {"ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"} == kinds_of(
        RBAC_VARIANTS["namespaces"]
    )
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} == kinds_of(
        RBAC_VARIANTS["cluster"]
    )


def namespaces_in_manifests() -> set[str]:
    """TASKLOGS_NAMESPACES of the web and collector Deployments (they must agree)."""
    found = {
        env["value"]
        for doc in yaml.safe_load_all(read("deploy/base/tasklogs.yaml"))
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
        if env["name"] == "TASKLOGS_NAMESPACES"
    }
    assert len(found) == 1, f"web and collector read the same namespaces, not {found}"
    return set(found.pop().split(","))


def test_the_namespaced_variant_grants_exactly_the_calls_in_each_listed_namespace():
    objects = load_documents(os.path.join(ROOT, RBAC_VARIANTS["namespaces"]))
    namespaces = namespaces_in_manifests()
    assert "*" not in namespaces and len(namespaces) >= 2
    for user, calls in ((WEB, WEB_CALLS), (COLLECTOR, COLLECTOR_CALLS)):
        grants = grants_of(objects, user)
        assert set(grants.namespaced) == namespaces, user
        for namespace in namespaces:
            assert granted(grants.rules_in(namespace)) == calls | (
                REVIEWS if user == WEB else set()
            )
        assert granted(grants.rules_in("kube-system")) == granted(grants.rules_in(None))
    assert granted(grants_of(objects, WEB).rules_in(None)) == REVIEWS
    assert granted(grants_of(objects, COLLECTOR).rules_in(None)) == set()
    assert granted(grants_of(objects, PRUNE).rules_in("argo")) == set()


def test_the_cluster_variant_grants_exactly_the_calls_in_every_namespace():
    objects = load_documents(os.path.join(ROOT, RBAC_VARIANTS["cluster"]))
    for user, calls in ((WEB, WEB_CALLS | REVIEWS), (COLLECTOR, COLLECTOR_CALLS)):
        grants = grants_of(objects, user)
        assert grants.namespaced == {}, "ClusterRoleBindings only"
        assert granted(grants.rules_in("any-namespace")) == calls
    assert granted(grants_of(objects, PRUNE).rules_in("argo")) == set()


@pytest.mark.parametrize("variant", sorted(RBAC_VARIANTS))
def test_no_account_may_write_or_list_secrets(variant):
    """Only the web and collector accounts read Secrets, and only by name (an artifact repository's
    credentials): never list or watch them, and no account writes anything."""
    objects = load_documents(os.path.join(ROOT, RBAC_VARIANTS[variant]))
    for user in (WEB, COLLECTOR, PRUNE):
        for group, resource, verb in granted(grants_of(objects, user).rules_in("argo")):
            assert "*" not in (group, resource, verb)
            assert resource != "secrets" or (user in (WEB, COLLECTOR) and verb == "get")
            assert verb in ("get", "list", "watch") or (group, resource, verb) in REVIEWS


def without(resource: str, path) -> str:
    """The shipped rbac.yaml with `resource` taken out of its Roles' rules, written to `path`."""
    documents = list(yaml.safe_load_all(read("deploy/overlays/namespaces/rbac.yaml")))
    for doc in documents:
        for rule in doc.get("rules", []) if doc["kind"] == "Role" else []:
            rule["resources"] = [name for name in rule["resources"] if name != resource]
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def log_read_status(rbac_path, kubeconfig_path, account="tasklogs-web") -> int:
    """The status of a pod log read by the real kubernetes client from a fake cluster under `rbac_path`."""
    fake = FakeKube(namespace="argo")
    try:
        fake.load_rbac(rbac_path, service_account=account)
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
    """The shipped Roles read pod logs; the same Roles without `pods/log` get 403 from the same fake,
    and an account the files bind to nothing gets 403 too."""
    shipped = os.path.join(ROOT, "deploy", "overlays", "namespaces", "rbac.yaml")
    assert log_read_status(shipped, tmp_path / "shipped") == 200
    assert log_read_status(shipped, tmp_path / "collector", "tasklogs-collector") == 200
    assert log_read_status(shipped, tmp_path / "prune", "tasklogs-prune") == 403
    assert log_read_status(without("pods/log", tmp_path / "rbac.yaml"), tmp_path / "trimmed") == 403
    cluster = os.path.join(ROOT, "deploy", "overlays", "all-namespaces", "rbac-cluster.yaml")
    assert log_read_status(cluster, tmp_path / "cluster") == 200


def test_the_web_account_cannot_watch_and_the_collector_cannot_get_workflows(
    kube, collector_kubeconfig, kubeconfig
):
    """The suite's fake answers each account as the apiserver would under the shipped bindings."""
    web = config.new_client_from_config(config_file=kubeconfig)
    collector = config.new_client_from_config(config_file=collector_kubeconfig)
    kube.add_pod("p")
    try:
        with pytest.raises(client.ApiException) as refused:
            client.CoreV1Api(web).list_namespaced_pod("argo", watch=True, timeout_seconds=1)
        assert refused.value.status == 403
        assert json.loads(refused.value.body)["message"] == (
            'pods is forbidden: User "system:serviceaccount:argo:tasklogs-web" cannot watch '
            'resource "pods" in API group "" in the namespace "argo"'
        )
        assert client.CoreV1Api(collector).read_namespaced_pod("p", "argo").metadata.name == "p"
        custom = client.CustomObjectsApi(collector)
        with pytest.raises(client.ApiException) as refused:
            custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", "w")
        assert refused.value.status == 403
        other = client.CoreV1Api(web)
        assert other.list_namespaced_pod("argo-ci").items == [], "a listed namespace: allowed"
        with pytest.raises(client.ApiException) as refused:
            other.list_namespaced_pod("kube-system")
        assert refused.value.status == 403
        assert json.loads(refused.value.body)["message"].endswith('in the namespace "kube-system"')
    finally:
        web.close()
        collector.close()


def test_the_suites_cluster_runs_under_the_web_accounts_bindings(kube):
    """tests/conftest.py's `kube`, which every service test uses, holds exactly the web account's rules."""
    grants = load_grants(os.path.join(ROOT, "deploy", "overlays", "namespaces", "rbac.yaml"), WEB)
    assert kube.user == WEB
    assert kube.rbac_grants == grants
    assert granted(kube.rbac_rules) == WEB_CALLS | REVIEWS
    assert granted(kube.rbac_cluster_rules) == REVIEWS


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


def test_compose_runs_one_image_with_restart_policies():
    """One image for both services; the web service restarts, the collector gives up after a few
    failures (it stops with one line when a store is unusable) instead of looping."""
    compose = yaml.safe_load(read("docker-compose.yml"))
    backend, collector = compose["services"]["backend"], compose["services"]["collector"]
    assert backend["image"] == collector["image"] == "${TASKLOGS_IMAGE:-tasklogs:0.1.0}"
    assert "build" not in collector, "built once, by the backend service"
    assert backend["restart"] == "unless-stopped"
    assert re.fullmatch(r"on-failure:\d", collector["restart"])
    for service in (backend, collector):
        assert service["user"] == "${TASKLOGS_UID:-10001}:${TASKLOGS_GID:-10001}"
        assert service["volumes"] == ["${KUBECONFIG_DIR:-~/.kube}:/kube:ro"]
    kind = yaml.safe_load(read("docker-compose.kind.yml"))
    assert all("cluster" in kind["services"][name]["networks"] for name in ("backend", "collector"))
    assert kind["networks"]["cluster"]["external"] is True


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


def manifests() -> dict[str, list[dict]]:
    """Every manifest of deploy/ (Kustomize files aside), parsed: path under deploy/ -> its objects."""
    directory = os.path.join(ROOT, "deploy")
    names = sorted(
        os.path.relpath(os.path.join(folder, name), directory)
        for folder, _, files in os.walk(directory)
        for name in files
        if name.endswith((".yaml", ".yml")) and name != "kustomization.yaml"
    )
    assert names, "deploy/ ships manifests"
    return {
        name: [doc for doc in yaml.safe_load_all(read(f"deploy/{name}")) if doc] for name in names
    }


def workloads() -> dict[str, dict]:
    """The pod spec of every Deployment, StatefulSet, DaemonSet, Job and CronJob, by `kind/name`."""
    found = {}
    for objects in manifests().values():
        for obj in objects:
            spec = obj.get("spec", {})
            if obj["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            if "template" in spec:
                found[f"{obj['kind']}/{obj['metadata']['name']}"] = spec["template"]
    return found


def test_every_manifest_parses_and_names_its_kind():
    for name, objects in manifests().items():
        assert objects, name
        for obj in objects:
            assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], name


def image_user() -> str:
    return re.findall(r"^USER (\S+)", read("Dockerfile"), re.M)[-1]


def test_every_container_runs_unprivileged_on_a_read_only_root():
    uid, gid = image_user().split(":")
    assert len(workloads()) == 3
    for where, template in workloads().items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid), where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "privileged" not in context or context["privileged"] is False
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in tmp_volumes, f"{where}: /tmp is an emptyDir"


def version() -> str:
    return re.search(r"^version = (\S+)$", read("setup.cfg"), re.M).group(1)


def test_images_are_pinned_to_the_release():
    images = {
        container["image"]
        for template in workloads().values()
        for container in template["spec"]["containers"]
    }
    assert images == {f"tasklogs:{version()}"}
    for text in (read(f"deploy/{name}") for name in manifests()):
        assert ":latest" not in text


def test_web_collector_and_prune_run_under_their_own_accounts():
    pods = {where: template["spec"] for where, template in workloads().items()}
    web, collector = pods["Deployment/tasklogs"], pods["Deployment/tasklogs-collector"]
    cron = pods["CronJob/tasklogs-prune"]
    accounts = [web["serviceAccountName"], collector["serviceAccountName"]]
    assert accounts == ["tasklogs-web", "tasklogs-collector"]
    assert cron["serviceAccountName"] == "tasklogs-prune"
    assert cron["automountServiceAccountToken"] is False, "prune runs without a token"
    for variant in RBAC_VARIANTS.values():
        objects = load_documents(os.path.join(ROOT, variant))
        service_accounts = {
            o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"
        }
        assert set(service_accounts) == {*accounts, "tasklogs-prune"}
        assert service_accounts["tasklogs-prune"]["automountServiceAccountToken"] is False
    assert collector["containers"][0]["command"] == ["flask", "--app", "wsgi", "collect"]
    assert cron["containers"][0]["command"][:4] == ["flask", "--app", "wsgi", "prune"]
    probes = web["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


def env_of(container: dict) -> dict[str, str]:
    return {env["name"]: env.get("value") for env in container.get("env", [])}


def test_the_web_pods_trust_forwarded_headers_only_from_the_ingress_and_check_tokens():
    import ipaddress

    [web] = workloads()["Deployment/tasklogs"]["spec"]["containers"]
    env = env_of(web)
    assert "TASKLOGS_PROXY_FIX" not in env
    assert env["TASKLOGS_AUTH"] == "kubernetes"
    networks = [ipaddress.ip_network(part) for part in env["TASKLOGS_TRUSTED_PROXIES"].split(",")]
    assert networks and all(network.is_private for network in networks)


def network_policies() -> dict[str, dict]:
    return {
        obj["spec"]["podSelector"]["matchLabels"]["app"]: obj["spec"]
        for objects in manifests().values()
        for obj in objects
        if obj["kind"] == "NetworkPolicy"
    }


def egress_ports(policy: dict) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}


def test_network_policies_let_in_only_http_and_out_only_the_database_api_server_and_dns():
    policies = network_policies()
    pods = {t["metadata"]["labels"]["app"]: t["spec"] for t in workloads().values()}
    assert set(policies) == set(pods), "every pod has its policy"
    for app, policy in policies.items():
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}, app
        ports = egress_ports(policy)
        assert {("TCP", 5432), ("UDP", 53), ("TCP", 53)} <= ports, app
        talks_to_kubernetes = app != "tasklogs-prune"
        assert (("TCP", 6443) in ports) is talks_to_kubernetes, app
        assert ports <= {("TCP", 5432), ("UDP", 53), ("TCP", 53), ("TCP", 6443), ("TCP", 443)}
    [web_port] = pods["tasklogs"]["containers"][0]["ports"]
    assert policies["tasklogs"]["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": web_port["containerPort"]}]}
    ]
    [metrics_port] = pods["tasklogs-collector"]["containers"][0]["ports"]
    assert metrics_port["containerPort"] == load_config({}).observability.metrics_port
    assert policies["tasklogs-collector"]["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": metrics_port["containerPort"]}]}
    ]
    assert policies["tasklogs-prune"]["ingress"] == []


def test_web_and_collector_pods_are_scraped_on_their_metrics_ports():
    pods = {t["metadata"]["labels"]["app"]: t for t in workloads().values()}
    for app, port in (("tasklogs", 8000), ("tasklogs-collector", 8001)):
        annotations = pods[app]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", app
        assert annotations["prometheus.io/path"] == "/metrics", app
        assert int(annotations["prometheus.io/port"]) == port, app
        declared = {p["containerPort"] for p in pods[app]["spec"]["containers"][0]["ports"]}
        assert port in declared, app
    assert "prometheus.io/scrape" not in (
        pods["tasklogs-prune"]["metadata"].get("annotations") or {}
    )


def test_gunicorn_has_no_control_socket():
    """gunicorn 25.1+ opens a control socket by default (in $HOME, read-only in the pod)."""
    cfg = GunicornConfig().cfg
    assert cfg.control_socket_disable is True


def test_the_readme_deploys_the_pinned_image_with_the_database_secret():
    readme = read("README.md")
    assert f"tasklogs:{version()}" in readme
    secrets = {
        ref["secretKeyRef"]["name"] + "/" + ref["secretKeyRef"]["key"]
        for template in workloads().values()
        for container in template["spec"]["containers"]
        for env in container.get("env", [])
        for ref in [env.get("valueFrom", {})]
        if "secretKeyRef" in ref
    }
    assert secrets == {"tasklogs-db/url"}
    assert "create secret generic tasklogs-db --from-literal=url=" in readme
    for name in manifests():
        assert f"deploy/{name}" in readme, f"the README says when to apply deploy/{name}"


def kustomize(overlay: str) -> list[dict]:
    """`kubectl kustomize` of an overlay, rendered offline."""
    done = subprocess.run(
        ["kubectl", "kustomize", os.path.join(ROOT, "deploy", "overlays", overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def kinds(objects) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in objects}


def namespaces_env(objects) -> dict[str, str]:
    return {
        o["metadata"]["name"]: env["value"]
        for o in objects
        if o["kind"] == "Deployment"
        for container in o["spec"]["template"]["spec"]["containers"]
        for env in container["env"]
        if env["name"] == "TASKLOGS_NAMESPACES"
    }


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the overlays")
def test_both_kustomize_overlays_render_the_base_with_their_rbac():
    base = {o["kind"] for o in manifests()["base/tasklogs.yaml"]} | {"NetworkPolicy"}
    rendered = {name: kustomize(name) for name in ("namespaces", "all-namespaces")}
    for objects in rendered.values():
        assert base <= {o["kind"] for o in objects}
        images = {
            c["image"]
            for o in objects
            if o["kind"] in ("Deployment", "CronJob")
            for c in (
                o["spec"]["template"]["spec"]["containers"]
                if o["kind"] == "Deployment"
                else o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            )
        }
        assert images == {"tasklogs:0.1.0"}, (
            "one image, pinned; `kustomize edit set image` changes it"
        )
    namespaced, everywhere = rendered["namespaces"], rendered["all-namespaces"]
    assert {o["kind"] for o in namespaced} >= {"Role", "RoleBinding"}
    assert not {"Role", "RoleBinding"} & {o["kind"] for o in everywhere}
    assert {o["kind"] for o in everywhere} >= {"ClusterRole", "ClusterRoleBinding"}
    assert namespaces_env(namespaced) == {
        "tasklogs": "argo,argo-ci",
        "tasklogs-collector": "argo,argo-ci",
    }
    assert namespaces_env(everywhere) == {"tasklogs": "*", "tasklogs-collector": "*"}
    # what the overlays render is what the tests enforce on the fake API server
    assert kinds(namespaced) >= kinds(manifests()["overlays/namespaces/rbac.yaml"])
    assert kinds(everywhere) >= kinds(manifests()["overlays/all-namespaces/rbac-cluster.yaml"])
