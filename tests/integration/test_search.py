"""Search across tasks (`service.search_lines`, `GET /api/v1/search`) on PostgreSQL, whose trigram
index finds the pages, and on SQLite, which scans them: the same answers, checked against a plain
scan of the lines in Python. Rows are inserted directly (tasks, task_logs, pages through
`repository.append_pages`)."""

import json
import random
import re
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from tasklogs import service
from tasklogs.identity import LogId
from tasklogs.linequery import format_ts
from tasklogs.pages import LogEnd, paginate
from tasklogs.search import SearchQuery
from tasklogs.store import repository
from tasklogs.store.models import utcnow
from tasklogs.store.repository import PageRun
from testkit.apps import dispose, make_app
from testkit.memstore import MemoryStore, fast_settings
from testkit.pagecuts import cut_every

T0 = 1_767_322_800 * 10**9  # 2026-01-02T03:00:00Z
SECOND = 10**9


@dataclass
class StoredLine:
    namespace: str
    task_id: str
    log: LogId
    log_id: int
    number: int
    ts: int
    text: str
    fragments: list[str]  # the line's parts in its pages (a page boundary may cut it)


@dataclass
class Store:
    """A store the search runs on: its services, and logs added to it (what a plain scan expects)."""

    services: object
    namespace: str
    lines: list[StoredLine] = field(default_factory=list)

    def add_log(
        self,
        lines: list[tuple[int, str]],
        task_id: str | None = None,
        pod: str = "pod-a",
        namespace: str | None = None,
        page_chars: int = 128 * 1024,
        exact_cuts: bool = True,
    ) -> int:
        """A task (if new) with one log of these (timestamp, line without newline) lines, as pages cut
        every `page_chars` characters (as a live capture's flushes may leave them), or with
        `exact_cuts=False` as the store cuts a text read whole (`paginate`: after a newline where one
        is in a page's second half)."""
        namespace = namespace or self.namespace
        task_id = task_id or f"wf-{uuid.uuid4().hex[:8]}"
        log = LogId(f"{task_id}-{pod}", pod, "main")
        body = "".join(line + "\n" for _, line in lines)
        stamps = [ts for ts, _ in lines]
        if exact_cuts:
            pages = cut_every(body, stamps, page_chars)
        else:
            pages = paginate(LogEnd(), body, stamps, page_chars=page_chars)
        with self.services.units() as uow:
            log_id = insert_log(uow.session, namespace, task_id, log)
            repository.append_pages(uow.session, [PageRun(log_id, pages)])
            uow.commit()
        cuts = [page.start_offset for page in pages[1:]]
        offset = 0
        for number, (ts, line) in enumerate(lines, 1):
            parts = fragments(line, offset, cuts)
            self.lines.append(StoredLine(namespace, task_id, log, log_id, number, ts, line, parts))
            offset += len(line) + 1
        return log_id

    def expected(self, query: SearchQuery) -> list[dict]:
        """What a plain scan of every stored line gives, as the route's objects: a line matches when
        one of its parts in a page holds the text (a match across a page boundary is not found)."""
        wanted = query.text.lower() if query.ignore_case else query.text
        found = [
            line
            for line in self.lines
            if line.namespace == (query.namespace or self.namespace)
            and any(
                wanted in (part.lower() if query.ignore_case else part) for part in line.fragments
            )
            and (query.since is None or line.ts >= query.since)
            and (query.until is None or line.ts < query.until)
        ]
        found.sort(key=lambda line: (line.ts, line.log_id, line.number), reverse=True)
        return [as_object(line) for line in found[: query.limit]]

    def search(self, query: SearchQuery) -> list[dict]:
        return [as_object(line) for line in service.search_lines(self.services, query)]


def fragments(line: str, offset: int, cuts: list[int]) -> list[str]:
    """The parts of a line starting at character `offset` of its log, as pages starting at `cuts`
    (the offsets of every page but the first) hold them."""
    inside = [cut for cut in cuts if offset < cut < offset + len(line)]
    bounds = [offset, *inside, offset + len(line)]
    return [line[a - offset : b - offset] for a, b in zip(bounds, bounds[1:], strict=False)]


