"""Turning the runs into the side-by-side table (tasklogs | baseline | goal) and the per-run details."""

SERVICES = ("tasklogs", "baseline")
NOT_RUN = "not run"


def _runs(runs: list[dict], kind: str, service: str) -> list[dict]:
    """The runs of one kind (tail, wal, resources) of one service."""
    return [run for run in runs if run["kind"] == kind and run["service"] == service]


def _one(runs, kind, service, **match):
    """The first such run whose fields equal `match`, or None."""
    return next(
        (
            run
            for run in _runs(runs, kind, service)
            if all(run.get(k) == v for k, v in match.items())
        ),
        None,
    )


def _size(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{size / 1024:.0f} KB"


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f}"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ": met" if met else ": MISSED"


# --- rows: (measurement, tasklogs cell, baseline cell, goal for tasklogs) ---

LATENCY_GOALS_MS = {1: 50, 1000: 250}  # tasklogs' p99 goal by number of viewers


def _latency_cell(run: dict | None) -> str:
    latency = run["latency_ms"] if run else {}
    if not latency.get("count"):
        return NOT_RUN
    return f"{latency['p50']:.0f} / {latency['p99']:.0f} / {latency['max']:.0f}"


def latency_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for count in sorted({run["viewers"] for run in runs if run["kind"] == "tail"}):
        tasklogs, baseline = (_one(runs, "tail", service, viewers=count) for service in SERVICES)
        rows.append(
            (
                f"line latency p50 / p99 / max (ms), {count} viewer{'s' * (count > 1)}",
                _latency_cell(tasklogs),
                _latency_cell(baseline),
                _latency_goal(count, tasklogs),
            )
        )
    return rows


def _latency_goal(viewers: int, run: dict | None) -> str:
    """The p99 goal for that many viewers, and whether `run` met it."""
    goal = LATENCY_GOALS_MS.get(viewers)
    if goal is None:
        return ""
    met = None if _latency_cell(run) == NOT_RUN else run["latency_ms"]["p99"] < goal
    return f"p99 < {goal} ms{_verdict(met)}"


def _per_viewers(runs: list[dict], service: str, value) -> str:
    """`v1 / v2 / v3  (1 / 100 / 1000 viewers)`: `value(run)` over the service's tail runs."""
    tails = sorted(_runs(runs, "tail", service), key=lambda run: run["viewers"])
    if not tails:
        return NOT_RUN
    return (
        " / ".join(str(value(run)) for run in tails)
        + f"  ({' / '.join(str(r['viewers']) for r in tails)} viewers)"
    )


def _flat(runs: list[dict], value) -> bool | None:
    """Whether tasklogs' `value(run)` stays flat (within 2x + 2) over its tail runs."""
    values = [value(run) for run in _runs(runs, "tail", "tasklogs")]
    return None if len(values) < 2 else max(values) <= max(2, 2 * min(values) + 2)


def request_rows(runs: list[dict]) -> list[tuple]:
    window = next((run["window"] for run in runs if run["kind"] == "tail"), 0)
    rows = []
    for key, label in (
        ("pods_log", "pods/log requests"),
        ("workflows", "workflow reads"),
        ("pods", "pod lists and gets"),
    ):

        def count(run, key=key):
            return run["requests"][key]

        rows.append(
            (
                f"{label} in {window:g} s",
                *(_per_viewers(runs, service, count) for service in SERVICES),
                f"flat in viewers{_verdict(_flat(runs, count))}",
            )
        )
    rows.append(
        (
            "open pods/log follow streams (end of window)",
            *(
                _per_viewers(runs, service, lambda run: run["requests"]["open_log_streams"])
                for service in SERVICES
            ),
            "one per container",
        )
    )
    rows.append(
        (
            f"WAL written in {window:g} s (MB, server-wide)",
            *(
                _per_viewers(runs, service, lambda run: _mb(run["server_wal_bytes"]))
                for service in SERVICES
            ),
            "",
        )
    )
    return rows


def wal_rows(runs: list[dict]) -> list[tuple]:
    """Per log size: the whole WAL (up to the final save) and, below it, its two shares. The goal is
    the issue's, for the capture while the pod runs; the final save adds the merge and the search
    index."""
    rows, ratios = [], []
    for size, seconds in sorted(
        {(run["size"], run["seconds"]) for run in runs if run["kind"] == "wal"}
    ):
        found = {
            service: _one(runs, "wal", service, size=size, seconds=seconds) for service in SERVICES
        }
        mine = found.get("tasklogs")
        split = mine is not None and "capture_wal_per_log_byte" in mine
        rows.append(
            (
                f"WAL bytes per log byte, {_size(size)} log over {seconds:g} s",
                *(NOT_RUN if run is None else wal_cell(run) for run in found.values()),
                ""
                if split
                else f"<= 3{_verdict(None if mine is None else mine['wal_per_log_byte'] <= 3)}",
            )
        )
        if not split:
            if mine:
                ratios.append(mine["wal_per_log_byte"])
            continue
        ratios.append(mine["capture_wal_per_log_byte"])
        for label, key, goal in (
            ("while the pod runs (capture)", "capture_wal_per_log_byte", True),
            ("the final save (merge, seal, search index)", "final_save_wal_per_log_byte", False),
        ):
            cells = [
                NOT_RUN if run is None or key not in run else f"{run[key]:.2f}"
                for run in found.values()
            ]
            verdict = f"<= 3{_verdict(mine[key] <= 3)}" if goal else ""
            rows.append((f"  {label}", *cells, verdict))
    if len(ratios) > 1:
        rows.append(
            (
                "  largest log / smallest log (capture)",
                f"{ratios[-1] / ratios[0]:.2f}x",
                "",
                "flat (about 1x)",
            )
        )
    return rows


