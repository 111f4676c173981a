"""The identity of one task (`TaskRef`: namespace and workflow name) and of one log (`LogId`: a
container of one pod of one node of a task)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogId:
    """Which log: `container` of pod `pod`, which runs node `node` of the task."""

    node: str
    pod: str
    container: str

    @property
    def key(self) -> str:
        """How cursors and frames name this log within its task."""
        return f"{self.pod}/{self.container}"

    def fields(self) -> dict[str, str]:
        """`{"node", "pod", "container"}`: the identity as frames and JSON bodies carry it."""
        return {"node": self.node, "pod": self.pod, "container": self.container}


@dataclass(frozen=True, slots=True, order=True)
class TaskRef:
    """Which task: workflow `name` in `namespace`. The same name in two namespaces is two tasks."""

    namespace: str
    name: str

    @property
    def key(self) -> str:
        """`namespace/name`: how NOTIFY payloads, lease keys and logs name the task (neither part can
        hold a `/`)."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, key: str) -> "TaskRef":
        namespace, _, name = key.partition("/")
        return cls(namespace, name)

    def __str__(self) -> str:
        return self.key
