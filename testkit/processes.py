"""Server processes started by the end-to-end tests and the benchmarks: a free port to bind, and waiting
until the process answers `/healthz`."""

import socket
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(process, port: int, timeout: float, name: str, detail) -> None:
    """Poll `http://127.0.0.1:<port>/healthz` until it answers 200; raise RuntimeError when `process`
    exits first or `timeout` seconds pass, with `detail()` (where its output is) in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}{detail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer in {timeout}s{detail()}")
