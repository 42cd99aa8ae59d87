"""Timing primitives of the latency harness: CUDA events after warm-up with L2 flushed before every call, or
``time.perf_counter`` per call on a CPU; every sample kept, the median and the p20/p80 spread reported.

The configurations compared with one another (same device, dtype, shape and mode) are timed in round-robin rounds
(:func:`time_interleaved`, as asv interleaves its benchmarks), so that drift over the run (clocks, other load)
touches every one of them alike; around each slot the machine's contention is read (:mod:`.contention`), and a
contaminated slot is measured again. Python's cyclic garbage collector is paused inside every timed slot, as
``timeit`` pauses it: a full collection walks every live object (up to 0.9 s with the decode mode's weight copies
alive, one of them measured inside a slot of the default preset), a cost of the process, not of the call timed.
"""

from __future__ import annotations

import copy
import gc
import math
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from kanbench.harness import contention as load

MIN_SAMPLES = 10  # per configuration, over all rounds
SAMPLE_MIN_S = 1e-3  # a CPU sample is one call where a call takes >= 1 ms, else the mean of enough calls for 1 ms
WARMUP_S = 0.05  # CPU warm-up per configuration, at least 3 calls
ROUNDS = 5  # interleaved rounds
REMEASURE = 2  # extra slots per configuration for slots measured while the machine was busy


@dataclass
class Timing:
    samples_ms: list[float]
    method: str
    contention: load.Contention | None = None  # over the kept slots; None where /proc is not readable
    remeasured: int = 0  # slots discarded and measured again because the machine was busy
    noisy: bool = False  # still contaminated after the re-measurements: the row's status says so

    def stats(self) -> dict[str, float]:
        s = np.asarray(self.samples_ms)
        return {"median": float(np.median(s)), "p20": float(np.percentile(s, 20)),
                "p80": float(np.percentile(s, 80)), "min": float(s.min()), "n": float(len(s))}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block (and back on after it, if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cpu_calls_per_sample(fn: Callable[[], object], warmup_s: float = WARMUP_S) -> int:
    """Warm up (at least 3 calls and ``warmup_s``), then how many calls one sample needs to last SAMPLE_MIN_S."""
    start, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < warmup_s:
        fn()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(1, math.ceil(SAMPLE_MIN_S / per_call)) if per_call > 0 else 1000


def time_cpu(fn: Callable[[], object], threads: int, min_run_time: float, min_samples: int = MIN_SAMPLES,
             calls: int | None = None) -> Timing:
    """At least ``min_samples`` samples and ``min_run_time`` seconds; each sample is one call (or the mean of
    ``calls`` calls where one is shorter than SAMPLE_MIN_S), timed with ``time.perf_counter``."""
    torch.set_num_threads(threads)
    calls = calls or cpu_calls_per_sample(fn)
    samples: list[float] = []
    with collector_paused():
        start = time.perf_counter()
        while len(samples) < min_samples or time.perf_counter() - start < min_run_time:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples.append((time.perf_counter() - t0) * 1e3 / calls)
    per_sample = "1 call" if calls == 1 else f"mean of {calls} calls"
    return Timing(samples, f"perf_counter, {per_sample} per sample, {threads} threads")


def l2_flush_buffer(device: torch.device) -> torch.Tensor:
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2**20) or 50 * 2**20
    return torch.empty(2 * l2 // 4, dtype=torch.float32, device=device)  # twice the L2, rewritten per call


def time_cuda(fn: Callable[[], object], samples: int, warmup_ms: float = 25.0, flush: bool = True,
              budget_s: float = 2.0) -> Timing:
    """Events around each call; the L2 is flushed (outside the events) before every call. Up to ``samples``
    samples, fewer (at least 10) where one call is so slow that they would take more than ``budget_s``."""
    device = torch.device("cuda", torch.cuda.current_device())
    cache = l2_flush_buffer(device) if flush else None
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    calls = 0
    while (time.perf_counter() - t0) * 1e3 < warmup_ms or calls < 2:
        fn()
        torch.cuda.synchronize()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    samples = max(10, min(samples, int(budget_s / per_call)))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(samples)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(samples)]
    with collector_paused():  # a collection would stall the host between the events: the GPU idles, timed
        for start, end in zip(starts, ends, strict=True):
            if cache is not None:
                cache.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
    return Timing([s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)],
                  f"CUDA events, {samples} samples, L2 {'flushed' if flush else 'warm'}")


