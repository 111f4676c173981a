"""The cluster's state: pods, workflows, one resourceVersion counter and the watch event history."""

import base64
import collections
import copy
import threading
import time
import uuid

from .gotime import format_seconds
from .logs import Container
from .status import expired, go_json, not_found

WORKFLOW_API = ("argoproj.io/v1alpha1", "Workflow")
WORKFLOW_GROUP = "argoproj.io"
COMPLETED_LABEL = "workflows.argoproj.io/completed"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
ARGO_EXEC_IMAGE = "quay.io/argoproj/argoexec:latest"
IMAGE = "docker.io/library/busybox:latest"


class Event:
    """One watch event: the object at resourceVersion rv, and the object just before (for MODIFIED)."""

    __slots__ = ("rv", "resource", "type", "obj", "prev", "_lines")

    def __init__(self, rv, resource, type_, obj, prev=None):
        self.rv, self.resource, self.type, self.obj = rv, resource, type_, obj
        self.prev = prev
        if prev is not None:
            prev["metadata"]["resourceVersion"] = str(rv)
        self._lines = {}

    def line(self, type_, use_prev=False) -> bytes:
        """The event as one line of a watch stream, for a watcher that sees it as type_."""
        key = (type_, use_prev)
        if key not in self._lines:
            obj = self.prev if use_prev else self.obj
            self._lines[key] = watch_line(type_, obj, self.resource == "workflows")
        return self._lines[key]


def watch_line(type_, obj, sort_keys=False) -> bytes:
    """Custom resources are unstructured maps, which Go writes with sorted keys."""
    return b'{"type":"' + type_.encode() + b'","object":' + go_json(obj, sort_keys) + b"}\n"


class Pod:
    """A pod: metadata, phase and its containers (init containers first)."""

    def __init__(
        self, name, namespace, labels, annotations, containers, init_containers, phase, state
    ):
        self.meta = {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": "",
            "creationTimestamp": format_seconds(time.time_ns()),
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        }
        self.phase = phase
        self.last = None
        argo = WORKFLOW_LABEL in self.meta["labels"]
        self.containers = {}
        for cname in init_containers:
            self.containers[cname] = Container(
                cname, init=True, state=state, image=_image(argo, cname)
            )
        for cname in containers:
            self.containers[cname] = Container(cname, state=state, image=_image(argo, cname))

    def names(self, init):
        return [c.name for c in self.containers.values() if c.init == init]

    def to_dict(self) -> dict:
        inits = [c for c in self.containers.values() if c.init]
        mains = [c for c in self.containers.values() if not c.init]
        spec = {
            "containers": [_container_spec(c) for c in mains],
            "restartPolicy": "Never",
            "nodeName": "fake-node",
            "serviceAccountName": "default",
        }
        status = {
            "phase": self.phase,
            "hostIP": "10.0.0.1",
            "podIP": "10.1.0.2",
            "startTime": self.meta["creationTimestamp"],
            "containerStatuses": [c.status() for c in mains],
        }
        if inits:
            spec["initContainers"] = [_container_spec(c) for c in inits]
            status["initContainerStatuses"] = [c.status() for c in inits]
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": copy.deepcopy(self.meta),
            "spec": spec,
            "status": status,
        }


def _image(argo, container_name):
    """Argo's own containers (init, wait) run argoexec."""
    return ARGO_EXEC_IMAGE if argo and container_name in ("init", "wait") else IMAGE


