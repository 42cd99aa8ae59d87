"""Reports from a run folder: seaborn plots (``plots/``), ``report.md`` and a self-contained ``report.html``, and run
comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def load_env(run_dir: Path) -> dict[str, Any]:
    """A run folder's env.json; {} where it has none."""
    env_path = run_dir / "env.json"
    return json.loads(env_path.read_text()) if env_path.exists() else {}


def load_run(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A run folder's results.csv (empty fields kept as empty strings, not NaN) and env.json ({} where absent)."""
    import pandas as pd

    return pd.read_csv(run_dir / "results.csv", keep_default_na=False), load_env(run_dir)


def make_report(run_dir: Path, plots: bool = True) -> Path:
    """Plots, then report.md and report.html (which embed them); returns the report's path."""
    from kanbench.report.build import write_report

    files = []
    if plots:
        from kanbench.report.plots import write_plots

        files = write_plots(run_dir)
    return write_report(run_dir, files)