def as_object(line) -> dict:
    return {
        "namespace": line.namespace,
        "task_id": line.task_id,
        **line.log.fields(),
        "line": line.number,
        "ts": format_ts(line.ts),
        "text": line.text,
    }


def insert_log(session, namespace: str, task_id: str, log: LogId) -> int:
    now = utcnow()
    session.execute(
        text(
            "INSERT INTO tasks (namespace, task_id, phase, complete, created_at, updated_at,"
            " started_at) VALUES (:ns, :task, 'Succeeded', :yes, :now, :now, :now)"
            " ON CONFLICT DO NOTHING"
        ),
        {"ns": namespace, "task": task_id, "yes": True, "now": now},
    )
    return session.execute(
        text(
            "INSERT INTO task_logs (namespace, task_id, node_id, pod_name, container, phase, lines,"
            " bytes, created_at, updated_at) VALUES (:ns, :task, :node, :pod, :container,"
            " 'Succeeded', 0, 0, :now, :now) RETURNING id"
        ),
        {
            "ns": namespace,
            "task": task_id,
            "node": log.node,
            "pod": log.pod,
            "container": log.container,
            "now": now,
        },
    ).scalar_one()


@pytest.fixture
def namespace():
    """A namespace of its own per test: the search reads every task of the namespace served."""
    return f"ns-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_app(database_url, namespace):
    app = make_app(database_url, TASKLOGS_NAMESPACE=namespace)
    yield app
    dispose(app)


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request, namespace, tmp_path):
    if request.param == "postgresql":
        app = request.getfixturevalue("pg_app")
        yield Store(app.extensions["tasklogs"], namespace)
        return
    memstore = MemoryStore(str(tmp_path))
    services = memstore.services(None, fast_settings(TASKLOGS_NAMESPACE=namespace))
    yield Store(services, namespace)
    services.close()
    memstore.close()


def lines_at(start: int, *texts: str, step: int = SECOND) -> list[tuple[int, str]]:
    return [(start + index * step, line) for index, line in enumerate(texts)]


# --- what the search finds ---


