"""Seaborn plots of a run folder, PNG and SVG under ``RUN_DIR/plots/``: units on every axis, one colour per variant
across every plot, facets that wrap at four a row, every figure titled with its device, dtype and shape, and only
the plots the run has data for."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from kanbench import registry  # noqa: E402
from kanbench.report import load_run  # noqa: E402
from kanbench.report.axes import ticks_at  # noqa: E402
from kanbench.report.figures import Figures, axes_grid, facets_a_row, footer, palette, save  # noqa: E402
from kanbench.report.intervals import SAMPLE_KEYS, ratio_interval  # noqa: E402

PLOT_NAMES = ("latency_by_variant", "speedup_vs_baseline", "latency_vs_tokens", "memory", "flops_vs_latency",
              "accuracy_vs_params", "accuracy_vs_step_time", "accuracy_vs_flops", "spark_speedup_vs_batch")


def _label(df: pd.DataFrame) -> pd.Series:
    return df.variant + "/" + df.impl


def _largest_shape_panels(samples: pd.DataFrame) -> list[tuple[str, str, int, int]]:
    """(mode, dtype, tokens, d_model) per mode and dtype at its largest shape: bars stay readable, decode kept."""
    panels = []
    for (mode, dtype), part in samples.groupby(["mode", "dtype"], sort=True):
        tokens, d_model = max(part.groupby(["tokens", "d_model"]).size().index, key=lambda s: s[0] * s[1])
        panels.append((mode, dtype, int(tokens), int(d_model)))
    return panels


def _panel(samples: pd.DataFrame, panel: tuple[str, str, int, int]) -> pd.DataFrame:
    mode, dtype, tokens, d_model = panel
    return samples[(samples["mode"] == mode) & (samples.dtype == dtype) & (samples.tokens == tokens) &
                   (samples.d_model == d_model)]


def latency_dots(samples: pd.DataFrame, figs: Figures) -> list[Path]:
    """Median latency per variant × impl (dot) with the 20th–80th percentile of every sample (line), one panel per
    mode × dtype at its largest shape. Dots, not bars: on a log axis a bar's length depends on where the axis
    happens to start, so it would misstate the ratio between two impls."""
    panels = _largest_shape_panels(samples)
    configs = _label(samples).nunique()
    fig, axes = axes_grid(len(panels), 4.4, 0.32 * configs + 1.6)
    for ax, panel in zip(axes, panels, strict=True):
        part = _panel(samples, panel).assign(config=lambda d: _label(d))
        stats = part.groupby(["config", "variant"]).ms.quantile([0.2, 0.5, 0.8]).unstack().reset_index()
        stats = stats.sort_values(0.5).reset_index(drop=True)
        y = np.arange(len(stats))
        colours = [figs.colours[v] for v in stats.variant]
        ax.hlines(y, stats[0.2], stats[0.8], colors=colours, lw=2.5)
        ax.scatter(stats[0.5], y, c=colours, s=45, zorder=3, edgecolors="black", linewidths=0.5)
        ax.set_yticks(y, stats.config)
        ax.set_ylim(len(stats) - 0.5, -0.5)  # fastest on top
        ax.set_xscale("log")
        ax.grid(True, axis="x", which="major")
        ax.set(title=f"{panel[0]}, {panel[1]}, {panel[2]} tok × {panel[3]}", ylabel="",
               xlabel="latency (ms, log; median, p20–p80)")
    fig.suptitle(figs.title("latency per variant and impl", samples, "largest shape per mode"), y=1.0)
    return save(fig, figs, "latency_by_variant")


def _speedups(part: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Speed-up (baseline median / median, > 1 = faster) with its 95 % bootstrap interval, per configuration."""
    keys = [k for k in SAMPLE_KEYS if k in part.columns]
    groups = {tuple(k): g.ms.to_numpy() for k, g in part.groupby(keys, sort=False)}
    base = [ms for k, ms in groups.items() if k[0] == baseline and k[1] == registry.REFERENCE]
    if not base:
        return pd.DataFrame()
    rows = []
    for key, ms in groups.items():
        ratio, low, high = ratio_interval(ms, base[0])  # median(base) / median(ms)
        rows.append({"variant": key[0], "impl": key[1], "speedup": ratio, "low": low, "high": high})
    return pd.DataFrame(rows)


