"""A run at a glance: the closing summary of ``kanbench run`` and the summary tables of report.md and report.html,
from one code path.

A summary is a list of :class:`Section`s. Rows are identified by whole, never-truncated fields (variant, impl);
each value cell is a short tuple of parts — the terminal stacks them on lines, markdown and HTML join them with a
line break — so that a table three modes wide fits 80 columns. Tables wider than the room are split by columns
(:func:`fit`), never squeezed. Configurations that did not run are not rows: they are grouped by reason into one
line each (:func:`not_run_lines`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from kanbench.harness.presets import MODES
from kanbench.registry import REFERENCE, baseline_variant

MEASURED = ("ok", "noisy")
NOISY_MARK = "~"
NOISY_NOTE = (f"{NOISY_MARK} measured while other processes took the CPU (status noisy): re-take on an idle machine "
              "before publishing")
COLUMN_COST = 3  # one space either side of a column (padding=(0, 1)) and the divider between columns


@dataclass
class Section:
    """A titled table: ``index`` columns name the row; every other column holds tuples of text parts."""

    title: str
    frame: pd.DataFrame
    index: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[str]:
        return [c for c in self.frame.columns if c not in self.index]


def _g(value: float) -> str:
    return f"{value:.3g}"


def _latency_cell(stats: dict[str, float], status: str, base_median: float | None, is_base: bool) -> tuple:
    if status not in MEASURED:
        return (status,)
    median = (NOISY_MARK if status == "noisy" else "") + _g(stats["median"])
    low, high = ("p20", "p80") if "p20" in stats else ("q1", "q3")  # imported pytest-benchmark runs: quartiles
    if low in stats and high in stats:
        spread = 100 * (stats[high] - stats[low]) / 2 / stats["median"]
        median += f" ±{spread:.0f}%" if spread >= 10 else f" ±{spread:.1f}%"
    parts = [median]
    if is_base:
        parts.append("baseline")
    elif base_median is not None:
        parts.append(f"{base_median / stats['median']:.2f}×")
    return tuple(parts)


def mode_order(key: tuple[str, int]) -> tuple[int, int]:
    mode, tokens = key
    return (MODES.index(mode) if mode in MODES else len(MODES), int(tokens))


def row_order(pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """(variant, impl) rows as every summary table orders them: the baseline variant first, then by name; within a
    variant the reference impl first."""
    baseline = baseline_variant()
    return sorted(pairs, key=lambda k: (k[0] != baseline, k[0], k[1] != REFERENCE, k[1]))


def latency_sections(df: pd.DataFrame) -> list[Section]:
    """One table per device, dtype, form and width: rows variant/impl, one column per mode (and token count).

    Cell: median ms ± half the p20–p80 range (relative to the median); speed-up over the baseline variant's
    reference (> 1 = faster). The detailed table (report.md) has p20 and p80 themselves and the ratio's interval.
    """
    lat = df[(df.harness == "latency") & (df.metric == "latency")]
    lat = lat[lat.status != "skipped"]
    if lat.empty:
        return []
    baseline = baseline_variant()
    sections = []
    for (device, dtype, form, d_model), part in lat.groupby(["device", "dtype", "form", "d_model"], sort=True):
        columns = sorted({(m, int(t)) for m, t in zip(part["mode"], part.tokens, strict=True)}, key=mode_order)
        stats: dict[tuple, dict[str, float]] = {}
        status: dict[tuple, str] = {}
        for (variant, impl, mode, tokens), group in part.groupby(["variant", "impl", "mode", "tokens"]):
            key = (variant, impl, mode, int(tokens))
            status[key] = "noisy" if "noisy" in set(group.status) else group.status.iloc[0]
            stats[key] = {r.stat: float(r.value) for r in group.itertuples() if r.value != ""}
        rows = []
        for variant, impl in row_order({k[:2] for k in stats}):
            row = {"variant": variant, "impl": impl}
            for mode, tokens in columns:
                key, base = (variant, impl, mode, tokens), (baseline, REFERENCE, mode, tokens)
                if key not in status:
                    row[f"{mode}\n{tokens} tok"] = ("",)
                    continue
                base_median = stats[base]["median"] if status.get(base) in MEASURED else None
                row[f"{mode}\n{tokens} tok"] = _latency_cell(stats[key], status[key], base_median, key == base)
            rows.append(row)
        quartiles = "p20" not in set(part.stat)  # an imported pytest-benchmark run
        notes = [f"cell: median ms ± half the {'q1–q3' if quartiles else 'p20–p80'} range / speed-up over "
                 f"{baseline}/{REFERENCE} (> 1 = faster)"]
        if (part.status == "noisy").any():
            notes.append(NOISY_NOTE)
        title = f"latency on {device}, {dtype}, {form} d_model={d_model}"
        sections.append(Section(title, pd.DataFrame(rows), ["variant", "impl"], notes))
    return sections


def _metric_label(metric: str) -> str:
    name = metric.removeprefix("test_")
    arrow = "↑" if name == "accuracy" else "↓"
    return f"{name.replace('bits_per_char', 'bits/char')} {arrow}"


def accuracy_sections(df: pd.DataFrame) -> list[Section]:
    """Rows: variants; columns: tasks (test metric of the checkpoint chosen on validation, mean and ± std)."""
    acc = df[(df.harness == "accuracy") & df.metric.str.startswith("test_") & (df.status != "skipped")]
    if acc.empty:
        return []
    rows: dict[str, dict[str, tuple]] = {}
    tasks = list(dict.fromkeys(acc["mode"]))
    headers = {}
    for (task, variant), group in acc.groupby(["mode", "variant"], sort=False):
        header = task.replace(":", ":\n") + "\n" + _metric_label(group.metric.iloc[0])
        headers[task] = header
        per_seed = group[group.stat == "value"]
        mean, std = group[group.stat == "mean"], group[group.stat == "std"]
        bad = per_seed[per_seed.status != "ok"] if len(per_seed) else group[group.status != "ok"]
        if len(mean):
            cell: tuple = (f"{float(mean.value.iloc[0]):.4g}", f"±{float(std.value.iloc[0]):.2g}")
        elif len(bad):
            cell = (bad.status.iloc[0],)
        else:
            cell = (f"{len(per_seed)} seed(s)", "running")
        if len(bad) and len(mean) == 0 and len(per_seed):
            cell += (f"{len(per_seed) - len(bad)}/{len(per_seed)} ok",)
        rows.setdefault(variant, {"variant": variant})[task] = cell
    frame = pd.DataFrame([{"variant": v, **{headers[t]: r.get(t, ("",)) for t in tasks}} for v, r in rows.items()])
    notes = ["cell: test metric of the checkpoint chosen on validation, mean / ± std over seeds"]
    return [Section("accuracy", frame, ["variant"], notes)]


def not_run_lines(df: pd.DataFrame, limit: int = 12) -> list[str]:
    """Rows that are neither measured nor noisy, one line per (status, reason): which variant/impls, harnesses
    and modes it covers."""
    bad = df[~df.status.isin(MEASURED)]
    # A reason shared by many configurations (skips) is one line; a gate verdict carries its own numbers for each
    # configuration, so those are one line per variant/impl, with the first verdict as the example.
    per_impl = bad.status.isin(["mismatch", "error", "oom"])
    key = bad.message.where(~per_impl, bad.variant + "/" + bad.impl)
    lines = []
    for (status, _), group in bad.groupby([bad.status, key], sort=True):
        impls = ", ".join(dict.fromkeys(group.variant + "/" + group.impl))
        harnesses = ", ".join(dict.fromkeys(group.harness))
        modes = ", ".join(dict.fromkeys(group["mode"]))
        verdicts = group.message.str.removeprefix("not measured, rejected by the correctness gate: ")
        message, others = verdicts.iloc[0], verdicts.nunique() - 1
        more = f" (and {others} other verdict{'s' if others > 1 else ''}: report.md)" if others else ""
        lines.append(f"{status}: {impls} [{harnesses}; {modes}]: {message}{more}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"… {len(lines) - limit} more reasons: see report.md"]
    return lines


def _width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def column_widths(section: Section) -> dict[str, int]:
    widths = {}
    for column in section.frame.columns:
        cells = section.frame[column]
        parts = [p for cell in cells for p in (cell if isinstance(cell, tuple) else (str(cell),))]
        widths[column] = max([_width(column), *(len(p) for p in parts)])
    return widths


def fit(section: Section, width: int) -> list[Section]:
    """The section split into tables no wider than ``width`` (index columns repeated in each), in column order."""
    widths = column_widths(section)
    room = width + 1 - sum(widths[c] + COLUMN_COST for c in section.index)  # n columns have n - 1 dividers
    chunks: list[list[str]] = [[]]
    used = 0
    for column in section.values:
        need = widths[column] + COLUMN_COST
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(column)
        used += need
    if len(chunks) == 1:
        return [section]
    return [Section(f"{section.title} ({i}/{len(chunks)})", section.frame[[*section.index, *chunk]],
                    section.index, section.notes if i == len(chunks) else [])
            for i, chunk in enumerate(chunks, start=1)]


def cell_text(cell: object, joiner: str) -> str:
    return joiner.join(cell) if isinstance(cell, tuple) else str(cell)


def render(sections: Sequence[Section], console, lines: Sequence[str] = ()) -> None:  # noqa: ANN001 - rich Console
    """Print each section as rich tables that fit the console's width, then the grouped not-run lines."""
    from rich import box
    from rich.table import Table

    for section in sections:
        for part in fit(section, console.width):
            table = Table(title=part.title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=True,
                          show_edge=False, title_justify="left")
            widths = column_widths(part)
            for column in part.frame.columns:
                table.add_column(column, no_wrap=True, overflow="fold", min_width=widths[column],
                                 justify="left" if column in part.index else "right")
            for row in part.frame.itertuples(index=False):
                table.add_row(*(cell_text(v, "\n") for v in row))
            console.print(table)
            for note in part.notes:
                print_wrapped(console, note, "")
    if lines:
        console.print("[bold]not run[/] (one line per reason; details in results.csv):")
        for line in lines:
            print_wrapped(console, line, "  ")


def print_wrapped(console, text: str, indent: str = "") -> None:  # noqa: ANN001 - rich Console
    """Wrapped to the console with a hanging indent, so a long reason reads as one item."""
    for line in textwrap.wrap(text, console.width - 1, initial_indent=indent, subsequent_indent=indent + "    ",
                              break_on_hyphens=False, break_long_words=False):
        console.print(line, markup=False, highlight=False)
