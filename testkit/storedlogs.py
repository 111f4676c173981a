"""A finished task with a big log, stored straight into the database as pages (no cluster, no capture):
how the viewer's tests and bench get a 1,000,000-line log in seconds."""

from collections.abc import Callable

from tasklogs.bootstrap import services
from tasklogs.identity import LogId, TaskRef
from tasklogs.logstream import Position
from testkit.apps import dispose, make_app

BATCH = 50_000  # lines per append (pages of 128 Ki characters are cut from it)
START_NS = 1_767_322_800 * 10**9  # 2026-01-02T03:00:00Z


def numbered_line(n: int) -> str:
    return f"line {n:07d} the quick brown fox jumps over the lazy dog\n"


def store_finished_log(
    database_url: str,
    task_id: str,
    lines: int,
    pod: str | None = None,
    line_text: Callable[[int], str] = numbered_line,
    namespace: str = "argo",
    step_ns: int = 1_000_000,
) -> LogId:
    """Store a Succeeded one-pod task whose `main` log is `line_text(1..lines)`, stamped `step_ns`
    apart, and run its final save; returns the log's id."""
    task = TaskRef(namespace, task_id)
    log = LogId(f"{task_id}-1", pod or f"{task_id}-echo-1", "main")
    app = make_app(database_url)
    try:
        with app.app_context():
            units = services().units
            with units() as uow:
                row = uow.record_phases(task, "Succeeded", [(log, "Succeeded")])[log]
                uow.commit()
            offset = 0
            for first in range(1, lines + 1, BATCH):
                numbers = range(first, min(lines, first + BATCH - 1) + 1)
                text = "".join(line_text(n) for n in numbers)
                stamps = [START_NS + n * step_ns for n in numbers]
                with units() as uow:
                    offset = uow.append_text(row, offset, text, Position(), stamps)
                    uow.commit()
            with units() as uow:
                uow.final_save(task, "Succeeded", {row: "Succeeded"})
                uow.commit()
    finally:
        dispose(app)
    return log
