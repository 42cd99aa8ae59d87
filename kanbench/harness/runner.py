"""The loop behind ``kanbench run``: plan → units → rows → writer.

Each selected harness (:mod:`kanbench.harness.base`) lists its units of work; the ones already on file (``--resume``)
are left out; the harness batches the rest, turns each batch into rows, and every unit's rows are written and
flushed in one go, so an interrupted run loses at most the batch in hand. In each round the batches that time
nothing go first to the pool the run was handed (spread over the cores), then the timed ones run here, alone.
What the harnesses share (the modules, the correctness gate every measurement passes through, the samples file)
is the :class:`RunContext`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from kanbench.harness.base import Harness, Unit, get_harness, harness_names
from kanbench.harness.context import RunContext
from kanbench.harness.plan import Plan
from kanbench.harness.results import (
    ResultWriter,
    done_keys,
    recorded_rows,
    repair_partial_tail,
    unit_key,
    upgrade_columns,
)


class Runner:
    """Runs a plan into ``out_dir``: results.csv, samples.csv (every timing sample)."""

    def __init__(self, plan: Plan, out_dir: Path, run_id: str, ceilings: dict[str, float], resume: bool,
                 session: int = 0, executor: Any = None, untimed: Any = None) -> None:
        """``executor``: None measures in this process; otherwise an object whose ``run_round(runner, harness,
        batches, advance)`` measures the batches elsewhere (kanbench.executors) and hands each one's rows and
        samples to :meth:`record` as they arrive. ``untimed``: with no ``executor``, one (with ``close()``) that
        takes each round's CPU batches that time nothing (:meth:`Harness.times`) first, across the cores
        (kanbench.executors.pool); the timed ones then run here, alone."""
        results = out_dir / "results.csv"
        # a last line cut by a crash or a full disk goes before anything is appended (and is reported)
        self.repairs = [m for m in (repair_partial_tail(results), repair_partial_tail(out_dir / "samples.csv"),
                                    upgrade_columns(results)) if m]
        recorded = recorded_rows(results) if resume else []
        self.recorded = list(recorded)  # and every row written since: what later units may depend on
        self.done = done_keys(recorded)
        self.plan = plan
        self.writer = ResultWriter(results)
        self.ctx = RunContext(plan, out_dir, run_id, ceilings, session, self.writer, recorded)
        self.harnesses: list[Harness] = [get_harness(name) for name in harness_names() if name in plan.harnesses]
        self.executor = executor
        self._gate_keys = {unit_key(r) for r in recorded if r["harness"] == "correctness"}
        self.untimed = untimed

    def pending(self, harness: Harness, attempted: set[tuple] | None = None) -> tuple[list[Unit], int]:
        """``harness``'s units not yet on file (nor ``attempted`` in this run), and how many were on file."""
        units = harness.units_given(self.plan, self.recorded)
        skip = self.done | attempted if attempted else self.done
        todo = [u for u in units if u[0].key(u[1], u[2]) not in skip]
        return todo, sum(1 for u in units if u[0].key(u[1], u[2]) in self.done)

    def run(self, progress: bool = True) -> int:
        """Measure everything pending; returns how many units were already done."""
        first = {harness.name: self.pending(harness) for harness in self.harnesses}
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        # No auto-refresh thread: its wake-ups (10 a second) queue our own timing threads on a 2-core machine
        # (measured there: 7-10 of 150 40 ms slots of a 2-thread matmul passed the contention limit with it, 2-5
        # without), so the bar redraws only when it is updated, between units.
        with Progress(*columns, disable=not progress, transient=False, auto_refresh=False) as bar:
            task = bar.add_task("kanbench run", total=sum(len(units) for units, _ in first.values()))
            for harness in self.harnesses:
                attempted: set[tuple] = set()
                units, _ = first[harness.name]
                while units:  # a round of units, then those that the round's rows made plannable
                    batches = harness.batches(units)
                    if self.executor is None:
                        untimed = [b for b in batches if self._spreadable(harness, b)]
                        if untimed:  # over every core at once, and done before anything is timed
                            bar.update(task, description=f"{harness.name:8s} {len(untimed)} untimed units on "
                                                         f"{self.plan.threads} cores", refresh=True)
                            self.untimed.run_round(self, harness, untimed,
                                                   lambda n: bar.update(task, advance=n, refresh=True))
                        for batch in batches:
                            if not self._spreadable(harness, batch):
                                self._measure(harness, batch, bar, task)
                    else:
                        self.executor.run_round(self, harness, batches,
                                                lambda n: bar.update(task, advance=n, refresh=True))
                    attempted |= {u[0].key(u[1], u[2]) for u in units}
                    units, _ = self.pending(harness, attempted)
                    bar.update(task, total=bar.tasks[0].total + len(units), refresh=True)
            for harness in self.harnesses:
                harness.finish(self.ctx)
        self.close()
        return sum(on_file for _, on_file in first.values())

    def _spreadable(self, harness: Harness, batch: list[Unit]) -> bool:
        """A CPU batch that times nothing, in a run handed somewhere to spread such batches."""
        return (self.untimed is not None and harness.times_nothing(batch)
                and all(u[0].device == "cpu" for u in batch))

    def _measure(self, harness: Harness, batch: list[Unit], bar: Progress, task: TaskID) -> None:
        config, _, mode = batch[0]
        what = f"{len(batch)} configs" if len(batch) > 1 else f"{config.variant}/{config.impl}"
        bar.update(task, description=f"{harness.name:8s} {what} {config.dtype} {config.tokens}x{config.d_model} "
                                     f"{mode}", refresh=True)
        for rows in harness.rows(self.ctx, batch):
            self.record(rows)
        self.ctx.release()
        bar.update(task, advance=len(batch), refresh=True)

    def record(self, rows: list[dict[str, Any]], samples: str = "") -> None:
        """Write one unit's rows (and its timing samples, as CSV text) at once. A gate verdict already on file is
        not written twice (remote workers each check the configurations they measure)."""
        fresh = []
        for r in rows:
            if r["harness"] == "correctness":
                if unit_key(r) in self._gate_keys:
                    continue
                self._gate_keys.add(unit_key(r))
            fresh.append(r)
        if samples:
            self.ctx.append_samples(samples)
        self.writer.write(fresh)
        self.recorded.extend(fresh)

    def close(self) -> None:
        if self.untimed is not None:
            self.untimed.close()
        self.writer.close()
        self.ctx.close()
