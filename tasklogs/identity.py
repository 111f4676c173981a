"""The identity of one log: a container of one pod of one node of a task."""

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