def wal_cell(run: dict) -> str:
    """`ratio (MB of WAL; server-wide ratio)`: the database's own WAL when pg_waldump could attribute it."""
    wal = run["wal"]
    own = wal["database_bytes"] is not None
    megabytes = (wal["database_bytes"] if own else wal["server_bytes"]) / 1e6
    text = f"{run['wal_per_log_byte']:.2f}  ({megabytes:.1f} MB"
    text += f"; server-wide {run['server_wal_per_log_byte']:.2f})" if own else " server-wide)"
    return text + ("" if run["stored_exact"] else "  STORED LOG WRONG")


def resource_rows(runs: list[dict]) -> list[tuple]:
    cells = {"rss": [], "per": [], "cpu": [], "latency": []}
    for service in SERVICES:
        run = next(iter(_runs(runs, "resources", service)), None)
        if run is None:
            for values in cells.values():
                values.append(NOT_RUN)
            continue
        suffix = f"  ({run['viewers']} viewers)"
        cells["rss"].append(f"{run['rss_idle_mb']:.0f} -> {run['rss_mb']:.0f}{suffix}")
        cells["per"].append(f"{run['rss_per_viewer_kb']:.0f}{suffix}")
        cells["cpu"].append(f"{run['cpu']['worker']:.0f}{suffix}")
        latency = run["latency_ms"]
        cells["latency"].append(
            f"{latency['p50']:.0f} / {latency['p99']:.0f}{suffix}" if latency.get("count") else "-"
        )
    rate = next((run["rate"] for run in runs if run["kind"] == "resources"), 0)
    return [
        ("worker RSS (MB), idle -> tailing", *cells["rss"], ""),
        ("worker RSS per viewer (KB)", *cells["per"], ""),
        (f"worker CPU (% of one core), {rate:g} lines/s", *cells["cpu"], ""),
        ("  line latency p50 / p99 (ms) meanwhile", *cells["latency"], ""),
    ]


def correctness_rows(runs: list[dict]) -> list[tuple]:
    cells = []
    for service in SERVICES:
        mine = [run for run in runs if run["service"] == service and "exact" in run]
        cells.append(
            f"{sum(r['exact'] for r in mine)} / {sum(r['clients'] for r in mine)}"
            if mine
            else NOT_RUN
        )
    return [("clients that rebuilt the exact log (all runs)", *cells, "all")]


def main_rows(runs: list[dict]) -> list[tuple]:
    return (
        latency_rows(runs)
        + request_rows(runs)
        + wal_rows(runs)
        + resource_rows(runs)
        + correctness_rows(runs)
    )


# --- the second table: tasklogs alone (the collector, large logs over REST) ---

LAG_GOAL_MS = 1000  # the collector's capture lag p99
CPU_GOAL = 100  # the collector's CPU, % of one core
RSS_GROWTH_GOAL_MB = 100  # a worker's RSS growth while serving a large log


def _or_missing(seconds: float | None, what: str) -> str:
    return f"{seconds:.1f} s" if seconds is not None else f"NOT {what}"


