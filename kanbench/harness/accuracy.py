"""Accuracy: train each variant under a fixed budget on offline tasks, pick the checkpoint on validation (never on
test), report the test metric per seed and its mean ± std.

Tasks (all offline: no download at run time): ``digits`` and ``mnist1d`` (classification, the variant's layer
form d_in → h → 10), ``kan-fit:<formula>`` (regression, d_in → h → 1, RMSE), ``vit-digits`` (a tiny ViT on 2×2
patches whose every FFN is the variant's block: the KAT setting) and ``char-lm`` (a tiny causal transformer on
CPython's pydoc text, bits per character: the Spark setting). ``spark_ffn`` has no layer form, so it runs in
the two transformer tasks only.

Fair matching (``--match params|flops|none``): each variant's hidden width is chosen so that its parameters (or
forward FLOPs per example / token) are as close as possible to the MLP baseline's at the task's reference width;
the chosen width is the row's ``d_hidden`` and the relative gap is in the message.

Optimisation: AdamW (weight decay 1e-4; torch's fused kernel where it has one), cosine decay to 10 % of the
learning rate. Learning rate and input preparation follow the run's protocol (:mod:`kanbench.harness.tuning`):
``tuned`` searches them per variant on validation with the same budget for every variant; ``uniform`` gives all
the task's shared ``Task.lr`` and standardized inputs (kan-fit: its raw [-1, 1] inputs), as an ablation. A search
run scores validation only and times nothing, always on one CPU thread (so its choice does not depend on where it
ran): a multi-core run trains the search's candidates side by side, one per thread it may use
(:mod:`kanbench.executors.pool`); the final runs, whose step times are reported, train one at a time on every
thread.

``mnist1d-reference`` is a check of the harness, not of a variant: the mnist1d authors' MLP trained with their
recipe (:mod:`kanbench.harness.anchor`) must land within a few points of their published test accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kanbench import registry
from kanbench.costs import Cost
from kanbench.data.kan_fit import FORMULAS
from kanbench.harness import anchor, tuning
from kanbench.harness.base import Harness, Rows, Unit, register_harness
from kanbench.harness.context import RunContext, describe, status_of
from kanbench.harness.models import CharLM, TinyViT, build_network, network_cost
from kanbench.harness.results import Config
from kanbench.harness.training import LM_CONTEXT, NonFiniteLoss, load_data, train
from kanbench.names import UnknownNameError, unknown_name_message
from kanbench.preparation import STANDARDIZE, Preparation

RETAKES = 2  # more trainings of a final run whose clock the machine disturbed, as the latency harness re-measures


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # classify | regress | lm
    form: str  # network (layer stack) | block (transformer FFN)
    d_model: int  # input width (network) or model width (transformer)
    d_out: int
    reference_hidden: int  # the MLP baseline's hidden width; other variants are matched to it
    steps: int
    steps_quick: int
    batch: int
    eval_every: int
    lr: float  # the uniform protocol's learning rate
    weight_decay: float = 1e-4
    hparams_by_variant: dict[str, dict[str, Any]] = field(default_factory=dict)
    uniform_prep: Preparation | None = STANDARDIZE  # the uniform protocol's input preparation (network tasks)

    @property
    def prepares_inputs(self) -> bool:
        """Whether the network sees the inputs directly (the transformers embed theirs, the anchor keeps the
        authors' raw signals), so that a preparation is chosen."""
        return self.form == "network"

    @property
    def metric(self) -> tuple[str, str, bool]:
        """(name, unit, higher is better)."""
        return {"classify": ("test_accuracy", "fraction", True), "regress": ("test_rmse", "rmse", False),
                "lm": ("test_bits_per_char", "bits/char", False)}[self.kind]

    @property
    def val_metric(self) -> str:
        """The row of the best validation score (what model selection and the search compare)."""
        return "best_" + self.metric[0].replace("test_", "val_")

    def steps_for(self, quick: bool) -> int:
        """The training budget: the short smoke budget or the full one."""
        return self.steps_quick if quick else self.steps


def _tasks() -> dict[str, Task]:
    tasks = [
        Task("digits", "classify", "network", 64, 10, 128, steps=3000, steps_quick=400, batch=64, eval_every=100,
             lr=1e-3),
        Task("mnist1d", "classify", "network", 40, 10, 128, steps=3000, steps_quick=400, batch=64, eval_every=100,
             lr=1e-3),
        # the transformer tasks' budgets are sized for a 2-core CPU (about 45-100 ms a step for the KAN blocks there)
        Task("vit-digits", "classify", "block", 32, 10, 128, steps=1000, steps_quick=200, batch=64, eval_every=100,
             lr=1e-3),
        # 5x the first budget (most runs were still improving at step 600); evaluated on ~65k held-out characters
        Task("char-lm", "lm", "block", 64, 0, 256, steps=3000, steps_quick=100, batch=32, eval_every=250, lr=1e-3),
        # the harness's own check (kanbench.harness.anchor): the mnist1d authors' MLP and recipe, their budget
        Task("mnist1d-reference", "classify", "anchor", 40, 10, 100, steps=anchor.STEPS, steps_quick=anchor.STEPS,
             batch=anchor.BATCH, eval_every=anchor.STEPS, lr=anchor.LR, weight_decay=0.0, uniform_prep=None),
    ]
    for name, (n_vars, _) in FORMULAS.items():
        groups = 8 if n_vars % 8 == 0 else 1  # GR-KAN's rational needs the input width divisible by its groups
        tasks.append(Task(f"kan-fit:{name}", "regress", "network", n_vars, 1, 160, steps=3000, steps_quick=400,
                          batch=128, eval_every=100, lr=3e-3, hparams_by_variant={"grkan": {"groups": groups}},
                          uniform_prep=None))  # inputs already on the KAN paper's [-1, 1]
    return {t.name: t for t in tasks}


TASKS = _tasks()
QUICK_TASKS = ("digits", "kan-fit:exp_sin_sq")


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UnknownNameError(unknown_name_message("task", name, TASKS))
    return TASKS[name]


# --- fair matching ------------------------------------------------------------------------------------------------
def task_cost(task: Task, variant: str, hidden: int) -> Cost:
    hp = task.hparams_by_variant.get(variant, {})
    if task.form == "network":
        return network_cost(variant, task.d_model, hidden, task.d_out, **hp)
    return registry.block_cost(variant, task.d_model, hidden, **hp)


def supports(task: Task, variant: str) -> str | None:
    """Why ``variant`` cannot run ``task`` (a block-only variant on a layer-stack task), or None."""
    if task.form == "anchor" and not registry.get_variant(variant).baseline:
        return f"'{task.name}' checks the harness with the mnist1d authors' own MLP; it runs once, as the baseline"
    if task.form == "network" and registry.get_variant(variant).layer is None:
        return f"'{variant}' has only a block form; it runs in the transformer tasks (vit-digits, char-lm)"
    return None


def match_hidden(task: Task, variant: str, match: str) -> tuple[int, float]:
    """The hidden width whose parameters (or forward FLOPs) are closest to the MLP's at the task's reference width,
    and the relative gap. ``none`` keeps the reference width."""
    if match == "none" or variant == "mlp" or task.form == "anchor":
        return task.reference_hidden, 0.0

    def measure(cost: Cost) -> int:
        return cost.params if match == "params" else cost.fwd_flops

    target = measure(task_cost(task, "mlp", task.reference_hidden))
    best: tuple[float, int] | None = None
    for hidden in range(1, 8 * task.reference_hidden + 1):
        try:
            value = measure(task_cost(task, variant, hidden))
        except ValueError:  # a width the variant rejects (e.g. not divisible by GR-KAN's groups)
            continue
        gap = (value - target) / target
        if best is None or abs(gap) < abs(best[0]):
            best = (gap, hidden)
        if value > target * 1.5:
            break
    if best is None:
        raise ValueError(f"no valid hidden width for '{variant}' on task '{task.name}'")
    return best[1], best[0]


# --- models and batches -------------------------------------------------------------------------------------------
def build_model(task: Task, variant: str, hidden: int, vocab: int = 0, hp: dict[str, Any] | None = None) -> nn.Module:
    """The task's network around ``variant`` at width ``hidden``; ``hp``: the layer hyperparameters (default: the
    task's for this variant)."""
    hp = task.hparams_by_variant.get(variant, {}) if hp is None else hp
    if task.form == "anchor":
        return anchor.ReferenceMLP(task.d_model, task.reference_hidden, task.d_out)
    if task.form == "network":
        return build_network(variant, task.d_model, hidden, task.d_out, **hp)
    if task.name == "vit-digits":
        return TinyViT(variant, task.d_model, hidden, **hp)
    return CharLM(variant, vocab, task.d_model, hidden, LM_CONTEXT, **hp)


def searches_before(plan: Any, config: Config, task_name: str) -> int:
    """How many search runs the plan's protocol trains before this accuracy item (seed 0 of a variant × task)."""
    task = get_task(task_name)
    if config.seed != 0 or task.form == "anchor" or supports(task, config.variant):
        return 0
    settings = tuning.candidates(task, config.variant, plan.protocol)
    return len(settings) if len(settings) > 1 else 0


def search_runs(plan: Any) -> int:
    """How many search runs the plan's protocol adds to its final training runs."""
    return sum(searches_before(plan, config, task_name) for config, task_name in plan.accuracy_items)


@register_harness
class Accuracy(Harness):
    """Trains the plan's accuracy runs (variant × task × seed) under its protocol: under ``tuned`` first the search
    runs on seed 0 (mode ``search:<task>``, validation only), then every seed with the chosen setting; its
    ``finish`` adds mean and std over seeds and the share of seeds that converged."""

    name = "accuracy"
    measures_configurations = False

    def units(self, plan: Any) -> list[Unit]:
        return self.units_given(plan, [])

    def units_given(self, plan: Any, recorded: Rows) -> list[Unit]:
        """Task by task in the plan's order: a task's search runs, then its seeds once every variant's choice is on
        file; a later task's units wait for that, so an interrupted sweep holds whole tasks rather than searches."""
        units: list[Unit] = []
        waiting = None  # the first task whose final seeds still wait for a choice
        chosen_for: dict[tuple, dict[str, Any] | None] = {}  # one search result serves every seed
        for config, task_name in plan.accuracy_items:
            if waiting is not None and task_name != waiting:
                break
            task = get_task(task_name)
            base = dict(config.hparams)
            if supports(task, config.variant):  # its one row says why not
                units.append((config, self.name, task_name))
                continue
            settings = tuning.candidates(task, config.variant, "uniform" if task.form == "anchor" else plan.protocol)
            if len(settings) == 1:
                units.append((dataclasses.replace(config, hparams=settings[0].hparams(base)), self.name, task_name))
                continue
            if config.seed == 0:
                units += [(dataclasses.replace(config, hparams=s.hparams(base)), self.name,
                           tuning.SEARCH_PREFIX + task_name) for s in settings]
            key = (config.variant, task_name, config.d_hidden)
            if key not in chosen_for:
                chosen_for[key] = tuning.choose(task, config.variant, config.d_hidden, recorded)
            chosen = chosen_for[key]
            if chosen is not None:
                units.append((dataclasses.replace(config, hparams=chosen), self.name, task_name))
            else:
                waiting = task_name
        return units

    def times(self, unit: Unit) -> bool:
        """Final runs report their training time; search runs time nothing (they may run side by side)."""
        return not unit[2].startswith(tuning.SEARCH_PREFIX)

    def rows(self, ctx: RunContext, batch: list[Unit]) -> list[Rows]:
        config, _, mode = batch[0]
        task = get_task(mode.removeprefix(tuning.SEARCH_PREFIX))
        search = mode != task.name
        metric = task.val_metric if search else task.metric[0]
        try:
            return [self.train_rows(ctx, config, task, search)]
        except Exception as err:  # noqa: BLE001 - the row says what failed; the sweep goes on
            return [[ctx.row(config, self.name, mode, metric, None, "", status=status_of(err),
                             message=describe(err))]]

    def train_rows(self, ctx: RunContext, config: Config, task: Task, search: bool) -> Rows:
        mode = tuning.SEARCH_PREFIX + task.name if search else task.name
        name, unit, _ = task.metric
        val_name = task.val_metric
        why_not = supports(task, config.variant)
        if why_not:
            return [ctx.row(config, self.name, mode, name, None, "", status="skipped", message=why_not)]
        if task.form == "anchor":
            return anchor.rows(ctx, config, task)
        hp = dict(config.hparams)
        prep = tuning.preparation_of(task, config.variant, hp)
        data = load_data(task, config.seed, prep)
        vocab = len(data.corpus.vocab) if data.corpus is not None else 0
        steps = task.steps_for(ctx.plan.accuracy_quick)
        threads = torch.get_num_threads()
        retakes = 0
        while True:  # a final run the machine disturbed is trained again from the same seed (its time is a figure)
            torch.manual_seed(config.seed)
            model = build_model(task, config.variant, config.d_hidden, vocab, tuning.layer_hparams(hp))
            params = sum(p.numel() for p in model.parameters())
            try:
                if search:
                    torch.set_num_threads(1)
                result = train(task, model, data, steps, config.seed, config.device, hp["lr"],
                               score_test=not search)
            except NonFiniteLoss as err:
                return [ctx.row(config, self.name, mode, val_name if search else name, None, "", params=params,
                                status="error", message=str(err))]
            finally:
                torch.set_num_threads(threads)
            busy = not search and result.contention is not None and result.contention.contaminated
            if not busy or retakes == RETAKES:
                break
            retakes += 1
        gap = ctx.plan.match_gaps.get((config.variant, task.name), 0.0)
        budget = (f"{steps} steps, match {ctx.plan.match} (gap {gap:+.1%}), protocol {ctx.plan.protocol}, "
                  f"lr {hp['lr']:g}" + (f", inputs {prep.name}" if prep else ""))
        cost = task_cost(task, config.variant, config.d_hidden)
        timing_status, timing_note = (("noisy", f"; machine busy: {result.contention.describe()}") if busy
                                      else ("ok", ""))
        if retakes:
            timing_note += f"; trained again {retakes} time(s) after a run the machine was busy in"
        values = [(val_name, result.best_val, unit, "model selection on validation" + ("" if search else "; " + budget),
                   "ok"),
                  ("best_val_step", result.best_step, "step", f"of {steps}", "ok"),
                  ("train_loss_first", result.first_loss, "loss", "", "ok"),
                  ("train_loss_last", result.last_loss, "loss", "", "ok"),
                  ("flops_per_example" if task.form == "network" else "ffn_flops_per_token", cost.fwd_flops, "FLOP",
                   "analytic forward", "ok")]
        if not search:
            whole = (f"the whole loop: {steps} steps, the validation every {task.eval_every} and the best "
                     "checkpoint's copies")
            values[4:4] = [("train_time", result.seconds, "s", whole + timing_note, timing_status),
                           ("train_step_time", result.step_seconds * 1e3, "ms",
                            "median over steps, evaluation excluded" + timing_note, timing_status)]
            values.insert(0, (name, result.test, unit, budget, "ok"))
            if result.test_stderr is not None:
                values.insert(1, (f"{name.removeprefix('test_')}_stderr", result.test_stderr, unit,
                                  "standard error over the test set's non-overlapping windows", "ok"))
        if result.active_fraction is not None:
            values.append(("active_fraction", result.active_fraction, "fraction", "Spark FFNs, held-out inputs", "ok"))
        return [ctx.row(config, self.name, mode, metric, value, unit_, params=params, status=status, message=message)
                for metric, value, unit_, message, status in values]

    def finish(self, ctx: RunContext) -> None:
        """Per (variant, task) whose final seeds all finished: mean and std of the test metric over seeds, and the
        share of seeds whose best validation step came before the last step (``converged``), as seed -1 rows."""
        import pandas as pd

        df = pd.read_csv(ctx.out_dir / "results.csv", keep_default_na=False)
        acc = df[(df.harness == self.name) & (df.stat == "value") & ~df["mode"].str.startswith(tuning.SEARCH_PREFIX)]
        have = set(map(tuple, df[(df.harness == self.name) & (df.stat == "mean")][["variant", "mode"]].values.tolist()))
        rows = []
        for config, task_name in ctx.plan.accuracy_items:
            task = get_task(task_name)
            if config.seed != 0 or (config.variant, task_name) in have or supports(task, config.variant):
                continue
            runs = acc[(acc.variant == config.variant) & (acc["mode"] == task_name)]
            group = runs[runs.metric == task.metric[0]]
            seeds = sum(1 for c, t in ctx.plan.accuracy_items if c.variant == config.variant and t == task_name)
            if len(group) < seeds or set(group.status) != {"ok"}:
                continue
            values = group.value.astype(float)
            aggregate = dataclasses.replace(config, seed=-1, hparams=json.loads(group.hparams.iloc[0]))
            params = int(group.params.iloc[0])
            for stat, value in (("mean", values.mean()), ("std", values.std(ddof=1) if len(values) > 1 else 0.0)):
                rows.append(ctx.row(aggregate, self.name, task_name, task.metric[0], float(value),
                                    group.unit.iloc[0], stat, params, message=f"over {len(values)} seeds"))
            best = runs[runs.metric == "best_val_step"]
            if task.form != "anchor" and len(best):
                steps = task.steps_for(ctx.plan.accuracy_quick)
                early = int((best.value.astype(float) < steps).sum())
                rows.append(ctx.row(aggregate, self.name, task_name, "converged", early / len(best), "fraction",
                                    "mean", params, message=f"best validation step before the last ({steps}) in "
                                                            f"{early} of {len(best)} seeds"))
        if rows:
            ctx.writer.write(rows)
