"""kanbench: benchmarks of KAN layers and sparse FFNs as drop-in transformer FFNs.

  kanbench list [PATTERN]          the registered variants and every impl (why one cannot run here)
  kanbench run [flags]             measure into a tidy CSV (kanbench run --help)
  kanbench report RUN_DIR          plots, report.md and report.html of a run
  kanbench compare RUN_A RUN_B     B / A latency per configuration, with intervals
  kanbench targets RUN_DIR..       kanbench's performance targets, met or missed, in each run
  kanbench import-benchmark JSON   a pytest-benchmark JSON as a run folder
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kanbench.names import unknown_name_message
from kanbench.registry import get_variant, list_variants


def _format_default(value: object) -> str:
    return "auto" if value is None else str(value)


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    """Every variant and every registered impl; impls that cannot run here are marked, their reasons listed once
    per reason under the table (``--usable``: only the impls that run here)."""
    names = list_variants(args.pattern)
    if not names:
        known = list_variants()
        if any(ch in args.pattern for ch in "*?["):
            console.print(f"no variant matches '{args.pattern}'; known variants: {', '.join(known)}.")
        else:  # a name, perhaps misspelt: the nearest one too
            console.print(unknown_name_message("variant", args.pattern, known))
        return 1
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    title = "impls usable here" if args.usable else "impls (✗: cannot run here, see below)"
    notes: list[str] = []
    machine = "cpu"
    if torch.cuda.is_available():
        from kanbench.harness.env import gpu_identity
        from kanbench.kernels.launch import cuda_core_dots_note

        gpu = gpu_identity("cuda")
        machine = f"cpu, cuda: {gpu['gpu']} ({gpu['gpu_arch']})"
        notes = [note for note in [cuda_core_dots_note(gpu["gpu_arch"])] if note]
    table = Table(title=f"kanbench variants (this machine: {machine})")
    wide = console.width >= 140  # narrower: paper and defaults move under the table, one wrapped line each
    for column in ("name", "paper", "forms", title, "defaults") if wide else ("name", "forms", title):
        table.add_column(column, overflow="fold")
    details: list[str] = []
    reasons: dict[str, list[str]] = {}
    for name in names:
        spec = get_variant(name)
        shown = []
        for impl in spec.impl_names():
            why = [spec.impl(impl).why_not(device) for device in devices]
            if any(w is None for w in why):
                shown.append(impl)
            elif not args.usable:
                shown.append(f"✗ {impl}")
                reasons.setdefault(why[-1], []).append(f"{name}/{impl}")
        defaults = ", ".join(f"{k}={_format_default(v)}" for k, v in spec.defaults.items()) or "-"
        if wide:
            table.add_row(name, spec.paper, ", ".join(spec.forms), ", ".join(shown), defaults)
        else:
            table.add_row(name, ", ".join(spec.forms), ", ".join(shown))
            details.append(f"{name}: {spec.paper}; defaults {defaults}")
    console.print(table)
    from kanbench.report.summary import print_wrapped

    for line in details + [f"✗ {', '.join(impls)}: {reason}" for reason, impls in reasons.items()] + notes:
        print_wrapped(console, line)
    return 0


def results_csv(run_dir: Path, give: str) -> Path:
    """``run_dir``'s results.csv, checked to be a table kanbench wrote (its columns, or an earlier version's, which
    ended at ``message``); a ValueError ending in ``give`` (what to pass instead) where it is not."""
    from kanbench.harness.results import COLUMNS

    path = run_dir / "results.csv"
    if run_dir.is_file():
        folder = f"the folder that holds it, {run_dir.parent}" if run_dir.name == "results.csv" else "a folder"
        raise ValueError(f"{run_dir} is a file, not a run folder: give {folder}.")
    if not path.exists():
        raise ValueError(f"{run_dir} holds no results.csv; {give}.")
    with path.open(newline="") as f:
        columns = next(csv.reader([f.readline().rstrip("\r\n")]), [])
    if not columns:
        raise ValueError(f"{path} holds no header and no rows; {give}.")
    if columns != COLUMNS[: len(columns)] or len(columns) <= COLUMNS.index("message"):
        raise ValueError(f"{path} is not a results table kanbench wrote (its columns begin "
                         f"{', '.join(columns[:4])}; kanbench's begin {', '.join(COLUMNS[:4])}); {give}.")
    return path


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from kanbench.report import make_report

    run_dir = Path(args.run_dir)
    resume = f"run `kanbench run --out {run_dir} --resume` to measure into it"
    with results_csv(run_dir, f"give the folder a `kanbench run` wrote, or {resume}").open() as f:
        lines = len(list(itertools.islice(f, 2)))  # the header and a first row, at most
    if lines < 2:
        raise ValueError(f"{run_dir / 'results.csv'} holds no rows: nothing to report; {resume}.")
    report = make_report(run_dir, plots=not args.no_plots)
    console.print(f"wrote {report} and {report.with_suffix('.html')}")
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from kanbench.report.compare import compare_runs, latency_devices, machines, regressions

    runs = [Path(args.run_a), Path(args.run_b)]
    for run in runs:
        results_csv(run, "give two folders written by `kanbench run`")
    for line in machines(*runs):
        console.print(line, highlight=False)
    table = compare_runs(*runs)
    if table.empty:
        devices = [latency_devices(run) for run in runs]  # each results.csv read once more, on this path alone
        without = sorted({str(run) for run, kinds in zip(runs, devices, strict=True) if not kinds})
        if without:
            console.print(f"no latency rows in {' or '.join(without)}: compare reads the latency harness's rows "
                          "(`kanbench run --harness latency`)")
        elif not set.intersection(*devices):
            a, b = (", ".join(sorted(kinds)) for kinds in devices)
            console.print(f"A was measured on {a} and B on {b}: compare pairs each configuration with itself on the "
                          "same kind of device (two GPUs, or two CPUs)")
        else:
            console.print("no configuration is in both runs (compare reads the latency harness's rows)")
        return 1 if args.fail_on_regression is not None else 0
    view = Table(title=f"B / A latency: A = {runs[0]}, B = {runs[1]} (95 % bootstrap interval of the ratio of "
                       "medians; flagged where it excludes 1)")
    for col in ("variant", "impl", "mode", "dtype", "tokens", "d_model", "A median ms", "B median ms", "B / A",
                "95 % interval", "change"):
        view.add_column(col)
    for r in table.itertuples():
        style = {"slower": "red", "faster": "green"}.get(r.change.split(" ")[0], "")
        ratio = "-" if r.ratio != r.ratio else f"{r.ratio:.3f}"
        interval = "-" if r.low != r.low else f"{r.low:.3f}–{r.high:.3f}"
        median_a = "-" if r.median_a != r.median_a else f"{r.median_a:.4g}"
        median_b = "-" if r.median_b != r.median_b else f"{r.median_b:.4g}"
        view.add_row(r.variant, r.impl, r.mode, r.dtype, r.tokens, r.d_model, median_a, median_b, ratio, interval,
                     f"[{style}]{r.change}[/]" if style else r.change)
    console.print(view)
    if args.fail_on_regression is not None:
        bad = regressions(table, args.fail_on_regression)
        if len(bad):
            named = "; ".join(f"{r.variant}/{r.impl} {r.mode} {r.dtype} {r.tokens}x{r.d_model} "
                              f"({r.change if r.ratio != r.ratio else f'{r.ratio:.2f}x'})"
                              for r in bad.itertuples())
            console.print(f"[red]{len(bad)} regression(s) beyond {args.fail_on_regression} % with an interval "
                          f"excluding 1: {named}[/]", highlight=False)
            return 1
    return 0


def cmd_targets(args: argparse.Namespace, console: Console) -> int:
    import pandas as pd

    from kanbench.report import load_run
    from kanbench.report.targets import targets_table

    tables = []
    for run in map(Path, args.run_dirs):
        results_csv(run, "give folders written by `kanbench run`")
        judged = targets_table(*load_run(run))
        if len(judged):
            tables.append(judged.assign(run=str(run)))
    if not tables:
        console.print("none of these runs measures a configuration a target is set for (see `kanbench report`'s "
                      "Performance targets section: the GPU presets kat-b, ffn-768, spark-topk, decode-gemma2b)")
        return 0
    from kanbench.report.document import Table as Markdown
    from kanbench.report.document import Text, to_markdown

    table = pd.concat(tables, ignore_index=True).fillna("")
    # markdown, not a terminal table: readable at any width, and what a README quotes
    print(to_markdown([Text("kanbench's performance targets, judged on each run's own rows:"), Markdown(table)]))
    return 0


def cmd_import_benchmark(args: argparse.Namespace, console: Console) -> int:
    from kanbench.report.pytest_benchmark import import_benchmark

    path = Path(args.json)
    if not path.exists():
        raise ValueError(f"{path} does not exist; write one with pytest --benchmark-json=PATH.")
    console.print(f"wrote {import_benchmark(path, Path(args.out))}")
    return 0


class _Version(argparse.Action):
    """``kanbench --version``: kanbench's version and commit and the versions a figure depends on (computed only
    when asked: the commit takes a git call)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print kanbench's version, commit, python, torch and "
                         "triton, then exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib import metadata

        from kanbench import __version__
        from kanbench.harness.env import git_commit

        try:
            triton = metadata.version("triton")  # its metadata: importing triton takes seconds
        except metadata.PackageNotFoundError:
            triton = "not installed"
        print(f"kanbench {__version__} (commit {git_commit() or 'unknown'}), python {sys.version.split()[0]}, "
              f"torch {torch.__version__}, triton {triton}")  # stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kanbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list the registered variants")
    p_list.add_argument("pattern", nargs="?", default="*", help="glob pattern over variant names (default: *)")
    p_list.add_argument("--usable", action="store_true", help="only the impls that can run on this machine")
    p_list.set_defaults(func=cmd_list)
    p_report = sub.add_parser("report", help="plots (RUN_DIR/plots), report.md and a self-contained report.html")
    p_report.add_argument("run_dir", help="a folder written by `kanbench run`")
    p_report.add_argument("--no-plots", action="store_true", help="tables only")
    p_report.set_defaults(func=cmd_report)
    p_compare = sub.add_parser("compare", help="per-configuration latency ratios of two runs")
    p_compare.add_argument("run_a", help="baseline run folder")
    p_compare.add_argument("run_b", help="run folder to compare with the baseline")
    p_compare.add_argument("--fail-on-regression", type=float, default=None, metavar="PCT",
                           help="exit 1 when a configuration is slower by more than PCT %% with a 95 %% "
                                "interval excluding 1 (or stopped running); names every one")
    p_compare.set_defaults(func=cmd_compare)
    p_targets = sub.add_parser("targets", help="kanbench's performance targets, met or missed, in one or more runs")
    p_targets.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by `kanbench run`")
    p_targets.set_defaults(func=cmd_targets)
    p_import = sub.add_parser("import-benchmark", help="a pytest-benchmark JSON as a kanbench run folder")
    p_import.add_argument("json", help="the file pytest --benchmark-json wrote")
    p_import.add_argument("--out", required=True, help="run folder to write (results.csv, env.json)")
    p_import.set_defaults(func=cmd_import_benchmark)
    from kanbench.cli_run import add_run_parser

    add_run_parser(sub)
    return parser


LOG_WIDTH = 200  # the console's width when the output is not a terminal


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # rich wraps at 80 columns off a terminal, which cuts the compare and targets tables' cells to "rel…" in a
        # log or a pipe; a fixed wide console keeps them whole (COLUMNS still sets the width)
        console = Console(width=LOG_WIDTH)
    try:
        return int(args.func(args, console) or 0)
    except ValueError as err:  # bad input: a message that says what is accepted, never a traceback
        if os.environ.get("KANBENCH_DEBUG"):
            raise
        console.print(f"[bold red]kanbench {args.command}:[/] {escape(str(err))}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