def collector_rows(run: dict) -> list[tuple]:
    """(measurement, tasklogs, goal) rows of one collector run."""
    writer, lag, cpu, rss, verify = (
        run["writer"],
        run["lag_ms"],
        run["cpu"],
        run["rss_mb"],
        run["verify"],
    )
    complete = run["lines_captured"] == run["lines_written"] == run["lines_in_journal"]
    stored = (
        verify["pods_exact"] == verify["pods"]
        and verify["tasks_complete_from_database"] == verify["tasks"]
    )
    return [
        (
            f"collector: {run['workflows']} workflows x {run['pods'] // run['workflows']} pods x "
            f"{run['rate']:g} "
            f"lines/s for {run['seconds']:g} s, one process",
            f"{writer['lines']:,} lines written at {writer['lines_per_s']:,}/s (target "
            f"{run['pods'] * run['rate']:,.0f}/s;"
            f" writer up to {writer['late_max_s']:.1f} s late)",
            "",
        ),
        (
            "  capture lag p50 / p99 / max (ms): write -> committed in log_pages",
            f"{lag['p50']:.0f} / {lag['p99']:.0f} / {lag['max']:.0f}"
            if lag.get("count")
            else "no line captured",
            f"p99 < {LAG_GOAL_MS} ms{_verdict(lag.get('count', 0) > 0 and lag['p99'] < LAG_GOAL_MS)}",
        ),
        (
            f"  capture lag p99 (s) per sixth of the writing ({run['lag_part_s']:.1f} s each)",
            " / ".join(f"{value:.1f}" for value in run["lag_p99_s_per_part"]) or "-",
            "flat",
        ),
        (
            "  lines captured (sampler) / in the journal / written",
            f"{run['lines_captured']:,} / {run['lines_in_journal']:,} / {run['lines_written']:,}  (all "
            "stored "
            f"{_or_missing(run['drain_s'], 'within the timeout')} after the last write)",
            f"all{_verdict(complete)}",
        ),
        (
            "  collector CPU (% of one core) while writing",
            f"{cpu['worker']:.0f}",
            f"< {CPU_GOAL}{_verdict(cpu['worker'] < CPU_GOAL)}",
        ),
        (
            "  collector RSS (MB): ready -> end of writing; peak",
            f"{rss['ready']:.0f} -> {rss['end_of_window']:.0f}; {rss['peak']:.0f}",
            "",
        ),
        (
            "  CPU (% of one core) of fake k8s / postgres / other; machine (% of all cores)",
            f"{cpu['fake_k8s']:.0f} / {cpu['postgres']:.0f} / {cpu['other']:.0f}; {cpu['machine']:.0f}",
            "",
        ),
        (
            "  stored logs equal to what was written (REST, after the final saves)",
            f"{verify['pods_exact']} / {verify['pods']} pods (final saves "
            f"{_or_missing(run['final_save_s'], 'DONE')})",
            f"all{_verdict(stored)}",
        ),
    ]


def rest_rows(run: dict) -> list[tuple]:
    """(measurement, tasklogs, goal) rows of one large-log REST run: one per GET."""
    rows = []
    for get in run["gets"]:
        how = (
            "reads Kubernetes, stores"
            if get["expected_source"] == "kubernetes"
            else "from the database"
        )
        source = get["fields"].get("source")
        cell = (
            f"RSS {get['rss_before_mb']:.0f} -> {get['rss_peak_mb']:.0f} -> {get['rss_after_mb']:.0f} MB "
            f"(+{get['rss_growth_mb']:.0f}); {get['body_bytes'] / 1e6:.0f} MB in {get['seconds']:.1f} s "
            f"({get['mb_per_s']:g} MB/s, first byte {get['first_byte_s']:.1f} s); "
            + ("exact" if get["exact"] else f"TEXT WRONG (status {get['status']})")
            + (f"; source {source}" if source and source != get["expected_source"] else "")
        )
        rows.append(
            (
                f"REST {_size(run['log_bytes'])} log, format={run['format']}, {get['get']} GET ({how})",
                cell,
                f"growth < {RSS_GROWTH_GOAL_MB} MB{_verdict(get['rss_growth_mb'] < RSS_GROWTH_GOAL_MB)}",
            )
        )
    return rows


def followed_rows(run: dict) -> list[tuple]:
    """(measurement, tasklogs, goal) rows of a tail whose worker follows the collector's journal."""
    requests = run["requests"]
    return [
        (
            f"tail of a task the collector captures, {run['viewers']} viewer(s): line latency p50 / p99 / "
            "max (ms)",
            _latency_cell(run),
            _latency_goal(run["viewers"], run),
        ),
        (
            f"  pods/log requests in {run['window']:g} s (worker and collector) / follow streams open (the "
            "collector's)",
            f"{requests['pods_log']} / {requests['open_log_streams']}",
            f"0 / 2{_verdict(requests['pods_log'] == 0 and requests['open_log_streams'] == 2)}",
        ),
        (
            "  clients that rebuilt the exact log",
            f"{run['exact']} / {run['clients']}",
            f"all{_verdict(run['exact'] == run['clients'])}",
        ),
    ]


def tasklogs_only_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for run in runs:
        if run["kind"] == "collector":
            rows += collector_rows(run)
        elif run["kind"] == "rest":
            rows += rest_rows(run)
        elif run["kind"] == "followed":
            rows += followed_rows(run)
        elif run["kind"] == "viewer":
            rows += viewer_rows(run)
    return rows


VIEWER_OPEN_GOAL_MS = 2000  # a 1,000,000-line stored log open at its end
VIEWER_ELEMENTS_GOAL = 2000
VIEWER_HEAP_GOAL_MB = 200
VIEWER_FPS_GOAL = 30
VIEWER_LATENCY_GOAL_MS = 1000  # a new line on screen within a second


def _ms(found: dict) -> str:
    return (
        f"{found['median']:.0f} ms (p95 {found['p95']:.0f})" if found["median"] is not None else "-"
    )