def test_finds_lines_across_tasks_and_logs_newest_first(store):
    first = store.add_log(lines_at(T0, "boot", "disk quota exceeded", "retry"), task_id="wf-one")
    store.add_log(
        lines_at(T0 + SECOND // 2, "QUOTA check", "quota exceeded again", "done"), pod="pod-b"
    )
    found = store.search(SearchQuery("quota exceeded"))
    assert [(row["text"], row["line"]) for row in found] == [
        ("quota exceeded again", 2),
        ("disk quota exceeded", 2),
    ]
    assert found[1] == {
        "namespace": store.namespace,
        "task_id": "wf-one",
        "node": "wf-one-pod-a",
        "pod": "pod-a",
        "container": "main",
        "line": 2,
        "ts": "2026-01-02T03:00:01.000000000Z",
        "text": "disk quota exceeded",
    }
    assert first in {line.log_id for line in store.lines}
    assert found == store.expected(SearchQuery("quota exceeded"))


def test_ignore_case_since_until_and_limit(store):
    for pod in ("p1", "p2", "p3"):
        store.add_log(
            [(T0 + i * SECOND + int(pod[1]), f"step {i} Timeout in {pod}") for i in range(40)],
            pod=pod,
        )
    assert store.search(SearchQuery("timeout")) == []
    queries = [
        SearchQuery("timeout", ignore_case=True),
        SearchQuery("TIMEOUT IN P2", ignore_case=True, limit=7),
        SearchQuery("Timeout", since=T0 + 10 * SECOND, until=T0 + 12 * SECOND + 3, limit=1000),
        SearchQuery("Timeout", limit=5),
        SearchQuery("Timeout", since=T0 + 39 * SECOND + 3),
    ]
    for query in queries:
        assert store.search(query) == store.expected(query), query
    assert len(store.search(queries[0])) == 100
    assert [row["text"] for row in store.search(queries[2])] == [
        "step 12 Timeout in p2",
        "step 12 Timeout in p1",
        "step 11 Timeout in p3",
        "step 11 Timeout in p2",
        "step 11 Timeout in p1",
        "step 10 Timeout in p3",
        "step 10 Timeout in p2",
        "step 10 Timeout in p1",
    ]


def test_lines_cut_by_page_boundaries_come_whole(store):
    long_line = "start " + "x" * 300 + " needle-in-the-middle " + "y" * 300 + " end"
    lines = lines_at(T0, "short needle-a", long_line, "needle-b at the start of a page", "tail")
    log_id = store.add_log(lines, page_chars=64)  # the long line spans about ten pages
    found = store.search(SearchQuery("needle", limit=10))
    assert [(row["line"], row["text"]) for row in found] == [
        (3, "needle-b at the start of a page"),
        (2, long_line),
        (1, "short needle-a"),
    ]
    assert found == store.expected(SearchQuery("needle", limit=10))
    assert log_id


def test_a_match_across_a_page_boundary_is_not_found(store):
    """The documented limit: pages are matched one by one, so a text cut by a page boundary is not
    found (only a line longer than half a page, or one a live capture's flush ended inside, is cut);
    any part of the line in one page still finds it whole."""
    store.add_log(lines_at(T0, "0123456789 abcdef", "xyz"), page_chars=14)
    assert store.search(SearchQuery("bcd")) == []  # pages "0123456789 abc" and "def\nxyz\n"
    for text_ in ("9 abc", "def"):
        found = store.search(SearchQuery(text_))
        assert [(row["line"], row["text"]) for row in found] == [(1, "0123456789 abcdef")]
        assert found == store.expected(SearchQuery(text_))


def test_a_log_stored_whole_keeps_its_lines_in_one_page(store):
    """Cut every 14 characters, "c def" would span two pages; the store ends the first page after the
    newline in its second half instead, so the search finds it."""
    lines = lines_at(T0, "first line", "abc def ghi")
    store.add_log(lines, page_chars=14)
    assert store.search(SearchQuery("c def")) == []  # "first line\nabc" | " def ghi\n"
    store.add_log(lines, page_chars=14, exact_cuts=False)  # "first line\n" | "abc def ghi\n"
    found = store.search(SearchQuery("c def"))
    assert [(row["line"], row["text"]) for row in found] == [(2, "abc def ghi")]
    assert found == store.expected(SearchQuery("c def"))


def test_percent_underscore_and_backslash_are_literal(store):
    store.add_log(
        lines_at(T0, "100% done", "1000 done", "a_b c", "axb c", r"C:\temp\x", "C:/temp/x")
    )
    for text_, wanted in (("0% d", "100% done"), ("a_b", "a_b c"), (r":\temp", r"C:\temp\x")):
        assert [row["text"] for row in store.search(SearchQuery(text_))] == [wanted]


def test_only_namespaces_served_are_searched(store):
    store.add_log(lines_at(T0, "secret token here"), namespace="someone-else")
    store.add_log(lines_at(T0, "public token here"))
    assert [row["text"] for row in store.search(SearchQuery("token here"))] == ["public token here"]
    assert store.search(SearchQuery("token here", namespace="someone-else")) == []
    assert len(store.search(SearchQuery("token here", namespace=store.namespace))) == 1


def test_unicode_and_case_folding(store):
    store.add_log(lines_at(T0, "Café OUVERT", "café fermé", "CAFÉ", "cafe"))
    assert [row["text"] for row in store.search(SearchQuery("café", ignore_case=True))] == [
        "CAFÉ",
        "café fermé",
        "Café OUVERT",
    ]
    assert [row["text"] for row in store.search(SearchQuery("fé f"))] == ["café fermé"]


def test_random_logs_match_a_plain_scan(store):
    """Many logs, pages of random sizes, repeated timestamps: the same as scanning every line."""
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "ERROR", "error", "Warn", "x%y", "a_b", "tick"]
    for log_index in range(12):
        start = T0 + rng.randrange(0, 100) * SECOND
        lines, ts = [], start
        for _ in range(rng.randrange(20, 200)):
            ts += rng.choice((0, 0, SECOND // 3, SECOND))
            lines.append((ts, " ".join(rng.choices(words, k=rng.randrange(1, 12)))))
        store.add_log(
            lines,
            pod=f"p{log_index}",
            page_chars=rng.choice((40, 200, 1000, 1 << 17)),
            exact_cuts=rng.random() < 0.5,
        )
    queries = [
        SearchQuery("ERROR"),
        SearchQuery("error", ignore_case=True, limit=1000),
        SearchQuery("gamma ERROR", limit=17),
        SearchQuery("a_b", since=T0 + 50 * SECOND, until=T0 + 150 * SECOND),
        SearchQuery("x%y warn", ignore_case=True, limit=3),
        SearchQuery("not there at all"),
    ]
    for query in queries:
        assert store.search(query) == store.expected(query), query


# --- PostgreSQL: the index ---


def test_the_trigram_index_finds_the_pages(pg_app, namespace):
    """The candidate pages come through the GIN index, with LIKE and with ILIKE, however small the
    table (the planner would rather scan a small one)."""
    store = Store(pg_app.extensions["tasklogs"], namespace)
    rng = random.Random(3)
    for log_index in range(40):
        lines = [
            (T0 + i * SECOND, f"{rng.choice(('INFO', 'WARN'))} req={rng.getrandbits(48):012x} ok")
            for i in range(300)
        ]
        store.add_log(lines, pod=f"p{log_index}", page_chars=2048)
    with store.services.units() as uow:
        session = uow.session
        session.execute(text("ANALYZE log_pages, task_logs"))
        installed = session.execute(
            text("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
        ).scalar()
        definition = session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_log_pages_text_trgm'")
        ).scalar()
        trigram_indexes = set(  # the partitioned index and each partition's own (migration 0007)
            session.execute(
                text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'")
            ).scalars()
        )
        unsealed_indexes = set(  # the running tasks' pages, by time (0006), on each partition
            session.execute(
                text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%WHERE (NOT sealed)%'")
            ).scalars()
        )
        plans = {
            ignore_case: repository.explain_search(
                session, repository.TextSearch("rare needle", ignore_case, [namespace])
            )
            for ignore_case in (False, True)
        }
    assert installed == "pg_trgm"
    assert "gin (text gin_trgm_ops) WHERE sealed" in definition
    for ignore_case, operator in ((False, "~~"), (True, "~~*")):
        plan = plans[ignore_case]
        scanned = set(re.findall(r"Bitmap Index Scan on (\S+)", plan))
        assert scanned & trigram_indexes and scanned <= trigram_indexes | unsealed_indexes, plan
        assert "Seq Scan on log_pages" not in plan, plan
        assert f"text {operator} '%rare needle%'" in plan, plan
    assert store.search(SearchQuery("req=")) == store.expected(SearchQuery("req="))


# --- the route ---


def test_route_answers_ndjson(pg_app, namespace):
    store = Store(pg_app.extensions["tasklogs"], namespace)
    store.add_log(lines_at(T0, "GET /api/v1/items 500", "GET /healthz 200", "GET /api/v1/x 500"))
    response = pg_app.test_client().get("/api/v1/search?q=%20500&limit=1")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    rows = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert rows == store.expected(SearchQuery(" 500", limit=1))
    assert rows[0]["text"] == "GET /api/v1/x 500"
    response = pg_app.test_client().get(
        "/api/v1/search",
        query_string={
            "q": "get /",
            "ignore_case": "true",
            "namespace": namespace,
            "since": "2026-01-02T03:00:01Z",
            "until": "2026-01-02T05:00:02+02:00",
        },
    )
    assert [json.loads(line)["line"] for line in response.get_data(as_text=True).splitlines()] == [
        2
    ]
    empty = pg_app.test_client().get("/api/v1/search?q=nothing-like-it")
    assert (empty.status_code, empty.get_data()) == (200, b"")


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "q must be"),
        ("q=ab", "q must be"),
        ("q=" + "x" * 1001, "q must be"),
        ("q=abc%0Adef", "line break"),
        ("q=ab%00cd", "NUL character"),  # Schemathesis found it: PostgreSQL refuses NUL in text
        ("q=abc&limit=0", "limit"),
        ("q=abc&limit=1001", "limit"),
        ("q=abc&limit=ten", "limit"),
        ("q=abc&ignore_case=maybe", "ignore_case"),
        ("q=abc&since=yesterday", "since"),
        ("q=abc&until=2026-01-02", "until"),
        ("q=abc&since=2026-01-02T03:00:01Z&until=2026-01-02T03:00:00Z", "earlier"),
        ("q=abc&namespace=Not_A_Namespace", "namespace"),
        ("q=abc&grep=x", "unknown query parameter(s) grep"),
    ],
)
def test_bad_requests_are_400(pg_app, query, says):
    response = pg_app.test_client().get(f"/api/v1/search?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request" and says in body["message"]


def test_database_down_is_503(database_url, db_proxy, kube_adapter):
    app = make_app(db_proxy.url(database_url.rsplit("/", 1)[1]), kube_adapter)
    try:
        db_proxy.stop()
        response = app.test_client().get("/api/v1/search?q=anything")
        assert response.status_code == 503
        assert response.get_json()["error"] == "database_unavailable"
        assert "postgresql" not in response.get_data(as_text=True)
    finally:
        dispose(app)


def test_the_final_save_seals_pages_for_the_index_and_running_ones_are_found_too(pg_app, namespace):
    """The trigram index holds sealed pages only (the live capture's small pages stay out of it, or
    every append would cost five times the WAL): the final save seals a log's pages, and a search
    still finds text of a running task through the partial index of unsealed pages."""
    from tasklogs.identity import TaskRef

    services = pg_app.extensions["tasklogs"]
    finished, running = TaskRef(namespace, "done"), TaskRef(namespace, "live")
    with services.units() as uow:
        ids = {
            task: uow.record_phases(
                task, "Running", [(LogId("n", f"{task.name}-pod", "main"), "Running")]
            )
            for task in (finished, running)
        }
        for task, by_log in ids.items():
            (log_id,) = by_log.values()
            text_ = "".join(f"line {i} of {task.name} needle-{namespace}\n" for i in range(50))
            pages = paginate(LogEnd(), text_, [T0 + i for i in range(50)], repository.Position())
            uow.append_runs([PageRun(log_id, pages)], [task])
        uow.commit()
    with services.units() as uow:
        uow.final_save(finished, "Succeeded", {})
        uow.commit()

    def sealed(task):
        with services.units() as uow:
            return set(
                uow.session.execute(
                    text(
                        "SELECT sealed FROM log_pages p JOIN task_logs l ON l.id = p.log_id"
                        " WHERE l.namespace = :ns AND l.task_id = :t"
                    ),
                    {"ns": task.namespace, "t": task.name},
                ).scalars()
            )

    assert sealed(finished) == {True} and sealed(running) == {False}
    found = service.search_lines(services, SearchQuery(f"needle-{namespace}", limit=1000))
    assert {line.task_id for line in found} == {"done", "live"} and len(found) == 100
    with services.units() as uow:
        plan = repository.explain_search(
            uow.session, repository.TextSearch("needle", False, [namespace])
        )
        indexes = {
            kind: set(
                uow.session.execute(
                    text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE :like"),
                    {"like": like},
                ).scalars()
            )
            for kind, like in (("trigram", "%gin_trgm_ops%"), ("unsealed", "%WHERE (NOT sealed)%"))
        }
    scanned = set(re.findall(r"Index Scan on (\S+)", plan))
    assert scanned & indexes["trigram"] and scanned & indexes["unsealed"], plan