def speedup_bars(samples: pd.DataFrame, figs: Figures) -> list[Path]:
    """Speed-up of every variant × impl over the baseline's reference, error bars the 95 % bootstrap interval of
    the ratio of medians from the samples."""
    baseline = registry.baseline_variant()
    panels = [(p, _speedups(_panel(samples, p), baseline)) for p in _largest_shape_panels(samples)]
    panels = [(p, s) for p, s in panels if not s.empty]
    if not panels:
        return []
    fig, axes = axes_grid(len(panels), 4.4, 0.32 * _label(samples).nunique() + 1.6)
    for ax, (panel, data) in zip(axes, panels, strict=True):
        data = data.assign(config=_label(data)).sort_values("speedup", ascending=False).reset_index(drop=True)
        y = np.arange(len(data))
        # bars from 1 (as fast as the baseline): slower to the left, faster to the right, the length the ratio on
        # the log axis; a bar from 0 would be as long as the axis's arbitrary left end made it
        ax.barh(y, data.speedup - 1, left=1, color=[figs.colours[v] for v in data.variant])
        ax.errorbar(data.speedup, y, xerr=[data.speedup - data.low, data.high - data.speedup], fmt="none",
                    ecolor="black", capsize=3, lw=1)
        ax.axvline(1.0, color="grey", lw=1, ls="--")
        ax.set_yticks(y, data.config)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set(title=f"{panel[0]}, {panel[1]}, {panel[2]} tok × {panel[3]}",
               xlabel=f"speed-up over {baseline} (log; > 1 = faster; 95 % CI)")
    fig.suptitle(figs.title(f"speed-up over {baseline}/{registry.REFERENCE}", samples, "largest shape per mode"),
                 y=1.0)
    return save(fig, figs, "speedup_vs_baseline")


def latency_vs_tokens(samples: pd.DataFrame, figs: Figures) -> list[Path]:
    data = samples.groupby(["variant", "impl", "mode", "dtype", "d_model", "tokens"]).ms.median().reset_index()
    data = data[data.groupby(["variant", "impl", "mode", "dtype", "d_model"]).tokens.transform("nunique") > 1]
    if data.empty:
        return []
    data["panel"] = data["mode"] + ", " + data.dtype + ", d_model " + data.d_model.astype(str)
    grid = sns.relplot(data, x="tokens", y="ms", hue="variant", style="impl", col="panel", col_wrap=facets_a_row(data),
                       kind="line", marker="o", palette=figs.colours, height=3.2, aspect=1.2,
                       facet_kws={"sharey": False})
    grid.set(xscale="log", yscale="log")
    grid.set_titles("{col_name}")
    grid.set_axis_labels("tokens (log)", "median latency (ms, log)")
    ticks_at(grid.axes.flat, data.tokens)
    grid.figure.suptitle(figs.title("latency against batch size", data), y=1.0, va="bottom")
    return save(grid.figure, figs, "latency_vs_tokens", tight=False)


def memory_dots(results: pd.DataFrame, figs: Figures) -> list[Path]:
    mem = results[(results.harness == "memory") & (results.status == "ok") &
                  results.metric.isin(["peak_over_baseline", "saved_for_backward"]) & (results["mode"] == "fwd_bwd")]
    if mem.empty:
        return []
    mem = mem.assign(MiB=mem.value.astype(float) / 2**20, config=_label(mem))
    mem = mem[(mem.tokens == mem.tokens.max()) & (mem.MiB > 0)]  # a log axis has no place for 0
    if mem.empty:
        return []
    mem = mem.assign(panel=mem.metric + ", " + mem.dtype)
    # dots, not bars, on the log axis (see latency_dots)
    grid = sns.catplot(mem, y="config", x="MiB", hue="variant", col="panel", col_wrap=facets_a_row(mem), kind="strip",
                       jitter=False, size=7, edgecolor="black", linewidth=0.5, palette=figs.colours, legend=False,
                       height=0.3 * mem.config.nunique() + 1.8, aspect=1.4, sharex=False)
    grid.set(xscale="log")
    grid.set_titles("{col_name}")
    grid.set_axis_labels("MiB (log)", "")
    grid.figure.suptitle(figs.title("memory of one forward+backward", mem), y=1.0, va="bottom")
    return save(grid.figure, figs, "memory", tight=False)


