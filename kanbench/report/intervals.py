"""Intervals on latency ratios, from the samples themselves: a percentile bootstrap of the ratio of medians.

``ratio_interval(a, b)`` resamples each configuration's samples with replacement, takes median(b*)/median(a*) each
time, and returns the point ratio with the 2.5th and 97.5th percentiles. A ratio whose interval excludes 1 is a
change beyond the measurement's own noise; `compare` and the report's speed-up columns use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_KEYS = ["variant", "impl", "form", "mode", "device", "dtype", "tokens", "d_model", "d_hidden", "hparams",
               "seed"]
RESAMPLES = 2000


def load_samples(run_dir: Path) -> dict[tuple, np.ndarray]:
    """Eager latency samples (ms) per configuration from ``samples.csv`` (CUDA-graph replays left out); keys are
    the SAMPLE_KEYS values as text."""
    path = run_dir / "samples.csv"
    if not path.exists() or path.stat().st_size == 0:
        return {}
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    if df.empty:
        return {}
    eager = df[~df.method.str.contains("CUDA graph", regex=False)]
    return {tuple(key): group.ms.astype(float).to_numpy() for key, group in eager.groupby(SAMPLE_KEYS, sort=False)}


def ratio_interval(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES,
                   seed: int = 0) -> tuple[float, float, float]:
    """(median(b)/median(a), low, high): the 95 % percentile-bootstrap interval of the ratio of medians."""
    rng = np.random.default_rng(seed)
    a_star = np.median(rng.choice(a, (resamples, len(a))), axis=1)
    b_star = np.median(rng.choice(b, (resamples, len(b))), axis=1)
    ratios = b_star / a_star
    return float(np.median(b) / np.median(a)), float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))
