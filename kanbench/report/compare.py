"""``kanbench compare RUN_A RUN_B``: per-configuration latency ratios (B / A). A change is flagged only when it
exceeds the two runs' own spread: the p20–p80 intervals of A and B do not overlap."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KEYS = ["variant", "impl", "form", "mode", "device", "dtype", "tokens", "d_model", "d_hidden", "hparams", "seed"]


def _latency(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype=str)
    lat = df[(df.harness == "latency") & (df.metric == "latency")]
    ok = lat[lat.status == "ok"].pivot_table(index=KEYS, columns="stat", values="value", aggfunc="first")
    ok = ok[["median", "p20", "p80"]].astype(float)
    status = lat.groupby(KEYS).status.first()
    return ok.join(status, how="outer")


def compare_runs(run_a: Path, run_b: Path) -> pd.DataFrame:
    """One row per configuration present in both runs: medians, ratio, and ``change`` (``slower`` / ``faster``
    beyond both spreads, ``within spread``, or the status change of a configuration that stopped running)."""
    a, b = _latency(run_a), _latency(run_b)
    both = a.join(b, lsuffix="_a", rsuffix="_b", how="inner")
    rows = []
    for key, r in both.iterrows():
        entry = dict(zip(KEYS, key, strict=True))
        if r.status_a != "ok" or r.status_b != "ok":
            entry.update(median_a=r.median_a, median_b=r.median_b, ratio=float("nan"),
                         change=f"status {r.status_a} → {r.status_b}" if r.status_a != r.status_b else r.status_a)
        else:
            ratio = r.median_b / r.median_a
            if r.p20_b > r.p80_a:
                change = "slower"
            elif r.p80_b < r.p20_a:
                change = "faster"
            else:
                change = "within spread"
            entry.update(median_a=r.median_a, median_b=r.median_b, ratio=ratio, change=change)
        rows.append(entry)
    return pd.DataFrame(rows)


def regressions(table: pd.DataFrame, percent: float) -> pd.DataFrame:
    """Flagged slow-downs larger than ``percent``, and configurations that stopped running."""
    slower = (table.change == "slower") & (table.ratio > 1 + percent / 100)
    broke = table.change.str.startswith("status ok →")
    return table[slower | broke]