def flops_vs_latency(results: pd.DataFrame, figs: Figures) -> list[Path]:
    """Counted FLOPs (matmul + elementwise) against measured median latency: where FLOPs mislead."""
    flops = results[(results.metric == "flops_matmul_elementwise") & (results.status == "ok")]
    lat = results[(results.metric == "latency") & (results.stat == "median") & (results.status == "ok")]
    keys = ["variant", "impl", "mode", "dtype", "tokens", "d_model"]
    data = lat[keys + ["value"]].merge(flops[keys + ["value"]], on=keys, suffixes=("_ms", "_flop"))
    if data.empty:
        return []
    data = data.assign(ms=data.value_ms.astype(float), gflop=data.value_flop.astype(float) / 1e9,
                       panel=data["mode"] + ", " + data.dtype)
    data = data[data.gflop > 0]  # nothing counted (an op the counter does not see) has no place on a log axis
    if data.empty:
        return []
    grid = sns.relplot(data, x="gflop", y="ms", hue="variant", style="impl", col="panel", col_wrap=facets_a_row(data),
                       palette=figs.colours, s=70, height=3.2, aspect=1.2,
                       facet_kws={"sharey": False, "sharex": False})
    grid.set(xscale="log", yscale="log")
    grid.set_titles("{col_name}")
    grid.set_axis_labels("GFLOP per call (log)", "median latency (ms, log)")
    grid.figure.suptitle(figs.title("counted FLOPs (matmul + elementwise) against measured latency", data), y=1.0,
                         va="bottom")
    return save(grid.figure, figs, "flops_vs_latency", tight=False)


def pareto_front(points: pd.DataFrame, x: str, y: str, higher_is_better: bool) -> pd.DataFrame:
    """Points no other point beats on both axes (smaller x, better y)."""
    ordered = points.sort_values(x)
    front, best = [], None
    for _, p in ordered.iterrows():
        if best is None or (p[y] > best if higher_is_better else p[y] < best):
            front.append(p)
            best = p[y]
    return pd.DataFrame(front)


def accuracy_costs(results: pd.DataFrame) -> pd.DataFrame:
    """Per task and variant: test score mean and std over seeds, parameters, training time per step (median over
    steps, evaluation excluded; older runs: total training time / steps) and forward FLOPs."""
    acc = results[results.harness == "accuracy"]
    seeds = acc[acc.metric.str.startswith("test_") & (acc.stat == "value") & (acc.status == "ok")]
    if seeds.empty:
        return pd.DataFrame()
    seeds = seeds.assign(score=seeds.value.astype(float), params=seeds.params.astype(float))
    out = seeds.groupby(["mode", "variant", "metric"]).agg(score=("score", "mean"), sd=("score", "std"),
                                                           params=("params", "first")).reset_index()

    def per_variant(metric: str, scale: float = 1.0) -> pd.Series:
        rows = acc[(acc.metric == metric) & (acc.status == "ok") & (acc.value != "")]
        return rows.assign(v=rows.value.astype(float) * scale).groupby(["mode", "variant"]).v.median()

    step_ms = per_variant("train_step_time")
    if step_ms.empty:  # runs before train_step_time: the whole loop (evaluation included) over its steps
        steps = seeds.message.str.extract(r"(\d+) steps", expand=False).astype(float)
        steps = seeds.assign(steps=steps).groupby(["mode", "variant"]).steps.first()
        step_ms = per_variant("train_time", 1e3) / steps
        out.attrs["step_ms_label"] = "training time per step (ms; whole loop / steps, evaluation included)"
    flops = pd.concat([per_variant("flops_per_example"), per_variant("ffn_flops_per_token")])
    index = pd.MultiIndex.from_frame(out[["mode", "variant"]])
    return out.assign(step_ms=step_ms.reindex(index).to_numpy(), flops=flops.reindex(index).to_numpy())


