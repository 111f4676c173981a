"""Debian's nginx, configured by deploy/nginx.conf, in front of gunicorn with the gevent worker: REST and
tails through it, a worker SIGKILLed behind it, 200 tails reconnecting at once, pings against
`proxy_read_timeout`, and the client as the service sees it through the proxy."""

import json
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import websocket

from testkit import scenarios
from testkit.nginx import NGINX, Nginx
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (.ci/run does)"),
]


@pytest.fixture
def behind_nginx(gunicorn, tmp_path):
    """`behind_nginx(read_timeout, **env)`: (gunicorn, nginx), TASKLOGS_TRUSTED_PROXIES the proxy."""
    started = []

    def start(read_timeout: str = "60s", **env):
        server = gunicorn(TASKLOGS_TRUSTED_PROXIES="127.0.0.1", **env)
        directory = tmp_path / f"nginx{len(started)}"
        directory.mkdir()
        proxy = Nginx(server.port, str(directory), read_timeout)
        started.append(proxy)
        return server, proxy

    yield start
    for proxy in started:
        proxy.stop()


def get_json(url: str, headers=None, source: str | None = None):
    """(status, body) of a GET, from the loopback address `source` when given."""
    if source is None:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with socket.create_connection((host, int(port)), 10, (source, 0)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(_unchunked(head, body))


def _unchunked(head: bytes, body: bytes) -> bytes:
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out = b""
    while body:
        size, _, body = body.partition(b"\r\n")
        length = int(size, 16)
        if not length:
            return out
        out, body = out + body[:length], body[length + 2 :]
    return out


def tail(url: str, source: str | None = None, **options) -> TailClient:
    if source is not None:
        host, port = url.split("/")[2].split(":")
        options["socket"] = socket.create_connection((host, int(port)), 10, (source, 0))
    return TailClient(url, **options)


def handshake_status(url: str, **options) -> int:
    try:
        tail(url, **options).close()
        return 101
    except websocket.WebSocketBadStatusException as error:
        return error.status_code


def worker_pid(server) -> int:
    return get_json(server.url("/readyz?verbose=1"))[1]["process"]["pid"]


def resume(url: str, cursor: str, timeout: float = 30) -> TailClient:
    """Reconnect with the cursor until a worker answers (nginx says 502 while none is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return TailClient(f"{url}?cursor={cursor}", suppress_origin=True)
        except (websocket.WebSocketBadStatusException, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def received(client: TailClient, frames: list, until) -> str | None:
    """Read frames into `frames` until `until(frames)`; the last cursor seen (None: cut meanwhile)."""
    try:
        while not until(frames):
            frame = client.frame()
            if frame is None:
                break
            frames.append(frame)
    except (websocket.WebSocketConnectionClosedException, OSError):
        pass
    cursors = [frame["cursor"] for frame in frames if frame.get("cursor")]
    return cursors[-1] if cursors else None


def stays_open(client: TailClient, seconds: float) -> bool:
    """Read (answering pings) for `seconds`; False if the connection ended meanwhile."""
    client.ws.settimeout(0.5)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                if client.frame() is None:
                    return False
            except websocket.WebSocketTimeoutException:
                continue
    except (websocket.WebSocketConnectionClosedException, OSError):
        return False
    finally:
        client.ws.settimeout(10)
    return True


def lines(start: int, end: int) -> str:
    return "".join(f"line {index}\n" for index in range(start, end))


def test_rest_and_a_tail_through_nginx(behind_nginx, kube, task_id):
    _, proxy = behind_nginx()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", lines(0, 3))
    status, body = get_json(proxy.url(f"/api/v1/tasks/{task_id}/logs"))
    assert status == 200 and body["logs"][0]["logs"] == lines(0, 3)

    client = TailClient(proxy.url(f"/ws/tasks/{task_id}/logs", "ws"), suppress_origin=True)
    frames = [client.frame()]
    kube.write_log(wf.pod(), "main", lines(3, 40))
    scenarios.finish(kube, wf)
    frames += client.rest()
    assert client.close_code == 1000 and frames[-1]["type"] == "complete"
    assert log_text(frames, wf.pod()) == lines(0, 40)
    status, body = get_json(proxy.url("/api/v1/tasks/Bad_Id/logs"))
    assert (status, body["error"]) == (400, "invalid_task_id"), "errors pass through as JSON"


def test_the_service_sees_the_client_nginx_saw(behind_nginx, kube, task_id):
    server, proxy = behind_nginx(TASKLOGS_MAX_TAILS_PER_CLIENT=2)
    scenarios.workflow(kube, task_id)
    forged = {"X-Forwarded-For": "198.18.0.9"}
    status, _ = get_json(proxy.url(f"/api/v1/tasks/{task_id}/logs"), forged, source="127.0.0.2")
    assert status == 200
    assert wait_for(
        lambda: (
            f"client=127.0.0.2 method=GET path=/api/v1/tasks/{task_id}/logs" in (server.output())
        )
    ), server.output()
    assert "client=198.18.0.9" not in server.output(), "what the client wrote proves nothing"
    assert "client=127.0.0.1 " not in server.output(), "the proxy is not the client"

    url = proxy.url(f"/ws/tasks/{task_id}/logs", "ws")
    same_origin = f"http://127.0.0.1:{proxy.port}"  # the page's origin, as nginx passes Host on
    assert handshake_status(url, origin=same_origin) == 101
    assert handshake_status(url, origin="http://evil.example") == 403
    held = [tail(url, "127.0.0.2", suppress_origin=True) for _ in range(2)]
    assert handshake_status(url, source="127.0.0.2", suppress_origin=True) == 429
    assert handshake_status(url, source="127.0.0.3", suppress_origin=True) == 101, (
        "tail slots go by the client behind the proxy, not by the proxy"
    )
    for client in held:
        client.close()


def test_a_worker_killed_behind_nginx_the_client_resumes_by_cursor(behind_nginx, kube, task_id):
    server, proxy = behind_nginx()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", lines(0, 50))
    url = proxy.url(f"/ws/tasks/{task_id}/logs", "ws")
    client = TailClient(url, suppress_origin=True)
    before: list = []
    cursor = received(client, before, lambda got: log_text(got, wf.pod()) == lines(0, 50))

    os.kill(worker_pid(server), signal.SIGKILL)
    received(client, before, lambda got: False)  # the proxy closes the client's connection
    kube.write_log(wf.pod(), "main", lines(50, 100))
    client = resume(url, cursor)
    after = [client.frame()]
    kube.write_log(wf.pod(), "main", lines(100, 150))
    scenarios.finish(kube, wf)
    after += client.rest()
    text = log_text(before, wf.pod())
    assert text == lines(0, 50) and client.close_code == 1000
    assert log_text(after, wf.pod(), text) == lines(0, 150), "no gap, no duplicate"


def test_200_tails_reconnect_at_once_through_nginx(behind_nginx, kube, task_id):
    server, proxy = behind_nginx(TASKLOGS_MAX_TAILS_PER_CLIENT=1000)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", lines(0, 20))
    url = proxy.url(f"/ws/tasks/{task_id}/logs", "ws")
    clients = [TailClient(url, timeout=30, suppress_origin=True) for _ in range(200)]
    cursors = [received(c, [], lambda got: bool(got)) for c in clients]
    os.kill(worker_pid(server), signal.SIGKILL)
    for client in clients:
        received(client, [], lambda got: False)
    kube.write_log(wf.pod(), "main", lines(20, 40))

    start, texts, failures = threading.Barrier(200), [""] * 200, []

    def reconnect(index):
        try:
            start.wait()
            client = resume(url, cursors[index], timeout=60)
            frames = client.rest()
            texts[index] = log_text(frames, wf.pod(), lines(0, 20))
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))

    threads = [threading.Thread(target=reconnect, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: kube.open_streams() >= 1, timeout=30)
    kube.write_log(wf.pod(), "main", lines(40, 60))
    scenarios.finish(kube, wf)
    for thread in threads:
        thread.join(90)
    assert not failures, failures[:3]
    assert texts == [lines(0, 60)] * 200


@pytest.mark.parametrize("pings, kept_open", [("0.5", True), ("60", False)], ids=["pings", "none"])
def test_pings_keep_a_quiet_tail_open_past_proxy_read_timeout(
    behind_nginx, kube, task_id, pings, kept_open
):
    _, proxy = behind_nginx("2s", TASKLOGS_WS_PING_INTERVAL=pings)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", lines(0, 1))
    client = TailClient(proxy.url(f"/ws/tasks/{task_id}/logs", "ws"), suppress_origin=True)
    frames = [client.frame()]
    open_after_quiet = stays_open(client, 6)  # three times proxy_read_timeout without a log line
    assert open_after_quiet is kept_open, re.sub(r"\s+", " ", proxy.errors())[-500:]
    if not kept_open:
        assert "upstream timed out" in proxy.errors(), "nginx cut it, at proxy_read_timeout"
    else:
        kube.write_log(wf.pod(), "main", lines(1, 2))
        frames += client.frames_until(lambda frame: frame["type"] == "append")
        assert log_text(frames, wf.pod()) == lines(0, 2)
    client.close()