def viewer_rows(run: dict) -> list[tuple]:
    stored, follow = run["stored"], run["follow"]
    opened, heap_open, heap_jumps = stored["end_ms"], stored["after_open"], stored["after_jumps"]
    latency = follow["latency_ms"]
    return [
        (f"viewer: {stored['lines']:,}-line stored log (seeded in {stored['seed_s']} s)", "", ""),
        ("  first line on screen, from navigation", _ms(stored["first_line_ms"]), ""),
        (
            "  its end on screen, from navigation",
            _ms(opened),
            f"< {VIEWER_OPEN_GOAL_MS} ms{_verdict(opened['p95'] < VIEWER_OPEN_GOAL_MS)}",
        ),
        ("  Home: line 1 fetched by range", f"{stored['home_ms']:.0f} ms", ""),
        ("  #L<n> jumps to random lines", _ms(stored["jump_ms"]), ""),
        (
            "  JS heap after opening / after the jumps",
            f"{heap_open['js_heap_used_mb']} / {heap_jumps['js_heap_used_mb']} MB",
            f"< {VIEWER_HEAP_GOAL_MB} MB"
            f"{_verdict(heap_jumps['js_heap_used_mb'] < VIEWER_HEAP_GOAL_MB)}",
        ),
        (
            "  line elements in the page (after the jumps)",
            str(heap_jumps["line_elements"]),
            f"< {VIEWER_ELEMENTS_GOAL}{_verdict(heap_jumps['line_elements'] < VIEWER_ELEMENTS_GOAL)}",
        ),
        (f"viewer: following {follow['rate']:.0f} lines/s for {follow['seconds']} s", "", ""),
        (
            "  frames per second (longest gap)",
            f"{follow['fps']} ({follow['longest_frame_gap_ms']:.0f} ms)",
            f">= {VIEWER_FPS_GOAL}{_verdict(follow['fps'] >= VIEWER_FPS_GOAL)}",
        ),
        (
            "  line latency, write to screen",
            _ms(latency),
            f"< {VIEWER_LATENCY_GOAL_MS} ms"
            f"{_verdict(latency['p95'] is not None and latency['p95'] < VIEWER_LATENCY_GOAL_MS)}",
        ),
        (
            "  every line in the page's log afterwards",
            "yes" if follow["every_line"] else "NO",
            f"yes{_verdict(follow['every_line'])}",
        ),
        (
            "  JS heap / line elements afterwards",
            f"{follow['after']['js_heap_used_mb']} MB / {follow['after']['line_elements']}",
            f"< {VIEWER_HEAP_GOAL_MB} MB / < {VIEWER_ELEMENTS_GOAL}"
            + _verdict(
                follow["after"]["js_heap_used_mb"] < VIEWER_HEAP_GOAL_MB
                and follow["after"]["line_elements"] < VIEWER_ELEMENTS_GOAL
            ),
        ),
    ]


def tasklogs_only_notes(runs: list[dict]) -> list[str]:
    kinds, lines = {run["kind"] for run in runs}, []
    if "collector" in kinds:
        lines.append(
            "capture lag = time from a line's write into the fake pod log until a read of log_pages "
            "returns it (read every 50 ms: 0-50 ms of it is the sampling); measured after every pod's "
            "first line was stored."
        )
    if "followed" in kinds:
        lines.append(
            "tail of a task the collector captures: the web worker opens no stream; it follows the "
            "collector's journal, woken by NOTIFY, and announces its viewers (NOTIFY watching:<task>), so "
            "the collector commits that task's lines as soon as it reads them (at most one commit per "
            "TASKLOGS_JOURNAL_HURRY_GAP) instead of every TASKLOGS_JOURNAL_INTERVAL."
        )
    if "viewer" in kinds:
        lines.append(
            "viewer: headless Chromium (Debian's) on the same machine; times from the page's navigation "
            "(performance.now() in a MutationObserver), the heap from DevTools Performance.getMetrics "
            "after a forced GC; latency = a line's write time (in its text) to the first DOM change "
            "that shows it, for every line that appears."
        )
    if "rest" in kinds:
        lines.append(
            "REST: VmRSS of the one gunicorn worker sampled every 50 ms: before the GET (the worker has "
            "served a small task once) -> peak during -> 1 s after the body ended; growth = peak - before. "
            "The client hashes the body and keeps none of it."
        )
    return ["- " + line for line in lines]


# --- the third table: stored logs as pages, each figure beside a reference ---

PAGES_HEADER = ("measurement", "tasklogs", "reference", "ratio", "goal")
DOWNLOAD_GOALS = {"text": 0.8, "json": 0.6}  # tasklogs' MB/s over the raw read's
LINE_GOAL_MS = 50  # median and p95 of a line-access request
LINE_RATIO_GOAL = 1.5  # large log's median over the small log's
GREP_GOAL = 100  # MB of log scanned per second
DISK_GOAL = 0.5  # on-disk bytes of the log tables per log byte, realistic log
LINE_QUERIES = {
    "tail": "tail=100",
    "since": "since/until: a minute in the middle",
    "middle": "from_line=<middle>&limit=1000",
    "end": "from_line=<near the end>&limit=1000",
}


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _checked(found: dict) -> str:
    """`exact` or what went wrong with a checked answer."""
    if "error" in found:
        return found["error"]
    return "exact" if found.get("exact") else "TEXT WRONG"


