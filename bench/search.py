"""Search across tasks (`--only search`): the trigram-indexed search beside a sequential scan of the same
pages in PostgreSQL and GNU `grep -rF` over the same text as files.

About 1 GB of `bench.loglines` output (many tasks of two pods each, their clocks staggered over a day)
is stored as pages straight through the repository (`repository.append_pages`, no cluster involved)
and written as one file per log. A few lines carry a request id that appears nowhere else (the rare
search). The GIN index is dropped before the load and built after it, timed (what migration 0006 costs
on a database that already holds logs), and its size read. Then each search runs:

- `indexed`: `service.search_lines` in this process (the route's work without HTTP);
- `http`: `GET /api/v1/search` from one gunicorn gevent worker;
- `seq scan`: `service.search_lines` over connections with `enable_bitmapscan` and `enable_indexscan`
  off (the same statements, PostgreSQL reads every page);
- `grep -rF` (`-i` for ignore_case) over the files, output counted.

Each figure is the median of REPEAT runs after one checked run; the indexed answer must equal the
sequential scan's, and for the rare search also grep's line count.
"""

import functools
import os
import random
import shutil
import statistics
import subprocess
import time
import urllib.parse

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from tasklogs import create_app, service
from tasklogs.bootstrap import Services
from tasklogs.identity import LogId
from tasklogs.pages import LogEnd, paginate
from tasklogs.search import SearchQuery
from tasklogs.store import repository
from tasklogs.store.models import utcnow
from tasklogs.store.repository import PageRun
from tasklogs.store.unit_of_work import UnitOfWork
from testkit.databases import psycopg2_url

from . import procstat
from .largelog import service_health
from .loglines import START_NS, realistic_lines, take
from .measure import Bench, disk_bytes_sql
from .pages import HttpReader, failure
from .servers import recreate_database

NAMESPACE = "argo"
LOG_BYTES = 2 * 1024 * 1024  # about this much text per log
PODS = 2  # logs per task
DAY_NS = 86_400 * 10**9  # the tasks' start times spread over a day
RARE_ID = "req=5f1c9e07-3b2d-4d8e-9a41-c0ffee5e4a2c"
RARE_LINES = 3  # lines carrying RARE_ID, in as many logs
REPEAT = 5  # timed runs per search and way (after a checked one)
SEQ_REPEAT = 3  # timed runs of the sequential scan (seconds each)
LIMIT = 100
SEARCHES = {
    "rare": SearchQuery(RARE_ID, limit=LIMIT),
    "rare, ignore_case": SearchQuery(RARE_ID.upper(), ignore_case=True, limit=LIMIT),
    "common": SearchQuery("connection broken", limit=LIMIT),
    "common, ignore_case": SearchQuery("READTIMEOUTERROR", ignore_case=True, limit=LIMIT),
    "medium (about 500 lines)": SearchQuery("illegal memory", limit=LIMIT),
}
GOAL_MS = 500  # the indexed rare search
INDEX_SQL = "CREATE INDEX ix_log_pages_text_trgm ON log_pages USING gin (text gin_trgm_ops)"


def bench_services(database_url: str) -> Services:
    """The app's services on the bench database (migrated to the head revision)."""
    app = create_app({"DATABASE_URL": database_url, "TASKLOGS_NAMESPACE": NAMESPACE})
    return app.extensions["tasklogs"]


def scanning_services(services: Services, database_url: str) -> Services:
    """The same services over connections on which PostgreSQL uses no index scan."""
    engine = create_engine(
        psycopg2_url(database_url),
        connect_args={"options": "-c enable_bitmapscan=off -c enable_indexscan=off"},
    )
    units = functools.partial(UnitOfWork, sessionmaker(engine, expire_on_commit=False))
    return Services(services.settings, units, engine)


# --- the data ---


