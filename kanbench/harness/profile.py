"""The profile harness, run only when named (``--harness latency,profile``; never part of a preset's harnesses):
where one call's time goes, kernel by kernel, so that a missed target can name what limits it.

After a warm-up, torch.profiler records ``CALLS`` calls of the workload the latency harness times (decode over the
same rotated weight copies). On a GPU every call follows the latency harness's L2 flush, run under the
``kanbench::l2_flush`` annotation so that its kernels can be taken out of the table again; the table holds every
kernel (and copy or memset) the device ran, by name, device time summed and divided by the calls. On a CPU it holds
the operators by their self time (their children's excluded), leaf operators counted as launches. Rows per
configuration and mode:

- ``profile_busy`` (ms per call): the table's sum, the device's busy time; beside the latency median it says how
  much of a call is launch gaps and host work;
- ``profile_launches`` (count per call): kernels launched (on a CPU, leaf operators called);
- ``profile_kernel`` (ms per call): one row for each of the ``TOP`` longest kernels, its name, runs per call and
  share of the busy time in the message.

A profile is a diagnosis, not a latency figure: the profiler's bookkeeping slows the host side, so the latency
harness's median stays the figure to quote. Like a timing it passes the gate, skips a kernel that runs only in an
emulator here, and is ``noisy`` where other processes took the CPU while it recorded (or, for a recording shorter
than ``MIN_WINDOW_S``, in the ``MIN_WINDOW_S`` after it). Where the run has a folder, each profile's Chrome trace is
kept in ``profiles/`` (gzipped; Perfetto and chrome://tracing open it).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from kanbench.harness import contention as load
from kanbench.harness.base import PerConfiguration, Rows, register_harness
from kanbench.harness.context import RunContext
from kanbench.harness.results import Config
from kanbench.harness.timing import collector_paused, l2_flush_buffer
from kanbench.harness.workload import copies_budget_bytes, decode_copies, weight_bytes, workload

CALLS = 10
WARMUP_CALLS = 3
TOP = 8
FLUSH = "kanbench::l2_flush"
DEVICE_TYPES = (DeviceType.CUDA, DeviceType.XPU, DeviceType.PrivateUse1)
# /proc/stat counts CPU time in 10 ms ticks: over a few milliseconds one tick reads as a busy machine, so a shorter
# recording is judged by the machine's load over this long instead, read right after it
MIN_WINDOW_S = 0.2


@dataclass
class KernelTime:
    """One kernel (or CPU operator) summed over the profiled calls: its time, how often it ran, and how many of
    those runs launched work (a CPU operator that calls others does not; a kernel always does)."""

    name: str
    us: float = 0.0
    runs: int = 0
    launches: int = 0


def _subtree_kernels(event) -> Iterable[tuple[str, float]]:
    """The device kernels launched under a CPU event, its children's included (name, µs)."""
    for kernel in event.kernels:
        yield kernel.name, kernel.duration
    for child in event.cpu_children:
        yield from _subtree_kernels(child)


def device_table(events: Iterable, flushes_expected: int) -> dict[str, KernelTime]:
    """Every device event (kernel, copy, memset) by name, the kernels of the ``FLUSH`` annotations taken out. The
    annotations' own device-side ranges are not kernels (torch's own tables leave them out too). Each flush must
    have launched at least one kernel: otherwise the profiler did not link them, the table would hold the flush,
    and that is an error, not a profile."""
    events = list(events)
    table: dict[str, KernelTime] = {}
    for evt in events:
        if evt.device_type in DEVICE_TYPES and not evt.is_user_annotation and evt.name != FLUSH:
            entry = table.setdefault(evt.name, KernelTime(evt.name))
            entry.us += evt.time_range.elapsed_us()
            entry.runs += 1
            entry.launches += 1
    if not table:
        raise RuntimeError("the profiler recorded no device kernels: torch's profiler needs CUPTI (on ROCm, "
                           "roctracer) to see the GPU; check `python -m torch.utils.collect_env`")
    flushes = [e for e in events if e.device_type == DeviceType.CPU and e.name == FLUSH]
    linked = [list(_subtree_kernels(f)) for f in flushes]
    if len(flushes) != flushes_expected or not all(linked):
        raise RuntimeError(f"the profiler linked kernels to {sum(map(bool, linked))} of the {flushes_expected} L2 "
                           "flushes: the flush cannot be taken out of this profile, so it gives no table")
    for name, us in (k for kernels in linked for k in kernels):
        entry = table.get(name)
        if entry is None or entry.launches == 0:
            raise RuntimeError(f"the L2 flush's kernel {name} is not among the device's events: the flush cannot "
                               "be taken out of this profile, so it gives no table")
        entry.us -= us
        entry.runs -= 1
        entry.launches -= 1
    return {name: entry for name, entry in table.items() if entry.runs > 0}


