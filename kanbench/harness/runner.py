"""The sweep behind ``kanbench run``: plan the configurations, then for each one gate, time, count and measure,
writing rows as they come. A failure (OOM, NaN, a kernel error, an impl that cannot run here) becomes a row with its
status and the sweep goes on."""

from __future__ import annotations

import csv
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kanbench import registry
from kanbench.harness import accuracy, correctness, flops, latency, memory
from kanbench.harness.env import DTYPES
from kanbench.harness.presets import MEASUREMENTS, Preset
from kanbench.harness.results import Config, ResultWriter, done_keys, row
from kanbench.harness.workload import build, output_width, workload


@dataclass
class Plan:
    """What one run measures: configurations with the modes each is measured in."""

    preset: Preset
    items: list[tuple[Config, tuple[str, ...]]]
    harnesses: tuple[str, ...]
    threads: int
    samples: int
    min_run_time: float
    cuda_graph: bool = False
    # accuracy: (configuration, task) per variant × task × seed; the configuration's d_hidden is the matched width
    accuracy_items: list[tuple[Config, str]] = field(default_factory=list)
    accuracy_quick: bool = True
    match: str = "params"
    match_gaps: dict[tuple[str, str], float] = field(default_factory=dict)

    def units(self) -> Iterator[tuple[Config, str, str]]:
        for config, modes in self.items:
            for harness in self.harnesses:
                if harness == "accuracy":
                    continue
                for mode in modes:
                    yield config, harness, mode
        for config, task in self.accuracy_items:
            yield config, "accuracy", task


def make_plan(preset: Preset, variants: list[str], impls: list[str] | None, device: str, dtypes: list[str],
              tokens: list[int] | None, d_models: list[int] | None, d_hidden: int | None, harnesses: list[str],
              seeds: int = 1, threads: int = 1, cuda_graph: bool = False, tasks: list[str] | None = None,
              match: str = "params", accuracy_seeds: int = 3) -> Plan:
    items: list[tuple[Config, tuple[str, ...]]] = []
    modes_main = tuple(m for m in preset.modes if m != "decode")
    token_sets: list[tuple[list[int], tuple[str, ...]]] = []
    main_tokens = tokens if tokens is not None else list(preset.tokens)
    measuring = any(h in harnesses for h in MEASUREMENTS)
    if main_tokens and modes_main and measuring:
        token_sets.append((main_tokens, modes_main))
    if "decode" in preset.modes and preset.decode_tokens and measuring:
        token_sets.append((list(preset.decode_tokens), ("decode",)))
    for variant in variants:
        spec = registry.get_variant(variant)
        if preset.form not in spec.forms:
            continue
        # impls that build the preset's form (triton_fused is a layer kernel: no op form, so not in kat-b)
        variant_impls = [i for i in (impls if impls is not None else spec.impl_names())
                         if i in spec.impl_names() and spec.impl(i).has_form(preset.form)]
        for impl in variant_impls:
            for dtype in dtypes:
                for d_model in d_models or list(preset.d_model):
                    hidden = d_hidden if d_hidden is not None else preset.hidden(variant, d_model)
                    hparams = dict(preset.hparams_by_variant.get(variant, {}))
                    for token_list, modes in token_sets:
                        for n in token_list:
                            for seed in range(seeds):
                                config = Config(variant, impl, preset.form, device, dtype, n, d_model,
                                                hidden if preset.form != "op" else d_model, hparams, seed)
                                items.append((config, modes))
    plan = Plan(preset, items, tuple(harnesses), threads, preset.cuda_samples, preset.cpu_min_run_time, cuda_graph,
                accuracy_quick=preset.accuracy_quick, match=match)
    if "accuracy" in harnesses:
        for task_name in tasks if tasks is not None else list(preset.accuracy_tasks):
            task = accuracy.get_task(task_name)
            for variant in variants:
                hidden, gap = (task.reference_hidden, 0.0) if accuracy.supports(task, variant) else \
                    accuracy.match_hidden(task, variant, match)
                plan.match_gaps[(variant, task_name)] = gap
                for seed in range(accuracy_seeds):
                    config = Config(variant, "reference", task.form, device, "fp32", task.batch, task.d_model, hidden,
                                    dict(task.hparams_by_variant.get(variant, {})), seed)
                    plan.accuracy_items.append((config, task_name))
    return plan


def _gate_status(result: correctness.GateResult) -> str:
    """A wrong number or missing work is a mismatch; a NaN/Inf output (or a broken reference) is an error."""
    return result.status


def _status_of(err: BaseException) -> str:
    if isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower():
        return "oom"
    return "error"


