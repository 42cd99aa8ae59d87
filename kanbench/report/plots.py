"""Seaborn plots of a run folder, PNG and SVG under ``RUN_DIR/plots/``: units on every axis, one colour per variant
across every plot, and only the plots the run has data for."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from kanbench import registry  # noqa: E402


def palette(variants: list[str]) -> dict[str, tuple]:
    """The same colour for a variant in every plot and every run (keyed on the registry's order)."""
    names = registry.list_variants()
    names += sorted(set(variants) - set(names))
    colours = sns.color_palette("tab10", n_colors=max(10, len(names)))
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def _label(df: pd.DataFrame) -> pd.Series:
    return df.variant + "/" + df.impl


def _save(fig: plt.Figure, out: Path, name: str, tight: bool = True) -> list[Path]:
    """PNG and SVG. ``tight=False`` for seaborn figure-level grids, which place their own legend outside."""
    for ax in fig.axes:  # log axes: decade labels only, so minor labels cannot collide
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_minor_formatter(NullFormatter())
    if tight:
        fig.tight_layout()
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=130 if path.suffix == ".png" else None, bbox_inches="tight")
    plt.close(fig)
    return paths


def latency_bars(samples: pd.DataFrame, out: Path, colours: dict) -> list[Path]:
    """Median latency per variant × impl, one panel per mode × dtype × shape, bars from every sample with the
    20th–80th percentile interval."""
    if samples.empty:
        return []
    shapes = samples.groupby(["tokens", "d_model"]).size().index
    tokens, d_model = max(shapes, key=lambda s: s[0] * s[1])  # the largest shape keeps the panels readable
    data = samples[(samples.tokens == tokens) & (samples.d_model == d_model)].copy()
    data["config"] = _label(data)
    panels = data.groupby(["mode", "dtype"]).size().index.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.35 * data.config.nunique() + 1.8),
                             squeeze=False)
    for ax, (mode, dtype) in zip(axes[0], panels, strict=True):
        part = data[(data["mode"] == mode) & (data.dtype == dtype)]
        order = part.groupby("config").ms.median().sort_values().index
        sns.barplot(part, y="config", x="ms", hue="variant", order=order, estimator="median", errorbar=("pi", 60),
                    palette=colours, dodge=False, legend=False, ax=ax)
        ax.set_xscale("log")
        ax.set(title=f"{mode}, {dtype}", xlabel="latency (ms, log; median, p20–p80)", ylabel="")
    fig.suptitle(f"latency at {tokens} tokens × {d_model}", y=1.02)
    return _save(fig, out, "latency_by_variant")


def latency_vs_tokens(samples: pd.DataFrame, out: Path, colours: dict) -> list[Path]:
    data = samples.groupby(["variant", "impl", "mode", "dtype", "d_model", "tokens"]).ms.median().reset_index()
    data = data[data.groupby(["variant", "impl", "mode", "dtype", "d_model"]).tokens.transform("nunique") > 1]
    if data.empty:
        return []
    data["throughput"] = data.tokens / (data.ms / 1e3)
    grid = sns.relplot(data, x="tokens", y="ms", hue="variant", style="impl", col="mode", row="dtype", kind="line",
                       marker="o", palette=colours, height=3.2, aspect=1.2, facet_kws={"sharey": False})
    grid.set(xscale="log", yscale="log")
    grid.set_axis_labels("tokens (log)", "median latency (ms, log)")
    grid.figure.suptitle("latency against batch size", y=1.02)
    return _save(grid.figure, out, "latency_vs_tokens", tight=False)