def pages_download_rows(run: dict) -> list[tuple]:
    log, found = run["logs"]["download"], run["downloads"]
    raw = found["raw"]
    reference = raw.get("error") or f"raw read {raw['mb_per_s']:g} MB/s"
    rows = []
    for output, goal in DOWNLOAD_GOALS.items():
        mine = found[output]
        ratio = mine.get("ratio")
        rows.append(
            (
                f"format={output} download, {_size(log['bytes'])} stored log (MB/s of log)",
                f"{mine['mb_per_s']:g} MB/s, {_checked(mine)}"
                if "mb_per_s" in mine
                else mine["error"],
                reference,
                _ratio(ratio),
                f">= {goal}x{_verdict(None if ratio is None else ratio >= goal and mine['exact'])}",
            )
        )
    return rows


def _line_cell(found: dict) -> str:
    if "error" in found:
        return found["error"]
    check = f"exact, {found['exact']}" if found["exact"] else "TEXT WRONG"
    return f"{found['median_ms']:g} / {found['p95_ms']:g}  ({found['lines']} lines, {check})"


def pages_line_rows(run: dict) -> list[tuple]:
    small, large = run["lines"]["small"], run["lines"]["large"]
    sizes = {name: _size(run["logs"][name]["bytes"]) for name in ("small", "large")}
    rows = []
    for query, label in LINE_QUERIES.items():
        for name, found in (("small", small[query]), ("large", large[query])):
            ratio = None
            if name == "large" and "median_ms" in found and "median_ms" in small[query]:
                ratio = found["median_ms"] / small[query]["median_ms"]
            fast = None if "error" in found else found["p95_ms"] < LINE_GOAL_MS and found["exact"]
            fake = run["lines"][name]["fake_tail"]
            rows.append(
                (
                    f"{label}, {sizes[name]} log: median / p95 (ms)",
                    _line_cell(found),
                    f"fake cluster tailLines=100: {fake['median_ms']:g} / {fake['p95_ms']:g}"
                    if query == "tail"
                    else "",
                    _ratio(ratio) + (f" ({sizes['large']} / {sizes['small']})" if ratio else ""),
                    f"< {LINE_GOAL_MS} ms{_verdict(fast)}"
                    + (
                        f"; ratio <= {LINE_RATIO_GOAL}{_verdict(ratio <= LINE_RATIO_GOAL)}"
                        if ratio
                        else ""
                    ),
                )
            )
    return rows


def pages_grep_row(run: dict) -> tuple:
    found, log = run["grep"], run["logs"]["download"]
    gnu = found["gnu"]
    if "error" in found:
        cell, met = found["error"], None
    else:
        matched = "= grep -c" if found["exact"] else "LINES DIFFER FROM grep -c"
        cell = f"{found['mb_per_s']:g} MB/s ({found['lines']} lines, {matched})"
        met = found["mb_per_s"] >= GREP_GOAL and found["exact"]
    return (
        f"grep={found['word']} over the {_size(log['bytes'])} stored log (MB/s of log scanned)",
        cell,
        f"GNU grep -c: {gnu['mb_per_s']:g} MB/s ({gnu['count']} lines)",
        _ratio(found.get("ratio")),
        f">= {GREP_GOAL} MB/s{_verdict(met)}",
    )


def pages_disk_rows(run: dict) -> list[tuple]:
    rows = []
    for name, what in (("download", "realistic"), ("random", "incompressible (random base64)")):
        log = run["logs"][name]
        stored = log["stored"]
        if "error" in stored:
            cell, met = stored["error"], None
        else:
            cell = (
                f"{stored['disk_per_log_byte']:.2f}  ({stored['disk_bytes'] / 1e6:.1f} MB; stored by "
                f"the first GET in {stored['first_get_s']:.1f} s, "
                + ("complete" if stored["complete"] else f"NOT COMPLETE: {stored['fields']}")
                + ")"
            )
            met = stored["disk_per_log_byte"] <= DISK_GOAL and stored["complete"]
        rows.append(
            (
                f"on-disk bytes per log byte (log_pages + task_logs), {what} {_size(log['bytes'])} log",
                cell,
                "",
                "",
                f"<= {DISK_GOAL}{_verdict(met)}" if name == "download" else "",
            )
        )
    return rows


