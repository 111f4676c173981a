"""Loaded at start-up by the service's Python when the bench runs with --gc-probe (this directory comes first
on PYTHONPATH). Appends every garbage-collection pass of 1 ms or more to $BENCH_GC_LOG as
`<unix time> <pid> <generation> <milliseconds>`: a full collection blocks the gevent hub, so every viewer
waits."""

import gc
import os
import time

_LOG = os.environ.get("BENCH_GC_LOG")
_began = [0.0]


def _timed(phase, info):
    if phase == "start":
        _began[0] = time.perf_counter()
        return
    milliseconds = (time.perf_counter() - _began[0]) * 1000
    if milliseconds >= 1:
        with open(_LOG, "a") as log:
            log.write(f"{time.time():.3f} {os.getpid()} {info['generation']} {milliseconds:.1f}\n")


if _LOG:
    gc.callbacks.append(_timed)
