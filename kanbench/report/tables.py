"""The detailed tables of a report (:mod:`kanbench.report.build` puts them in report.md and report.html).

Latency medians with their p20–p80 spread, speed-up over the baseline variant (the one registered with
``baseline=True``: ``mlp``) in the same dtype, shape and mode and over the variant's own ``reference`` impl with a
95 % bootstrap interval from the samples, the ratio to the physical floor; the compiled impls' compile times;
memory; FLOPs. A configuration that failed shows its status instead of a number; one measured on a busy machine
shows its number and the status ``noisy``.
"""

from __future__ import annotations

import re

import pandas as pd

from kanbench.registry import REFERENCE, baseline_variant
from kanbench.report.intervals import SAMPLE_KEYS, ratio_interval

SHAPE = ["dtype", "form", "tokens", "d_model"]
CONFIG = ["variant", "impl", *SHAPE, "seed"]


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def _speedup(samples: dict[tuple, object], base: tuple, mine: tuple, base_median: float, median: float) -> str:
    """``base / mine`` as a speed-up (> 1 = faster), with its 95 % bootstrap interval where both have samples."""
    if base in samples and mine in samples:
        ratio, low, high = ratio_interval(samples[mine], samples[base])
        return f"{ratio:.2f}× ({low:.2f}–{high:.2f})"
    return f"{base_median / median:.2f}×"


def latency_table(df: pd.DataFrame, samples: dict[tuple, object] | None = None) -> pd.DataFrame:
    samples = samples or {}
    baseline = baseline_variant()
    vs_baseline = f"vs {baseline}"
    lat = df[(df.harness == "latency") & (df.metric == "latency")]
    measured = lat[lat.status.isin(["ok", "noisy"])]
    ok = measured.pivot_table(index=[*CONFIG, "mode"], columns="stat", values="value", aggfunc="first")
    over = df[df.metric == "over_floor"].set_index([*CONFIG, "mode"]).value
    graph = df[(df.metric == "latency_cuda_graph") & (df.stat == "median")].set_index([*CONFIG, "mode"]).value
    sample_key = {tuple(r[c] for c in [*CONFIG, "mode"]): tuple(str(r[c]) for c in SAMPLE_KEYS)
                  for r in lat.to_dict("records")}
    rows = []
    for key, group in lat.groupby([*CONFIG, "mode"], sort=True):
        entry = dict(zip([*CONFIG, "mode"], key, strict=True))
        if key in ok.index:
            median = float(ok.loc[key, "median"])
            entry["median ms"] = _fmt(median)
            low, high = ("p20", "p80") if "p20" in ok.columns else ("q1", "q3")  # pytest-benchmark: quartiles
            spread = f"{_fmt(float(ok.loc[key, low]))}–{_fmt(float(ok.loc[key, high]))}"
            entry["p20–p80 ms"] = spread if low == "p20" else f"{spread} (q1–q3)"
            entry["graph ms"] = _fmt(float(graph[key])) if key in graph.index else ""
            entry["× floor"] = f"{float(over[key]):.2f}" if key in over.index else ""
            for column, base in ((vs_baseline, (baseline, REFERENCE, *key[2:])),  # same dtype, form, shape, mode
                                 ("vs reference", (key[0], REFERENCE, *key[2:]))):
                wanted = base in ok.index and (column == vs_baseline or key[1] != REFERENCE)
                entry[column] = (_speedup(samples, sample_key.get(base), sample_key[key],
                                          float(ok.loc[base, "median"]), median) if wanted else "")
            noisy = group[group.status == "noisy"]
            entry["status"] = "ok" if noisy.empty else f"noisy: {noisy.message.iloc[0].split('machine busy: ')[-1]}"
        else:
            entry.update({"median ms": "—", "p20–p80 ms": "", "graph ms": "", "× floor": "", vs_baseline: "",
                          "vs reference": "", "status": f"{group.status.iloc[0]}: {group.message.iloc[0][:80]}"})
        rows.append(entry)
    return pd.DataFrame(rows)


def metric_table(df: pd.DataFrame, harness: str, metrics: list[str], scale: float, unit: str) -> pd.DataFrame:
    part = df[(df.harness == harness) & df.metric.isin(metrics)]
    rows = []
    for key, group in part.groupby([*CONFIG, "mode"], sort=True):
        entry = dict(zip([*CONFIG, "mode"], key, strict=True))
        values = group.set_index("metric")
        for metric in metrics:
            if metric not in values.index:
                entry[metric] = ""
                continue
            r = values.loc[metric]
            entry[metric] = _fmt(float(r.value) / scale) if r.status == "ok" and r.value != "" else r.status
        rows.append(entry)
    frame = pd.DataFrame(rows)
    return frame.rename(columns={m: f"{m} ({unit})" for m in metrics})


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    acc = df[(df.harness == "accuracy") & df.metric.str.startswith("test_")]
    rows = []
    for (task, variant), group in acc.groupby(["mode", "variant"], sort=True):
        per_seed = group[group.stat == "value"]
        mean, std = group[group.stat == "mean"], group[group.stat == "std"]
        ok = per_seed[per_seed.status == "ok"]
        entry = {"task": task, "variant": variant, "metric": group.metric.iloc[0],
                 "mean ± std": (f"{float(mean.value.iloc[0]):.4f} ± {float(std.value.iloc[0]):.4f}" if len(mean)
                                else "—"),
                 "seeds ok": f"{len(ok)}/{len(per_seed)}", "hidden": group.d_hidden.iloc[0],
                 "params": group.params.iloc[0] if group.params.iloc[0] != "" else "—"}
        bad = per_seed[per_seed.status != "ok"]
        entry["status"] = "ok" if bad.empty else f"{bad.status.iloc[0]}: {bad.message.iloc[0][:70]}"
        rows.append(entry)
    return pd.DataFrame(rows)


def compile_table(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The ``compile_time`` rows (first call of each shape, compilation included) with the FX-graph cache's hits
    and misses they saw, and a sentence on the process's one-time start-up they exclude (empty where the rows
    predate that)."""
    rows = df[(df.harness == "latency") & (df.metric == "compile_time")]
    table = pd.DataFrame([{**{c: r[c] for c in [*CONFIG, "mode"]}, "compile s": _fmt(float(r["value"]), 3),
                           "what": r["message"].split(",")[0],
                           "FX-graph cache": (m.group(1) if (m := re.search(r"FX-graph cache: ([^;]*)", r["message"]))
                                              else "")}
                          for r in rows.sort_values([*CONFIG, "mode"]).to_dict("records")])
    startups = sorted({m.group(1) for text in rows.message if (m := re.search(r"not included \(([^,]*)", text))})
    note = (f"torch.compile's one-time start-up in the process ({', '.join(startups)}) is not included: a one-op "
            "graph paid it before the first compile was timed." if startups else "")
    return table, note