def pages_stored_row(run: dict) -> tuple:
    """How many logs the first GETs stored exactly and completely, and how long each took."""
    logs = run["logs"].values()
    good = [
        log for log in logs if log["stored"]["first_get_exact"] and log["stored"].get("complete")
    ]
    errors = [log["stored"]["error"] for log in logs if "error" in log["stored"]]
    cell = f"{len(good)} / {len(logs)}  (first GET: " + ", ".join(
        f"{_size(log['bytes'])} {log['stored']['first_get_s']:.1f} s" for log in logs
    )
    return (
        "logs stored exactly by their first GET, then complete from the database",
        cell + ")" + (f"; {errors[0]}" if errors else ""),
        "",
        "",
        f"all{_verdict(len(good) == len(logs))}",
    )


def pages_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for run in runs:
        if run["kind"] == "pages":
            rows += (
                [pages_stored_row(run)]
                + pages_download_rows(run)
                + pages_line_rows(run)
                + [pages_grep_row(run)]
                + pages_disk_rows(run)
            )
    return rows


PAGES_NOTES = [
    "- stored logs: finished tasks stored by a first format=text GET, then served from the database; "
    "a download is checked byte for byte once, then timed with its body counted and dropped, as the "
    "raw read's is. MB/s = the log's bytes / seconds (median of 3), for every figure; the raw "
    "read = SELECT text FROM log_pages ORDER BY start_offset through a server-side cursor "
    "(itersize 64), summing len().",
    "- line access: format=text, one checked request then 20 timed ones, each on a fresh connection; "
    "`exact` names the reading of from_line (0- or 1-based) and of until (closed or open) that matched "
    "the fake's lines. The fake cluster answers tailLines from memory.",
    "- disk: growth of pg_total_relation_size over log_pages' partitions (their TOAST and indexes, the "
    "search index included) and task_logs while the log was stored (final save included), in a "
    "database created for the run.",
]

# --- the fourth table: search across tasks, indexed beside a sequential scan and grep ---

SEARCH_HEADER = (
    "search (limit 100)",
    "lines",
    "indexed",
    "HTTP route",
    "seq scan",
    "grep -rF",
    "same as seq scan",
    "goal",
)
SEARCH_GOAL_MS = 500  # the indexed rare search


def search_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for run in runs:
        if run["kind"] != "search":
            continue
        for name, found in run["searches"].items():
            goal = ""
            if name == "rare":
                met = found["indexed_ms"] < SEARCH_GOAL_MS
                goal = f"< {SEARCH_GOAL_MS} ms: {'met' if met else 'MISSED'}"
            rows.append(
                (
                    f"{name}: {found['text'][:24]!r}",
                    f"{found['lines']} (grep {found['grep_lines']})",
                    f"{found['indexed_ms']:g} ms",
                    f"{found['http_ms']:g} ms",
                    f"{found['seq_scan_ms']:g} ms",
                    f"{found['grep_ms']:g} ms",
                    "yes" if found["same_as_seq_scan"] else "NO",
                    goal,
                )
            )
    return rows


def search_notes(runs: list[dict]) -> list[str]:
    lines = []
    for run in runs:
        if run["kind"] == "search":
            written, index = run["written"], run["index"]
            lines += [
                f"- {_size(written['bytes'])} of log text in {written['logs']} logs "
                f"({written['pages']} pages, {written['lines']} lines), loaded in "
                f"{written['load_s']:g} s; log_pages with its indexes {_size(index['table_bytes'])}.",
                f"- trigram index built in {index['build_s']:g} s (maintenance_work_mem "
                f"{index['maintenance_work_mem']}), {_size(index['index_bytes'])}.",
                "- median of 5 runs (seq scan and grep: 3) after a checked one; indexed = "
                "service.search_lines in the bench process; HTTP = GET /api/v1/search from one "
                "gunicorn gevent worker; seq scan = the same service function with enable_bitmapscan "
                "and enable_indexscan off; grep -rF (-i) over the same text as one file per log.",
            ]
    return lines


MAIN_KINDS = ("tail", "wal", "resources")


# --- the fourth table: a tail's catch-up on a large running log ---

CATCHUP_HEADER = (
    "log",
    "format",
    "tree",
    "RSS growth",
    "/healthz p50 / p99 / max",
    "catch-up",
    "frames (largest)",
    "exact",
)
CATCHUP_GROWTH_GOAL = 100  # MB the worker may grow by during a catch-up of a 200 MB log
CATCHUP_HEALTH_GOAL = 100  # ms a /healthz may take meanwhile
CATCHUP_NOTES = [
    "- one client tails a running task from its start: growth = the worker's VmRSS peak during the "
    "catch-up (sampled every 50 ms) minus before it (after one small tail); /healthz is requested every "
    "20 ms on a fresh connection by a process of its own; exact = the client's rebuilt log (offsets or "
    f"line numbers contiguous) has the fake's SHA-256. Goals: growth < {CATCHUP_GROWTH_GOAL} MB, /healthz "
    f"< {CATCHUP_HEALTH_GOAL} ms.",
]