def load(services: Services, directory: str, total: int, seed: int = 11) -> dict:
    """Tasks of PODS logs each, about `total` bytes in all, as pages and as files; RARE_ID in a few
    lines. Returns what was written."""
    rng = random.Random(seed)
    count = max(RARE_LINES, total // LOG_BYTES)
    rare_logs = set(rng.sample(range(count), RARE_LINES))
    written = {"logs": count, "bytes": 0, "lines": 0, "pages": 0}
    for index in range(count):
        task_id, pod = f"job-{index // PODS:05d}", f"job-{index // PODS:05d}-{index % PODS}"
        start = START_NS + rng.randrange(DAY_NS)
        lines = list(take(realistic_lines(seed * 100_000 + index, start), LOG_BYTES))
        if index in rare_logs:
            at = rng.randrange(len(lines))
            lines[at] = (lines[at][0], f"ERROR payment.client: charge failed {RARE_ID} code=502\n")
        body = "".join(line for _, line in lines)
        with open(os.path.join(directory, f"{pod}.log"), "w") as file:
            file.write(body)
        pages = paginate(LogEnd(), body, [ts for ts, _ in lines])
        with services.units() as uow:
            log_id = _insert_log(uow.session, task_id, LogId(pod, pod, "main"))
            repository.append_pages(uow.session, [PageRun(log_id, pages)])
            uow.commit()
        written["bytes"] += len(body.encode())
        written["lines"] += len(lines)
        written["pages"] += len(pages)
    return written


def _insert_log(session, task_id: str, log: LogId) -> int:
    now = utcnow()
    params = {"ns": NAMESPACE, "task": task_id, "now": now}
    session.execute(
        text(
            "INSERT INTO tasks (namespace, task_id, phase, complete, created_at, updated_at,"
            " started_at) VALUES (:ns, :task, 'Succeeded', true, :now, :now, :now)"
            " ON CONFLICT DO NOTHING"
        ),
        params,
    )
    return session.execute(
        text(
            "INSERT INTO task_logs (namespace, task_id, node_id, pod_name, container, phase, lines,"
            " bytes, created_at, updated_at) VALUES (:ns, :task, :node, :pod, 'main', 'Succeeded',"
            " 0, 0, :now, :now) RETURNING id"
        ),
        {**params, "node": log.node, "pod": log.pod},
    ).scalar_one()


def build_index(bench: Bench) -> dict:
    """Build the trigram index on the loaded pages (as migration 0006 does), timed; its size."""
    began = time.perf_counter()
    bench.sql(INDEX_SQL, autocommit=True)
    seconds = time.perf_counter() - began
    bench.sql("VACUUM ANALYZE log_pages", autocommit=True)
    bench.sql("ANALYZE task_logs", autocommit=True)
    return {
        "build_s": round(seconds, 1),
        "index_bytes": bench.sql(disk_bytes_sql("ix_log_pages_text_trgm")),
        "table_bytes": bench.sql(disk_bytes_sql("log_pages")),
        "maintenance_work_mem": bench.sql("SHOW maintenance_work_mem"),
    }


# --- the searches ---


def timed(run, times: int) -> dict:
    """One checked run (its answer kept), then `times` timed ones: the median milliseconds."""
    answer = run()
    seconds = []
    for _ in range(times):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return {"answer": answer, "median_ms": round(statistics.median(seconds) * 1000, 1)}


def by_service(services: Services, query: SearchQuery):
    return lambda: [
        (line.task_id, line.log.pod, line.number, line.text)
        for line in service.search_lines(services, query)
    ]


def by_http(reader: HttpReader, query: SearchQuery):
    parameters = {"q": query.text, "limit": query.limit}
    if query.ignore_case:
        parameters["ignore_case"] = "true"
    path = "/api/v1/search?" + urllib.parse.urlencode(parameters)

    def run():
        answer = reader.get(path, keep=True)
        if answer["status"] != 200:
            raise RuntimeError(failure(answer))
        return answer["body"].count(b"\n")

    return run


def by_grep(directory: str, query: SearchQuery):
    command = ["grep", "-rF", *(["-i"] if query.ignore_case else []), "--", query.text, directory]

    def run():
        done = subprocess.run(command, capture_output=True)
        return done.stdout.count(b"\n")

    return run


def plan_of(services: Services, query: SearchQuery) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the first index statement of the search."""
    search = repository.TextSearch(query.text, query.ignore_case, [NAMESPACE])
    with services.units() as uow:
        return repository.explain_search(uow.session, search, analyze=True)


def search_one(services, scanning, reader, directory: str, query: SearchQuery) -> dict:
    indexed = timed(by_service(services, query), REPEAT)
    scanned = timed(by_service(scanning, query), SEQ_REPEAT)
    http = timed(by_http(reader, query), REPEAT)
    grep = timed(by_grep(directory, query), SEQ_REPEAT)
    lines = len(indexed["answer"])
    return {
        "text": query.text,
        "ignore_case": query.ignore_case,
        "limit": query.limit,
        "lines": lines,
        "indexed_ms": indexed["median_ms"],
        "http_ms": http["median_ms"],
        "seq_scan_ms": scanned["median_ms"],
        "grep_ms": grep["median_ms"],
        "grep_lines": grep["answer"],
        "same_as_seq_scan": indexed["answer"] == scanned["answer"],
        "http_lines": http["answer"],
        "plan": plan_of(services, query),
    }


def search_run(bench: Bench, total: int) -> dict:
    """Load, index, then every search of SEARCHES four ways."""
    recreate_database()
    directory = os.path.join(bench.directory, "search-logs")
    os.makedirs(directory, exist_ok=True)
    services = bench_services(bench.database_url)
    bench.sql("DROP INDEX IF EXISTS ix_log_pages_text_trgm", autocommit=True)
    began = time.monotonic()
    written = load(services, directory, total)
    written["load_s"] = round(time.monotonic() - began, 1)
    index = build_index(bench)
    subprocess.run(["grep", "-rcF", "--", "warm-the-page-cache", directory], capture_output=True)
    scanning = scanning_services(services, bench.database_url)
    with bench.service("tasklogs") as served:
        reader = HttpReader(served.port)
        cpu = procstat.CpuWindow(
            {
                "worker": lambda: [served.worker_pid],
                "clients": lambda: [os.getpid()],
                "postgres": bench.postgres_pids,
            }
        ).start()
        found = {
            name: search_one(services, scanning, reader, directory, query)
            for name, query in SEARCHES.items()
        }
        cpu_use = cpu.stop()
        health = service_health(served)
    scanning.sa_engine.dispose()
    services.sa_engine.dispose()
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "kind": "search",
        "service": "tasklogs",
        "written": written,
        "index": index,
        "searches": found,
        "cpu": cpu_use,
        "health": health,
    }
