"""``kanbench run --dry-run``: what a run would measure, where, and what it would skip and why, from the same plan
the run makes; nothing is measured, compiled or written. A GPU preset's minutes, or a resumed run's remainder,
are seen before they are spent."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from kanbench.harness import accuracy
from kanbench.harness.base import get_harness
from kanbench.harness.plan import Plan
from kanbench.harness.results import Config, done_keys, recorded_rows, unit_key


def _joined(values: list) -> str:
    return ",".join(str(v) for v in dict.fromkeys(values))


def print_plan(plan: Plan, device: str, out_dir: Path, resume: bool, console: Console) -> int:
    """One line per variant × impl × form: its dtypes, sizes and modes, how many units of work it adds over the
    plan's harnesses, and whether it runs here (else the reason it would be a ``skipped`` row, or that it is only
    checked, not timed); then the accuracy runs and what ``--resume`` would skip. Returns the units to do."""
    # accuracy plans its final runs in rounds, after its searches: counted from the plan's items instead
    units = [unit for name in plan.harnesses if name != "accuracy" for unit in get_harness(name).units(plan)]
    recorded = recorded_rows(out_dir / "results.csv") if resume else []
    on_file = done_keys(recorded)
    todo = [u for u in units if u[0].key(u[1], u[2]) not in on_file]
    groups: dict[tuple[str, str, str], dict[str, list]] = {}

    def group_of(config: Config) -> dict[str, list]:
        return groups.setdefault((config.variant, config.impl, config.form), {k: [] for k in (
            "dtype", "tokens", "d_model", "mode", "units", "why")})

    for config, harness, mode in units:
        group = group_of(config)
        group["dtype"].append(config.dtype)
        group["mode"].append(mode)
        group["units"].append(config.key(harness, mode) not in on_file)
        group["tokens"].append(config.tokens)
        group["d_model"].append(config.d_model)
        why = config.impl_spec.why_not(config.device, config.torch_dtype)
        emulated = config.impl_spec.emulated(config.device)
        group["why"].append(("✗", f"skipped: {why}") if why else ("○", emulated) if emulated else None)
    for config, task in plan.accuracy_items:  # a final run and the searches before it (those on file: below)
        group = group_of(config)
        group["dtype"].append(config.dtype)
        group["mode"].append(task)
        group["units"] += [True] * (1 + accuracy.searches_before(plan, config, task))
    reasons: dict[tuple[str, str], int] = {}  # each (mark, reason) once, under the table, numbered
    table = Table(title=f"kanbench run --dry-run: preset {plan.preset.name}, device {device}, harnesses "
                        f"{','.join(plan.harnesses)} → {out_dir}")
    for column in ("variant", "impl", "form", "dtypes", "tokens", "d_model", "modes / tasks", "units", "here"):
        table.add_column(column, overflow="fold")
    for (variant, impl, form), group in sorted(groups.items()):
        left = sum(group["units"])
        count = f"{left}" if left == len(group["units"]) else f"{left} of {len(group['units'])}"
        notes = [f"{why[0]} [{reasons.setdefault(why, len(reasons) + 1)}]"
                 for why in dict.fromkeys(group["why"]) if why]
        table.add_row(variant, impl, form, _joined(group["dtype"]), _joined(sorted(set(group["tokens"]))),
                      _joined(sorted(set(group["d_model"]))), _joined(group["mode"]), count,
                      " ".join(notes) or "✓")
    console.print(table)
    from kanbench.report.summary import print_wrapped

    for (mark, why), number in reasons.items():  # ✗: a `skipped` row; ○: checked by the gate, not timed
        print_wrapped(console, f"{mark} [{number}] {why}")
    # training runs on file (search or final); seed -1 holds the summaries over seeds, not a run
    trained = {unit_key(r) for r in recorded if r["harness"] == "accuracy" and r["seed"] != "-1"}
    searches = accuracy.search_runs(plan)
    if plan.accuracy_items:
        console.print(f"accuracy: {len(plan.accuracy_items)} training runs on "
                      f"{_joined([task for _, task in plan.accuracy_items])}"
                      + (f" + {searches} search runs ({plan.protocol} protocol)" if searches else "")
                      + (f"; {len(trained)} of them already on file" if trained else ""))
    if resume and units:
        console.print(f"--resume: {len(units) - len(todo)} of the {len(units)} measurement units are already in "
                      f"{out_dir / 'results.csv'} and would be skipped")
    pending = len(todo) + max(0, len(plan.accuracy_items) + searches - len(trained))
    console.print(f"{pending} units to run; nothing was measured or written (drop --dry-run to run them)")
    return pending