def catchup_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for run in runs:
        if run["kind"] != "catchup":
            continue
        for tail in run["tails"]:
            health = tail["healthz"]
            slow = (health["max_ms"] or 0) >= CATCHUP_HEALTH_GOAL
            rows.append(
                (
                    f"{run['log_bytes'] / (1 << 20):.0f} MiB",
                    tail["format"],
                    tail["tree"]
                    + (f" ({run['before_commit'][:8]})" if tail["tree"] == "before" else ""),
                    f"{tail['rss_growth_mb']:.0f} MB"
                    + _verdict(tail["rss_growth_mb"] < CATCHUP_GROWTH_GOAL),
                    f"{health['p50_ms']:.0f} / {health['p99_ms']:.0f} / {health['max_ms']:.0f} ms"
                    + _verdict(not slow),
                    f"{tail['seconds']:.1f} s ({tail['mb_per_s']:.0f} MB/s)",
                    f"{tail['frames']} ({tail['largest_frame_bytes'] / (1 << 20):.1f} MiB)",
                    "yes" if tail["exact"] else f"NO: {tail['error'] or 'content differs'}",
                )
            )
    return rows


def has_main(runs: list[dict]) -> bool:
    """Whether any measurement of the side-by-side table ran."""
    return any(run["kind"] in MAIN_KINDS for run in runs)


# --- the per-run details: who used the 2 cores ---

DETAIL_HEADER = (
    "run",
    "service",
    "viewers",
    "connect s",
    "worker",
    "clients",
    "fake k8s",
    "postgres",
    "other",
    "machine",
    "LISTEN conns",
    "GC pauses",
    "warnings",
)
CPU_COLUMNS = ("worker", "clients", "fake_k8s", "postgres", "other", "machine")


def _run_label(run: dict) -> str:
    if run["kind"] == "wal":
        return f"wal {_size(run['log_bytes'])}"
    if run["kind"] == "collector":
        return f"collector {run['pods']} pods x {run['rate']:g} lines/s"
    if run["kind"] == "followed":
        return f"tail via collector {run['rate']:g} lines/s"
    return f"{run['kind']} {run['rate']:g} lines/s"


def cpu_windows(run: dict) -> list[tuple[str, dict]]:
    """(label, CPU use) of each measuring window of a run: one per run, one per GET of a rest run."""
    if run["kind"] == "rest":
        return [
            (f"rest {_size(run['log_bytes'])} {run['format']}, {get['get']} GET", get["cpu"])
            for get in run["gets"]
        ]
    if run["kind"] == "pages":
        return [("pages: stored logs read (downloads, lines, grep)", run["cpu"])]
    if run["kind"] == "search":
        return [("search: every search, four ways", run["cpu"])]
    if run["kind"] == "catchup":
        return []  # its figures are the worker's memory and /healthz, in their own table
    if run["kind"] == "viewer":
        return []  # the browser's own figures are the measurement
    return [(_run_label(run), run.get("cpu") or {})]


def _gc_cell(run: dict) -> str:
    """`full collections / longest pause ms` with --gc-probe, else "-"."""
    gc = run.get("gc")
    return f"{gc['full_collections']} full, max {gc['longest_ms']:.0f} ms" if gc else "-"


SHARDS_HEADER = (
    "run",
    "containers per process",
    "CPU per process (% of a core)",
    "lag p99 per process (ms)",
    "lag p50 / p99 / max all (ms)",
    "follow streams open / containers",
    "takeover / join (s)",
    "logs exact",
)


def shards_rows(runs: list[dict]) -> list[tuple]:
    """One row per shards run: the share, CPU and lag of each collector process."""
    rows = []
    for run in runs:
        if run["kind"] != "shards":
            continue
        per = run["per_process"]
        lag = run["lag_ms"]
        rows.append(
            (
                f"{run['collectors']} collector(s)" + (", kill + rejoin" if run["kill"] else ""),
                " / ".join(str(p["containers"]) for pid, p in per.items() if pid != "0"),
                " / ".join(f"{c['cpu_percent']:.0f}" for c in run["cpu_per_process"].values()),
                " / ".join(
                    f"{p['lag_ms'].get('p99', 0):.0f}" for pid, p in per.items() if pid != "0"
                ),
                f"{lag.get('p50', 0):.0f} / {lag.get('p99', 0):.0f} / {lag.get('max', 0):.0f}",
                f"{run['follow_streams_open']} / {run['pods']}",
                f"{run.get('takeover_s', '-')} / {run.get('join_s', '-')}" if run["kill"] else "-",
                f"{run['verify']['pods_exact']} / {run['verify']['pods']}",
            )
        )
    return rows


