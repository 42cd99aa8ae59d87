"""Memory: parameter bytes; the impl's own buffers (caches it keeps beside its parameters, such as the sparse decode
paths' neuron-major weight copy); bytes saved for backward (saved-tensor hooks: works on every device); and the peak
allocated during one call over a clean baseline (parameters, input and the impl's buffers only: no gradients or
outputs left from an earlier call). On CUDA the caching allocator keeps the peak; on a CPU it is rebuilt from
torch.profiler's memory events, every allocation and free of torch's CPU allocator in order, by their running sum.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from kanbench.harness.base import PerConfiguration, Rows, register_harness
from kanbench.harness.context import RunContext
from kanbench.harness.results import Config
from kanbench.harness.timing import collector_paused
from kanbench.harness.workload import workload


def parameter_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _tensors_in(value: object, depth: int = 2) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif depth > 0 and isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors_in(item, depth - 1)
    elif depth > 0 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item, depth - 1)


def impl_buffer_bytes(module: torch.nn.Module) -> int:
    """Bytes of the tensors a module keeps outside its parameters (registered buffers and plain attributes such
    as caches), each storage counted once. Run a forward first: lazy caches exist only after one."""
    parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}
    for m in module.modules():
        for name, value in vars(m).items():
            if name in ("_parameters", "_modules"):
                continue
            for t in _tensors_in(value):
                storage = t.untyped_storage()
                if storage.data_ptr() not in parameters and not t.is_meta:
                    storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def saved_for_backward_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward of ``module(x)``, parameters excluded (they
    are held anyway); the input counts, since a layer that saves it keeps it alive."""
    parameter_storages = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    x = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(storages.values())


def clear_gradients(modules: Iterable[torch.nn.Module], x: torch.Tensor) -> None:
    """Drop every gradient a previous call left (on the modules and the input), so that a baseline holds none."""
    for module in modules:
        module.zero_grad(set_to_none=True)
    x.grad = None


def peak_over_baseline_bytes(fn: Callable[[], object], device: str, modules: Iterable[torch.nn.Module],
                             x: torch.Tensor) -> int:
    """Peak bytes allocated during ``fn()`` above a clean baseline: gradients of earlier calls are dropped and
    freed first, or the call would free them and the peak would under-count what it needs."""
    clear_gradients(modules, x)
    peak = _cuda_peak(fn, device) if torch.device(device).type == "cuda" else _cpu_peak(fn)
    clear_gradients(modules, x)
    return peak


def _cuda_peak(fn: Callable[[], object], device: str) -> int:
    gc.collect()  # garbage of earlier calls out of the baseline (memory_allocated counts it)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - baseline
    del result
    return peak


def _cpu_peak(fn: Callable[[], object]) -> int:
    """The highest running sum of the CPU allocator's allocations (+) and frees (-) during ``fn()``, from the
    profiler's ``[memory]`` events (Chrome-trace export: the public record of them). The profiler sees the calling
    thread's allocations, which hold an op's outputs, workspaces and autograd's buffers; scratch a kernel allocates
    inside its intra-op worker threads (rare) is not seen. Only the call's own allocations count: a block allocated
    before the profiler started is freed without an event, so earlier garbage needs no collection first (one cost
    0.1-0.3 s a unit and changed nothing here)."""
    # stderr silenced: kineto logs two lines per session at any log level, and the allocator one warning per
    # thousand frees of blocks older than the session; the call ran before, so it has nothing new to say there
    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with collector_paused():
            result = fn()
            del result
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    changes = sorted((e for e in events if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type") == 0),
                     key=lambda e: e["ts"])  # stable: events at one timestamp stay in the order recorded
    live = peak = 0
    for event in changes:
        live += int(event["args"]["Bytes"])
        peak = max(peak, live)
    return peak


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null inside the block: C++ logging bypasses Python's sys.stderr. Where
    the process has no descriptor 2 (a daemon), there is nothing to silence."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@register_harness
class Memory(PerConfiguration):
    name = "memory"

    def measure(self, ctx: RunContext, config: Config, mode: str) -> Rows:
        module = ctx.module(config)
        params = sum(p.numel() for p in module.parameters())
        work = workload(config, mode, module)
        work.fn()  # lazy caches (a sparse path's weight layout) exist after one call and are counted
        buffers, weights = impl_buffer_bytes(module), parameter_bytes(module)
        rows = [ctx.row(config, self.name, mode, "param_bytes", weights, "B", params=params),
                ctx.row(config, self.name, mode, "impl_buffer_bytes", buffers, "B", params=params,
                        message="tensors the module keeps beside its parameters (buffers, caches)"),
                ctx.row(config, self.name, mode, "resident_bytes", weights + buffers, "B", params=params,
                        message="parameters + impl buffers: held between calls")]
        clear_gradients(work.modules, work.x)
        if mode == "fwd_bwd":
            rows.append(ctx.row(config, self.name, mode, "saved_for_backward",
                                saved_for_backward_bytes(module, work.x), "B", params=params,
                                message="distinct saved tensors, parameters excluded"))
        how = ("max_memory_allocated during one call minus memory_allocated before it"
               if config.device.startswith("cuda") else
               "the CPU allocator's bytes during one call over those before it (torch.profiler memory events, "
               "the calling thread's allocations)")
        rows.append(ctx.row(config, self.name, mode, "peak_over_baseline",
                            peak_over_baseline_bytes(work.fn, config.device, work.modules, work.x), "B",
                            params=params, message=f"{how}, no gradients left over"))
        return rows
