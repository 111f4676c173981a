"""Names the tests use: `ref(name)` is the TaskRef of workflow `name` in the default namespace."""

from tasklogs.identity import TaskRef

DEFAULT_NAMESPACE = "argo"


def ref(name: str, namespace: str = DEFAULT_NAMESPACE) -> TaskRef:
    return TaskRef(namespace, name)
