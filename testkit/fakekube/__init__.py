"""A fake Kubernetes API server for tests: the real `kubernetes` client talks HTTP/1.1 to it on loopback.

    @pytest.fixture
    def kube():
        fake = FakeKube(namespace="argo")        # listening already, on a free port
        yield fake
        fake.close()                             # resets open streams, joins the server's threads

    api_client = kubernetes.config.new_client_from_config(config_file=kube.write_kubeconfig(tmp_path / "k"))

Modules: fake (the FakeKube facade), cluster (pods, workflows, resourceVersions, watch history),
logs (containers and their CRI-like logs), app/objects/podlog (the endpoints), server (HTTP, resets,
cuts), faults, rbac, selectors, status (Status bodies), gotime (RFC3339 the Go way), argo (naming).
"""

from .argo import argo_pod_name, argo_workflow, compress_nodes, decompress_nodes, fnv32a, node_id
from .fake import FakeKube
from .gotime import format_nano

__all__ = [
    "FakeKube",
    "argo_pod_name",
    "argo_workflow",
    "compress_nodes",
    "decompress_nodes",
    "fnv32a",
    "node_id",
    "format_nano",
]
