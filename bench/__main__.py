"""`python -m bench [--quick] [--only ...]`: run the measurements, print the table, write the JSON."""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

from . import measure, report
from .catchup import BEFORE, catchup_run
from .cluster import BenchCluster
from .collector import collector_run, followed_tail_run
from .largelog import largelog_run
from .pages import pages_run
from .search import search_run
from .servers import ROOT, recreate_database
from .shards import shards_run
from .viewer import viewer_run

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MB = 1 << 20


@dataclass(frozen=True)
class Plan:
    """What to run (viewer counts are per service)."""

    tail_viewers: dict = field(
        default_factory=lambda: {"tasklogs": [1, 100, 1000], "baseline": [1, 100, 1000]}
    )
    line_rate: float = 20  # timed lines per second, round-robin over the task's 2 pods
    tail_seconds: float = 20
    request_window: float = 10  # upstream requests and CPU are counted over this window
    wal: tuple = ((1 * MB, 20), (10 * MB, 40))  # (log bytes, seconds to write them)
    resource_viewers: dict = field(default_factory=lambda: {"tasklogs": 1000, "baseline": 1000})
    resource_rate: float = 10
    resource_window: float = 15
    collector_workflows: int = 200  # running workflows captured by one collector process
    collector_pods: int = 3  # pods (steps) per workflow
    collector_rate: float = 50  # timed lines per second to every pod
    collector_seconds: float = 30
    collector_line_chars: int = 100
    rest_log_bytes: int = 100 * MB  # the log one REST GET serves (tasklogs only)
    rest_formats: tuple = ("json", "text")
    followed_viewers: tuple = (
        1,
        100,
    )  # viewers of a task the collector captures (their worker follows it)
    pages_download_bytes: int = 100 * MB  # the stored log downloaded and grepped (pages run)
    pages_line_bytes: tuple = (10 * MB, 500 * MB)  # the two stored logs of the line-access queries
    pages_random_bytes: int = 20 * MB  # the incompressible log whose disk use is measured
    search_bytes: int = 1000 * MB  # log text stored (and written as files) for the search run
    catchup_bytes: tuple = (100 * MB, 200 * MB)  # the running logs a tail catches up on
    catchup_before: str | None = (
        BEFORE  # the commit measured beside this tree (None: this tree alone)
    )
    viewer_lines: int = 1_000_000  # the stored log the viewer opens in headless Chromium
    viewer_rate: float = 1000  # lines per second the followed log gets
    viewer_seconds: float = 10


