"""Turning the runs into the side-by-side table (tasklogs | baseline | goal) and the per-run details."""
SERVICES = ("tasklogs", "baseline")
NOT_RUN = "not run"


def _runs(runs: list[dict], kind: str, service: str) -> list[dict]:
    return [run for run in runs if run["kind"] == kind and run["service"] == service]


def _one(runs, kind, service, **match):
    return next((run for run in _runs(runs, kind, service) if all(run.get(k) == v for k, v in match.items())), None)


def _size(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{size / 1024:.0f} KB"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ": met" if met else ": MISSED"


# --- rows: (measurement, tasklogs cell, baseline cell, goal for tasklogs) ---

def latency_rows(runs: list[dict]) -> list[tuple]:
    goals = {1: 50, 1000: 250}
    viewers = sorted({run["viewers"] for run in runs if run["kind"] == "tail"})
    rows = []
    for count in viewers:
        cells = []
        for service in SERVICES:
            run = _one(runs, "tail", service, viewers=count)
            latency = run and run["latency_ms"]
            cells.append(f"{latency['p50']:.0f} / {latency['p99']:.0f} / {latency['max']:.0f}"
                         if latency and latency.get("count") else NOT_RUN)
        tasklogs = _one(runs, "tail", "tasklogs", viewers=count)
        goal = goals.get(count)
        met = None if goal is None or tasklogs is None or not tasklogs["latency_ms"].get("count") \
            else tasklogs["latency_ms"]["p99"] < goal
        rows.append((f"line latency p50 / p99 / max (ms), {count} viewer{'s' * (count > 1)}", *cells,
                     f"p99 < {goal} ms{_verdict(met)}" if goal else ""))
    return rows


def request_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for key, label in (("pods_log", "pods/log requests"), ("workflows", "workflow reads"),
                       ("pods", "pod lists and gets"), ("open_log_streams", "open pods/log follow streams")):
        cells, flat = [], None
        for service in SERVICES:
            tails = sorted(_runs(runs, "tail", service), key=lambda run: run["viewers"])
            values = [run["requests"][key] for run in tails]
            cells.append(" / ".join(map(str, values)) + f"  ({' / '.join(str(r['viewers']) for r in tails)} viewers)"
                         if tails else NOT_RUN)
            if service == "tasklogs" and len(values) > 1:
                flat = max(values) <= max(2, 2 * min(values) + 2)
        window = next((run["window"] for run in runs if run["kind"] == "tail"), 0)
        if key == "open_log_streams":
            rows.append((f"{label} (end of window)", *cells, "one per container"))
        else:
            rows.append((f"{label} in {window:g} s", *cells, f"flat in viewers{_verdict(flat)}"))
    return rows


def wal_rows(runs: list[dict]) -> list[tuple]:
    rows, ratios = [], []
    for size, seconds in sorted({(run["size"], run["seconds"]) for run in runs if run["kind"] == "wal"}):
        cells = []
        for service in SERVICES:
            run = _one(runs, "wal", service, size=size, seconds=seconds)
            cells.append(NOT_RUN if run is None else wal_cell(run))
            if service == "tasklogs" and run:
                ratios.append(run["wal_per_log_byte"])
        met = None if not ratios else ratios[-1] <= 3
        rows.append((f"WAL bytes per log byte, {_size(size)} log over {seconds:g} s", *cells, f"<= 3{_verdict(met)}"))
    if len(ratios) > 1:
        rows.append(("  largest log / smallest log", f"{ratios[-1] / ratios[0]:.2f}x", "", "flat (about 1x)"))
    return rows


def wal_cell(run: dict) -> str:
    """`ratio (MB of WAL; server-wide ratio)`: the database's own WAL when pg_waldump could attribute it."""
    wal = run["wal"]
    own = wal["database_bytes"] is not None
    text = f"{run['wal_per_log_byte']:.2f}  ({(wal['database_bytes'] if own else wal['server_bytes']) / 1e6:.1f} MB"
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
        cells["latency"].append(f"{latency['p50']:.0f} / {latency['p99']:.0f}{suffix}" if latency.get("count") else "-")
    rate = next((run["rate"] for run in runs if run["kind"] == "resources"), 0)
    return [("worker RSS (MB), idle -> tailing", *cells["rss"], ""),
            ("worker RSS per viewer (KB)", *cells["per"], ""),
            (f"worker CPU (% of one core), {rate:g} lines/s", *cells["cpu"], ""),
            ("  line latency p50 / p99 (ms) meanwhile", *cells["latency"], "")]


def correctness_rows(runs: list[dict]) -> list[tuple]:
    cells = []
    for service in SERVICES:
        mine = [run for run in runs if run["service"] == service and "exact" in run]
        cells.append(f"{sum(r['exact'] for r in mine)} / {sum(r['clients'] for r in mine)}" if mine else NOT_RUN)
    return [("clients that rebuilt the exact log (all runs)", *cells, "all")]


def main_rows(runs: list[dict]) -> list[tuple]:
    return latency_rows(runs) + request_rows(runs) + wal_rows(runs) + resource_rows(runs) + correctness_rows(runs)


# --- the per-run details: who used the 2 cores ---

DETAIL_HEADER = ("run", "service", "viewers", "connect s", "worker", "clients", "fake k8s", "postgres", "other",
                 "machine", "LISTEN conns", "warnings")


def detail_rows(runs: list[dict]) -> list[tuple]:
    rows = []
    for run in runs:
        cpu = run.get("cpu") or {}
        health = run["health"]
        warnings = str(health["warnings"]) + ("" if health["worker_survived"] else "  WORKER REPLACED")
        label = {"tail": f"tail {run.get('rate', 0):g} lines/s", "resources": f"resources {run.get('rate', 0):g} lines/s",
                 "wal": f"wal {_size(run.get('log_bytes', 0))}"}[run["kind"]]
        connected = run.get("connected")
        rows.append((label, run["service"], str(run.get("viewers", 1)),
                     f"{connected['seconds']:.1f}" if connected else "-",
                     *(f"{cpu[key]:.0f}%" if key in cpu else "-" for key in ("worker", "clients", "fake_k8s",
                                                                              "postgres", "other", "machine")),
                     str(run.get("listeners", "-")), warnings))
    return rows


def table(header: tuple, rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|",
                      *map(line, rows)])


