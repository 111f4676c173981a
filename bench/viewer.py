"""The built-in viewer in headless Chromium (`--only viewer`): a stored log of a million lines, and a
live log written at 1,000 lines per second.

1. A finished one-pod task whose log has `lines` lines is stored straight into the database as pages
   (`testkit.storedlogs`). A fresh gunicorn worker serves the viewer; the page is opened once to warm
   the worker, then `OPENS` times: time from navigation to the first line element and to the log's last
   line on screen (in the page: a MutationObserver stamps `performance.now()`, whose origin is the
   navigation). Then Home (line 1, fetched by range) and `JUMPS` random `#L<n>` jumps, timed from the
   script until the line is in the page (polled every 5 ms). The page's JavaScript heap comes from
   DevTools `Performance.getMetrics` (after `HeapProfiler.collectGarbage`), after the opening and
   after the jumps, with the count of line elements.
2. A running one-pod task, its page following; the fake cluster's pod log gets `rate` lines per second
   for `seconds` (each line carries its write time). In the page: frames per second
   (requestAnimationFrame callbacks) and the longest gap between two frames, and each line's latency
   from its write to the first frame that shows it (every line that appears on screen). Afterwards
   the page must hold every line; then its heap and line elements, as above.
"""

import random
import statistics
import time
import uuid

from testkit.browser import start_chrome
from testkit.storedlogs import store_finished_log

from .cluster import SteadyWriter, timed_line
from .largelog import service_health
from .measure import Bench

OPENS = 5
JUMPS = 20
WARM_UP = 1.0  # seconds of writing before the follow window opens

PROBE = """
window.__bench = {first: null, end: null, target: %(target)s, lat: [], frames: 0, gap: 0, last: 0,
                  seq: -1};
(function frame(now) {
  const b = window.__bench;
  if (b.last) b.gap = Math.max(b.gap, now - b.last);
  b.last = now; b.frames++;
  requestAnimationFrame(frame);
})(0);
new MutationObserver(() => {
  const b = window.__bench;
  const first = document.querySelector('#window [data-line]');
  if (first && b.first === null) b.first = performance.now();
  if (b.end === null && b.target && document.querySelector(`#window [data-line="${b.target}"]`))
    b.end = performance.now();
  const rows = document.querySelectorAll('#window [data-line] .text');
  const now = Date.now();
  let newest = b.seq;
  for (let i = rows.length - 1; i >= 0; i--) {  // every line shown for the first time
    const words = rows[i].textContent.split(' ');
    if (words.length !== 2 || Number(words[0]) <= b.seq) break;
    newest = Math.max(newest, Number(words[0]));
    b.lat.push(now - Number(words[1]) / 1e6);
  }
  b.seq = newest;
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def page_url(service, task_id: str, tail: str = "") -> str:
    return f"http://127.0.0.1:{service.port}/ui/namespaces/argo/tasks/{task_id}{tail}"


def probe(driver, target: int | None) -> str:
    script = PROBE % {"target": "null" if target is None else target}
    return driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})[
        "identifier"
    ]


def wait(driver, script: str, timeout: float = 30, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(script)


def heap(driver) -> dict:
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    metrics = {
        m["name"]: m["value"]
        for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    }
    return {
        "js_heap_used_mb": round(metrics["JSHeapUsedSize"] / 2**20, 1),
        "js_heap_total_mb": round(metrics["JSHeapTotalSize"] / 2**20, 1),
        "dom_nodes": int(metrics["Nodes"]),
        "line_elements": driver.execute_script(
            "return document.querySelectorAll('[data-line]').length"
        ),
    }


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"median": None, "p95": None, "max": None}
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1),
        "max": round(ordered[-1], 1),
    }


def stored_log_run(bench: Bench, driver, service, lines: int) -> dict:
    task_id = f"viewer-{uuid.uuid4().hex[:10]}"
    began = time.monotonic()
    store_finished_log(bench.database_url, task_id, lines)
    seeded = time.monotonic() - began
    driver.execute_cdp_cmd("Performance.enable", {})
    identifier = probe(driver, lines)
    driver.get(page_url(service, task_id))  # warms the worker
    wait(driver, "return window.__bench.end")
    firsts, ends = [], []
    for _ in range(OPENS):
        driver.get("about:blank")
        driver.get(page_url(service, task_id))
        ends.append(wait(driver, "return window.__bench.end"))
        firsts.append(driver.execute_script("return window.__bench.first"))
    after_open = heap(driver)
    driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})
    began = time.monotonic()
    driver.execute_script("window.dispatchEvent(new KeyboardEvent('keydown', {key: 'Home'}))")
    wait(driver, "return document.querySelector('#window [data-line=\"1\"]:not(.pending)')")
    home = (time.monotonic() - began) * 1000
    jumps = []
    for line in random.Random(7).sample(range(1, lines + 1), JUMPS):
        began = time.monotonic()
        driver.execute_script(f"location.hash = '#L{line}'")
        wait(
            driver,
            f"return document.querySelector('#window .hl[data-line=\"{line}\"]:not(.pending)')",
        )
        jumps.append((time.monotonic() - began) * 1000)
    return {
        "lines": lines,
        "seed_s": round(seeded, 1),
        "first_line_ms": summary(firsts),
        "end_ms": summary(ends),
        "home_ms": round(home, 1),
        "jump_ms": summary(jumps),
        "after_open": after_open,
        "after_jumps": heap(driver),
    }


def follow_run(bench: Bench, driver, service, rate: float, seconds: float) -> dict:
    task = bench.cluster.new_task(steps=("a",))
    pod = task.pod("a")
    identifier = probe(driver, None)
    driver.get(page_url(service, task.task_id))
    wait(driver, "return document.getElementById('log-view').dataset.state === 'live'")
    count = int(rate * (seconds + WARM_UP))
    writer = SteadyWriter(bench.cluster.kube, [pod], rate, count, lambda seq: timed_line(seq))
    writer.start()
    time.sleep(WARM_UP)
    driver.execute_script("Object.assign(window.__bench, {lat: [], frames: 0, gap: 0})")
    window_began = time.monotonic()
    writer.join()
    window = time.monotonic() - window_began
    probe_state = driver.execute_script("return window.__bench")
    got_all = wait(
        driver,
        f"return [...window.tasklogsViewer.logs.values()][0].total === {count}",
        timeout=30,
        interval=0.05,
    )
    after = heap(driver)
    driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})
    bench.cluster.finish(task)
    return {
        "rate": rate,
        "seconds": round(window, 1),
        "written": writer.written,
        "writer_late_s": round(writer.late, 3),
        "fps": round(probe_state["frames"] / window, 1),
        "longest_frame_gap_ms": round(probe_state["gap"], 1),
        "latency_ms": summary(probe_state["lat"]),
        "latency_samples": len(probe_state["lat"]),
        "every_line": bool(got_all),
        "after": after,
    }


def viewer_run(bench: Bench, lines: int, rate: float, seconds: float) -> dict:
    service = bench.service("tasklogs")
    driver = start_chrome()
    try:
        stored = stored_log_run(bench, driver, service, lines)
        follow = follow_run(bench, driver, service, rate, seconds)
        return {
            "kind": "viewer",
            "service": "tasklogs",
            "stored": stored,
            "follow": follow,
            "health": service_health(service),
        }
    finally:
        driver.quit()
        service.stop()
