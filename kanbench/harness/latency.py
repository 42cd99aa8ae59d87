"""The latency harness: modes ``fwd_no_grad``, ``fwd_bwd`` and ``decode``, each beside its physical floors.

The configurations a table compares (same device, dtype, form, shape, seed and mode) are one batch, timed together
in interleaved rounds with the machine's contention read around every slot (:mod:`.timing`, :mod:`.contention`).
Each configuration then gets its statistics (``noisy`` where the machine stayed busy), every sample in
samples.csv, its contention rows, an optional CUDA-graph column, and its floors (:mod:`.floors`).
"""

from __future__ import annotations

from typing import Any

import torch

from kanbench.harness import timing
from kanbench.harness.base import Harness, Rows, Unit, register_harness
from kanbench.harness.context import RunContext, describe, status_of
from kanbench.harness.floors import floor_rows
from kanbench.harness.results import Config
from kanbench.harness.workload import (
    Workload,
    copies_budget_bytes,
    decode_copies,
    fitting_chunks,
    output_width,
    weight_bytes,
    workload,
)


def comparison_group(unit: Unit) -> tuple:
    """Latency units timed together: what a table compares side by side (variants and impls at one shape)."""
    config, _, mode = unit
    return (config.device, config.dtype, config.form, config.tokens, config.d_model, config.seed, mode)


