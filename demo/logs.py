"""What the demo's containers print: each script yields (seconds to wait, text to write) pieces."""

import random
from collections.abc import Iterator
from datetime import UTC, datetime

Script = Iterator[tuple[float, str]]

GREEN, YELLOW, RED, BLUE, BOLD, RESET = (
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[31m",
    "\x1b[34m",
    "\x1b[1m",
    "\x1b[0m",
)


def stamp() -> str:
    """Now, as argoexec's logrus lines write it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def executor(container: str) -> Script:
    """Argo's own containers: `init` loads artifacts, `wait` waits for `main` and saves outputs."""
    yield (
        0,
        f'time="{stamp()}" level=info msg="Starting Workflow Executor" version=v3.5.5 '
        f"container={container}\n",
    )
    yield (
        0.1,
        f'time="{stamp()}" level=info msg="Using executor retry strategy" Duration=1s Factor=1.6 Steps=5\n',
    )
    if container == "init":
        yield 0.1, f'time="{stamp()}" level=info msg="Start loading input artifacts..."\n'
        yield (
            0.1,
            f'time="{stamp()}" level=info msg="Alloc=9304 TotalAlloc=15436 Sys=23421 NumGC=4"\n',
        )
    else:
        yield 0.1, f'time="{stamp()}" level=info msg="Waiting on main container"\n'


def executor_done() -> Script:
    yield 0, f'time="{stamp()}" level=info msg="Main container completed" error="<nil>"\n'
    yield 0, f'time="{stamp()}" level=info msg="No output parameters"\n'
    yield 0, f'time="{stamp()}" level=info msg="Alloc=10421 TotalAlloc=18234 Sys=23677 NumGC=5"\n'


def training(rng: random.Random) -> Script:
    """A job that never ends: one line a second, an evaluation every 50 steps."""
    yield 0, "Loading dataset s3://datasets/reviews-2026/ (1,204,113 rows)\n"
    step, loss = 0, 2.5
    while True:
        step += 1
        loss = max(0.05, loss * 0.995 + rng.uniform(-0.01, 0.01))
        yield 1, f"epoch {step // 500 + 1} step {step % 500:>3}/500 loss={loss:.4f} lr=0.0010\n"
        if step % 50 == 0:
            yield (
                0,
                f"  eval: accuracy={min(0.99, 1 - loss / 3):.3f} f1={min(0.98, 1 - loss / 2.8):.3f}\n",
            )


def build(rng: random.Random) -> Script:
    """A CI build that passes."""
    yield 0, "Cloning into '/src'...\n"
    yield (
        0.3,
        f"HEAD is now at {rng.getrandbits(28):07x} Merge pull request #{rng.randint(100, 999)}\n",
    )
    for package in ("flask", "sqlalchemy", "psycopg2-binary", "kubernetes", "gevent"):
        yield 0.2, f"Collecting {package}\n  Using cached {package}-x.y.z-py3-none-any.whl\n"
    yield 0.5, "Successfully installed 41 packages\n"
    count = rng.randint(80, 300)
    for index in range(0, count, 20):
        yield (
            0.2,
            f"tests/test_api.py::test_case_{index} PASSED{' ' * 20}[{100 * index // count:>3}%]\n",
        )
    yield 0.3, f"============ {count} passed in {rng.uniform(2, 9):.2f}s ============\n"


def deploy_fails() -> Script:
    """A deployment that dies with a traceback and exit code 1."""
    yield 0, "Rendering manifests for environment=staging\n"
    yield 0.5, "Applying 12 objects...\n"
    yield 0.5, "Waiting for rollout of deployment/api (0 of 3 updated replicas are available)\n"
    yield 2, "Traceback (most recent call last):\n"
    yield (
        0,
        '  File "/app/deploy.py", line 88, in <module>\n    wait_for_rollout("api", timeout=30)\n',
    )
    yield 0, '  File "/app/deploy.py", line 41, in wait_for_rollout\n    raise TimeoutError(msg)\n'
    yield (
        0,
        "TimeoutError: deployment/api: 0 of 3 replicas available after 30s (ImagePullBackOff)\n",
    )


def flaky_test(attempt: int) -> Script:
    """An integration test that times out on its first attempt and passes on the second."""
    yield 0, f"attempt {attempt + 1}: starting postgres service container\n"
    yield 1, "waiting for postgres:5432 ...\n"
    if attempt == 0:
        yield (
            2,
            "FAILED tests/integration/test_orders.py::test_checkout - TimeoutError: postgres not ready\n",
        )
        yield 0, "1 failed, 57 passed in 4.71s\n"
    else:
        yield 1, "postgres is ready\n"
        yield 1, "58 passed in 3.02s\n"


def export(lines: int, rng: random.Random, batch: int = 2000) -> Script:
    """A large export: `lines` rows, written `batch` lines at a time."""
    yield 0, "id,customer,amount,currency,created_at\n"
    for start in range(0, lines, batch):
        rows = (
            f"{index:08d},cust-{rng.randint(1, 99999):05d},{rng.uniform(1, 999):.2f},EUR,"
            f"2026-01-{1 + index % 28:02d}T{index % 24:02d}:00:00Z\n"
            for index in range(start, min(lines, start + batch))
        )
        yield 0.05, "".join(rows)
    yield 0, f"exported {lines} rows\n"


def downloads(rng: random.Random) -> Script:
    """Coloured levels and `\\r` progress bars, as a terminal program writes them."""
    yield 0, f"{BOLD}{BLUE}==>{RESET} {BOLD}Fetching model weights{RESET}\n"
    for name in ("encoder.bin", "decoder.bin", "tokenizer.json"):
        size = rng.randint(40, 900)
        for percent in range(0, 101, 5):
            bar = "#" * (percent // 5) + "-" * (20 - percent // 5)
            speed = rng.uniform(8, 60)
            yield (
                0.15,
                f"\r{name:<16} [{bar}] {percent:>3}% {size * percent // 100:>4}/{size} MB {speed:4.1f} MB/s",
            )
        yield 0, f"\n{GREEN}INFO{RESET}  {name} verified (sha256 ok)\n"
    yield 0.2, f"{YELLOW}WARN{RESET}  cache directory is 91% full\n"
    yield 0.2, f"{RED}ERROR{RESET} mirror eu-2 unreachable, used eu-1 {GREEN}(recovered){RESET}\n"
    yield 0, f"{BOLD}{GREEN}✔ done{RESET}\n"
