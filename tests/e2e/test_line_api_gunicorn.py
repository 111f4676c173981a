"""The line API through gunicorn with the gevent worker: a smoke of tail/grep/ndjson; readers of a
~100 MB stored log that stop reading hold no database connection, so other requests on the same worker
keep being answered; a pathological pattern runs in linear time while /healthz answers."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import create_engine, text

from testkit import scenarios
from testkit.gunicorn import Gunicorn, service_env

pytestmark = pytest.mark.e2e

NS = 1_000_000_000
BASE = 1_772_359_200 * NS  # 2026-03-01T10:00:00Z


def fetch(server, path, timeout=30):
    """(status, headers, body text) of a GET."""
    try:
        with urllib.request.urlopen(server.url(path), timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def drain(server, path) -> int:
    """Read a GET to its end without keeping it; the number of bytes read."""
    size = 0
    with urllib.request.urlopen(server.url(path), timeout=120) as response:
        assert response.status == 200
        while chunk := response.read(1 << 20):
            size += len(chunk)
    return size


@pytest.fixture
def default_pool(database_url, kubeconfig, tmp_path):
    """One gevent worker with the database pool at its default size (the tests' env sets 4)."""
    env = service_env(database_url, kubeconfig)
    env["TASKLOGS_DB_POOL_SIZE"] = None  # removed: the default (10) applies
    env["TASKLOGS_DB_POOL_TIMEOUT"] = None
    server = Gunicorn(env, 1, str(tmp_path / "gunicorn.log"))
    yield server
    server.stop()


def test_tail_grep_and_ndjson_through_gunicorn(gunicorn, kube, task_id):
    server = gunicorn()
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    for n in range(1, 41):
        kube.write_log(
            wf.pod("a"), "main", f"a{n} {'ERROR' if n % 10 == 0 else 'ok'}\n", ts=BASE + n * NS
        )
        kube.write_log(wf.pod("b"), "main", f"b{n}\n", ts=BASE + n * NS + 1)
    scenarios.finish(kube, wf)
    assert fetch(server, f"/api/v1/tasks/{task_id}/logs")[0] == 200  # stored now
    status, headers, body = fetch(server, f"/api/v1/tasks/{task_id}/logs?format=text&tail=2")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    header = "==> {} ({}) <==\n"
    assert body == (
        header.format(wf.pod("a"), wf.nodes["a"])
        + "a39 ok\na40 ERROR\n\n"
        + header.format(wf.pod("b"), wf.nodes["b"])
        + "b39\nb40\n\n"
    )
    status, headers, body = fetch(
        server, f"/api/v1/tasks/{task_id}/logs?format=ndjson&grep=ERROR&timestamps=true"
    )
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in body.splitlines()] == [
        {
            "node": wf.nodes["a"],
            "pod": wf.pod("a"),
            "container": "main",
            "line": n,
            "ts": f"2026-03-01T10:00:{n:02d}.000000000Z",
            "text": f"a{n} ERROR",
            "match": True,
        }
        for n in (10, 20, 30, 40)
    ]
    status, _, body = fetch(
        server, f"/api/v1/tasks/{task_id}/logs?format=ndjson&merge=time&from_line=39"
    )
    assert [json.loads(line)["text"] for line in body.splitlines()] == [
        "a39 ok",
        "b39",
        "a40 ERROR",
        "b40",
    ]
    status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs?tail=0")
    assert status == 400 and json.loads(body)["error"] == "invalid_request"
    assert "tail" in json.loads(body)["message"]
    status, headers, body = fetch(server, f"/api/v1/tasks/{task_id}/logs?format=text")
    assert status == 200 and "Transfer-Encoding" not in headers  # the whole of a finished task
    assert int(headers["Content-Length"]) == len(body.encode()) and body.count("==> ") == 2


def _store_big_log(server, kube, task_id, megabytes: int) -> tuple[str, bytes]:
    """A finished one-pod task whose log is `megabytes` MB (1 KB lines), stored by one GET; the
    pod's name and the log's first KB."""
    wf = scenarios.workflow(kube, task_id)
    row = b"0123456789abcdef" * 63
    for index in range(megabytes):
        block = b"".join(b"%05d-%04d " % (index, n) + row + b"\n" for n in range(1024))
        kube.write_log(wf.pod(), "main", block)
    scenarios.finish(kube, wf)
    size = drain(server, f"/api/v1/tasks/{task_id}/logs?format=text")
    assert size == megabytes * 1024 * (len(row) + 12)  # ~1 KB lines, 1024 per MB
    first = b"00000-0000 " + row + b"\n"
    return wf.pod(), first


