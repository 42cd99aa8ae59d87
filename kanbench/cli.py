"""``kanbench list | run``: the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch
from rich.console import Console
from rich.table import Table

from kanbench.registry import get_variant, list_variants


def _format_default(value: object) -> str:
    return "auto" if value is None else str(value)


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    names = list_variants(args.pattern)
    if not names:
        console.print(f"no variant matches '{args.pattern}'; known: {', '.join(list_variants())}")
        return 1
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    table = Table(title=f"kanbench variants (usable impls on: {', '.join(devices)})")
    for column in ("name", "paper", "forms", "impls usable here", "defaults"):
        table.add_column(column, overflow="fold")
    for name in names:
        spec = get_variant(name)
        usable = sorted({impl for device in devices for impl in spec.usable_impls(device)})
        defaults = ", ".join(f"{k}={_format_default(v)}" for k, v in spec.defaults.items()) or "-"
        table.add_row(name, spec.paper, ", ".join(spec.forms), ", ".join(usable), defaults)
    console.print(table)
    return 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from kanbench.report.tables import write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "results.csv").exists():
        raise ValueError(f"{run_dir} holds no results.csv; give the folder a `kanbench run` wrote.")
    console.print(f"wrote {write_report(run_dir)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kanbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list the registered variants")
    p_list.add_argument("pattern", nargs="?", default="*", help="glob pattern over variant names (default: *)")
    p_list.set_defaults(func=cmd_list)
    p_report = sub.add_parser("report", help="markdown tables of a run folder (report.md)")
    p_report.add_argument("run_dir", help="a folder written by `kanbench run`")
    p_report.set_defaults(func=cmd_report)
    from kanbench.harness.cli_run import add_run_parser

    add_run_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    try:
        return int(args.func(args, console) or 0)
    except ValueError as err:  # bad input: a message that says what is accepted, never a traceback
        if os.environ.get("KANBENCH_DEBUG"):
            raise
        console.print(f"[bold red]kanbench {args.command}:[/] {err}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