def memory_bars(results: pd.DataFrame, out: Path, colours: dict) -> list[Path]:
    mem = results[(results.harness == "memory") & (results.status == "ok") &
                  results.metric.isin(["peak_over_baseline", "saved_for_backward"]) & (results["mode"] == "fwd_bwd")]
    if mem.empty:
        return []
    mem = mem.assign(MiB=mem.value.astype(float) / 2**20, config=_label(mem))
    top = mem.tokens.max()
    mem = mem[mem.tokens == top]
    grid = sns.catplot(mem, y="config", x="MiB", hue="variant", col="metric", row="dtype", kind="bar",
                       palette=colours, dodge=False, legend=False, height=0.3 * mem.config.nunique() + 1.8, aspect=1.4,
                       sharex=False)
    grid.set(xscale="log")
    grid.set_axis_labels("MiB (log)", "")
    grid.figure.suptitle(f"memory of one forward+backward at {top} tokens", y=1.02)
    return _save(grid.figure, out, "memory", tight=False)


def flops_vs_latency(results: pd.DataFrame, out: Path, colours: dict) -> list[Path]:
    """Counted FLOPs (matmul + elementwise) against measured median latency: where FLOPs mislead."""
    flops = results[(results.metric == "flops_matmul_elementwise") & (results.status == "ok")]
    lat = results[(results.metric == "latency") & (results.stat == "median") & (results.status == "ok")]
    keys = ["variant", "impl", "mode", "dtype", "tokens", "d_model"]
    data = lat[keys + ["value"]].merge(flops[keys + ["value"]], on=keys, suffixes=("_ms", "_flop"))
    if data.empty:
        return []
    data = data.assign(ms=data.value_ms.astype(float), gflop=data.value_flop.astype(float) / 1e9)
    grid = sns.relplot(data, x="gflop", y="ms", hue="variant", style="impl", col="mode", row="dtype",
                       palette=colours, s=70, height=3.2, aspect=1.2, facet_kws={"sharey": False, "sharex": False})
    grid.set(xscale="log", yscale="log")
    grid.set_axis_labels("GFLOP per call (matmul + elementwise, log)", "median latency (ms, log)")
    grid.figure.suptitle("FLOPs against measured latency", y=1.02)
    return _save(grid.figure, out, "flops_vs_latency", tight=False)


def pareto_front(points: pd.DataFrame, x: str, y: str, higher_is_better: bool) -> pd.DataFrame:
    """Points no other point beats on both axes (smaller x, better y)."""
    ordered = points.sort_values(x)
    front, best = [], None
    for _, p in ordered.iterrows():
        if best is None or (p[y] > best if higher_is_better else p[y] < best):
            front.append(p)
            best = p[y]
    return pd.DataFrame(front)


def accuracy_plots(results: pd.DataFrame, out: Path, colours: dict) -> list[Path]:
    acc = results[(results.harness == "accuracy") & results.metric.str.startswith("test_") &
                  (results.stat == "value") & (results.status == "ok")]
    if acc.empty:
        return []
    acc = acc.assign(score=acc.value.astype(float), params=acc.params.astype(float))
    summary = acc.groupby(["mode", "variant", "metric"]).agg(score=("score", "mean"), sd=("score", "std"),
                                                             params=("params", "first")).reset_index()
    lat = results[(results.metric == "latency") & (results.stat == "median") & (results.status == "ok") &
                  (results.impl == registry.REFERENCE) & (results["mode"] == "fwd_bwd")]
    latency = lat.groupby("variant").value.apply(lambda v: float(v.astype(float).median()))
    paths = []
    for xcol, name, label in (("params", "accuracy_vs_params", "parameters (log)"),
                              ("latency_ms", "accuracy_vs_latency", "block fwd+bwd latency in this run (ms, log)")):
        data = summary.assign(latency_ms=summary.variant.map(latency)).dropna(subset=[xcol])
        if data.empty:
            continue
        tasks = sorted(data["mode"].unique())
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
        for ax, task in zip(axes[0], tasks, strict=True):
            part = data[data["mode"] == task]
            higher = part.metric.iloc[0] == "test_accuracy"
            for r in part.itertuples():
                ax.errorbar(getattr(r, xcol), r.score, yerr=0 if pd.isna(r.sd) else r.sd, fmt="o",
                            color=colours[r.variant], label=r.variant, capsize=3)
            front = pareto_front(part, xcol, "score", higher)
            ax.plot(front[xcol], front.score, "--", color="grey", lw=1, label="Pareto front")
            spread = part[xcol].max() / part[xcol].min()
            if spread > 10:  # matched widths put parameters within a few percent: log only where it helps
                ax.set_xscale("log")
            else:
                label = label.replace(" (log)", "").replace(", log)", ")")
            ax.set(title=task, xlabel=label, ylabel=part.metric.iloc[0].replace("_", " ") + " (mean ± std)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        fig.legend(unique.values(), unique.keys(), loc="upper center", ncol=min(8, len(unique)),
                   bbox_to_anchor=(0.5, 1.08), frameon=False)
        paths += _save(fig, out, name)
    return paths