def detail_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for run in runs:
        if run["kind"] == "shards":  # its own table (shards_rows): CPU per collector process
            continue
        health, connected = run["health"], run.get("connected")
        warnings = str(health["warnings"]) + (
            "" if health["worker_survived"] else "  WORKER REPLACED"
        )
        viewers = run.get("viewers", 1 if run["kind"] == "wal" else "-")
        for label, cpu in cpu_windows(run):
            rows.append(
                (
                    label,
                    run["service"],
                    str(viewers),
                    f"{connected['seconds']:.1f}" if connected else "-",
                    *(f"{cpu[key]:.0f}%" if key in cpu else "-" for key in CPU_COLUMNS),
                    str(run.get("listeners", "-")),
                    _gc_cell(run),
                    warnings,
                )
            )
    return rows


def table(header: tuple, rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        return (
            "| "
            + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False))
            + " |"
        )

    return "\n".join(
        [
            line(header),
            "|" + "|".join("-" * (width + 2) for width in widths) + "|",
            *map(line, rows),
        ]
    )


def notes(runs: list[dict], context: dict) -> list[str]:
    """What the reader must know to read the table right, including how loaded the machine was."""
    lines = [
        "latency = receive time at the client - write time into the fake pod log, over every line and "
        "client; "
        "the baseline polls every 2 s.",
        "each baseline viewer polls on its own (nothing shared): with 1000 it falls seconds behind.",
        "WAL: random hex lines (pglz cannot compress them), CHECKPOINT first, final save included; "
        "the bench database's own WAL (pg_waldump), server-wide in brackets.",
    ]
    other = max((cpu["other"] for run in runs for _, cpu in cpu_windows(run) if cpu), default=0)
    if other > 30:
        lines.append(
            f"CAUTION: processes outside the benchmark used up to {other:.0f}% of a core during a "
            f"measuring window (column `other` below): latency and CPU figures are skewed by them."
        )
    # one LISTEN connection per engine: the worker's, plus the collector's in the followed runs
    engines = [
        run
        for run in runs
        if run["service"] == "tasklogs"
        and run.get("listeners", 1) > (2 if run["kind"] == "followed" else 1)
    ]
    if engines:
        lines.append(
            "tasklogs ran more than one live-tail engine in one worker in "
            + ", ".join(
                f"the {run['viewers']}-viewer {run['kind']} run ({run['listeners']} LISTEN connections)"
                for run in engines
            )
            + "."
        )
    return ["- " + line for line in lines]


def render(runs: list[dict], context: dict) -> str:
    """The whole printed report."""
    source = context["source"]
    version = (source["commit"] or source["root"]) + (
        " + uncommitted changes" if source["dirty"] else ""
    )
    lines = [
        f"tasklogs benchmark: tasklogs {version}; {context['mode']} run, {context['elapsed_s']:.0f} s, "
        f"{context['date']}; {context['cpus']} CPU cores shared by the worker, the client process, the fake "
        f"cluster and PostgreSQL",
        "",
    ]
    if has_main(runs):
        lines += [
            table(
                ("measurement", "tasklogs", "baseline (seed design)", "goal for tasklogs"),
                main_rows(runs),
            ),
            "",
            *notes(runs, context),
            "",
        ]
    alone = tasklogs_only_rows(runs)
    if alone:
        lines += [
            "tasklogs alone: the collector, large logs over REST, the viewer",
            "",
            table(("measurement", "tasklogs", "goal"), alone),
            "",
            *tasklogs_only_notes(runs),
            "",
        ]
        if not has_main(runs):
            lines += [line for line in notes(runs, context) if "CAUTION" in line] + [""]
    pages = pages_rows(runs)
    if pages:
        lines += [
            "stored logs as pages, each beside a reference",
            "",
            table(PAGES_HEADER, pages),
            "",
            *PAGES_NOTES,
            "",
        ]
        if not has_main(runs) and not alone:
            lines += [line for line in notes(runs, context) if "CAUTION" in line] + [""]
    shards = shards_rows(runs)
    if shards:
        lines += [
            "collectors that share (the collector load; lag and CPU per process, by lease holder)",
            "",
            table(SHARDS_HEADER, shards),
            "",
        ]
    searches = search_rows(runs)
    if searches:
        lines += [
            "search across tasks, the trigram index beside a sequential scan and grep",
            "",
            table(SEARCH_HEADER, searches),
            "",
            *search_notes(runs),
        ]
    catchup = catchup_rows(runs)
    if catchup:
        lines += [
            "a tail's catch-up on a large running log",
            "",
            table(CATCHUP_HEADER, catchup),
            "",
            *CATCHUP_NOTES,
            "",
        ]
    if not detail_rows(runs):  # only runs that measure in the browser
        return "\n".join(lines)
    return "\n".join(
        lines
        + [
            "CPU per run, % of ONE core over the measuring window; worker = the gunicorn worker (collector "
            "runs: the "
            "collector process); clients = the client process (collector and rest runs: this bench process, "
            "sampling "
            "or downloading); fake k8s = the fake API server + log writer (this bench process, or its own "
            "process in "
            "collector and rest runs); other = every other process on the machine; machine = % of all cores:",
            "",
            table(DETAIL_HEADER, detail_rows(runs)),
        ]
    )
