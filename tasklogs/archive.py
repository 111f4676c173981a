"""Logs Argo archived (`archiveLogs`): where one is, and its text, for a log whose pod is gone.

Argo's executor saves each main container's log as the node's output artifact `<container>-logs`
(`workflow/executor/executor.go`, `saveContainerLogs`); the node's status records it with its key
(`status.nodes[id].outputs.artifacts[]`, `s3: {key}`), and the bucket, endpoint and credentials come
from the artifact repository the workflow used. That repository is found the way the controller found
it (`workflow/artifactrepositories/artifactrepositories.go`): the one it recorded in
`status.artifactRepositoryRef.artifactRepository`; else the ConfigMap that ref or
`spec.artifactRepositoryRef` names (`configMap`, default `artifact-repositories`; `key`, default the
ConfigMap's `workflows.argoproj.io/default-artifact-repository` annotation), in the workflow's
namespace; else the namespace's `artifact-repositories` ConfigMap; else the controller's default,
which this service knows only through `TASKLOGS_ARTIFACT_REPOSITORY`. Credentials are read from the
Secrets the repository names, in the workflow's namespace (where Argo's executor mounts them).

Only S3-compatible repositories are read; the others are named as not yet supported.
"""

import logging
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime

import yaml

from . import argo
from .artifacts import S3Location, S3Reader
from .cluster import Cluster
from .errors import ArtifactUnreadable, ClusterError
from .identity import LogId
from .store.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

DEFAULT_CONFIGMAP = "artifact-repositories"
DEFAULT_KEY_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"
# Artifact and repository kinds Argo knows besides S3 (ArtifactLocation, ArtifactRepository).
OTHER_KINDS = ("gcs", "azure", "oss", "hdfs", "artifactory", "http", "git", "raw", "plugin")
_GZIP_MAGIC = b"\x1f\x8b"
_INFLATE_PIECE = 1 << 20


@dataclass(frozen=True)
class ControllerRepository:
    """The controller's default artifact repository: a key of a ConfigMap (TASKLOGS_ARTIFACT_REPOSITORY
    `namespace/configmap/key`, e.g. `argo/workflow-controller-configmap/artifactRepository`)."""

    namespace: str
    configmap: str
    key: str


@dataclass(frozen=True)
class ArchivedLog:
    text: str
    finished: datetime | None  # when the node finished: the archived text has no line timestamps
    url: str  # s3://bucket/key


@dataclass
class ArchiveReads:
    """One refresh's reads of archived logs: which logs it stored, and why others could not be."""

    kube: Cluster
    reader: S3Reader
    controller: ControllerRepository | None = None
    max_bytes: int = 256 << 20
    max_nodes_bytes: int = argo.DEFAULT_MAX_NODES_BYTES
    stored: set[LogId] = field(default_factory=set)
    notes: dict[LogId, str] = field(default_factory=dict)

    def store(self, units: UnitsOfWork, log_id: int, workflow: dict, log_: LogId) -> None:
        """Read the log's archived artifact, if its node has one, and store it as the log's text."""
        try:
            found = read_archived_log(
                self.kube,
                self.reader,
                workflow,
                log_,
                controller=self.controller,
                max_bytes=self.max_bytes,
                max_nodes_bytes=self.max_nodes_bytes,
            )
        except ArtifactUnreadable as error:
            log.warning("%s", error.message)
            self.notes[log_] = error.message
            return
        if found is None:
            return
        ts = int(found.finished.timestamp() * 1e9) if found.finished else time.time_ns()
        with units() as uow:
            if uow.store_archived(log_id, found.text, ts):
                self.stored.add(log_)
            uow.commit()


