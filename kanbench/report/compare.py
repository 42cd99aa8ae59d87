"""``kanbench compare RUN_A RUN_B``: per-configuration latency ratios (B / A) with a 95 % bootstrap interval from
both runs' samples (:mod:`.intervals`). A change is flagged only when the interval excludes 1; a configuration
measured while the machine was busy (status ``noisy``) says so. Runs without samples (imported pytest-benchmark
JSON) fall back to their spreads: the interval is p20_b/p80_a .. p80_b/p20_a (quartiles there)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from kanbench.kernels.launch import cuda_core_dots_note
from kanbench.report import load_env
from kanbench.report.intervals import SAMPLE_KEYS, load_samples, ratio_interval

KEYS = SAMPLE_KEYS


def machines(run_a: Path, run_b: Path) -> list[str]:
    """What each run measured on (its device, GPU architecture and torch, triton and commit, from env.json), and a
    line where the two differ in device: the ratios then compare the machines as much as the code."""
    envs = [load_env(run) for run in (run_a, run_b)]
    lines = []
    for label, run, env in zip("AB", (run_a, run_b), envs, strict=True):
        if not env:
            lines.append(f"{label} = {run}: no env.json (its machine and versions are not recorded)")
            continue
        device = env.get("gpu") or env.get("cpu", "?")
        arch = f" ({env['gpu_arch']})" if env.get("gpu_arch") else ""
        note = cuda_core_dots_note(env.get("gpu_arch"))
        versions = [f"{name} {env[key]}" for name, key in (("torch", "torch"), ("triton", "triton")) if env.get(key)]
        if env.get("git_commit"):  # a full hash shortened as git shows it (a -dirty suffix kept)
            versions.append("commit " + re.sub(r"^([0-9a-f]{12})[0-9a-f]+", r"\1", env["git_commit"]))
        lines.append(f"{label} = {run}: " + ", ".join([f"{device}{arch}", *versions]) + (f". {note}" if note else ""))
    devices = [env.get("gpu") or env.get("cpu") for env in envs]
    if all(devices) and devices[0] != devices[1]:
        lines.append("A and B ran on different devices: each ratio compares the machines as much as the code.")
    return lines


def _latency_rows(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype=str)
    return df[(df.harness == "latency") & (df.metric == "latency")]


def latency_devices(run_dir: Path) -> set[str]:
    """The kinds of device (cpu, cuda) the run's latency rows were measured on; empty where it has none."""
    return set(_latency_rows(run_dir).device)


def _latency(run_dir: Path) -> pd.DataFrame:
    lat = _latency_rows(run_dir)
    measured = lat[lat.status.isin(["ok", "noisy"])]
    status = lat.groupby(KEYS).status.first()
    if measured.empty:  # no latency figure (an accuracy-only run, or every configuration skipped): statuses only
        return pd.DataFrame({"median": float("nan"), "low": float("nan"), "high": float("nan"), "status": status},
                            index=status.index)
    stats = measured.pivot_table(index=KEYS, columns="stat", values="value", aggfunc="first")
    low, high = ("p20", "p80") if "p20" in stats.columns else ("q1", "q3")
    stats = stats[["median", low, high]].astype(float).rename(columns={low: "low", high: "high"})
    return stats.join(status, how="outer")


def compare_runs(run_a: Path, run_b: Path) -> pd.DataFrame:
    """One row per configuration present in both runs: medians, ratio with its interval, and ``change``
    (``slower`` / ``faster`` when the interval excludes 1, ``within noise``, or the status change of a
    configuration that stopped running)."""
    a, b = _latency(run_a), _latency(run_b)
    samples_a, samples_b = load_samples(run_a), load_samples(run_b)
    both = a.merge(b, left_index=True, right_index=True, suffixes=("_a", "_b"))
    rows = []
    measured = {"ok", "noisy"}
    for key, r in both.iterrows():
        entry = dict(zip(KEYS, key, strict=True))
        entry.update(median_a=r.median_a, median_b=r.median_b)
        if r.status_a not in measured or r.status_b not in measured:
            entry.update(ratio=float("nan"), low=float("nan"), high=float("nan"),
                         change=f"status {r.status_a} → {r.status_b}" if r.status_a != r.status_b else r.status_a)
            rows.append(entry)
            continue
        if key in samples_a and key in samples_b:
            ratio, low, high = ratio_interval(samples_a[key], samples_b[key])
        else:
            ratio, low, high = r.median_b / r.median_a, r.low_b / r.high_a, r.high_b / r.low_a
        change = "slower" if low > 1 else "faster" if high < 1 else "within noise"
        if "noisy" in (r.status_a, r.status_b):
            change += " (noisy: measured on a busy machine)"
        entry.update(ratio=ratio, low=low, high=high, change=change)
        rows.append(entry)
    return pd.DataFrame(rows)


def regressions(table: pd.DataFrame, percent: float) -> pd.DataFrame:
    """Slow-downs larger than ``percent`` whose interval excludes 1, and configurations that stopped running."""
    slower = table.change.str.startswith("slower") & (table.ratio > 1 + percent / 100)
    broke = table.change.str.startswith("status ok →") | table.change.str.startswith("status noisy →")
    return table[slower | broke]
