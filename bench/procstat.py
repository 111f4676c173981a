"""CPU and memory of processes, read from /proc (Linux only)."""

import os
import threading
import time
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found += [int(child) for child in listing.read().split()]
        except OSError:
            pass
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


@dataclass
class CpuWindow:
    """CPU used by named groups of processes between `start()` and `stop()`, as % of one core.

    `groups` maps a label to a callable returning the pids of that group at the time of the call
    (PostgreSQL backends come and go: a pid seen only at the end counts from zero)."""

    groups: dict

    def start(self) -> "CpuWindow":
        self._began = time.monotonic()
        self._before = {label: self._times(pids()) for label, pids in self.groups.items()}
        self._machine = machine_busy()
        return self

    def stop(self) -> dict:
        """{label: % of one core}, `other` (every other process on the machine, % of one core),
        `machine` (% of all cores busy) and `seconds`."""
        elapsed = time.monotonic() - self._began
        usage, ours = {}, 0.0
        for label, pids in self.groups.items():
            after, before = self._times(pids()), self._before[label]
            used = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
            usage[label], ours = round(100 * used / elapsed, 1), ours + used
        busy, total = machine_busy()
        busy, total = busy - self._machine[0], total - self._machine[1]
        usage["other"] = round(max(0.0, 100 * (busy - ours) / elapsed), 1)
        usage["machine"] = round(100 * busy / max(1e-9, total), 1)
        usage["seconds"] = round(elapsed, 2)
        return usage

    @staticmethod
    def _times(pids) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in pids}


class RssSampler(threading.Thread):
    """Reads a process's VmRSS every `interval` seconds until `stop()`; `peak` is the largest value seen
    (MB), `samples` every (monotonic time, MB)."""

    def __init__(self, pid: int, interval: float):
        super().__init__(name=f"rss-{pid}", daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.samples.append((time.monotonic(), rss_mb(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stopped.wait(self.interval)

    def stop(self) -> "RssSampler":
        self._stopped.set()
        self.join()
        return self

    def peak(self, since: float = 0.0) -> float:
        """The largest VmRSS (MB) sampled at or after monotonic time `since`."""
        return max((mb for when, mb in self.samples if when >= since), default=0.0)