QUICK = Plan(
    tail_viewers={"tasklogs": [1, 20], "baseline": [1, 20]},
    tail_seconds=4,
    request_window=2,
    wal=((256 * 1024, 4),),
    resource_viewers={"tasklogs": 100, "baseline": 20},
    resource_window=3,
    collector_workflows=20,
    collector_seconds=10,
    rest_log_bytes=10 * MB,
    followed_viewers=(1, 20),
    pages_download_bytes=10 * MB,
    pages_line_bytes=(5 * MB, 50 * MB),
    pages_random_bytes=5 * MB,
    search_bytes=40 * MB,
    catchup_bytes=(20 * MB,),
    viewer_lines=100_000,
    viewer_seconds=3,
)
MEASUREMENTS = (
    "latency",
    "wal",
    "resources",
    "collector",
    "rest",
    "followed",
    "pages",
    "search",
    "shards",
    "catchup",
    "viewer",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--quick", action="store_true", help="small sizes: a smoke run of about a minute")
    add(
        "--only",
        default=",".join(MEASUREMENTS),
        help="comma-separated subset of: latency (with upstream requests), wal, resources, collector, rest, "
        "followed (a tail of a task the collector captures), pages (stored logs: downloads, line "
        "access, grep, disk), search (across tasks: the trigram index beside a sequential scan and grep), "
        "shards (1, 2 and 3 collectors under the collector load, and a kill/rejoin run), "
        "catchup (a tail of a large running log: memory, /healthz), "
        "viewer (the built-in viewer in headless Chromium: a 1,000,000-line log, following 1,000 lines/s)",
    )
    add("--viewers", help="viewer counts of the tasklogs tail runs, e.g. 1,100,1000")
    add("--baseline-viewers", help="viewer counts of the baseline tail runs, e.g. 1,100")
    add(
        "--collector-workflows", type=int, help="running workflows (of 3 pods) in the collector run"
    )
    add("--collector-rate", type=float, help="lines per second to every pod in the collector run")
    add("--collector-seconds", type=float, help="seconds of writing in the collector run")
    add("--rest-mb", type=float, help="size of the log served in the rest runs, in MB")
    add(
        "--catchup-mb",
        help="sizes of the running logs of the catchup runs, in MiB, comma-separated (default 100,200)",
    )
    add(
        "--catchup-before",
        help=f"commit measured beside this tree in the catchup runs (default {BEFORE[:8]}, the last one "
        "before the bounded catch-up; 'none': this tree alone)",
    )
    add("--client-processes", type=int, default=1, help="client processes sharing the viewers")
    add(
        "--connect-concurrency",
        type=int,
        default=50,
        help="clients handshaking at once while connecting (1: one after the other)",
    )
    add(
        "--tasklogs-root",
        default=ROOT,
        help="source tree to run tasklogs from (e.g. a clone at another commit)",
    )
    add(
        "--profile",
        action="store_true",
        help="sample the worker (resources runs) and the collector with py-spy (bench/results/profile-*.txt)",
    )
    add(
        "--gc-probe",
        action="store_true",
        help="log the worker's garbage-collection pauses (bench/gcprobe) and report them per run",
    )
    add(
        "--out",
        help="JSON results file (default bench/results/latest.json, quick.json with --quick)",
    )
    add("--keep-logs", action="store_true", help="keep the services' logs and print where they are")
    return parser.parse_args()


def plan_from(args) -> Plan:
    plan = QUICK if args.quick else Plan()
    counts = lambda text: [int(part) for part in text.split(",") if part]  # noqa: E731
    viewers = dict(plan.tail_viewers)
    if args.viewers:
        viewers["tasklogs"] = counts(args.viewers)
    if args.baseline_viewers:
        viewers["baseline"] = counts(args.baseline_viewers)
    sizes = {
        "collector_workflows": args.collector_workflows,
        "collector_rate": args.collector_rate,
        "collector_seconds": args.collector_seconds,
        "rest_log_bytes": args.rest_mb and int(args.rest_mb * MB),
    }
    if args.catchup_mb:
        sizes["catchup_bytes"] = tuple(int(float(mb) * MB) for mb in args.catchup_mb.split(","))
    plan = replace(
        plan, tail_viewers=viewers, **{name: value for name, value in sizes.items() if value}
    )
    if args.catchup_before:
        before = None if args.catchup_before == "none" else args.catchup_before
        plan = replace(plan, catchup_before=before)
    return plan


def run_all(bench: measure.Bench, plan: Plan, only: set[str]) -> list[dict]:
    """Every run, one after the other (nothing else may load the machine or PostgreSQL meanwhile)."""
    steps = []
    if "latency" in only:
        steps += [
            (
                measure.tail_run,
                service,
                count,
                plan.line_rate,
                plan.tail_seconds,
                plan.request_window,
            )
            for service in report.SERVICES
            for count in plan.tail_viewers[service]
        ]
    if "wal" in only:
        steps += [
            (measure.wal_run, service, size, seconds)
            for size, seconds in plan.wal
            for service in report.SERVICES
        ]
    if "resources" in only:
        steps += [
            (
                measure.resources_run,
                service,
                plan.resource_viewers[service],
                plan.resource_rate,
                plan.resource_window,
            )
            for service in report.SERVICES
        ]
    if "collector" in only:
        steps.append(
            (
                collector_run,
                plan.collector_workflows,
                plan.collector_pods,
                plan.collector_rate,
                plan.collector_seconds,
                plan.collector_line_chars,
            )
        )
    if "shards" in only:
        load = (
            plan.collector_workflows,
            plan.collector_pods,
            plan.collector_rate,
            plan.collector_seconds,
            plan.collector_line_chars,
        )
        steps += [(shards_run, count, *load) for count in (1, 2, 3)]
        steps.append((shards_run, 3, *load, True))
    if "rest" in only:
        steps += [(largelog_run, plan.rest_log_bytes, output) for output in plan.rest_formats]
    if "followed" in only:
        steps += [
            (followed_tail_run, count, plan.line_rate, plan.tail_seconds, plan.request_window)
            for count in plan.followed_viewers
        ]
    if "pages" in only:
        steps.append(
            (
                pages_run,
                plan.pages_download_bytes,
                plan.pages_line_bytes,
                plan.pages_random_bytes,
            )
        )
    if "search" in only:
        steps.append((search_run, plan.search_bytes))
    if "catchup" in only:
        steps += [(catchup_run, size, plan.catchup_before) for size in plan.catchup_bytes]
    if "viewer" in only:
        steps.append((viewer_run, plan.viewer_lines, plan.viewer_rate, plan.viewer_seconds))
    runs = []
    for step, *arguments in steps:
        began = time.monotonic()
        print(f"  {step.__name__}{tuple(arguments)} ...", end="", flush=True, file=sys.stderr)
        runs.append(step(bench, *arguments))
        print(f" {time.monotonic() - began:.0f} s", file=sys.stderr)
    return runs


def raise_open_files_limit() -> None:
    """1000 clients and 1000 server sockets: the children inherit the raised soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def source_version(root: str) -> dict:
    """The tasklogs tree measured: its commit, and whether tasklogs/ had uncommitted changes."""

    def git(*arguments):
        return subprocess.run(
            ["git", *arguments], cwd=root, capture_output=True, text=True
        ).stdout.strip()

    return {
        "root": root,
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "tasklogs")),
    }


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every service and client process started so far is stopped."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def write_results(path: str, context: dict, plan: Plan, runs: list[dict]) -> None:
    """The runs and both printed tables (a table none of whose measurements ran is empty)."""
    table = (
        [
            dict(zip(("measurement", "tasklogs", "baseline", "goal"), row, strict=False))
            for row in report.main_rows(runs)
        ]
        if report.has_main(runs)
        else []
    )
    tasklogs_only = [
        dict(zip(("measurement", "tasklogs", "goal"), row, strict=False))
        for row in report.tasklogs_only_rows(runs)
    ]
    with open(path, "w") as file:
        json.dump(
            {
                "context": context,
                "plan": asdict(plan),
                "runs": runs,
                "table": table,
                "table_tasklogs_only": tasklogs_only,
                "table_pages": [
                    dict(zip(report.PAGES_HEADER, row, strict=True))
                    for row in report.pages_rows(runs)
                ],
                "table_search": [
                    dict(zip(report.SEARCH_HEADER, row, strict=True))
                    for row in report.search_rows(runs)
                ],
            },
            file,
            indent=1,
        )


def main() -> None:
    args = parse_args()
    stop_on_sigterm()
    raise_open_files_limit()
    plan, only = plan_from(args), set(args.only.split(","))
    if only - set(MEASUREMENTS):
        sys.exit(
            f"--only: unknown measurement(s) {', '.join(sorted(only - set(MEASUREMENTS)))}; "
            f"choose from {', '.join(MEASUREMENTS)}"
        )
    directory = tempfile.mkdtemp(prefix="tasklogs-bench-")
    began = time.monotonic()
    cluster = BenchCluster(directory)
    bench = measure.Bench(
        cluster,
        recreate_database(),
        directory,
        client_processes=args.client_processes,
        connect_concurrency=args.connect_concurrency,
        tasklogs_root=os.path.abspath(args.tasklogs_root),
        profile_dir=RESULTS if args.profile else None,
        gc_probe=args.gc_probe,
    )
    os.makedirs(RESULTS, exist_ok=True)
    try:
        runs = run_all(bench, plan, only)
    finally:
        cluster.close()
    context = {
        "mode": "quick" if args.quick else "default",
        "elapsed_s": round(time.monotonic() - began, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "source": source_version(bench.tasklogs_root),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    out = args.out or os.path.join(RESULTS, "quick.json" if args.quick else "latest.json")
    write_results(out, context, plan, runs)  # before the report: a report that fails loses nothing
    print(report.render(runs, context))
    print(f"\nresults: {out}")
    if args.keep_logs:
        print(f"service logs: {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