def _stalled_reader(server, path: str, first: bytes) -> socket.socket:
    """A client that sends the request, reads the first few KB and then reads no more."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < 4096:
        chunk = sock.recv(8192)
        assert chunk, "the server closed the connection"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    if b"transfer-encoding: chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1]  # the first chunk's size line
    assert body.startswith(first), body[:80]
    return sock


def _busy_connections(engine) -> list[tuple[str, str]]:
    """The service's database sessions that are inside a transaction or running a query."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT state, left(query, 80) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
            )
        ).all()
    return [tuple(row) for row in rows]


MEGABYTES = 100


def test_stalled_readers_hold_no_connection_and_others_are_answered(
    default_pool, kube, task_id, database_url
):
    server = default_pool
    started = time.monotonic()
    _, first = _store_big_log(server, kube, task_id, MEGABYTES)
    stored_in = time.monotonic() - started
    other = task_id + "-small"
    small = scenarios.workflow(kube, other)
    kube.write_log(small.pod(), "main", "small one\nsmall two\n")
    scenarios.finish(kube, small)
    assert fetch(server, f"/api/v1/tasks/{other}/logs?format=text")[2] == "small one\nsmall two\n"
    status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs?tail=1")
    assert status == 200 and json.loads(body)["source"] == "database"

    path = f"/api/v1/tasks/{task_id}/logs?format=text"
    readers = [_stalled_reader(server, path, first) for _ in range(50)]
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        time.sleep(1)  # the readers' responses fill their sockets and stall
        timings = []
        for _ in range(10):
            begun = time.monotonic()
            status, _, body = fetch(server, f"/api/v1/tasks/{other}/logs?format=text", timeout=10)
            assert (status, body) == (200, "small one\nsmall two\n")
            status, _, body = fetch(server, f"/api/v1/tasks/{other}/logs?tail=1", timeout=10)
            assert status == 200 and json.loads(body)["logs"][0]["logs"] == "small two\n"
            status, _, body = fetch(server, "/readyz?verbose=1", timeout=10)
            ready = json.loads(body)
            assert status == 200 and (ready["ready"], ready["database"]) == (True, "ok"), ready
            timings.append(time.monotonic() - begun)
            assert _busy_connections(engine) == [], "a stalled reader holds a database connection"
        assert max(timings) < 3, [round(t, 2) for t in timings]
    finally:
        for reader in readers:
            reader.close()
        engine.dispose()
    status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs?tail=1&format=text")
    assert status == 200 and body.startswith(f"{MEGABYTES - 1:05d}-1023 ")
    print(f"\n{MEGABYTES} MB stored in {stored_in:.1f} s; rounds {[round(t, 3) for t in timings]}")


def test_pathological_pattern_while_healthz_answers(gunicorn, kube, task_id):
    server = gunicorn()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", b"a" * 1_000_000 + b"b\nshort aab\n")
    scenarios.finish(kube, wf)
    assert drain(server, f"/api/v1/tasks/{task_id}/logs?format=text") == 1_000_012

    outcomes = []

    def pathological(extra: str) -> None:
        begun = time.monotonic()
        status, _, body = fetch(
            server, f"/api/v1/tasks/{task_id}/logs?format=text&grep=%28a%2B%29%2B%24{extra}"
        )
        outcomes.append((extra, status, body, time.monotonic() - begun))

    threads = [
        threading.Thread(target=pathological, args=(extra,))
        for extra in ("", "&context=1", "&invert=true", "&ignore_case=true") * 3
    ]
    for thread in threads:
        thread.start()
    health = []
    while any(thread.is_alive() for thread in threads) or len(health) < 10:
        begun = time.monotonic()
        status = fetch(server, "/healthz", timeout=5)[0]
        health.append((status, time.monotonic() - begun))
    for thread in threads:
        thread.join()
    assert all(status == 200 for status, _ in health)
    assert max(elapsed for _, elapsed in health) < 1, health
    assert len(outcomes) == len(threads)
    for extra, status, body, elapsed in outcomes:
        assert status == 200 and elapsed < 10, (extra, status, elapsed)
        if extra == "&invert=true":
            assert body == "a" * 1_000_000 + "b\nshort aab\n"
        else:
            assert body == ""
