"""Was the machine busy while we measured? Read from /proc around each timed slot (Linux; elsewhere unknown).

Two signals, both immune to what our own process does:

- ``wait_share``: seconds our threads sat runnable on a run queue without a CPU (``/proc/self/task/*/schedstat``,
  field 2, in ns) per wall-clock second. Another process on our cores shows here directly: measured on the 2-core
  development machine, a 1 s matmul loop on 2 threads waited 0.03 s idle and 0.82 s with one busy-loop process.
- ``others_share``: CPU time every other process used (``/proc/stat`` busy ticks minus our own run time) over the
  machine's capacity (wall time × cores), plus ``steal_share``, time the hypervisor gave our virtual CPUs away.

A slot is *contaminated* when either share passes its limit; the latency harness then measures the slot again
and, if it stays contaminated, marks the row ``noisy`` rather than ``ok``.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass

WAIT_LIMIT = 0.10  # our threads queued for 10 % of the wall time
OTHERS_LIMIT = 0.20  # other processes used a fifth of the machine
STEAL_LIMIT = 0.10
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    wall: float
    own_run_ns: int
    own_wait_ns: int
    busy_ticks: int
    steal_ticks: int


@dataclass(frozen=True)
class Contention:
    wall_s: float
    wait_share: float
    others_share: float
    steal_share: float

    @property
    def contaminated(self) -> bool:
        return (self.wait_share > WAIT_LIMIT or self.others_share > OTHERS_LIMIT
                or self.steal_share > STEAL_LIMIT)

    def describe(self) -> str:
        return (f"our threads waited {self.wait_share:.0%} of {self.wall_s:.2f} s for a CPU, other processes used "
                f"{self.others_share:.0%} of the machine, steal {self.steal_share:.0%}")

    def __add__(self, other: Contention) -> Contention:
        """Wall-time-weighted combination of two slots."""
        wall = self.wall_s + other.wall_s
        if wall <= 0:
            return self

        def mix(a: float, b: float) -> float:
            return (a * self.wall_s + b * other.wall_s) / wall

        return Contention(wall, mix(self.wait_share, other.wait_share), mix(self.others_share, other.others_share),
                          mix(self.steal_share, other.steal_share))


def snapshot() -> Snapshot | None:
    """The counters now, or None where /proc does not have them."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        run = wait = 0
        for path in glob.glob("/proc/self/task/*/schedstat"):
            try:
                with open(path) as f:
                    values = f.read().split()
            except OSError:  # a thread that ended between glob and open
                continue
            run, wait = run + int(values[0]), wait + int(values[1])
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return Snapshot(time.perf_counter(), run, wait, user + nice + system + irq + softirq, steal)


def between(start: Snapshot | None, end: Snapshot | None) -> Contention | None:
    """What happened between two snapshots (None if either is unknown)."""
    if start is None or end is None or end.wall <= start.wall:
        return None
    wall = end.wall - start.wall
    capacity = wall * (os.cpu_count() or 1)
    own_run = (end.own_run_ns - start.own_run_ns) / 1e9
    others = max(0.0, (end.busy_ticks - start.busy_ticks) / _TICK - own_run)
    return Contention(wall, (end.own_wait_ns - start.own_wait_ns) / 1e9 / wall, others / capacity,
                      (end.steal_ticks - start.steal_ticks) / _TICK / capacity)


def machine_load(seconds: float = 0.5) -> Contention | None:
    """The other processes' share of the machine over ``seconds`` while this process sleeps (``kanbench run``
    warns before measuring when it is over the limit)."""
    start = snapshot()
    time.sleep(seconds)
    return between(start, snapshot())