def read_archived_log(
    kube: Cluster,
    reader: S3Reader,
    workflow: dict,
    log_id: LogId,
    *,
    controller: ControllerRepository | None = None,
    max_bytes: int = 256 << 20,
    max_nodes_bytes: int = argo.DEFAULT_MAX_NODES_BYTES,
) -> ArchivedLog | None:
    """The log's archived text, or None when its node records no `<container>-logs` artifact;
    ArtifactUnreadable (naming the log and the cause) when it cannot be read."""
    try:
        found = argo.log_artifact(workflow, log_id.node, log_id.container, max_nodes_bytes)
    except argo.NodesUnavailable:
        return None
    if found is None:
        return None
    what = f"the archived log of {log_id.key}"
    try:
        location = _location(kube, workflow, found.artifact, controller)
        data = reader.read(location, max_bytes)
    except ArtifactUnreadable as error:
        raise ArtifactUnreadable(f"{what}: {error.message}") from None
    except ClusterError as error:
        raise ArtifactUnreadable(f"{what}: {error.message}") from None
    return ArchivedLog(_text(data, max_bytes, location.url, what), found.finished, location.url)


def _location(
    kube: Cluster, workflow: dict, artifact: dict, controller: ControllerRepository | None
) -> S3Location:
    s3 = artifact.get("s3")
    if not isinstance(s3, dict):
        raise _unsupported(artifact, "artifact")
    key = s3.get("key")
    if not isinstance(key, str) or not key:
        raise ArtifactUnreadable("its artifact records no s3.key")
    bucket: object = s3
    if not (s3.get("endpoint") and s3.get("bucket")):  # no full location of its own (HasLocation)
        repository, named = resolve_repository(kube, workflow, controller)
        bucket = repository.get("s3")
        if not isinstance(bucket, dict):
            raise _unsupported(repository, f"artifact repository {named}")
    assert isinstance(bucket, dict)
    namespace = (workflow.get("metadata") or {}).get("namespace") or kube.namespace
    return _s3_location(kube.in_namespace(namespace), bucket, key)


def _unsupported(holder: dict, what: str) -> ArtifactUnreadable:
    kinds = [kind for kind in OTHER_KINDS if holder.get(kind)]
    named = kinds[0].upper() if kinds else "no known kind"
    return ArtifactUnreadable(
        f"the {what} is {named}; only S3-compatible artifact repositories are read (GCS, Azure, OSS,"
        " HDFS, Artifactory, HTTP and the others are not yet supported)"
    )


def resolve_repository(
    kube: Cluster, workflow: dict, controller: ControllerRepository | None
) -> tuple[dict, str]:
    """The artifact repository the workflow used, and how to name it in a message."""
    namespace = (workflow.get("metadata") or {}).get("namespace") or kube.namespace
    resolved, asked = argo.artifact_repository_refs(workflow)
    if resolved is not None:
        recorded = resolved.get("artifactRepository")
        if isinstance(recorded, dict):
            return recorded, "recorded in status.artifactRepositoryRef"
        if resolved.get("default"):
            return _controller_default(kube, controller)
        where = kube.in_namespace(resolved.get("namespace") or namespace)
        return _from_configmap(where, resolved, required=True)
    if asked is not None:
        return _from_configmap(kube.in_namespace(namespace), asked, required=True)
    found = _from_configmap(kube.in_namespace(namespace), {}, required=False)
    return found if found is not None else _controller_default(kube, controller)


def _controller_default(kube: Cluster, controller: ControllerRepository | None) -> tuple[dict, str]:
    if controller is None:
        raise ArtifactUnreadable(
            "the workflow used the controller's default artifact repository, which this service"
            " does not know: set TASKLOGS_ARTIFACT_REPOSITORY to namespace/configmap/key (e.g."
            " argo/workflow-controller-configmap/artifactRepository)"
        )
    reference = {"configMap": controller.configmap, "key": controller.key}
    return _from_configmap(kube.in_namespace(controller.namespace), reference, required=True)