def spark_speedup(results: pd.DataFrame, out: Path, colours: dict) -> list[Path]:
    """Spark decode speed-up over the dense FFNs against batch size, with the achieved active and union fractions."""
    lat = results[(results.metric == "latency") & (results.stat == "median") & (results.status == "ok") &
                  (results["mode"] == "decode")]
    if "spark_ffn" not in set(lat.variant) or lat.tokens.nunique() < 2:
        return []
    med = lat.assign(ms=lat.value.astype(float)).groupby(["variant", "impl", "tokens"]).ms.median().reset_index()
    spark = med[med.variant == "spark_ffn"]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    styles = ["-", "--", ":", "-."]
    for dense in sorted(set(med.variant) - {"spark_ffn"}):
        base = med[(med.variant == dense) & (med.impl == registry.REFERENCE)].set_index("tokens").ms
        for style, (impl, part) in zip(styles, spark.groupby("impl"), strict=False):
            part = part[part.tokens.isin(base.index)]
            ax.plot(part.tokens, base[part.tokens].values / part.ms.values, "o" + style, color=colours[dense],
                    label=f"spark_ffn/{impl} vs {dense}")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set(xscale="log", xlabel="batch (tokens per decode step, log)", ylabel="speed-up (dense ms / Spark ms)")
    handles, labels = ax.get_legend_handles_labels()
    fractions = results[results.metric.isin(["active_union_fraction", "active_fraction"]) &
                        (results.variant == "spark_ffn") & (results["mode"] == "decode")]
    if not fractions.empty:
        twin = ax.twinx()
        twin.grid(False)
        labels_by_metric = {"active_union_fraction": ("union of the batch's active neurons (right)", "s-"),
                            "active_fraction": ("per-row active fraction (right)", "s:")}
        for metric, part in fractions.groupby("metric"):
            frac = part.assign(f=part.value.astype(float)).groupby("tokens").f.mean()
            label, style = labels_by_metric[metric]
            handles += twin.plot(frac.index, frac.values, style, color="black", alpha=0.6, label=label)
            labels.append(label)
        twin.set(ylabel="fraction of neurons computed", ylim=(0, 1.05))
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=8)
    ax.set_title("Spark FFN decode speed-up against batch size")
    return _save(fig, out, "spark_speedup_vs_batch")


def write_plots(run_dir: Path) -> list[Path]:
    """Every plot this run has data for; returns the files written."""
    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    samples_path = run_dir / "samples.csv"
    samples = pd.read_csv(samples_path) if samples_path.exists() and samples_path.stat().st_size else pd.DataFrame()
    if not samples.empty:
        samples = samples[samples.method.str.contains("graph") == False]  # noqa: E712 - eager samples only
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    colours = palette(sorted(set(results.variant)))
    sns.set_theme(style="whitegrid", context="notebook")
    paths: list[Path] = []
    for plot in (latency_bars, latency_vs_tokens):
        paths += plot(samples, out, colours) if not samples.empty else []
    for plot in (memory_bars, flops_vs_latency, accuracy_plots, spark_speedup):
        paths += plot(results, out, colours)
    return paths