def operator_table(events: Iterable) -> dict[str, KernelTime]:
    """CPU operators by self time; launches count the leaf operators (those that call no other)."""
    table: dict[str, KernelTime] = {}
    for evt in events:
        if evt.device_type != DeviceType.CPU or evt.is_async or evt.is_user_annotation:
            continue
        entry = table.setdefault(evt.name, KernelTime(evt.name))
        entry.us += evt.self_cpu_time_total
        entry.runs += 1
        entry.launches += not evt.cpu_children
    return table


def trace_name(config: Config, mode: str) -> str:
    """A file name per configuration and mode (hyperparameters as a short hash: they may hold any text)."""
    hp = f"-{hashlib.sha1(config.hparams_json().encode()).hexdigest()[:8]}" if config.hparams else ""
    return (f"{config.variant}-{config.impl}-{config.form}-{config.dtype}-{config.tokens}x{config.d_model}"
            f"x{config.d_hidden}{hp}-seed{config.seed}-{mode}.json.gz")


def save_trace(prof: profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_suffix("")  # .json
    prof.export_chrome_trace(str(plain))
    with plain.open("rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain.unlink()


def profile_calls(fn: Callable[[], object], device: str,
                  calls: int = CALLS) -> tuple[dict[str, KernelTime], profile, load.Contention | None]:
    """``calls`` profiled calls of ``fn`` after ``WARMUP_CALLS``: the table (:func:`device_table` on a GPU,
    :func:`operator_table` on a CPU), the profiler, and the machine's contention while it recorded."""
    on_gpu = torch.device(device).type == "cuda"
    cache = l2_flush_buffer(torch.device(device)) if on_gpu else None
    for _ in range(WARMUP_CALLS):
        fn()
    if on_gpu:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    start = load.snapshot()
    with collector_paused(), profile(activities=activities) as prof:
        for _ in range(calls):
            if cache is not None:
                with record_function(FLUSH):
                    cache.zero_()
            fn()
        if on_gpu:
            torch.cuda.synchronize()
    contention = load.between(start, load.snapshot())
    if contention is not None and contention.wall_s < MIN_WINDOW_S:
        contention = load.machine_load(MIN_WINDOW_S)
    events = prof.events()
    return (device_table(events, calls) if on_gpu else operator_table(events)), prof, contention


@register_harness
class Profile(PerConfiguration):
    name = "profile"
    on_request = True
    timed = True

    def measure(self, ctx: RunContext, config: Config, mode: str) -> Rows:
        module = ctx.module(config)
        params = sum(p.numel() for p in module.parameters())
        copies, note = 1, ""
        if mode == "decode":
            copies, note = decode_copies(weight_bytes(module), config.device, ctx.plan.preset.weight_copies,
                                         copies_budget_bytes(config.device))
        work = workload(config, mode, module, copies)
        table, prof, contention = profile_calls(work.fn, config.device)
        status = "noisy" if contention is not None and contention.contaminated else "ok"
        on_gpu = config.device.startswith("cuda")
        what = ("device kernels, L2 flushed before each call (the flush's kernels taken out)" if on_gpu else
                "CPU operators by self time")
        how = f"torch.profiler over {CALLS} calls after {WARMUP_CALLS} warm-up calls; {what}"
        if ctx.out_dir is not None:
            path = ctx.out_dir / "profiles" / trace_name(config, mode)
            save_trace(prof, path)
            how += f"; trace {path.relative_to(ctx.out_dir)}"
        busy_machine = f"machine busy: {contention.describe()}" if status == "noisy" else ""
        how = "; ".join(filter(None, [how, note, busy_machine]))
        busy = sum(k.us for k in table.values()) / CALLS / 1e3
        launches = sum(k.launches for k in table.values()) / CALLS
        rows = [ctx.row(config, self.name, mode, "profile_busy", busy, "ms", "mean", params, status, how),
                ctx.row(config, self.name, mode, "profile_launches", launches, "count", "mean", params, status,
                        "kernels launched per call" if on_gpu else "leaf operators (that call no other) per call")]
        ranked = sorted(table.values(), key=lambda k: k.us, reverse=True)[:TOP]
        for rank, kernel in enumerate(ranked, 1):
            share = kernel.us / 1e3 / CALLS / busy if busy else 0.0
            rows.append(ctx.row(config, self.name, mode, "profile_kernel", kernel.us / CALLS / 1e3, "ms", "mean",
                                params, status, f"#{rank} {kernel.name[:160]}: {kernel.runs / CALLS:g} per call, "
                                                f"{share:.1%} of the busy time"))
        return rows