def _describe(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


class Runner:
    """Runs a plan into ``out_dir``: results.csv, samples.csv (every timing sample)."""

    def __init__(self, plan: Plan, out_dir: Path, run_id: str, ceilings: dict[str, float], resume: bool) -> None:
        self.plan, self.out_dir, self.run_id, self.ceilings = plan, out_dir, run_id, ceilings
        self.done = done_keys(out_dir / "results.csv") if resume else set()
        self.writer = ResultWriter(out_dir / "results.csv")
        samples_path = out_dir / "samples.csv"
        new = not samples_path.exists() or samples_path.stat().st_size == 0
        self._samples_file = samples_path.open("a", newline="")
        self._samples = csv.writer(self._samples_file)
        if new:
            self._samples.writerow(["run_id", "variant", "impl", "form", "mode", "device", "dtype", "tokens",
                                    "d_model", "d_hidden", "hparams", "seed", "method", "sample", "ms"])
            self._samples_file.flush()
        self._modules: dict[tuple, torch.nn.Module] = {}
        self._gates: dict[tuple, correctness.GateResult] = {}

    # -- per configuration state -------------------------------------------------------------------------------
    def module(self, config: Config) -> torch.nn.Module:
        key = config.key("", "")
        if key not in self._modules:
            self._modules = {key: build(config)}  # keep one configuration's module alive at a time
        return self._modules[key]

    def gate(self, config: Config) -> correctness.GateResult:
        key = config.key("", "")
        if key not in self._gates:
            self._gates[key] = result = correctness.gate(config, self.module(config))
            self.writer.write([row(config, self.run_id, "correctness", "check", "max_rel_error",
                                   result.max_error if result.max_error != float("inf") else None, "relative",
                                   status=_gate_status(result), message=result.message)])
        return self._gates[key]

    # -- harnesses ---------------------------------------------------------------------------------------------
    def latency_rows(self, config: Config, mode: str, params: int) -> list[dict[str, Any]]:
        gate = self.gate(config)
        if not gate.ok:
            return [row(config, self.run_id, "latency", mode, "latency", None, "ms", "median", params,
                        _gate_status(gate), f"not timed: {gate.message}")]
        emulated = registry.get_variant(config.variant).impl(config.impl).emulated(config.device)
        if emulated:
            return [row(config, self.run_id, "latency", mode, "latency", None, "ms", "median", params, "skipped",
                        emulated)]
        copies = self.plan.preset.weight_copies if mode == "decode" else 1
        work = workload(config, mode, self.module(config), copies)
        timings = [latency.time_call(work.fn, config.device, self.plan.threads, self.plan.min_run_time,
                                     self.plan.samples)]
        rows = []
        if self.plan.cuda_graph and config.device.startswith("cuda"):
            try:
                if mode == "fwd_bwd":
                    upstream = torch.randn(config.tokens, output_width(config), device=config.device,
                                           dtype=DTYPES[config.dtype])
                    timings.append(latency.time_cuda_graph_training(self.module(config), work.x, upstream,
                                                                    self.plan.samples))
                else:
                    timings.append(latency.time_cuda_graph(work.fn, self.plan.samples))
            except Exception as err:  # noqa: BLE001 - e.g. a host sync (nonzero) cannot be captured; keep eager
                rows.append(row(config, self.run_id, "latency", mode, "latency_cuda_graph", None, "ms", "median",
                                params, _status_of(err), f"CUDA graph not captured: {_describe(err)}"))
        for timing, metric in zip(timings, ("latency", "latency_cuda_graph"), strict=False):
            for i, ms in enumerate(timing.samples_ms):
                self._samples.writerow([self.run_id, config.variant, config.impl, config.form, mode, config.device,
                                        config.dtype, config.tokens, config.d_model, config.d_hidden,
                                        config.hparams_json(), config.seed, timing.method, i, ms])
            for stat, value in timing.stats().items():
                rows.append(row(config, self.run_id, "latency", mode, metric, value,
                                "count" if stat == "n" else "ms", stat, params, message=timing.method))
        self._samples_file.flush()
        rows.extend(self.floor_rows(config, mode, params, timings[0].stats()["median"]))
        return rows

    def floor_rows(self, config: Config, mode: str, params: int, median_ms: float) -> list[dict[str, Any]]:
        """Bandwidth floor (fewest bytes / copy bandwidth) and compute floor (analytic FLOPs / matmul rate)."""
        size = torch.tensor([], dtype=DTYPES[config.dtype]).element_size()
        width_out = config.d_hidden if config.form == "layer" else config.d_model
        x_bytes, y_bytes, p_bytes = (config.tokens * config.d_model * size, config.tokens * width_out * size,
                                     params * size)
        n_bytes = x_bytes + y_bytes + p_bytes  # read x and the weights, write y
        if mode == "fwd_bwd":
            n_bytes += 2 * x_bytes + y_bytes + 2 * p_bytes  # read x and dy, write dx; read W, write dW
        cost = registry.cost(config.form, config.variant, config.d_model, config.d_hidden, **config.hparams)
        n_flops = config.tokens * (cost.fwd_bwd_flops if mode == "fwd_bwd" else cost.fwd_flops)
        rows = []
        floors = []
        bandwidth = self.ceilings.get("copy_bandwidth_Bps")
        if bandwidth:
            floors.append(1e3 * n_bytes / bandwidth)
            rows.append(row(config, self.run_id, "latency", mode, "floor_bandwidth", floors[-1], "ms", "value",
                            params, message=f"{n_bytes} B at the measured copy bandwidth"))
        rate = self.ceilings.get(f"matmul_{config.dtype}_flops_per_s")
        if rate:
            floors.append(1e3 * n_flops / rate)
            rows.append(row(config, self.run_id, "latency", mode, "floor_compute", floors[-1], "ms", "value",
                            params, message=f"{n_flops} analytic FLOP at the measured {config.dtype} matmul rate"))
        if floors:
            rows.append(row(config, self.run_id, "latency", mode, "over_floor", median_ms / max(floors), "ratio",
                            "value", params, message="median / max(floors)"))
        return rows

    def flops_rows(self, config: Config, mode: str, params: int) -> list[dict[str, Any]]:
        rows = []
        for metric, value, unit, message in flops.flop_metrics(config, self.module(config), mode):
            status = "ok" if value is not None else "skipped"
            rows.append(row(config, self.run_id, "flops", mode, metric, value, unit, "value", params, status,
                            message))
        return rows

    def memory_rows(self, config: Config, mode: str, params: int) -> list[dict[str, Any]]:
        module = self.module(config)
        rows = [row(config, self.run_id, "memory", mode, "param_bytes", memory.parameter_bytes(module), "B",
                    params=params)]
        on_cuda = config.device.startswith("cuda")
        work = workload(config, mode, module) if mode == "fwd_bwd" or on_cuda else None
        if mode == "fwd_bwd":
            rows.append(row(config, self.run_id, "memory", mode, "saved_for_backward", memory.
                            saved_for_backward_bytes(module, work.x), "B", params=params,
                            message="distinct saved tensors, parameters excluded"))
        if on_cuda:
            rows.append(row(config, self.run_id, "memory", mode, "peak_over_baseline",
                            memory.peak_over_baseline_bytes(work.fn, config.device), "B", params=params,
                            message="max_memory_allocated during one call minus memory_allocated before it"))
        return rows

    # -- the sweep ---------------------------------------------------------------------------------------------
    def accuracy_rows(self, config: Config, task_name: str) -> list[dict[str, Any]]:
        task = accuracy.get_task(task_name)
        why_not = accuracy.supports(task, config.variant)
        if why_not:
            return [row(config, self.run_id, "accuracy", task_name, task.metric[0], None, "", status="skipped",
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
            return [row(config, self.run_id, "accuracy", task_name, task.metric[0], None, "", params=params,
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
        return [row(config, self.run_id, "accuracy", task_name, metric, value, unit, params=params, message=message)
                for metric, value, unit, message in values]

    def run_unit(self, config: Config, harness: str, mode: str) -> list[dict[str, Any]]:
        if harness == "accuracy":
            try:
                return self.accuracy_rows(config, mode)
            except Exception as err:  # noqa: BLE001 - the row says what failed; the sweep goes on
                return [row(config, self.run_id, "accuracy", mode, "accuracy", None, "", status=_status_of(err),
                            message=_describe(err))]
        spec = registry.get_variant(config.variant)
        why_not = spec.impl(config.impl).why_not(config.device, DTYPES[config.dtype])
        if why_not:
            return [row(config, self.run_id, harness, mode, harness, None, "", status="skipped", message=why_not)]
        try:
            params = sum(p.numel() for p in self.module(config).parameters())
            if harness == "latency":
                rows = self.latency_rows(config, mode, params)
            elif harness == "flops":
                rows = self.flops_rows(config, mode, params)
            elif harness == "memory":
                rows = self.memory_rows(config, mode, params)
            else:
                raise ValueError(f"unknown harness {harness}")
        except Exception as err:  # noqa: BLE001 - any failure of one configuration becomes a row, the sweep goes on
            self._modules.clear()
            if config.device.startswith("cuda"):
                try:
                    torch.cuda.empty_cache()
                except Exception:  # noqa: BLE001 - a dead CUDA context fails here too; the row already says why
                    pass
            return [row(config, self.run_id, harness, mode, harness, None, "", status=_status_of(err),
                        message=_describe(err))]
        return rows

    def run(self, progress: bool = True) -> int:
        units = [u for u in self.plan.units() if u[0].key(u[1], u[2]) not in self.done]
        skipped = sum(1 for _ in self.plan.units()) - len(units)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("kanbench run", total=len(units))
            for config, harness, mode in units:
                bar.update(task, description=f"{harness:8s} {config.variant}/{config.impl} {config.dtype} "
                                             f"{config.tokens}x{config.d_model} {mode}")
                self.writer.write(self.run_unit(config, harness, mode))
                bar.advance(task)
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
                rows.append(row(aggregate, self.run_id, "accuracy", task_name, group.metric.iloc[0], float(value),
                                group.unit.iloc[0], stat, int(group.params.iloc[0]),
                                message=f"over {len(values)} seeds"))
        if rows:
            self.writer.write(rows)

    def close(self) -> None:
        self.writer.close()
        self._samples_file.close()