def _container_spec(container):
    return {
        "name": container.name,
        "image": container.image,
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


class Cluster:
    """Objects of every namespace (`namespace` is the default one of the methods that take a name).
    Every change bumps the one resourceVersion and records one event, as etcd does cluster-wide."""

    def __init__(self, namespace, history_size=10000):
        self.namespace = namespace
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified on every event and on end_watches
        self.rv = 1
        self.pods = {}
        self.workflows = {}
        self.configmaps = {}  # (namespace, name) -> the object, as the apiserver serves it
        self.secrets = {}
        self.events = collections.deque(maxlen=history_size)
        self.floor = 0  # events after this resourceVersion are all still in the history
        self.watch_epoch = 0  # bumped by end_watches()

    # --- events ---
    def _emit(self, resource, type_, obj, prev=None):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if len(self.events) == self.events.maxlen:
            self.floor = self.events[0].rv
        self.events.append(Event(self.rv, resource, type_, copy.deepcopy(obj), copy.deepcopy(prev)))
        self.changed.notify_all()

    def events_after(self, rv):
        """Events with resourceVersion > rv; 410 Expired when some of them were forgotten."""
        if rv < self.floor:
            raise expired(f"too old resource version: {rv} ({self.floor})")
        if not self.events:
            return []
        start = max(0, rv + 1 - self.events[0].rv)
        return [self.events[i] for i in range(start, len(self.events))]

    def expire_history(self):
        with self.lock:
            self.events.clear()
            self.floor = self.rv

    def end_watches(self):
        with self.lock:
            self.watch_epoch += 1
            self.changed.notify_all()

    # --- pods ---
    def add_pod(self, name, namespace=None, **kwargs) -> dict:
        namespace = namespace or self.namespace
        with self.lock:
            if (namespace, name) in self.pods:
                raise ValueError(f"pod {name} already exists in {namespace}")
            pod = self.pods[namespace, name] = Pod(name, namespace, **kwargs)
            return self._touch_pod(pod, "ADDED")

    def _touch_pod(self, pod, type_="MODIFIED"):
        obj = pod.to_dict()
        self._emit("pods", type_, obj, pod.last if type_ == "MODIFIED" else None)
        pod.meta["resourceVersion"] = obj["metadata"]["resourceVersion"]
        pod.last = obj
        return copy.deepcopy(obj)

    def served_pod(self, namespace, name) -> Pod:
        """The pod a request names, or a 404."""
        with self.lock:
            pod = self.pods.get((namespace, name))
        if pod is None:
            raise not_found("pods", name)
        return pod

    def change_pod(self, name, change, namespace=None):
        """Apply change(pod) and record a MODIFIED event."""
        with self.lock:
            pod = self._existing_pod(name, namespace)
            change(pod)
            return self._touch_pod(pod)

    def _existing_pod(self, name, namespace=None):
        pod = self.pods.get((namespace or self.namespace, name))
        if pod is None:
            raise KeyError(f"no pod {name} in {namespace or self.namespace}")
        return pod

    def container(self, pod_name, container_name, namespace=None) -> Container:
        with self.lock:
            container = self._existing_pod(pod_name, namespace).containers.get(container_name)
        if container is None:
            raise KeyError(f"no container {container_name} in pod {pod_name}")
        return container

    def delete_pod(self, name, namespace=None):
        with self.lock:
            pod = self._existing_pod(name, namespace)
            del self.pods[pod.meta["namespace"], name]
            self._emit("pods", "DELETED", pod.to_dict())
        for container in pod.containers.values():
            container.end()

    # --- workflows ---
    def add_workflow(self, body) -> dict:
        with self.lock:
            wf = copy.deepcopy(body)
            wf.setdefault("apiVersion", WORKFLOW_API[0])
            wf.setdefault("kind", WORKFLOW_API[1])
            meta = wf.setdefault("metadata", {})
            namespace = meta.get("namespace") or self.namespace
            if (namespace, meta.get("name")) in self.workflows:
                raise ValueError(f"workflow {meta.get('name')} already exists in {namespace}")
            meta.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                generation=1,
                creationTimestamp=format_seconds(time.time_ns()),
            )
            self.workflows[namespace, meta["name"]] = wf
            self._emit("workflows", "ADDED", wf)
            return copy.deepcopy(wf)

    def update_workflow(self, name, fn, namespace=None) -> dict:
        key = (namespace or self.namespace, name)
        with self.lock:
            if key not in self.workflows:
                raise KeyError(f"no workflow {name} in {key[0]}")
            wf = self.workflows[key]
            prev = copy.deepcopy(wf)
            fn(wf)
            self._emit("workflows", "MODIFIED", wf, prev)
            return copy.deepcopy(wf)

    def delete_workflow(self, name, namespace=None):
        key = (namespace or self.namespace, name)
        with self.lock:
            if key not in self.workflows:
                raise KeyError(f"no workflow {name} in {key[0]}")
            self._emit("workflows", "DELETED", self.workflows.pop(key))

    def workflow(self, name, namespace=None):
        with self.lock:
            wf = self.workflows.get((namespace or self.namespace, name))
            return copy.deepcopy(wf) if wf is not None else None

    # --- configmaps and secrets (no watch events: nothing here watches them) ---
    def add_configmap(self, name, data, annotations=None, namespace=None) -> dict:
        return self._put_core("configmaps", "ConfigMap", name, namespace, annotations, data=data)

    def add_secret(self, name, data, namespace=None) -> dict:
        """A Secret of `data` (text or bytes values), stored base64-encoded as the apiserver does."""
        encoded = {
            key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
            for key, value in data.items()
        }
        return self._put_core(
            "secrets", "Secret", name, namespace, None, data=encoded, type="Opaque"
        )

    def _put_core(self, resource, kind, name, namespace, annotations, **fields) -> dict:
        namespace = namespace or self.namespace
        with self.lock:
            self.rv += 1
            metadata = {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "resourceVersion": str(self.rv),
                "creationTimestamp": format_seconds(time.time_ns()),
            }
            if annotations:
                metadata["annotations"] = dict(annotations)
            obj = {"kind": kind, "apiVersion": "v1", "metadata": metadata, **fields}
            getattr(self, resource)[namespace, name] = obj
            return copy.deepcopy(obj)

    # --- reads served over HTTP ---
    def get(self, resource, namespace, name) -> dict:
        with self.lock:
            if resource in ("configmaps", "secrets") and (namespace, name) in getattr(
                self, resource
            ):
                return copy.deepcopy(getattr(self, resource)[namespace, name])
            if resource == "pods" and (namespace, name) in self.pods:
                return self.pods[namespace, name].to_dict()
            if resource == "workflows" and (namespace, name) in self.workflows:
                return copy.deepcopy(self.workflows[namespace, name])
        raise not_found(resource, name, WORKFLOW_GROUP if resource == "workflows" else "")

    def list(self, resource, namespace, matches):
        """(objects sorted by namespace and name, resourceVersion) of those matches(obj) accepts;
        namespace None: every namespace (a cluster-scoped list)."""
        with self.lock:
            table = self.pods if resource == "pods" else self.workflows
            objects = [
                obj.to_dict() if resource == "pods" else copy.deepcopy(obj)
                for (ns, _), obj in sorted(table.items())
                if namespace is None or ns == namespace
            ]
            return [o for o in objects if matches(o)], self.rv