def time_cuda_graph(fn: Callable[[], object], samples: int) -> Timing:
    """The same call captured in a CUDA graph and replayed: removes launch overhead (inference modes only)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    timing = time_cuda(graph.replay, samples)
    return Timing(timing.samples_ms, timing.method + ", CUDA graph replay")


def time_cuda_graph_training(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                              samples: int) -> Timing:
    """Forward+backward with both passes captured as CUDA graphs (``torch.cuda.make_graphed_callables``) and
    replayed: the kernels' time without the eager host overhead. Gradients are set to None before each call, as
    in the eager mode, so no accumulation add is timed.

    ``make_graphed_callables`` replaces a module's forward with the graph replay, so it gets a copy: the runner's
    module must keep a forward that dispatches its ops, for the FLOP and memory harnesses that run after this one."""
    module = copy.deepcopy(module)
    graphed = torch.cuda.make_graphed_callables(module, (x,))

    def fn() -> object:
        module.zero_grad(set_to_none=True)  # fresh gradients, as in eager mode: no accumulation add
        x.grad = None
        y = graphed(x)
        y.backward(upstream)
        return y

    timing = time_cuda(fn, samples)
    return Timing(timing.samples_ms, timing.method + ", forward and backward CUDA graphs")


def time_interleaved(fns: dict[Hashable, Callable[[], object]], device: str, threads: int, min_run_time: float,
                     samples: int, rounds: int = ROUNDS) -> dict[Hashable, Timing | BaseException]:
    """Time several configurations in ``rounds`` round-robin rounds (the order rotated each round), reading the
    machine's contention around every slot. A contaminated slot is discarded and measured again (up to
    REMEASURE extra slots per configuration); one still contaminated is kept and its Timing marked ``noisy``.
    A configuration that raises (OOM, a kernel failure) gets its exception and leaves the rounds."""
    is_cuda = torch.device(device).type == "cuda"
    results: dict[Hashable, Timing | BaseException] = {}
    calls: dict[Hashable, int] = {}
    for key, fn in fns.items():  # warm up every configuration before the first round
        try:
            calls[key] = 1 if is_cuda else cpu_calls_per_sample(fn)
        except Exception as err:  # noqa: BLE001 - recorded as the configuration's row
            results[key] = err
    kept: dict[Hashable, list[Timing]] = {key: [] for key in calls}
    redo = dict.fromkeys(calls, 0)
    order = list(calls)
    per_round = max(1, math.ceil(MIN_SAMPLES / rounds))
    for r in range(rounds):
        shift = r % len(order) if order else 0
        for key in order[shift:] + order[:shift]:  # each round starts one configuration later
            if key in results:
                continue
            while True:
                before = load.snapshot()
                try:
                    slot = (time_cuda(fns[key], max(per_round, samples // rounds)) if is_cuda else
                            time_cpu(fns[key], threads, min_run_time / rounds, per_round, calls[key]))
                except Exception as err:  # noqa: BLE001
                    results[key] = err
                    break
                slot.contention = load.between(before, load.snapshot())
                if slot.contention is not None and slot.contention.contaminated and redo[key] < REMEASURE:
                    redo[key] += 1
                    continue
                kept[key].append(slot)
                break
    for key, slots in kept.items():
        if key in results:
            continue
        known = [s.contention for s in slots if s.contention is not None]
        combined = sum(known[1:], known[0]) if known else None
        results[key] = Timing([ms for s in slots for ms in s.samples_ms],
                              f"{slots[0].method}, {len(slots)} interleaved rounds",
                              combined, redo[key], any(c.contaminated for c in known))
    return results
