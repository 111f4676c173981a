"""Pruning the same old logs two ways: `python -m bench.retention [--mb 1000]` prints the table.

The bench database (`TASKLOGS_BENCH_DATABASE`) is built twice with the same rows: `--mb` MB of
`bench.loglines` text in logs of LOG_MB created 40 and 41 days ago (two day partitions) and last
updated then, plus NEW_MB of logs of today that must survive. Each build is pruned at a 30-day cutoff:

- `partition`: `retention.prune`, what `TASKLOGS_RETENTION` and `prune --older-than` run: both old
  day partitions dropped whole, then the old tasks' `tasks`/`task_logs` rows deleted;
- `DELETE`: the rows way (`prune` before migration 0007): `repository.tasks_older_than` and
  `delete_tasks` in batches of 200 tasks, every page deleted by rows.

Each is followed by `VACUUM (ANALYZE) log_pages, task_logs, tasks`: the work a DELETE leaves to
autovacuum. Time and WAL bytes (`pg_current_wal_lsn()` difference after a CHECKPOINT, and the bench
database's own share by pg_waldump when readable) are measured for the prune and the VACUUM apart; then
the new logs are read back whole and compared.
"""

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tasklogs import create_app, retention
from tasklogs.identity import LogId, TaskRef
from tasklogs.pages import LogEnd, paginate
from tasklogs.store import partitions, repository
from tasklogs.store.repository import PageRun

from .loglines import realistic_lines, take
from .servers import recreate_database
from .walmeter import WalMeter

MB = 1 << 20
LOG_MB = 2  # text per log
NEW_MB = 40  # today's logs, which must all be there after the prune
BODIES = 8  # distinct log texts, cycled (generating 1 GB of lines would cost minutes)
INDEX = "CREATE INDEX ix_log_pages_text_trgm ON log_pages USING gin (text gin_trgm_ops)"
NOW = datetime.now(UTC)
CUTOFF = NOW - timedelta(days=30)


def bodies() -> list[tuple[str, list[int]]]:
    """BODIES log texts of LOG_MB each, with their lines' timestamps."""
    made = []
    for seed in range(BODIES):
        lines = list(take(realistic_lines(seed), LOG_MB * MB))
        made.append(("".join(line for _, line in lines), [ts for ts, _ in lines]))
    return made


