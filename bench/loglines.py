"""Log lines as real jobs print them, deterministic with a seed, each with the time it was printed.

`realistic_lines(seed)` yields `(timestamp ns, line)` forever: a job's output on a simulated clock that
advances about `BYTES_PER_SECOND` log bytes per second, so a log's size sets its time span (a 10 MB log
covers about 17 minutes, a 500 MB one about 14 hours) and a minute of it holds about 600 KB whatever its
size. The mix: logger lines (ISO time, level, logger name), JSON records (structured logging), progress
lines, HTTP access lines, SQL statements, warnings, and now and then a multi-line Python traceback. Each
kind is a few templates whose numbers and ids vary over small pools, as real output repeats itself.
One traceback in about 20,000 lines (CUDA's) says `RARE_WORD`, which no other line contains.

`random_lines(seed)` yields incompressible lines of random base64 on the same clock.
"""

import base64
import random
import time
from collections.abc import Iterator

BYTES_PER_SECOND = 10_000  # log bytes per second of simulated time
START_NS = 1_767_322_800 * 10**9  # 2026-01-02T03:00:00Z
RARE_WORD = "illegal"  # only in the rare CUDA traceback: what the grep runs look for
RARE_CHANCE = 1 / 60  # that a traceback is the rare one: about one in 20,000 lines
NS = 10**9

LOGGERS = (
    "trainer.loop",
    "trainer.data",
    "worker.fetch",
    "worker.tasks",
    "app.storage",
    "urllib3.connectionpool",
    "botocore.credentials",
    "sqlalchemy.engine",
)
TABLES = ("orders", "customers", "events", "line_items", "shipments")
PATHS = ("/api/v1/items", "/api/v1/orders", "/healthz", "/metrics", "/api/v1/customers")
AGENTS = ("python-requests/2.31.0", "kube-probe/1.29", "Go-http-client/1.1", "curl/8.5.0")
BUCKETS = ("ml-artifacts", "raw-events", "checkpoints")
TRACEBACKS = (
    (
        "requests.exceptions.ConnectionError: HTTPConnectionPool(host='minio.storage.svc', port=9000): "
        "Max retries exceeded with url: /{bucket}/part-{shard:05d}.parquet",
        [
            ("/app/worker/tasks.py", 142, "run", "result = self.handler(payload)"),
            ("/app/worker/fetch.py", 88, "download", "response = session.get(url, timeout=30)"),
            (
                "/usr/local/lib/python3.11/site-packages/requests/sessions.py",
                602,
                "get",
                'return self.request("GET", url, **kwargs)',
            ),
        ],
    ),
    (
        "KeyError: 'customer_id'",
        [
            ("/app/worker/tasks.py", 142, "run", "result = self.handler(payload)"),
            (
                "/app/pipeline/transform.py",
                57,
                "normalize",
                "row['customer'] = ids[row['customer_id']]",
            ),
        ],
    ),
    (
        "ValueError: could not convert string to float: 'N/A' (row {rows})",
        [
            ("/app/pipeline/load.py", 211, "parse_batch", "values = [float(v) for v in fields]"),
            ("/app/pipeline/load.py", 211, "<listcomp>", "values = [float(v) for v in fields]"),
        ],
    ),
)
RARE_TRACEBACK = (
    "RuntimeError: CUDA error: an " + RARE_WORD + " memory access was encountered",
    [
        ("/app/train.py", 318, "train_step", "loss.backward()"),
        (
            "/usr/local/lib/python3.11/site-packages/torch/_tensor.py",
            522,
            "backward",
            "torch.autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)",
        ),
    ],
)


