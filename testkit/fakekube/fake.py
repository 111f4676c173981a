"""FakeKube: a Kubernetes API server for tests, speaking real HTTP on loopback."""

import copy
import secrets
from typing import NamedTuple

import yaml

from .app import App, wait_closed
from .cluster import COMPLETED_LABEL, WORKFLOW_LABEL, Cluster
from .faults import Fault, Faults
from .gotime import to_nanos
from .journal import Journal
from .rbac import Grants, Rbac, load_grants, load_rules, service_account_user
from .server import Transport

ARGO_ANNOTATIONS = ("workflows.argoproj.io/node-id", "workflows.argoproj.io/node-name")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


class Identity(NamedTuple):
    """A user of the fake and what its bindings grant it (None: everything is allowed)."""

    user: str
    grants: Grants | None


class FakeKube:
    """Pods, workflows and container logs of one namespace, served at self.url until close()."""

    def __init__(self, namespace="argo", *, token=None, user=None, history_size=10000, port=0):
        self.namespace = namespace
        self.token = token or secrets.token_hex(16)
        self.user = user or f"system:serviceaccount:{namespace}:tasklogs"
        self.rbac_grants = None  # what the default token may do; None: RBAC off
        self._tokens = {}  # more bearer tokens of the API itself: token -> Identity
        self.tokens = {}  # other callers' bearer tokens -> user info, for TokenReviews
        self.rbac = Rbac()  # their Roles and bindings, for SubjectAccessReviews
        self.bookmark_interval = 60.0
        self.cluster = Cluster(namespace, history_size)
        self.faults = Faults()
        self.journal = Journal()
        self.app = App(self)
        self._transport = Transport(self.app, port)
        self.start()

    # --- lifecycle ---
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._transport.port}"

    @property
    def port(self) -> int:
        return self._transport.port

    def start(self):
        """Listen again, on the same port."""
        if not self._transport.running:
            self.app.stopping.clear()
            self._transport.start()

    def stop(self):
        """Cluster down: stop listening and reset every open connection and stream."""
        self.app.stopping.set()
        self._transport.stop()

    def close(self):
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write_kubeconfig(self, path, token=None) -> str:
        """A kubeconfig for this server with the default token, or `token` (see `add_service_account`)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "fakekube", "cluster": {"server": self.url}}],
            "users": [{"name": "tasklogs", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": "fakekube",
                    "context": {
                        "cluster": "fakekube",
                        "user": "tasklogs",
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "fakekube",
        }
        with open(path, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        return str(path)

    def in_namespace(self, namespace) -> "FakeKube":
        """The same fake server, whose object methods below act in `namespace` (objects of every
        namespace live in one cluster, with one resourceVersion, served at the same URL)."""
        view = copy.copy(self)
        view.namespace = namespace
        return view

    # --- workflows ---
    def add_workflow(self, body: dict) -> dict:
        body = copy.deepcopy(body)
        body.setdefault("metadata", {}).setdefault("namespace", self.namespace)
        return self.cluster.add_workflow(body)

    def update_workflow(self, name, fn) -> dict:
        return self.cluster.update_workflow(name, fn, self.namespace)

    def delete_workflow(self, name):
        self.cluster.delete_workflow(name, self.namespace)

    def workflow(self, name):
        return self.cluster.workflow(name, self.namespace)

    # --- configmaps and secrets ---
    def add_configmap(self, name, data, annotations=None) -> dict:
        return self.cluster.add_configmap(name, data, annotations, self.namespace)

    def add_secret(self, name, data) -> dict:
        return self.cluster.add_secret(name, data, self.namespace)

    # --- pods ---
    def add_pod(
        self,
        name,
        *,
        labels=None,
        annotations=None,
        containers=("main",),
        init_containers=(),
        phase="Running",
        container_state="running",
    ) -> dict:
        return self.cluster.add_pod(
            name,
            self.namespace,
            labels=labels,
            annotations=annotations,
            containers=tuple(containers),
            init_containers=tuple(init_containers),
            phase=phase,
            state=container_state,
        )

    def add_argo_pod(
        self,
        workflow,
        node_id,
        pod_name,
        *,
        node_name=None,
        phase="Running",
        containers=("wait", "main"),
        init_containers=("init",),
        node_id_annotation=True,
        container_state="running",
    ) -> dict:
        labels = {WORKFLOW_LABEL: workflow, COMPLETED_LABEL: "false"}
        annotations = {
            "workflows.argoproj.io/node-name": node_name or node_id,
            DEFAULT_CONTAINER_ANNOTATION: "main",
        }
        if node_id_annotation:
            annotations["workflows.argoproj.io/node-id"] = node_id
        return self.add_pod(
            pod_name,
            labels=labels,
            annotations=annotations,
            containers=containers,
            init_containers=init_containers,
            phase=phase,
            container_state=container_state,
        )

    def set_container_state(self, pod, container, state, *, reason=None, exit_code=0) -> dict:
        return self.cluster.change_pod(
            pod,
            lambda p: _container(p, container).set_state(state, reason=reason, exit_code=exit_code),
            self.namespace,
        )

    def set_pod_phase(self, pod, phase) -> dict:
        return self.cluster.change_pod(pod, lambda p: _set_phase(p, phase), self.namespace)

    def finish_pod(self, pod, phase="Succeeded", exit_code=0) -> dict:
        def finish(p):
            for c in p.containers.values():
                if c.state != "terminated":
                    c.set_state("terminated", exit_code=exit_code)
            _set_phase(p, phase)

        return self.cluster.change_pod(pod, finish, self.namespace)

    def restart_container(self, pod, container) -> dict:
        return self.cluster.change_pod(
            pod, lambda p: _container(p, container).restart(), self.namespace
        )

    def remove_container_logs(self, pod, container):
        self.cluster.container(pod, container, self.namespace).remove_logs()

    def delete_pod(self, name):
        self.cluster.delete_pod(name, self.namespace)

    def pod(self, name):
        with self.cluster.lock:
            pod = self.cluster.pods.get((self.namespace, name))
            return pod.to_dict() if pod else None

    # --- logs ---
    def write_log(self, pod, container, data, ts=None):
        """Append raw bytes (str is UTF-8 encoded); followers of that container see them at once."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.cluster.container(pod, container, self.namespace).write(
            bytes(data), None if ts is None else to_nanos(ts)
        )

    def log_bytes(self, pod, container, previous=False) -> bytes:
        run = self._run(pod, container, previous)
        return run.content() if run else b""

    def log_lines(self, pod, container, previous=False) -> list:
        """[(timestamp ns, line bytes)] as stored, for assertions on timestamps."""
        run = self._run(pod, container, previous)
        with self.cluster.container(pod, container, self.namespace).cond:
            return [(ts, bytes(line)) for ts, line in run.lines] if run else []

    def _run(self, pod, container, previous):
        c = self.cluster.container(pod, container, self.namespace)
        return c.previous if previous else c.current

    # --- faults ---
    def fail(self, match, status=500, times=1, message=None):
        self.faults.add(Fault("fail", match, times, status=status, message=message))

    def delay(self, match, seconds, times=1):
        self.faults.add(Fault("delay", match, times, seconds=seconds))

    def reset(self, match, times=1):
        self.faults.add(Fault("reset", match, times))

    def cut(self, match, after_bytes, times=1):
        self.faults.add(Fault("cut", match, times, after_bytes=after_bytes))

    def cut_streams(self, pod=None):
        """Reset every open follow log stream (of one pod); returns once they are no longer open."""
        self.app.abort_streams(pod=pod, kind="pods/log")

    def end_watches(self):
        """End every open watch cleanly, as a server-side timeout does; returns once they have ended."""
        watches = self.app.streams.select(kind="watch")
        self.cluster.end_watches()
        wait_closed(watches)

    def expire_history(self):
        self.cluster.expire_history()

    def clear_faults(self):
        self.faults.clear()

    # --- authentication and rbac ---
    def load_rbac(self, paths, service_account=None):
        """Enforce RBAC on the default token: every Role's rules in `paths` (a file or several) anywhere,
        or with `service_account` (a name in this namespace) what the files' bindings give that account."""
        if service_account is None:
            self.rbac_grants = Grants(cluster=load_rules(paths))
            return
        self.user, self.rbac_grants = self._identity_of(paths, service_account)

    @property
    def rbac_rules(self):
        """The default token's rules in this namespace (None: RBAC off); setting them replaces its grants."""
        return None if self.rbac_grants is None else self.rbac_grants.rules_in(self.namespace)

    @rbac_rules.setter
    def rbac_rules(self, rules):
        self.rbac_grants = None if rules is None else Grants(namespaced={self.namespace: rules})

    @property
    def rbac_cluster_rules(self):
        """The default token's rules for cluster-scoped resources."""
        return None if self.rbac_grants is None else self.rbac_grants.rules_in(None)

    def add_service_account(self, paths, service_account) -> str:
        """A new bearer token for `service_account` (in this namespace), under what the bindings of
        `paths` give it; pass it to `write_kubeconfig`."""
        token = secrets.token_hex(16)
        self._tokens[token] = self._identity_of(paths, service_account)
        return token

    def _identity_of(self, paths, service_account) -> Identity:
        user = service_account_user(self.namespace, service_account)
        return Identity(user, load_grants(paths, user))

    def identity(self, token) -> Identity | None:
        """Who a bearer token is and what it may do; None for an unknown token."""
        if token == self.token:
            return Identity(self.user, self.rbac_grants)
        return self._tokens.get(token)

    # --- other callers: tokens and their RBAC ---
    def add_token(self, token, username, groups=(), uid=None):
        """A bearer token TokenReviews answer for (a service account's, an OIDC user's...)."""
        self.tokens[token] = {
            "username": username,
            "uid": uid or secrets.token_hex(8),
            "groups": list(groups),
        }

    def apply_rbac(self, *objects):
        """Roles, ClusterRoles, RoleBindings, ClusterRoleBindings (dicts as in YAML)."""
        for obj in objects:
            self.rbac.apply(obj)

    def grant_log_reading(self, subject_kind, subject_name, namespace=None):
        """Let a User or Group `get pods/log` in `namespace` (a Role and RoleBinding), or in every
        namespace with None (a ClusterRole and ClusterRoleBinding)."""
        name = f"logs-{subject_kind.lower()}-{secrets.token_hex(4)}"
        rules = [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]
        scope = {"namespace": namespace} if namespace else {}
        role_kind = "Role" if namespace else "ClusterRole"
        self.apply_rbac(
            {"kind": role_kind, "metadata": {"name": name, **scope}, "rules": rules},
            {
                "kind": f"{role_kind}Binding",
                "metadata": {"name": name, **scope},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": role_kind,
                    "name": name,
                },
                "subjects": [{"kind": subject_kind, "name": subject_name}],
            },
        )

    # --- observation ---
    @property
    def requests(self) -> list:
        return self.journal.snapshot()

    def count(self, verb=None, resource=None) -> int:
        return self.journal.count(verb, resource)

    def reset_requests(self):
        self.journal.reset()

    @property
    def connections(self) -> int:
        """TCP connections accepted so far: shows whether clients reuse keep-alive connections."""
        return self._transport.accepted

    def open_streams(self, resource="pods/log") -> int:
        if resource in ("pods/log", "watch"):
            return len(self.app.streams.select(kind=resource))
        return len(self.app.streams.select(kind="watch", resource=resource))


def _container(pod, name):
    if name not in pod.containers:
        raise KeyError(f"no container {name} in pod {pod.meta['name']}")
    return pod.containers[name]


def _set_phase(pod, phase):
    pod.phase = phase
    labels = pod.meta["labels"]
    if phase in ("Succeeded", "Failed") and (WORKFLOW_LABEL in labels or COMPLETED_LABEL in labels):
        labels[COMPLETED_LABEL] = "true"
