"""The sweep behind ``kanbench run``: plan the configurations, then for each one gate, time, count and measure,
writing rows as they come. A failure (OOM, NaN, a kernel error, an impl that cannot run here) becomes a row with its
status and the sweep goes on.

The correctness gate is the one door: no harness measures a configuration before its gate has passed, and a
configuration the gate rejects gets a row with the gate's status in every harness, never a number. Latency units
that are compared with one another (same device, dtype, form, shape, seed and mode) are timed together, in
interleaved rounds (:func:`kanbench.harness.latency.time_interleaved`)."""

from __future__ import annotations

import csv
import traceback
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kanbench import registry
from kanbench.harness import accuracy, correctness, flops, latency, memory
from kanbench.harness.env import DTYPES
from kanbench.harness.floors import floor_rows
from kanbench.harness.plan import Plan
from kanbench.harness.results import (
    Config,
    ResultWriter,
    done_keys,
    recorded_rows,
    repair_partial_tail,
    row,
    unit_key,
)
from kanbench.harness.workload import build, decode_copies, output_width, workload

Unit = tuple[Config, str, str]  # (configuration, harness, mode or task)


OOM_TEXTS = ("out of memory", "can't allocate memory", "defaultcpuallocator")


def _status_of(err: BaseException) -> str:
    """oom for the CUDA caching allocator, the CPU allocator ("DefaultCPUAllocator: can't allocate memory") and
    Python's MemoryError; error for anything else."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or any(t in str(err).lower() for t in OOM_TEXTS):
        return "oom"
    return "error"


def _describe(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


def comparison_group(unit: Unit) -> tuple:
    """Latency units timed together: what a table compares side by side (variants and impls at one shape)."""
    config, _, mode = unit
    return (config.device, config.dtype, config.form, config.tokens, config.d_model, config.seed, mode)


def batches(units: list[Unit]) -> list[list[Unit]]:
    """Each latency comparison group as one batch (at its first unit's place), every other unit alone."""
    groups: dict[tuple, list[Unit]] = {}
    for unit in units:
        if unit[1] == "latency":
            groups.setdefault(comparison_group(unit), []).append(unit)
    out, emitted = [], set()
    for unit in units:
        if unit[1] != "latency":
            out.append([unit])
        elif (group := comparison_group(unit)) not in emitted:
            emitted.add(group)
            out.append(groups[group])
    return out


class Runner:
    """Runs a plan into ``out_dir``: results.csv, samples.csv (every timing sample)."""

    def __init__(self, plan: Plan, out_dir: Path, run_id: str, ceilings: dict[str, float], resume: bool,
                 session: int = 0) -> None:
        self.plan, self.out_dir, self.run_id, self.ceilings, self.session = plan, out_dir, run_id, ceilings, session
        results, samples_path = out_dir / "results.csv", out_dir / "samples.csv"
        self.repairs = [m for m in (repair_partial_tail(results), repair_partial_tail(samples_path)) if m]
        recorded = recorded_rows(results) if resume else []
        self.done = done_keys(recorded)
        # the gate's verdicts already on file: a resumed run reuses them and never writes a second gate row
        self._gates: dict[tuple, correctness.GateResult] = {
            unit_key(r): correctness.GateResult(r["status"] == "ok", float(r["value"] or "inf"), r["message"],
                                                r["status"])
            for r in recorded if r["harness"] == "correctness"}
        self.writer = ResultWriter(results)
        new = not samples_path.exists() or samples_path.stat().st_size == 0
        self._samples_file = samples_path.open("a", newline="")
        self._samples = csv.writer(self._samples_file)
        if new:
            self._samples.writerow(["run_id", "variant", "impl", "form", "mode", "device", "dtype", "tokens",
                                    "d_model", "d_hidden", "hparams", "seed", "method", "sample", "ms"])
            self._samples_file.flush()
        self._modules: dict[tuple, torch.nn.Module] = {}

    def _row(self, config: Config, harness: str, mode: str, metric: str, value: float | None, unit: str,
             stat: str = "value", params: int | None = None, status: str = "ok", message: str = "") -> dict[str, Any]:
        return row(config, self.run_id, harness, mode, metric, value, unit, stat, params, status, message,
                   self.session)

    # -- per configuration state -------------------------------------------------------------------------------
    def module(self, config: Config) -> torch.nn.Module:
        """The configuration's module, built once per batch (the run loop releases them between batches)."""
        key = config.key("", "")
        if key not in self._modules:
            self._modules[key] = build(config)
        return self._modules[key]

    def gate(self, config: Config) -> correctness.GateResult:
        """The configuration's gate verdict: recorded on file, or checked now and written as its own row."""
        key = config.key("correctness", "check")
        if key not in self._gates:
            try:
                result = correctness.gate(config, self.module(config))
            except Exception as err:  # noqa: BLE001 - a gate that cannot run (OOM in float64) measures nothing
                result = correctness.GateResult(False, float("inf"), f"the gate could not run: {_describe(err)}",
                                                _status_of(err))
            self._gates[key] = result
            value = result.max_error if result.max_error != float("inf") else None
            self.writer.write([self._row(config, "correctness", "check", "max_rel_error", value, "relative",
                                         status=result.status, message=result.message)])
        return self._gates[key]

    def refusal(self, config: Config, harness: str, mode: str) -> list[dict[str, Any]] | None:
        """The row that stands instead of a measurement, or None when the configuration may be measured: the impl
        cannot run here (skipped), the gate rejected it (its status, for every harness), or a timing would only
        measure an emulator (skipped)."""
        impl = registry.get_variant(config.variant).impl(config.impl)
        why_not = impl.why_not(config.device, DTYPES[config.dtype])
        if why_not:
            return [self._row(config, harness, mode, harness, None, "", status="skipped", message=why_not)]
        verdict = self.gate(config)
        if not verdict.ok:
            return [self._row(config, harness, mode, harness, None, "", status=verdict.status,
                              message=f"not measured, rejected by the correctness gate: {verdict.message}")]
        emulated = impl.emulated(config.device) if harness == "latency" else None
        if emulated:
            return [self._row(config, harness, mode, "latency", None, "ms", "median", status="skipped",
                              message=emulated)]
        return None

    def failure(self, config: Config, harness: str, mode: str, err: BaseException) -> list[dict[str, Any]]:
        self._modules.pop(config.key("", ""), None)
        if config.device.startswith("cuda"):
            try:
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 - a dead CUDA context fails here too; the row already says why
                pass
        return [self._row(config, harness, mode, harness, None, "", status=_status_of(err), message=_describe(err))]

    # -- latency: one comparison group at a time ---------------------------------------------------------------
    def latency_group(self, group: list[Unit]) -> list[list[dict[str, Any]]]:
        """Rows per unit of a comparison group: the units that may be timed are timed in interleaved rounds."""
        rows: dict[int, list[dict[str, Any]]] = {}
        works: dict[int, tuple[Any, str]] = {}
        for i, (config, _, mode) in enumerate(group):
            refused = self.refusal(config, "latency", mode)
            if refused:
                rows[i] = refused
                continue
            try:
                copies, note = decode_copies(self.module(config), config.device, self.plan.preset.weight_copies) \
                    if mode == "decode" else (1, "")
                works[i] = (workload(config, mode, self.module(config), copies), note)
            except Exception as err:  # noqa: BLE001
                rows[i] = self.failure(config, "latency", mode, err)
        timings = latency.time_interleaved({i: work.fn for i, (work, _) in works.items()}, group[0][0].device,
                                           self.plan.threads, self.plan.min_run_time, self.plan.samples)
        for i, result in timings.items():
            config, _, mode = group[i]
            if isinstance(result, BaseException):
                rows[i] = self.failure(config, "latency", mode, result)
                continue
            try:
                rows[i] = self.latency_rows(config, mode, result, *works[i])
            except Exception as err:  # noqa: BLE001
                rows[i] = self.failure(config, "latency", mode, err)
        return [rows[i] for i in range(len(group))]

    def latency_rows(self, config: Config, mode: str, timing: latency.Timing, work: Any,
                     copies_note: str) -> list[dict[str, Any]]:
        module = self.module(config)
        params = sum(p.numel() for p in module.parameters())
        timings = [(timing, "latency")]
        rows = []
        if self.plan.cuda_graph and config.device.startswith("cuda"):
            try:
                if mode == "fwd_bwd":
                    upstream = torch.randn(config.tokens, output_width(config), device=config.device,
                                           dtype=DTYPES[config.dtype])
                    graph = latency.time_cuda_graph_training(module, work.x, upstream, self.plan.samples)
                else:
                    graph = latency.time_cuda_graph(work.fn, self.plan.samples)
                timings.append((graph, "latency_cuda_graph"))
            except Exception as err:  # noqa: BLE001 - e.g. a host sync (nonzero) cannot be captured; keep eager
                rows.append(self._row(config, "latency", mode, "latency_cuda_graph", None, "ms", "median", params,
                                      _status_of(err), f"CUDA graph not captured: {_describe(err)}"))
        status = "noisy" if timing.noisy else "ok"
        busy = f"; machine busy: {timing.contention.describe()}" if timing.noisy else ""
        for t, metric in timings:
            for i, ms in enumerate(t.samples_ms):
                self._samples.writerow([self.run_id, config.variant, config.impl, config.form, mode, config.device,
                                        config.dtype, config.tokens, config.d_model, config.d_hidden,
                                        config.hparams_json(), config.seed, t.method, i, ms])
            message = "; ".join(filter(None, [t.method, copies_note])) + busy
            for stat, value in t.stats().items():
                rows.append(self._row(config, "latency", mode, metric, value, "count" if stat == "n" else "ms",
                                      stat, params, status if metric == "latency" else "ok", message))
        self._samples_file.flush()
        if timing.contention is not None:
            how = f"{timing.contention.describe()}; {timing.remeasured} busy slot(s) measured again"
            rows.append(self._row(config, "latency", mode, "cpu_wait_share", timing.contention.wait_share,
                                  "fraction", params=params, message=how))
            rows.append(self._row(config, "latency", mode, "cpu_others_share", timing.contention.others_share,
                                  "fraction", params=params, message=how))
        for metric, value, unit, message in floor_rows(config, mode, params, self.ceilings, module, work.x,
                                                       timing.stats()["median"]):
            rows.append(self._row(config, "latency", mode, metric, value, unit, params=params, message=message))
        return rows

    # -- the other harnesses -----------------------------------------------------------------------------------
    def flops_rows(self, config: Config, mode: str, params: int) -> list[dict[str, Any]]:
        rows = []
        for metric, value, unit, message in flops.flop_metrics(config, self.module(config), mode):
            status = "ok" if value is not None else "skipped"
            rows.append(self._row(config, "flops", mode, metric, value, unit, "value", params, status, message))
        return rows

    def memory_rows(self, config: Config, mode: str, params: int) -> list[dict[str, Any]]:
        module = self.module(config)
        work = workload(config, mode, module)
        work.fn()  # lazy caches (a sparse path's weight layout) exist after one call and are counted
        buffers = memory.impl_buffer_bytes(module)
        weights = memory.parameter_bytes(module)
        rows = [self._row(config, "memory", mode, "param_bytes", weights, "B", params=params),
                self._row(config, "memory", mode, "impl_buffer_bytes", buffers, "B", params=params,
                          message="tensors the module keeps beside its parameters (buffers, caches)"),
                self._row(config, "memory", mode, "resident_bytes", weights + buffers, "B", params=params,
                          message="parameters + impl buffers: held between calls")]
        memory.clear_gradients(work.modules, work.x)
        if mode == "fwd_bwd":
            rows.append(self._row(config, "memory", mode, "saved_for_backward",
                                  memory.saved_for_backward_bytes(module, work.x), "B", params=params,
                                  message="distinct saved tensors, parameters excluded"))
        if config.device.startswith("cuda"):
            rows.append(self._row(config, "memory", mode, "peak_over_baseline",
                                  memory.peak_over_baseline_bytes(work.fn, config.device, work.modules, work.x), "B",
                                  params=params, message="max_memory_allocated during one call minus "
                                                         "memory_allocated before it, no gradients left over"))
        return rows

    def accuracy_rows(self, config: Config, task_name: str) -> list[dict[str, Any]]:
        task = accuracy.get_task(task_name)
        why_not = accuracy.supports(task, config.variant)
        if why_not:
            return [self._row(config, "accuracy", task_name, task.metric[0], None, "", status="skipped",
                              message=why_not)]
        data = accuracy.load_data(task, config.seed)
        torch.manual_seed(config.seed)
        vocab = len(data.corpus.vocab) if data.corpus is not None else 0
        model = accuracy.build_model(task, config.variant, config.d_hidden, vocab)
        params = sum(p.numel() for p in model.parameters())
        steps = task.steps_quick if self.plan.accuracy_quick else task.steps
        try:
            result = accuracy.train(task, model, data, steps, config.seed, config.device)
        except accuracy.NonFiniteLoss as err:
            return [self._row(config, "accuracy", task_name, task.metric[0], None, "", params=params,
                              status="error", message=str(err))]
        gap = self.plan.match_gaps.get((config.variant, task_name), 0.0)
        budget = f"{steps} steps, match {self.plan.match} (gap {gap:+.1%}), lr {task.lr:g}"
        cost = accuracy.task_cost(task, config.variant, config.d_hidden)
        name, unit, _ = task.metric
        values = [(name, result.test, unit, budget), (f"best_{name.replace('test_', 'val_')}", result.best_val, unit,
                                                     "model selection on validation"),
                  ("best_val_step", result.best_step, "step", ""), ("train_loss_first", result.first_loss, "loss", ""),
                  ("train_loss_last", result.last_loss, "loss", ""), ("train_time", result.seconds, "s", ""),
                  ("flops_per_example" if task.form == "network" else "ffn_flops_per_token", cost.fwd_flops, "FLOP",
                   "analytic forward")]
        if result.active_fraction is not None:
            values.append(("active_fraction", result.active_fraction, "fraction", "Spark FFNs, held-out inputs"))
        return [self._row(config, "accuracy", task_name, metric, value, unit, params=params, message=message)
                for metric, value, unit, message in values]

    def run_unit(self, config: Config, harness: str, mode: str) -> list[dict[str, Any]]:
        """One flops, memory or accuracy unit (latency runs by comparison group: :meth:`latency_group`)."""
        if harness == "accuracy":
            try:
                return self.accuracy_rows(config, mode)
            except Exception as err:  # noqa: BLE001 - the row says what failed; the sweep goes on
                return [self._row(config, "accuracy", mode, "accuracy", None, "", status=_status_of(err),
                                  message=_describe(err))]
        refused = self.refusal(config, harness, mode)
        if refused:
            return refused
        try:
            params = sum(p.numel() for p in self.module(config).parameters())
            if harness == "flops":
                return self.flops_rows(config, mode, params)
            if harness == "memory":
                return self.memory_rows(config, mode, params)
            raise ValueError(f"unknown harness {harness}")
        except Exception as err:  # noqa: BLE001 - any failure of one configuration becomes a row, the sweep goes on
            return self.failure(config, harness, mode, err)

    # -- the sweep ---------------------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> int:
        units = [u for u in self.plan.units() if u[0].key(u[1], u[2]) not in self.done]
        skipped = sum(1 for _ in self.plan.units()) - len(units)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("kanbench run", total=len(units))
            for batch in batches(units):
                config, harness, mode = batch[0]
                what = f"{len(batch)} configs" if len(batch) > 1 else f"{config.variant}/{config.impl}"
                bar.update(task, description=f"{harness:8s} {what} {config.dtype} {config.tokens}x{config.d_model} "
                                             f"{mode}")
                for rows in (self.latency_group(batch) if harness == "latency" else [self.run_unit(*batch[0])]):
                    self.writer.write(rows)
                self._modules.clear()
                bar.advance(task, len(batch))
        self.write_accuracy_aggregates()
        self.close()
        return skipped

    def write_accuracy_aggregates(self) -> None:
        """Mean and std over seeds of each (variant, task) test metric whose seeds all finished (seed -1 rows)."""
        import pandas as pd

        df = pd.read_csv(self.out_dir / "results.csv", keep_default_na=False)
        acc = df[(df.harness == "accuracy") & df.metric.str.startswith("test_")]
        if acc.empty:
            return
        have = set(map(tuple, acc[acc.stat == "mean"][["variant", "mode"]].values.tolist()))
        rows = []
        for config, task_name in self.plan.accuracy_items:
            if config.seed != 0 or (config.variant, task_name) in have:
                continue
            group = acc[(acc.variant == config.variant) & (acc["mode"] == task_name) & (acc.stat == "value")]
            seeds = sum(1 for c, t in self.plan.accuracy_items if c.variant == config.variant and t == task_name)
            if len(group) < seeds or set(group.status) != {"ok"}:
                continue
            values = group.value.astype(float)
            aggregate = Config(**{**config.__dict__, "seed": -1})
            for stat, value in (("mean", values.mean()), ("std", values.std(ddof=1) if len(values) > 1 else 0.0)):
                rows.append(self._row(aggregate, "accuracy", task_name, group.metric.iloc[0], float(value),
                                      group.unit.iloc[0], stat, int(group.params.iloc[0]),
                                      message=f"over {len(values)} seeds"))
        if rows:
            self.writer.write(rows)

    def close(self) -> None:
        self.writer.close()
        self._samples_file.close()