@register_harness
class Latency(Harness):
    name = "latency"

    def batches(self, units: list[Unit]) -> list[list[Unit]]:
        groups: dict[tuple, list[Unit]] = {}
        for unit in units:
            groups.setdefault(comparison_group(unit), []).append(unit)
        return list(groups.values())

    def rows(self, ctx: RunContext, batch: list[Unit]) -> list[Rows]:
        """Rows per unit of a comparison group: the units that may be timed are timed in interleaved rounds. Where
        the decode units' weight copies would not all fit in memory at once, the group is timed in consecutive
        chunks that do, each interleaved, and their rows say with how many of the group they were timed."""
        rows: dict[int, Rows] = {}
        prepared: dict[int, tuple[torch.nn.Module, int, str]] = {}
        sizes: dict[int, int] = {}  # bytes of each configuration's weight copies (0: not copied)
        budget = copies_budget_bytes(batch[0][0].device) if any(mode == "decode" for _, _, mode in batch) else 0
        for i, (config, _, mode) in enumerate(batch):
            refused = ctx.refusal(config, self.name, mode, timed=True)
            if refused:
                rows[i] = refused
                continue
            try:
                module = ctx.module(config)
                size = weight_bytes(module) if mode == "decode" else 0
                copies, note = (decode_copies(size, config.device, ctx.plan.preset.weight_copies, budget)
                                if mode == "decode" else (1, ""))
                prepared[i] = (module, copies, note)
                sizes[i] = size * copies if copies > 1 else 0
            except Exception as err:  # noqa: BLE001 - the row says what failed; the group goes on
                rows[i] = ctx.failure(config, self.name, mode, err)
        chunks = fitting_chunks(sizes, budget)  # one chunk where nothing is copied (every size 0)
        for chunk in chunks:
            together = "" if len(chunks) == 1 else (
                f"timed interleaved with {len(chunk) - 1} of the other {len(prepared) - 1} configurations of its "
                f"group (all their weight copies would not fit in half the free memory, {budget / 2**30:.1f} GiB)")
            rows.update(self.time_chunk(ctx, batch, {i: prepared[i] for i in chunk}, together))
        return [rows[i] for i in range(len(batch))]

    def time_chunk(self, ctx: RunContext, batch: list[Unit], prepared: dict[int, tuple[torch.nn.Module, int, str]],
                   together: str) -> dict[int, Rows]:
        """Build the chunk's workloads (its weight copies), time them interleaved, and let the copies go."""
        rows: dict[int, Rows] = {}
        works: dict[int, tuple[Workload, str]] = {}
        for i, (module, copies, note) in prepared.items():
            config, _, mode = batch[i]
            try:
                works[i] = (workload(config, mode, module, copies), "; ".join(filter(None, [note, together])))
            except Exception as err:  # noqa: BLE001 - the row says what failed; the group goes on
                rows[i] = ctx.failure(config, self.name, mode, err)
        if not works:
            return rows
        timings = timing.time_interleaved({i: work.fn for i, (work, _) in works.items()}, batch[0][0].device,
                                          ctx.plan.threads, ctx.plan.min_run_time, ctx.plan.samples)
        for i, result in timings.items():
            config, _, mode = batch[i]
            try:
                if isinstance(result, BaseException):
                    raise result
                rows[i] = self.config_rows(ctx, config, mode, result, *works[i])
            except Exception as err:  # noqa: BLE001
                rows[i] = ctx.failure(config, self.name, mode, err)
        return rows

    def config_rows(self, ctx: RunContext, config: Config, mode: str, measured: timing.Timing, work: Workload,
                    copies_note: str) -> Rows:
        module = ctx.module(config)
        params = sum(p.numel() for p in module.parameters())
        timings = [(measured, "latency")]
        rows: Rows = []
        if ctx.plan.cuda_graph and config.device.startswith("cuda"):
            try:
                timings.append((self.graph_timing(ctx, config, mode, module, work), "latency_cuda_graph"))
            except Exception as err:  # noqa: BLE001 - e.g. a host sync (nonzero) cannot be captured; keep eager
                rows.append(ctx.row(config, self.name, mode, "latency_cuda_graph", None, "ms", "median", params,
                                    status_of(err), f"CUDA graph not captured: {describe(err)}"))
        busy = f"; machine busy: {measured.contention.describe()}" if measured.noisy else ""
        for t, metric in timings:
            for i, ms in enumerate(t.samples_ms):
                ctx.samples.writerow([ctx.run_id, config.variant, config.impl, config.form, mode, config.device,
                                      config.dtype, config.tokens, config.d_model, config.d_hidden,
                                      config.hparams_json(), config.seed, t.method, i, ms])
            message = "; ".join(filter(None, [t.method, copies_note])) + busy
            status = "noisy" if measured.noisy and metric == "latency" else "ok"
            for stat, value in t.stats().items():
                rows.append(ctx.row(config, self.name, mode, metric, value, "count" if stat == "n" else "ms", stat,
                                    params, status, message))
        ctx.flush_samples()
        rows += self.contention_rows(ctx, config, mode, measured, params)
        rows += self.compile_rows(ctx, config, mode, module, work, params)
        for metric, value, unit, message in floor_rows(config, mode, params, ctx.ceilings, module, work.x,
                                                       measured.stats()["median"]):
            rows.append(ctx.row(config, self.name, mode, metric, value, unit, params=params, message=message))
        return rows

    @staticmethod
    def graph_timing(ctx: RunContext, config: Config, mode: str, module: torch.nn.Module,
                     work: Workload) -> timing.Timing:
        if mode == "fwd_bwd":
            upstream = torch.randn(config.tokens, output_width(config), device=config.device,
                                   dtype=config.torch_dtype)
            return timing.time_cuda_graph_training(module, work.x, upstream, ctx.plan.samples)
        return timing.time_cuda_graph(work.fn, ctx.plan.samples)

    def compile_rows(self, ctx: RunContext, config: Config, mode: str, module: torch.nn.Module, work: Workload,
                     params: int) -> list[dict[str, Any]]:
        """``compile_time`` (s) of a module that records its compilations (the ``compiled`` impl): the first
        forward of this input shape and grad mode, and with gradients the first backward; each ran in the gate."""
        seconds = getattr(module, "compile_seconds", None)
        if not seconds:
            return []
        key = (tuple(work.x.shape), work.x.dtype, mode == "fwd_bwd")
        if key not in seconds:
            return []
        what = "first forward and backward" if key[2] else "first forward"
        return [ctx.row(config, self.name, mode, "compile_time", seconds[key], "s", params=params,
                        message=f"{what} of this shape, compilation included; {module.cache_note(key)}")]

    def contention_rows(self, ctx: RunContext, config: Config, mode: str, measured: timing.Timing,
                        params: int) -> list[dict[str, Any]]:
        if measured.contention is None:  # /proc not readable here: nothing known, nothing claimed
            return []
        how = f"{measured.contention.describe()}; {measured.remeasured} busy slot(s) measured again"
        return [ctx.row(config, self.name, mode, "cpu_wait_share", measured.contention.wait_share, "fraction",
                        params=params, message=how),
                ctx.row(config, self.name, mode, "cpu_others_share", measured.contention.others_share, "fraction",
                        params=params, message=how)]