def _from_configmap(kube: Cluster, reference: dict, *, required: bool):
    name = reference.get("configMap") or DEFAULT_CONFIGMAP
    configmap = kube.get_configmap(name)
    if configmap is None:
        if not required:
            return None
        raise ArtifactUnreadable(f"ConfigMap {kube.namespace}/{name} does not exist")
    key = reference.get("key") or configmap["annotations"].get(DEFAULT_KEY_ANNOTATION, "")
    named = f"{kube.namespace}/{name}#{key}"
    if key not in configmap["data"]:
        if not required:
            return None
        raise ArtifactUnreadable(f"ConfigMap {kube.namespace}/{name} has no key {key!r}")
    try:
        repository = yaml.safe_load(configmap["data"][key])
    except yaml.YAMLError as error:
        raise ArtifactUnreadable(f"artifact repository {named} is not YAML: {error}") from None
    if not isinstance(repository, dict):
        raise ArtifactUnreadable(f"artifact repository {named} is not a mapping")
    return repository, named


def _s3_location(kube: Cluster, bucket: dict, key: str) -> S3Location:
    if not bucket.get("bucket"):
        raise ArtifactUnreadable("the S3 artifact repository names no bucket")
    access = _secret_value(kube, bucket.get("accessKeySecret"), "accessKeySecret")
    secret = _secret_value(kube, bucket.get("secretKeySecret"), "secretKeySecret")
    token = _secret_value(kube, bucket.get("sessionTokenSecret"), "sessionTokenSecret")
    sdk = bool(bucket.get("useSDKCreds"))
    return S3Location(
        bucket=str(bucket["bucket"]),
        key=key,
        endpoint=str(bucket.get("endpoint") or ""),
        region=str(bucket.get("region") or ""),
        insecure=bool(bucket.get("insecure")),
        addressing_style=str(bucket.get("addressingStyle") or ""),
        access_key=access,
        secret_key=secret,
        session_token=token,
        anonymous=not sdk and access is None and secret is None,
    )


def _secret_value(kube: Cluster, selector: object, field: str) -> str | None:
    if selector is None:
        return None
    if not (isinstance(selector, dict) and selector.get("name") and selector.get("key")):
        raise ArtifactUnreadable(f"the repository's {field} names no Secret name and key")
    name, key = str(selector["name"]), str(selector["key"])
    data = kube.get_secret(name)
    if data is None:
        raise ArtifactUnreadable(f"Secret {kube.namespace}/{name} ({field}) does not exist")
    if key not in data:
        raise ArtifactUnreadable(f"Secret {kube.namespace}/{name} ({field}) has no key {key!r}")
    return data[key].decode("utf-8", "replace").strip()


def _text(data: bytes, max_bytes: int, url: str, what: str) -> str:
    """The artifact's text: gunzipped when it is gzip (to at most `max_bytes`), UTF-8 with U+FFFD for
    invalid bytes and for NUL (which PostgreSQL text cannot hold), as captured logs are."""
    if data.startswith(_GZIP_MAGIC):
        data = _gunzipped(data, max_bytes, url, what)
    text = data.decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _gunzipped(data: bytes, max_bytes: int, url: str, what: str) -> bytes:
    inflater, out, rest = zlib.decompressobj(16 + zlib.MAX_WBITS), bytearray(), data
    try:
        while rest and not inflater.eof and len(out) <= max_bytes:
            out += inflater.decompress(rest, _INFLATE_PIECE)
            rest = inflater.unconsumed_tail
        if len(out) <= max_bytes:
            out += inflater.flush()
    except zlib.error as error:
        raise ArtifactUnreadable(f"{what}: {url} is not valid gzip ({error})") from None
    if len(out) > max_bytes:
        raise ArtifactUnreadable(
            f"{what}: {url} inflates to more than {max_bytes / 2**20:g} MB (TASKLOGS_MAX_ARTIFACT_MB)"
        )
    if not inflater.eof:
        raise ArtifactUnreadable(f"{what}: {url} is cut short (the gzip stream does not end)")
    return bytes(out)
