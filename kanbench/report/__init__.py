"""Reports from a run folder: seaborn plots (``plots/``), ``report.md`` and a self-contained ``report.html``, and run
comparison."""

from __future__ import annotations

from pathlib import Path


def make_report(run_dir: Path, plots: bool = True) -> Path:
    """Plots, then report.md and report.html (which embed them); returns the report's path."""
    from kanbench.report.build import write_report

    files = []
    if plots:
        from kanbench.report.plots import write_plots

        files = write_plots(run_dir)
    return write_report(run_dir, files)