def accuracy_plots(results: pd.DataFrame, figs: Figures) -> list[Path]:
    """Test score (mean ± std over seeds) against each cost axis, one panel per task, the Pareto front dashed."""
    data = accuracy_costs(results)
    if data.empty:
        return []
    paths = []
    step_label = data.attrs.get("step_ms_label", "training time per step (ms, median over steps)")
    for xcol, name, label, what in (
            ("params", "accuracy_vs_params", "parameters", "parameters"),
            ("step_ms", "accuracy_vs_step_time", "ms per training step", step_label),
            ("flops", "accuracy_vs_flops", "forward FLOPs", "forward FLOPs per example (per token in blocks)")):
        part_all = data.dropna(subset=[xcol])
        if part_all.empty:
            continue
        tasks = sorted(part_all["mode"].unique())
        fig, axes = axes_grid(len(tasks), 4.2, 3.6)
        for ax, task in zip(axes, tasks, strict=True):
            part = part_all[part_all["mode"] == task]
            higher = part.metric.iloc[0] == "test_accuracy"
            for r in part.itertuples():
                ax.errorbar(getattr(r, xcol), r.score, yerr=0 if pd.isna(r.sd) else r.sd, fmt="o",
                            color=figs.colours[r.variant], label=r.variant, capsize=3)
            front = pareto_front(part, xcol, "score", higher)
            ax.plot(front[xcol], front.score, "--", color="grey", lw=1, label="Pareto front")
            log = part[xcol].max() / part[xcol].min() > 10  # matched widths put parameters within a few percent
            ax.set_xscale("log" if log else "linear")
            ax.set(title=task, xlabel=label + (" (log)" if log else ""),
                   ylabel=part.metric.iloc[0].replace("_", " ") + (" ↑" if higher else " ↓") + " (mean ± std)")
        handles, labels = axes[0].get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        fig.legend(unique.values(), unique.keys(), loc="upper center", ncol=min(8, len(unique)),
                   bbox_to_anchor=(0.5, 0.0), frameon=False)  # hangs below the axes' labels, never on them
        fig.suptitle(figs.title(f"test score against {what}", results[results.harness == "accuracy"], ""))
        paths += save(fig, figs, name)
    return paths


def spark_speedup(results: pd.DataFrame, figs: Figures) -> list[Path]:
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
            ax.plot(part.tokens, base[part.tokens].values / part.ms.values, "o" + style, color=figs.colours[dense],
                    label=f"spark_ffn/{impl} vs {dense}")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set(xscale="log", xlabel="batch (tokens per decode step, log)", ylabel="speed-up (dense ms / Spark ms)")
    ticks_at([ax], spark.tokens)
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
    ax.set_title(figs.title("Spark FFN decode speed-up against batch size", lat))
    return save(fig, figs, "spark_speedup_vs_batch")


def write_plots(run_dir: Path) -> list[Path]:
    """Every plot this run has data for; returns the files written. A plot an earlier report wrote that this one
    does not (its data now left off, say) is removed: the folder shows what the report shows."""
    results, env = load_run(run_dir)
    samples_path = run_dir / "samples.csv"
    samples = pd.read_csv(samples_path) if samples_path.exists() and samples_path.stat().st_size else pd.DataFrame()
    if not samples.empty:
        samples = samples[samples.method.str.contains("graph") == False]  # noqa: E712 - eager samples only
    device = env.get("gpu") or env.get("cpu") or env.get("device", "device not recorded")
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    figs = Figures(out, palette(sorted(set(results.variant))), f"{device} ({env.get('device', '?')})",
                   footer(env))
    sns.set_theme(style="whitegrid", context="notebook")
    paths: list[Path] = []
    for plot in (latency_dots, speedup_bars, latency_vs_tokens):
        paths += plot(samples, figs) if not samples.empty else []
    for plot in (memory_dots, flops_vs_latency, accuracy_plots, spark_speedup):
        paths += plot(results, figs)
    for stale in {out / f"{name}{suffix}" for name in PLOT_NAMES for suffix in (".png", ".svg")} - set(paths):
        stale.unlink(missing_ok=True)  # kanbench's own names only: a file someone else put there stays
    return paths
