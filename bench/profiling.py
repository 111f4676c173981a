"""Optional looks inside the worker: py-spy samples (--profile) and garbage-collection pauses (--gc-probe)."""

import os
import shutil
import subprocess
import sys

GC_PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gcprobe")


class Profile:
    """py-spy sampling a process for `seconds`; `summary()` -> its hottest functions (own and inclusive %)."""

    def __init__(self, pid: int, seconds: float, path: str, rate: int = 200, gil: bool = False):
        """`rate`: samples per second (py-spy needs far longer per sample of a process with hundreds of
        threads); `gil`: sample only the thread holding the GIL (where a threaded process's CPU goes)."""
        self.path = path
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        self.process = (
            None
            if not os.path.exists(spy)
            else subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--output",
                    path,
                    "--nonblocking",
                    *(["--gil"] if gil else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def summary(self, top: int = 15) -> dict:
        if self.process is None:
            return {"error": "py-spy is not installed (pip install py-spy)"}
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return {"error": "py-spy did not finish within a minute of its duration"}
        if not os.path.exists(self.path):
            return {"error": "py-spy wrote nothing (is ptrace allowed?)"}
        own, inclusive, total = {}, {}, 0
        with open(self.path) as stacks:
            for line in stacks:
                stack, _, count = line.rpartition(" ")
                frames, count = stack.split(";"), int(count)
                total += count
                own[frames[-1]] = own.get(frames[-1], 0) + count
                for frame in set(frames):
                    inclusive[frame] = inclusive.get(frame, 0) + count

        def hottest(table):
            return [
                (frame, round(100 * n / total, 1))
                for frame, n in sorted(table.items(), key=lambda item: -item[1])[:top]
            ]

        return {
            "file": self.path,
            "samples": total,
            "own_pct": hottest(own),
            "inclusive_pct": hottest(inclusive),
        }


def gc_pauses(log_path: str | None, pid: int, start: float, end: float) -> dict | None:
    """The worker's collections between two unix times (from the --gc-probe log): count, longest, total ms."""
    if not log_path or not os.path.exists(log_path):
        return None
    pauses = []
    with open(log_path) as log:
        for line in log:
            when, who, generation, milliseconds = line.split()
            if int(who) == pid and start <= float(when) <= end:
                pauses.append((int(generation), float(milliseconds)))
    full = [ms for generation, ms in pauses if generation == 2]
    return {
        "full_collections": len(full),
        "longest_ms": max((ms for _, ms in pauses), default=0.0),
        "total_ms": round(sum(ms for _, ms in pauses), 1),
    }