def load(services, total_mb: int, texts) -> dict:
    """Old logs (about `total_mb` MB over two days 40 and 41 days back) and NEW_MB of today's."""
    old_days = [(NOW - timedelta(days=days)).replace(hour=12) for days in (41, 40)]
    with services.units() as uow:
        partitions.create_partitions(uow.session, [day.date() for day in old_days])
        uow.commit()
    plan = [(f"old-{n:05d}", old_days[n % 2]) for n in range(total_mb // LOG_MB)]
    plan += [(f"new-{n:05d}", NOW) for n in range(NEW_MB // LOG_MB)]
    for number, (name, moment) in enumerate(plan):
        body, stamps = texts[number % len(texts)]
        with services.units() as uow:
            log_id = _insert_log(uow.session, name, moment)
            repository.append_pages(
                uow.session, [PageRun(log_id, paginate(LogEnd(), body, stamps))]
            )
            uow.commit()
    old = sum(1 for name, _ in plan if name.startswith("old"))
    return {"old_logs": old, "old_mb": old * LOG_MB, "new_logs": len(plan) - old}


def _insert_log(session, name: str, moment: datetime) -> int:
    params = {"task": name, "at": moment}
    session.execute(
        text(
            "INSERT INTO tasks (namespace, task_id, phase, complete, created_at, updated_at,"
            " started_at) VALUES ('argo', :task, 'Succeeded', true, :at, :at, :at)"
        ),
        params,
    )
    return session.execute(
        text(
            "INSERT INTO task_logs (namespace, task_id, node_id, pod_name, container, phase, lines,"
            " bytes, created_at, updated_at) VALUES ('argo', :task, :task, :task, 'main',"
            " 'Succeeded', 0, 0, :at, :at) RETURNING id"
        ),
        params,
    ).scalar_one()


def prune_by_rows(units, cutoff: datetime) -> int:
    """What `prune` did before partitions: expired tasks' rows deleted, 200 tasks a transaction."""
    removed = 0
    while True:
        with units() as uow:
            batch = repository.tasks_older_than(uow.session, cutoff, limit=200)
            repository.delete_tasks(uow.session, batch)
            uow.commit()
        if not batch:
            return removed
        removed += len(batch)


def measured(database_url: str, step) -> dict:
    meter = WalMeter(database_url).start()
    began = time.perf_counter()
    step()
    seconds = time.perf_counter() - began
    wal = meter.stop()
    return {"seconds": round(seconds, 2), **wal}


def run_way(way: str, total_mb: int, texts) -> dict:
    """Build the database, prune it `way`, vacuum; check today's logs."""
    url = recreate_database()
    app = create_app({"DATABASE_URL": url, "TASKLOGS_NAMESPACE": "argo"})
    services = app.extensions["tasklogs"]
    engine = services.sa_engine
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_log_pages_text_trgm"))
    began = time.perf_counter()
    loaded = load(services, total_mb, texts)
    with engine.begin() as connection:
        connection.execute(text(INDEX))
    loaded["load_and_index_s"] = round(time.perf_counter() - began, 1)
    loaded["old_partitions_mb"] = round(_size(engine, _old_partition_names()) / MB, 1)
    outcome: dict = {}
    if way == "partition":
        prune = measured(
            url, lambda: outcome.update(pruned=retention.prune(services.units, CUTOFF))
        )
        removed, dropped = outcome["pruned"].tasks, outcome["pruned"].partitions
    else:
        prune = measured(url, lambda: outcome.update(removed=prune_by_rows(services.units, CUTOFF)))
        removed, dropped = outcome["removed"], []
    result = {"way": way, "loaded": loaded, "prune": prune, "removed_tasks": removed}
    result["dropped"] = dropped
    result["vacuum"] = measured(url, lambda: _vacuum(engine))
    result["new_logs_intact"] = _new_logs_intact(services, texts)
    result["old_left"] = _count(engine, "SELECT count(*) FROM tasks WHERE task_id LIKE 'old-%'")
    services.close()
    engine.dispose()
    return result


def _vacuum(engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) log_pages, task_logs, tasks"))


def _old_partition_names() -> list[str]:
    return [partitions.of_day(NOW - timedelta(days=days)).name for days in (41, 40)]


def _size(engine, names: list[str]) -> int:
    """Bytes on disk of these tables, their TOAST and indexes."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT sum(pg_total_relation_size(CAST(n AS regclass))) FROM unnest(:n) n"),
                {"n": names},
            ).scalar()
            or 0
        )


def _count(engine, statement: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(statement)).scalar() or 0)


def _new_logs_intact(services, texts) -> bool:
    """Every one of today's logs reads back exactly."""
    known = {body for body, _ in texts}
    with services.units() as uow:
        for n in range(NEW_MB // LOG_MB):
            task = TaskRef("argo", f"new-{n:05d}")
            stored = repository.get_stored_logs(uow.session, task)
            if [s.log for s in stored] != [LogId(task.name, task.name, "main")]:
                return False
            if "".join(repository.read_log(uow.session, stored[0].log_id)) not in known:
                return False
    return True


def table(results: list[dict]) -> str:
    rows = [
        "| way | old logs removed | on disk | prune time | prune WAL | VACUUM time | VACUUM WAL |"
        " today's logs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['way']} | {r['loaded']['old_mb']} MB in {r['removed_tasks']} tasks"
            f" | {r['loaded']['old_partitions_mb']} MB"
            f" | {r['prune']['seconds']} s | {_wal(r['prune'])}"
            f" | {r['vacuum']['seconds']} s | {_wal(r['vacuum'])}"
            f" | {'intact' if r['new_logs_intact'] else 'DAMAGED'} |"
        )
    return "\n".join(rows)


def _wal(measure: dict) -> str:
    own = measure.get("database_bytes")
    server = f"{measure['server_bytes'] / MB:.1f} MB"
    return server if own is None else f"{own / MB:.1f} MB ({server} server-wide)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--mb", type=int, default=1000, help="MB of old log text (default 1000)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    texts = bodies()
    results = [run_way(way, args.mb, texts) for way in ("partition", "DELETE")]
    print(table(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2, default=str)
    for result in results:
        if not result["new_logs_intact"] or result["old_left"]:
            raise SystemExit(f"{result['way']}: today's logs damaged or old tasks left")


if __name__ == "__main__":
    os.environ.setdefault("TASKLOGS_AUTH", "none")
    main()