def notes(runs: list[dict], context: dict) -> list[str]:
    """What the reader must know to read the table right, including how loaded the machine was."""
    lines = ["latency = receive time at the client - write time into the fake pod log, over every line and client; "
             "the baseline polls every 2 s.",
             "baseline viewers each poll alone (no sharing): its 1000-viewer runs are off by default "
             "(--baseline-viewers 1,100,1000).",
             "WAL: random hex lines (pglz cannot compress them), CHECKPOINT first, final save included; "
             "the bench database's own WAL (pg_waldump), server-wide in brackets."]
    other = max((run["cpu"]["other"] for run in runs if run.get("cpu")), default=0)
    if other > 30:
        lines.append(f"CAUTION: processes outside the benchmark used up to {other:.0f}% of a core during a "
                     f"measuring window (column `other` below): latency and CPU figures are skewed by them.")
    engines = [run for run in runs if run["service"] == "tasklogs" and run.get("listeners", 1) > 1]
    if engines:
        lines.append("tasklogs ran more than one live-tail engine in one worker in "
                     + ", ".join(f"the {run['viewers']}-viewer {run['kind']} run ({run['listeners']} LISTEN "
                                 f"connections)" for run in engines) + ".")
    return ["- " + line for line in lines]


def render(runs: list[dict], context: dict) -> str:
    """The whole printed report."""
    source = context["source"]
    version = (source["commit"] or source["root"]) + (" + uncommitted changes" if source["dirty"] else "")
    return "\n".join([
        f"tasklogs benchmark: tasklogs {version}; {context['mode']} run, {context['elapsed_s']:.0f} s, "
        f"{context['date']}; {context['cpus']} CPU cores shared by the worker, the client process, the fake "
        f"cluster and PostgreSQL",
        "",
        table(("measurement", "tasklogs", "baseline (seed design)", "goal for tasklogs"), main_rows(runs)),
        "",
        *notes(runs, context),
        "",
        "CPU per run, % of ONE core over the measuring window; fake k8s = this bench process (fake API server + "
        "log writer); other = every other process on the machine; machine = % of all cores:",
        "",
        table(DETAIL_HEADER, detail_rows(runs)),
    ])