class Clock:
    """Simulated time: each line moves it on by its length at BYTES_PER_SECOND, with some jitter."""

    def __init__(self, rng: random.Random, start_ns: int):
        self.rng, self.ns = rng, start_ns
        self._second, self._text = -1, ""

    def tick(self, length: int) -> int:
        self.ns += int(length * NS / BYTES_PER_SECOND * self.rng.uniform(0.2, 1.8))
        return self.ns

    def iso(self) -> str:
        """`2026-01-02T03:04:05.123Z` (the seconds part formatted once per second)."""
        second = self.ns // NS
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._text}.{self.ns % NS // 1_000_000:03d}Z"

    def clf(self) -> str:
        """The access log's `[02/Jan/2026:03:04:05 +0000]`."""
        return time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime(self.ns // NS))


class Job:
    """The state a job's output repeats: an epoch and step that advance, a few hosts and ids."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.epoch, self.step, self.steps = 1, 0, 2000
        self.customers = [rng.randrange(10_000, 99_999) for _ in range(200)]
        self.clients = [f"10.42.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(12)]
        self.batches = [f"b-{rng.getrandbits(24):06x}" for _ in range(50)]

    def logger_line(self, clock: Clock) -> str:
        r = self.rng
        level = r.choices(("INFO", "DEBUG", "WARN"), (70, 25, 5))[0]
        logger = r.choice(LOGGERS)
        message = r.choice(
            (
                f"loaded shard {r.randrange(128)}/128 ({r.randrange(1, 9) * 512} records) "
                f"in {r.uniform(0.05, 3):.3f}s",
                f"checkpoint saved to s3://{r.choice(BUCKETS)}/run-{self.epoch:03d}/step-{self.step}.pt",
                f"queue depth {r.randrange(400)}, {r.randrange(1, 16)} workers busy",
                f"Found credentials in environment variables (refresh in {r.randrange(3600)}s)",
                f"Retrying (Retry(total={r.randrange(5)}, connect=None, read=None, redirect=None)) "
                "after connection broken by 'ReadTimeoutError'",
            )
        )
        return f"{clock.iso()} {level:<5} {logger}: {message}"

    def json_line(self, clock: Clock) -> str:
        r = self.rng
        return (
            f'{{"ts": "{clock.iso()}", "level": "{r.choice(("info", "info", "debug", "warning"))}", '
            f'"logger": "{r.choice(LOGGERS)}", "msg": "{r.choice(("fetched batch", "wrote batch"))}", '
            f'"batch_id": "{r.choice(self.batches)}", "rows": {r.randrange(1, 5000)}, '
            f'"duration_ms": {r.uniform(0.5, 900):.1f}, "attempt": {r.choices((1, 2, 3), (90, 8, 2))[0]}}}'
        )

    def progress_line(self, clock: Clock) -> str:
        self.step += 1
        if self.step > self.steps:
            self.epoch, self.step = self.epoch + 1, 1
        done = self.step * 100 // self.steps
        bar = ("=" * (done // 10) + ">").ljust(11)
        r = self.rng
        return (
            f"epoch {self.epoch}/100 [{bar}] {done}% step {self.step}/{self.steps} "
            f"loss={r.uniform(0.05, 2.5):.4f} acc={r.uniform(0.5, 0.99):.4f} lr=3.0e-04 "
            f"{r.uniform(5, 15):.1f}it/s"
        )

    def access_line(self, clock: Clock) -> str:
        r = self.rng
        path = r.choice(PATHS)
        if path.startswith("/api"):
            path += f"/{r.choice(self.customers)}"
        status = r.choices((200, 201, 304, 404, 500), (80, 5, 8, 5, 2))[0]
        return (
            f'{r.choice(self.clients)} - - {clock.clf()} "{r.choice(("GET", "GET", "POST"))} {path} '
            f'HTTP/1.1" {status} {r.randrange(40, 20000)} "-" "{r.choice(AGENTS)}" '
            f"{r.uniform(0.001, 0.5):.3f}"
        )

    def sql_line(self, clock: Clock) -> str:
        r = self.rng
        table = r.choice(TABLES)
        statement = r.choice(
            (
                f"SELECT {table}.id, {table}.created_at, {table}.status FROM {table} "
                f"WHERE {table}.customer_id = {r.choice(self.customers)} ORDER BY {table}.created_at "
                f"DESC LIMIT {r.choice((10, 50, 100))}",
                f"INSERT INTO {table} (customer_id, status, payload) VALUES ({r.choice(self.customers)}, "
                f"'pending', '{{}}') RETURNING {table}.id",
                f"UPDATE {table} SET status='done', updated_at=now() WHERE {table}.id = "
                f"{r.randrange(1, 10**7)}",
            )
        )
        return f"{clock.iso()} DEBUG sqlalchemy.engine: {statement} [{r.uniform(0.1, 80):.2f} ms]"

    def traceback_lines(self, clock: Clock, rare: bool = False) -> list[str]:
        r = self.rng
        last, frames = RARE_TRACEBACK if rare else r.choice(TRACEBACKS)
        lines = [
            f"{clock.iso()} ERROR worker.tasks: task {r.choice(self.batches)} failed, "
            f"retrying in {r.randrange(1, 60)}s",
            "Traceback (most recent call last):",
        ]
        for path, number, function, code in frames:
            lines += [f'  File "{path}", line {number}, in {function}', f"    {code}"]
        lines.append(
            last.format(bucket=r.choice(BUCKETS), shard=r.randrange(4096), rows=r.randrange(10**6))
        )
        return lines


KINDS = ("logger", "json", "progress", "access", "sql", "traceback")
WEIGHTS = (30, 20, 25, 15, 9.7, 0.3)


def realistic_lines(seed: int = 0, start_ns: int = START_NS) -> Iterator[tuple[int, str]]:
    """(timestamp ns, line with its newline) forever; lines of one traceback share its timestamp."""
    rng = random.Random(seed)
    clock, job = Clock(rng, start_ns), Job(rng)
    single = {
        "logger": job.logger_line,
        "json": job.json_line,
        "progress": job.progress_line,
        "access": job.access_line,
        "sql": job.sql_line,
    }
    while True:
        for kind in rng.choices(KINDS, WEIGHTS, k=1000):
            if kind == "traceback":
                lines = job.traceback_lines(clock, rare=rng.random() < RARE_CHANCE)
            else:
                lines = [single[kind](clock)]
            at = clock.tick(sum(map(len, lines)) + len(lines))
            for line in lines:
                yield at, line + "\n"


def random_lines(
    seed: int = 0, start_ns: int = START_NS, chars: int = 100
) -> Iterator[tuple[int, str]]:
    """(timestamp ns, `chars` characters of random base64 and a newline) forever."""
    rng = random.Random(seed)
    clock = Clock(rng, start_ns)
    raw = chars * 3 // 4
    while True:
        line = base64.b64encode(rng.randbytes(raw)).decode()[:chars] + "\n"
        yield clock.tick(len(line)), line


def take(lines: Iterator[tuple[int, str]], size: int) -> Iterator[tuple[int, str]]:
    """The first lines adding up to at least `size` characters, as given."""
    total = 0
    for at, line in lines:
        yield at, line
        total += len(line)
        if total >= size:
            return
